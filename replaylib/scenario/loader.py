"""Load a scenario file (with its ``extends:`` chain) and the system it names."""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from replaylib.data import SearchPath, find_scenario, find_system, find_trace, unknown_system
from replaylib.record.schema import ASSERTABLE, STRING_FIELDS
from replaylib.scenario.assertions import check_assertions
from replaylib.scenario.model import BudgetChange, OptimizerFailure, PromStale, PromWindowCross, Scenario
from replaylib.scenario.overrides import PATH_KEYS as _PATH_KEYS
from replaylib.scenario.overrides import apply_overrides
from replaylib.scenario.system import System, load_system
from replaylib.scenario.validate import ScenarioErrors, convert
from replaylib.scenario.yamlio import Merged, ScenarioError, load_with_extends

T = TypeVar("T")

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
        here = os.path.dirname(top)
        file_of = merged.file_of
        errors: list[ScenarioError] = []

        def attempt(check: Callable[[], T]) -> T | None:
            try:
                return check()
            except ScenarioError as exc:
                errors.append(exc)
            return None

        # every problem is reported at once: the schema's, the system's, the trace's, the cross-field checks'
        scenario = attempt(lambda: convert(data, Scenario, file_of))
        system_value = scenario.system if scenario is not None else data.get("system")
        system = system_path = None
        if isinstance(system_value, str):
            system_path = attempt(lambda: _resolve_system(system_value, here, file_of(("system",)), search))
            if system_path is not None:
                system = self._systems.get(system_path) or attempt(lambda: load_system(system_path))
                if system is not None:
                    self._systems[system_path] = system
        trace_value = scenario.trace.path if scenario is not None else (data.get("trace") or {}).get("path") \
            if isinstance(data.get("trace"), dict) else None
        trace_path = None
        if isinstance(trace_value, str):
            trace_path = attempt(lambda: _resolve_trace(trace_value, here, file_of(("trace", "path")), search, check_trace))
        planner_value = scenario.planner.name if scenario is not None else (data.get("planner") or {}).get("name") \
            if isinstance(data.get("planner"), dict) else None
        if isinstance(planner_value, str):
            attempt(lambda: _check_planner(planner_value, file_of(("planner", "name"))))
        if scenario is None and system is not None:  # the budget is worth checking even when other keys are bad
            budget = (data.get("power") or {}).get("total_gpu_power_limit_w") if isinstance(data.get("power"), dict) else None
            if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0:
                attempt(lambda: _check_budget(budget, system, file_of(("power", "total_gpu_power_limit_w")),
                                              "power.total_gpu_power_limit_w"))
        if scenario is not None:
            if system is not None:
                for check in _CHECKS:
                    attempt(lambda check=check: check(scenario, system, file_of))  # type: ignore[misc]
                if "ticks" not in (overrides or {}):  # a replay cut short on purpose may cut its events short
                    attempt(lambda: _check_event_windows(scenario, system, file_of))
                attempt(lambda: check_assertions(scenario, system, ASSERTABLE, STRING_FIELDS, file_of))
        if errors:
            raise ScenarioErrors.of(errors)
        assert scenario is not None and system is not None and system_path is not None and trace_path is not None
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


FileOf = Callable[[tuple[str, ...]], str]


def _check_planner(spec: str, declared_in: str) -> None:
    """The planner the scenario names exists (a built-in, an external one, an importable class)."""
    from replaylib.planner.protocol import PlannerError  # local: the planner package imports the scenario's types
    from replaylib.planner.registry import resolve_spec

    try:
        resolve_spec(spec)
    except PlannerError as exc:
        raise ScenarioError(declared_in, "planner.name", str(exc)) from None


def _check_fleet(s: Scenario, system: System, file_of: FileOf) -> None:
    p = s.planner
    per_worker = system.model.gpus_per_worker
    if (s.fleet.prefill_workers + s.fleet.decode_workers) * per_worker > p.max_gpu_budget:
        raise ScenarioError(
            file_of(("planner", "max_gpu_budget")),
            "planner.max_gpu_budget",
            f"expected at least the initial fleet's {(s.fleet.prefill_workers + s.fleet.decode_workers) * per_worker} GPUs, "
            f"got {p.max_gpu_budget}",
        )


def _check_events(s: Scenario, system: System, file_of: FileOf) -> None:
    for i, ev in enumerate(s.events):
        if isinstance(ev, PromStale) and ev.lag_ticks > MAX_STALE_TICKS:
            raise ScenarioError(file_of(("events",)), f"events[{i}].lag_ticks", f"expected at most {MAX_STALE_TICKS}, got {ev.lag_ticks}")
        if isinstance(ev, BudgetChange) and ev.total_gpu_power_limit_w is not None:
            _check_budget(ev.total_gpu_power_limit_w, system, file_of(("events",)), f"events[{i}].total_gpu_power_limit_w")


def _check_event_windows(s: Scenario, system: System, file_of: FileOf) -> None:
    """With ``ticks:``, every event starts, and every windowed event ends, by the replay's end.

    The replay's last tick is at ``ticks x adjustment_interval_s`` (its schedule when the planner keeps
    the scenario's interval): an event after it never fires, and a window (``duration_s``, or the
    ``ticks`` an optimiser failure or a window cross lasts) that ends after it is partly never replayed.
    Not checked when ``ticks`` is an override (``--set ticks=N``: a replay cut short on purpose), nor
    without ``ticks`` (the trace's end is not known before it is read).
    """
    if s.ticks is None:
        return
    interval = s.planner.adjustment_interval_s
    end_s = s.ticks * interval
    problems: list[ScenarioError] = []
    for i, ev in enumerate(s.events):
        key = f"events[{i}]"
        if ev.at_s > end_s:
            problems.append(ScenarioError(file_of(("events",)), f"{key}.at_s",
                                          f"expected at most {end_s:g} (the replay ends at tick {s.ticks - 1}, "
                                          f"{s.ticks} x {interval:g} s), got {ev.at_s:g}"))
            continue
        duration = getattr(ev, "duration_s", None)
        if duration is not None and ev.at_s + duration > end_s:
            problems.append(ScenarioError(file_of(("events",)), f"{key}.duration_s",
                                          f"the window {ev.at_s:g} s + {duration:g} s ends at {ev.at_s + duration:g} s, after the "
                                          f"replay's end at {end_s:g} s ({s.ticks} ticks x {interval:g} s); expected at most "
                                          f"{end_s - ev.at_s:g}"))
        if isinstance(ev, (OptimizerFailure, PromWindowCross)):
            first = math.ceil(ev.at_s / interval - 1e-9)  # the first tick at or after at_s (tick k is at (k + 1) x interval)
            last_tick = max(first - 1, 0) + ev.ticks - 1
            if last_tick > s.ticks - 1:
                problems.append(ScenarioError(file_of(("events",)), f"{key}.ticks",
                                              f"{ev.ticks} ticks from {ev.at_s:g} s last until tick {last_tick}, after the replay's "
                                              f"last tick {s.ticks - 1}; expected at most {max(s.ticks - max(first - 1, 0), 0)}"))
    if problems:
        raise ScenarioErrors.of(problems)


def _check_power(s: Scenario, system: System, file_of: FileOf) -> None:
    budget = s.power.total_gpu_power_limit_w
    if budget is not None:
        _check_budget(budget, system, file_of(("power", "total_gpu_power_limit_w")), "power.total_gpu_power_limit_w")


def _check_budget(budget_w: float, system: System, declared_in: str, key: str) -> None:
    """A total budget must power the smallest fleet (one prefill and one decode worker) at the lowest cap."""
    from replaylib.timing import power_model

    floor = system.gpu.min_cap_w
    least = power_model(system).provisioned_w(1, 1, floor, floor)
    if budget_w < least:
        raise ScenarioError(
            declared_in, key,
            f"expected at least {least:,.0f} W (the total GPU budget, in W: one prefill and one decode worker of "
            f"{system.model.gpus_per_worker} GPU(s) at the {system.name} minimum cap of {floor:g} W per GPU), got {budget_w:g}",
        )


def _check_trace(s: Scenario, system: System, file_of: FileOf) -> None:
    for key in ("session_lookahead_s", "session_timeout_s"):
        if not math.isfinite(getattr(s.trace, key)):
            raise ScenarioError(file_of(("trace", key)), f"trace.{key}", f"expected a finite number of seconds, got {getattr(s.trace, key)!r}")


def _check_corrections(s: Scenario, system: System, file_of: FileOf) -> None:
    p = s.planner
    if p.correction_min > 1 or p.correction_max < 1:
        raise ScenarioError(file_of(("planner",)), "planner.correction_min", "expected correction_min <= 1 <= correction_max")


def _check_golden_of(s: Scenario, system: System, file_of: FileOf) -> None:
    _check_golden(s, file_of)


#: Cross-field checks that a schema alone cannot express; each may report one error, all of them run.
_CHECKS: tuple[Callable[[Scenario, System, FileOf], None], ...] = (
    _check_fleet, _check_events, _check_power, _check_trace, _check_corrections, _check_golden_of,
)


def _check_golden(s: Scenario, file_of: Callable[[tuple[str, ...]], str]) -> None:
    """``golden:`` names known column classes and columns (the schema's)."""
    from replaylib.diff.policy import ToleranceError, scenario_policy

    try:
        scenario_policy(s)
    except ToleranceError as exc:
        key = "golden.only" if str(exc).startswith("only") else "golden.tolerance"
        raise ScenarioError(file_of(("golden",)), key, str(exc).split(": ", 1)[-1]) from None
