"""Load a scenario file (with its ``extends:`` chain) and the system it names."""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from replaylib.data import SearchPath, find_scenario, find_system, find_trace, unknown_system
from replaylib.record.schema import ASSERTABLE, STRING_FIELDS
from replaylib.scenario.assertions import check_assertions
from replaylib.scenario.model import PromStale, Scenario
from replaylib.scenario.overrides import PATH_KEYS as _PATH_KEYS
from replaylib.scenario.overrides import apply_overrides
from replaylib.scenario.system import System, load_system
from replaylib.scenario.validate import convert
from replaylib.scenario.yamlio import Merged, ScenarioError, load_with_extends

#: How far back a stale metrics source can lag (ticks of history kept).
MAX_STALE_TICKS = 64


class LoadedScenario(msgspec.Struct, frozen=True, kw_only=True):
    """A validated scenario with everything resolved that running it needs."""

    scenario: Scenario
    path: str  #: the scenario file as given
    system: System
    system_path: str  #: absolute path of the systems YAML
    trace_path: str  #: absolute path of the trace
    content_hash: str  #: sha256 of the merged, validated scenario (stable across machines)
    #: the key paths set on top of the file (``load_scenario(overrides=...)``), as given
    overrides: dict[str, Any] = {}

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


def load_scenario(
    path: str | os.PathLike[str],
    *,
    check_trace: bool = True,
    overrides: Mapping[str, Any] | None = None,
    overrides_from: str | os.PathLike[str] | None = None,
    search: SearchPath | None = None,
) -> LoadedScenario:
    """Load, merge and validate ``path``; errors name the file and key path.

    ``path`` is a scenario file or a scenario name on the search path
    (``g1_decode_drift``, ``testbed/a1_burst``; see :mod:`replaylib.data`).
    ``search`` adds the user's folders of scenarios, systems and traces
    (default: those of the ``REPLAYLIB_*_PATH`` environment variables).
    ``check_trace=False`` skips checking that the trace file exists (for
    tooling that only inspects the scenario).  ``overrides`` sets dotted key
    paths (``{"power.total_gpu_power_limit_w": 4000}``) on the merged document
    before validation (:mod:`replaylib.scenario.overrides`); ``overrides_from``
    is the file that declares them (errors name it; relative file paths in
    them are relative to it), by default the scenario itself.
    """
    return ScenarioTemplate(path, search=search).load(check_trace=check_trace, overrides=overrides, overrides_from=overrides_from)


class ScenarioTemplate:
    """A scenario file read once (its ``extends:`` chain merged); :meth:`load` validates one variant of it.

    For many variants of one file (a sweep's overrides): the YAML is parsed
    once and each systems file loaded once, instead of once per variant.
    ``path`` and ``search`` are as for :func:`load_scenario`.
    """

    def __init__(self, path: str | os.PathLike[str], *, search: SearchPath | None = None) -> None:
        self.search = SearchPath.from_env() if search is None else search
        self.path = find_scenario(path, self.search)
        self._merged = load_with_extends(self.path, path_keys=_PATH_KEYS)
        self._systems: dict[str, System] = {}

    def load(
        self,
        *,
        check_trace: bool = True,
        overrides: Mapping[str, Any] | None = None,
        overrides_from: str | os.PathLike[str] | None = None,
    ) -> LoadedScenario:
        """The validated scenario with ``overrides`` applied (see :func:`load_scenario`)."""
        path, search = self.path, self.search
        merged = Merged(copy.deepcopy(self._merged.data), dict(self._merged.provenance), list(self._merged.files))
        if overrides:
            apply_overrides(merged, overrides, declared_in=os.fspath(overrides_from) if overrides_from is not None else path)
        data = merged.data
        top = os.path.abspath(path)
        data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
        scenario = convert(data, Scenario, merged.file_of)
        here = os.path.dirname(top)

        system_path = _resolve_system(scenario.system, here, merged.file_of(("system",)), search)
        system = self._systems.get(system_path)
        if system is None:
            system = self._systems[system_path] = load_system(system_path)
        trace_path = _resolve_trace(scenario.trace.path, here, merged.file_of(("trace", "path")), search, check_trace)
        _check_scenario(scenario, system, merged.file_of)
        check_assertions(scenario, system, ASSERTABLE, STRING_FIELDS, merged.file_of)
        digest = hashlib.sha256(msgspec.json.encode(scenario, order="sorted")).hexdigest()
        return LoadedScenario(
            scenario=scenario,
            path=path,
            system=system,
            system_path=system_path,
            trace_path=trace_path,
            content_hash=digest,
            overrides=dict(overrides or {}),
        )


def _resolve_trace(value: str, here: str, declared_in: str, search: SearchPath, check: bool) -> str:
    """The trace file: relative to the declaring file, else the same relative path on the trace search path."""
    beside = os.path.normpath(os.path.join(here, value))
    if os.path.exists(beside) or os.path.isabs(value):
        if check and not os.path.exists(beside):
            raise ScenarioError(declared_in, "trace.path", f"trace file not found: {beside}")
        return beside
    as_written = os.path.relpath(beside, os.path.dirname(os.path.abspath(declared_in)))
    found = find_trace(as_written, search)
    if found is not None:
        return os.path.abspath(found)
    if check:
        raise ScenarioError(declared_in, "trace.path", f"trace file not found: {beside}, nor {as_written} on the "
                            f"trace search path: {search.describe('traces')}")
    return beside


def _resolve_system(value: str, here: str, declared_in: str, search: SearchPath) -> str:
    """A path (relative to the scenario) or a bare SKU name, found in the user's system folders, then
    the nearest ``systems/`` folder above the file that names it (then above the scenario file), then
    the bundled systems."""
    if value.endswith((".yaml", ".yml")) or "/" in value:
        candidate = os.path.normpath(os.path.join(here, value))
        if os.path.exists(candidate):
            return candidate
        raise ScenarioError(declared_in, "system", f"systems file not found: {candidate}")
    nearest: list[Path] = []
    for start in (os.path.dirname(os.path.abspath(declared_in)), here):  # the declaring file's folder first
        d = start
        while True:
            candidate = os.path.join(d, "systems", f"{value}.yaml")
            if os.path.exists(candidate):
                nearest.append(Path(d, "systems"))
                break
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    found = find_system(value, nearest, search)
    if found is None:
        raise ScenarioError(declared_in, "system", unknown_system(value, search))
    return found


def _check_scenario(s: Scenario, system: System, file_of: Callable[[tuple[str, ...]], str]) -> None:
    """Cross-field checks that a schema alone cannot express."""
    p = s.planner
    per_worker = system.model.gpus_per_worker
    if (s.fleet.prefill_workers + s.fleet.decode_workers) * per_worker > p.max_gpu_budget:
        raise ScenarioError(
            file_of(("planner", "max_gpu_budget")),
            "planner.max_gpu_budget",
            f"expected at least the initial fleet's {(s.fleet.prefill_workers + s.fleet.decode_workers) * per_worker} GPUs, "
            f"got {p.max_gpu_budget}",
        )
    for i, ev in enumerate(s.events):
        if isinstance(ev, PromStale) and ev.lag_ticks > MAX_STALE_TICKS:
            raise ScenarioError(file_of(("events",)), f"events[{i}].lag_ticks", f"expected at most {MAX_STALE_TICKS}, got {ev.lag_ticks}")
    for key in ("session_lookahead_s", "session_timeout_s"):
        if not math.isfinite(getattr(s.trace, key)):
            raise ScenarioError(file_of(("trace", key)), f"trace.{key}", f"expected a finite number of seconds, got {getattr(s.trace, key)!r}")
    if p.correction_min > 1 or p.correction_max < 1:
        raise ScenarioError(file_of(("planner",)), "planner.correction_min", "expected correction_min <= 1 <= correction_max")
    _check_golden(s, file_of)


def _check_golden(s: Scenario, file_of: Callable[[tuple[str, ...]], str]) -> None:
    """``golden:`` names known column classes and columns (the schema's)."""
    from replaylib.diff.policy import ToleranceError, scenario_policy

    try:
        scenario_policy(s)
    except ToleranceError as exc:
        key = "golden.only" if str(exc).startswith("only") else "golden.tolerance"
        raise ScenarioError(file_of(("golden",)), key, str(exc).split(": ", 1)[-1]) from None
