"""Systems importers: measured or estimated performance data → a ``systems/*.yaml`` with provenance.

An importer is registered by name (:func:`register_importer`) and is then both a
library call (:func:`import_system`) and a CLI verb
(``python -m replaylib systems import NAME SOURCE -o OUT.yaml [its flags]``).
It turns its options into a systems document (:class:`ImportedSystem`); the
common machinery here validates that document as a systems file and writes it
atomically — on any error nothing is written and an existing file is kept.

Built in: ``dynamo`` (:mod:`replaylib.timing.importers.dynamo`, Dynamo
profiler ``raw_data.npz`` output; needs ``numpy``: ``pip install 'replaylib[profiles]'``)
and ``aiconfigurator`` (:mod:`replaylib.timing.importers.aic`, NVIDIA's
estimator swept over a grid; ``pip install 'replaylib[aic]'``).  What both
copy from a base system and the ``--set`` / ``--assume`` flags live in
:mod:`replaylib.timing.importers.base_system`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from replaylib.errors import ReplaylibError


class SystemsImportError(ReplaylibError):
    """A profile or option an importer cannot use: names the file, the array or key, and the point."""



@dataclass(frozen=True)
class ImportedSystem:
    """What an importer produced: the systems document and the comment lines to head the file with."""

    doc: dict[str, Any]
    header: tuple[str, ...] = ()


@dataclass(frozen=True)
class Importer:
    """A registered importer.

    ``add_arguments(parser)`` adds its CLI flags (the ``SOURCE`` positional and
    ``-o`` are common); ``options(args)`` turns parsed flags into the keyword
    arguments of ``build``; ``build(source, out, **options)`` returns the
    :class:`ImportedSystem` (``out`` as given, for the provenance's call).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    options: Callable[[argparse.Namespace], dict[str, Any]]
    build: Callable[..., ImportedSystem]
    #: what the ``SOURCE`` positional is, for ``--help``
    source_help: str = "the profile (file or folder) to import"


_IMPORTERS: dict[str, Importer] = {}


def register_importer(importer: Importer) -> None:
    """Add an importer (its name must be new)."""
    if importer.name in _IMPORTERS:
        raise ValueError(f"an importer named {importer.name!r} is already registered")
    _IMPORTERS[importer.name] = importer


def importers() -> dict[str, Importer]:
    """Every registered importer by name, sorted."""
    return dict(sorted(_IMPORTERS.items()))


def import_system(importer: str, source: str | os.PathLike[str], out: str | os.PathLike[str], /, **options: Any) -> str:
    """Run ``importer`` on ``source`` and write the systems file ``out`` atomically; returns ``out``."""
    if importer not in _IMPORTERS:
        raise SystemsImportError(f"unknown importer {importer!r}; available: {', '.join(importers()) or 'none'}")
    imported = _IMPORTERS[importer].build(os.fspath(source), os.fspath(out), **options)
    write_system(imported, os.fspath(out))
    return os.fspath(out)


# -- writing ------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists of scalars (one curve per line), no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    """Numbers (and lists of numbers: curve points) on one line; anything else one item per line."""
    flow = all(_is_number(v) or (isinstance(v, list) and all(_is_number(x) for x in v)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def render_system(imported: ImportedSystem) -> str:
    """The file's text: the header as ``#`` comments, then the document."""
    head = "".join(f"# {line}".rstrip() + "\n" for line in imported.header)
    body = yaml.dump(imported.doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False)
    return head + body


def write_system(imported: ImportedSystem, out: str) -> None:
    """Validate the document as a systems file, then move it into place (atomic; nothing half-written)."""
    from replaylib.scenario.system import load_system
    from replaylib.scenario.yamlio import ScenarioError

    text = render_system(imported)
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise SystemsImportError(f"{out}: the folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".systems-", suffix=".yaml.partial", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            load_system(tmp)
        except ScenarioError as exc:
            raise SystemsImportError(f"{out}: the imported system does not validate: {exc.key or ''}: {exc.message}") from None
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _register_builtins() -> None:
    from replaylib.timing.importers.aic import IMPORTER as aiconfigurator
    from replaylib.timing.importers.dynamo import IMPORTER as dynamo

    register_importer(aiconfigurator)
    register_importer(dynamo)


_register_builtins()

__all__ = [
    "ImportedSystem",
    "Importer",
    "SystemsImportError",
    "import_system",
    "importers",
    "register_importer",
    "render_system",
    "write_system",
]
