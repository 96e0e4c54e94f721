"""What every importer shares: the base system it copies unmeasured sections from, and ``--set`` / ``--assume``.

A profile or an estimator gives timing; it never gives the GPU's power limits,
its cap → speed curves, the power model, the start-up delay or the KV hand-off.
Importers copy those from ``--gpu-from SYSTEM.yaml`` (:func:`load_base`), let
the user override any value of the output (``--set key.path=value``,
:func:`parse_set` / :func:`apply_sets`) and record, in words, every number
that is not from the source (``provenance.assumptions``; ``--assume``,
:func:`set_notes`).
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
from typing import Any

import yaml

from replaylib.timing.importers import SystemsImportError

#: Sections a timing source does not measure, copied from --gpu-from.
COPIED = ("gpu", "startup_delay_ms", "speed_curve", "power_model")


class BaseSystem:
    """The ``--gpu-from`` file: validated as a system, and its raw document for copying."""

    __slots__ = ("doc", "path", "system")

    def __init__(self, path: str, system: Any, doc: dict[str, Any]) -> None:
        self.path, self.system, self.doc = path, system, doc

    def kv_transfer(self) -> dict[str, Any]:
        return (self.doc.get("timing") or {}).get("kv_transfer", {"base_ms": 0.0, "per_token_ms": 0.0})

    def copy_into(self, doc: dict[str, Any]) -> None:
        """Add the sections a timing source does not measure (:data:`COPIED`) to ``doc``, in order."""
        for section in COPIED:
            if section in self.doc:
                doc[section] = self.doc[section]


def load_base(gpu_from: str | None, what: str) -> BaseSystem:
    """Read ``--gpu-from``; ``what`` says what the source lacks (for the error when it is missing)."""
    from replaylib.scenario.system import load_system
    from replaylib.scenario.yamlio import ScenarioError, read_yaml

    if gpu_from is None:
        raise SystemsImportError(f"{what}: give --gpu-from SYSTEM.yaml (its {', '.join(COPIED)} and "
                                 "timing.kv_transfer are copied)")
    try:
        system = load_system(gpu_from)
    except ScenarioError as exc:
        raise SystemsImportError(f"--gpu-from: {exc}") from None
    return BaseSystem(gpu_from, system, read_yaml(gpu_from))


def sha256_of(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def num(x: float) -> float | int:
    """A measured value as written: 10 significant digits (float noise dropped), integers as ints."""
    v = float(f"{float(x):.10g}")
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


# -- --set and --assume -------------------------------------------------------------------------


def parse_set(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise SystemsImportError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. timing.kv_transfer.per_token_ms=6.6e-4")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise SystemsImportError(f"--set {text!r}: the value is not YAML: {exc}") from None
    return key.strip(), parsed


def apply_sets(doc: dict[str, Any], sets: list[tuple[str, Any]]) -> None:
    for key, value in sets:
        node = doc
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise SystemsImportError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value


def set_notes(sets: list[tuple[str, Any]], assumptions: tuple[str, ...]) -> list[str]:
    """The provenance lines for the ``--set`` values (an ``--assume "KEY: why"`` explains its ``--set``), then the rest."""
    free = list(assumptions)
    notes = []
    for k, v in sets:
        why = next((a for a in free if a.startswith(f"{k}:")), None)
        if why is not None:
            free.remove(why)
        notes.append(f"{k} = {v!r} (--set)" + (f": {why[len(k) + 1:].strip()}" if why else ""))
    return notes + free


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """``--gpu-from``, ``--name``, ``--description``, ``--set``, ``--assume``."""
    p.add_argument("--gpu-from", metavar="SYSTEM.yaml", help=f"systems file whose {', '.join(COPIED)} and "
                   "timing.kv_transfer are copied (a timing source measures none of them; required)")
    p.add_argument("--name", help="the system's name (default: the output file's stem)")
    p.add_argument("--description", help="one line describing the system")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY.PATH=VALUE",
                   help="override one value of the output (YAML value), e.g. startup_delay_ms=60000; repeatable")
    p.add_argument("--assume", action="append", default=[], dest="assumptions", metavar="TEXT",
                   help="an assumption, in words, added to provenance.assumptions; repeatable")


def common_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"gpu_from": args.gpu_from, "name": args.name, "description": args.description,
            "sets": tuple(args.sets), "assumptions": tuple(args.assumptions)}


def canonical_command(importer: str, source: str, out: str, own: list[str], *, name: str | None,
                      description: str | None, gpu_from: str | None, sets: tuple[str, ...],
                      assumptions: tuple[str, ...]) -> str:
    """The ``systems import`` command line that makes a file: the importer and its source, the common flags in
    a fixed order (None: not given), the importer's ``own`` flags, then every ``--set`` and ``--assume``."""
    argv = ["python", "-m", "replaylib", "systems", "import", importer, source, "-o", out]
    for flag, value in (("--name", name), ("--description", description), ("--gpu-from", gpu_from)):
        if value is not None:
            argv += [flag, str(value)]
    argv += own
    for text in sets:
        argv += ["--set", text]
    for text in assumptions:
        argv += ["--assume", text]
    return shlex.join(argv)
