"""Importing Dynamo's planner: stand-ins first, a clear error for what is missing, logging left alone.

:func:`import_dynamo` is the one place that imports ``dynamo``; it runs once per
process (the result is cached) and only when a ``dynamo`` planner is built.

Logging: Dynamo's modules call ``configure_dynamo_logging()`` when they load,
which replaces the *root* logger's handlers with one that forwards every record
to Dynamo's Rust logger, at ``INFO``.  A replay would then print several
Dynamo log lines per tick and the caller's own logging would be gone.  Unless
``DYN_LOG`` is set (Dynamo's own switch: the user asked for Dynamo's logs), the
root logger's handlers and level are put back as they were after every call
into Dynamo (:func:`logging_guard`) and the ``dynamo`` loggers are set to ``ERROR``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from replaylib.planner.dynamo import DISTRIBUTION, INSTALL_HINT, installed_version, standins
from replaylib.planner.protocol import PlannerError


class DynamoApi(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of Dynamo the bridge uses, with what identifies the installed planner."""

    version: str  #: ai-dynamo's version (its distribution metadata)
    planner_sha256: str  #: digest of the ``dynamo.planner`` sources (tells an edited checkout from the release)
    stood_in: tuple[str, ...]  #: AISimulate packages replaced by stand-ins (empty: the real ones are installed)
    PlannerConfig: Any  #: dynamo.planner.config.planner_config.PlannerConfig (pydantic)
    EngineCapabilities: Any  #: dynamo.planner.core.types.EngineCapabilities (dataclass)
    WorkerCapabilities: Any  #: dynamo.planner.core.types.WorkerCapabilities (dataclass)
    create_replay_planner_adapter: Any  #: dynamo.planner.offline.replay_adapter.create_replay_planner_adapter


@functools.cache
def import_dynamo() -> DynamoApi:
    """Import Dynamo's offline planner (cached); :class:`PlannerError` saying what to install when it cannot."""
    version = installed_version()
    if version is None:
        raise PlannerError(f"NVIDIA Dynamo's planner is not installed ({DISTRIBUTION} is absent); install it with `{INSTALL_HINT}`")
    stood_in = standins.install()
    try:
        with logging_guard():
            from dynamo.planner.config.planner_config import PlannerConfig
            from dynamo.planner.core.types import EngineCapabilities, WorkerCapabilities
            from dynamo.planner.offline.replay_adapter import create_replay_planner_adapter
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise PlannerError(
            f"NVIDIA Dynamo's planner ({DISTRIBUTION} {version}) does not import: module {missing!r} is missing "
            f"({exc}); `{INSTALL_HINT} --deps-only` installs the modules its planner imports"
        ) from exc
    return DynamoApi(
        version=version,
        planner_sha256=_planner_sources_sha256(),
        stood_in=stood_in,
        PlannerConfig=PlannerConfig,
        EngineCapabilities=EngineCapabilities,
        WorkerCapabilities=WorkerCapabilities,
        create_replay_planner_adapter=create_replay_planner_adapter,
    )


@contextlib.contextmanager
def logging_guard() -> Iterator[None]:
    """Around a call into Dynamo: undo any takeover of the root logger, keep Dynamo below ERROR quiet.

    Does nothing when ``DYN_LOG`` is set (Dynamo's own switch: the user asked for its logs).
    """
    if "DYN_LOG" in os.environ:
        yield
        return
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    dynamo = logging.getLogger("dynamo")
    if dynamo.level != logging.ERROR:  # setLevel clears every logger's level cache: only when needed
        dynamo.setLevel(logging.ERROR)
    try:
        yield
    finally:
        if root.handlers != handlers or root.level != level:
            root.handlers[:] = handlers
            root.setLevel(level)


def _planner_sources_sha256() -> str:
    """sha256 over the ``dynamo.planner`` package's Python sources (tests excluded), by relative path."""
    spec = importlib.util.find_spec("dynamo.planner")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    h = hashlib.sha256()
    for root in sorted(roots):
        base = Path(root)
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).as_posix()
            if rel.startswith("tests/") or "/tests/" in rel:
                continue
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


__all__ = ["DynamoApi", "import_dynamo", "logging_guard"]
