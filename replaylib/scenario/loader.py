"""Load a scenario file (with its ``extends:`` chain) and the system it names."""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

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
) -> LoadedScenario:
    """Load, merge and validate ``path``; errors name the file and key path.

    ``check_trace=False`` skips checking that the trace file exists (for
    tooling that only inspects the scenario).  ``overrides`` sets dotted key
    paths (``{"power.total_gpu_power_limit_w": 4000}``) on the merged document
    before validation (:mod:`replaylib.scenario.overrides`); ``overrides_from``
    is the file that declares them (errors name it; relative file paths in
    them are relative to it), by default the scenario itself.
    """
    return ScenarioTemplate(path).load(check_trace=check_trace, overrides=overrides, overrides_from=overrides_from)


class ScenarioTemplate:
    """A scenario file read once (its ``extends:`` chain merged); :meth:`load` validates one variant of it.

    For many variants of one file (a sweep's overrides): the YAML is parsed
    once and each systems file loaded once, instead of once per variant.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
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
        path = self.path
        merged = Merged(copy.deepcopy(self._merged.data), dict(self._merged.provenance), list(self._merged.files))
        if overrides:
            apply_overrides(merged, overrides, declared_in=os.fspath(overrides_from) if overrides_from is not None else path)
        data = merged.data
        top = os.path.abspath(path)
        data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
        scenario = convert(data, Scenario, merged.file_of)
        here = os.path.dirname(top)

        system_path = _resolve_system(scenario.system, here, merged.file_of(("system",)))
        system = self._systems.get(system_path)
        if system is None:
            system = self._systems[system_path] = load_system(system_path)
        trace_path = os.path.normpath(os.path.join(here, scenario.trace.path))
        if check_trace and not os.path.exists(trace_path):
            raise ScenarioError(merged.file_of(("trace", "path")), "trace.path", f"trace file not found: {trace_path}")
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


def _resolve_system(value: str, here: str, declared_in: str) -> str:
    """A path (relative to the scenario) or a bare SKU name, found in the nearest ``systems/``
    folder above the file that names it (then above the scenario file)."""
    if value.endswith((".yaml", ".yml")) or "/" in value:
        candidate = os.path.normpath(os.path.join(here, value))
        if os.path.exists(candidate):
            return candidate
        raise ScenarioError(declared_in, "system", f"systems file not found: {candidate}")
    for start in (os.path.dirname(os.path.abspath(declared_in)), here):  # the declaring file's folder first
        d = start
        while True:
            candidate = os.path.join(d, "systems", f"{value}.yaml")
            if os.path.exists(candidate):
                return candidate
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    raise ScenarioError(
        declared_in, "system", f"unknown system {value!r}: no systems/{value}.yaml in this or any parent folder"
    )


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
