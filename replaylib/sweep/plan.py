"""Planning a sweep: the matrix expanded into runs, each fully resolved, validated and keyed.

Planning does every check up front — each scenario loads with its overrides,
each planner resolves and constructs, no two cells are the same replay — so a
bad sweep fails before anything runs.  Cells are ordered scenario, case,
override values (the product, in the order the keys are given), planner,
seed; a run's index is its position in that order.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from replaylib import __version__
from replaylib.errors import ReplaylibError
from replaylib.scenario.loader import LoadedScenario, ScenarioTemplate
from replaylib.scenario.system import system_file_hash
from replaylib.sweep.spec import Sweep
from replaylib.sweep.storage import Store
from replaylib.sweep.task import RunInputs, RunTask

#: The folder of a sweep's output that holds the recordings.
RUNS_DIR = "runs"


class SweepError(ReplaylibError):
    """A sweep that cannot be planned or run as given."""


class PlannedRun(msgspec.Struct, frozen=True, kw_only=True):
    """One cell of the matrix: its parameters and the task that produces its recording."""

    index: int
    scenario: str  #: the scenario's name
    scenario_file: str  #: as recorded in the table: relative to the sweep file's folder
    planner_spec: str  #: as given (or the scenario's own)
    planner: str  #: name@version
    seed: int
    overrides: dict[str, Any]
    task: RunTask

    @property
    def key(self) -> str:
        return self.task.key


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (``aic@2`` -> ``aic_2``, ``pkg.mod:Cls`` -> ``pkg.mod_Cls``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def recording_location(store: Store, scenario: str, planner: str, seed: int, key: str) -> str:
    """Where a run's recording goes: readable parameters, then the key (so a re-run finds it)."""
    return store.join(RUNS_DIR, f"{slug(scenario)}__{slug(planner)}__seed{seed}__{key[:12]}.arrow")


def override_sets(sweep: Sweep) -> Iterator[dict[str, Any]]:
    """Every case crossed with every combination of the override values, in matrix order."""
    keys = list(sweep.overrides)
    for case in sweep.cases or ({},):
        for values in itertools.product(*(sweep.overrides[k] for k in keys)):
            yield {**dict(zip(keys, values, strict=True)), **case}


class TaskFactory:
    """Builds keyed :class:`RunTask` s, hashing each trace and systems file and resolving each planner once."""

    def __init__(self, declared_in: str) -> None:
        self.declared_in = declared_in
        self._identities: dict[tuple[str, str], str] = {}
        self._hashes: dict[tuple[str, str], str] = {}

    def inputs(self, loaded: LoadedScenario, spec: str, seed: int) -> RunInputs:
        planner = self._identities.get((loaded.content_hash, spec))
        if planner is None:
            planner = self._identities[(loaded.content_hash, spec)] = planner_identity(loaded, spec, seed, self.declared_in)
        return RunInputs(
            replaylib_version=__version__,
            scenario_hash=loaded.content_hash,
            trace_sha256=self._hash("trace", loaded.trace_path),
            systems_sha256=self._hash("systems", loaded.system_path),
            planner=planner,
            seed=seed,
            overrides=dict(loaded.overrides),
        )

    def task(self, index: int, loaded: LoadedScenario, spec: str, seed: int, store: Store, *,
             dest: str | None = None, reuse: bool = True) -> RunTask:
        """The task of one run; ``dest`` defaults to :func:`recording_location`."""
        inputs = self.inputs(loaded, spec, seed)
        key = inputs.key
        if dest is None:
            dest = recording_location(store, loaded.scenario.name, inputs.planner, seed, key)
        return RunTask(index=index, key=key, inputs=inputs, loaded=loaded, planner=spec, seed=seed,
                       store=store.location, dest=dest, reuse=reuse)

    def _hash(self, kind: str, path: str) -> str:
        from replaylib.adapter import sha256_file

        if (kind, path) not in self._hashes:
            self._hashes[(kind, path)] = sha256_file(path) if kind == "trace" else system_file_hash(path)
        return self._hashes[(kind, path)]


def plan_sweep(sweep: Sweep, store: Store, *, reuse: bool = True) -> list[PlannedRun]:
    """Every run of ``sweep``, validated and keyed; raises (a :class:`~replaylib.errors.ReplaylibError`) on bad input."""
    runs: list[PlannedRun] = []
    seen: dict[str, int] = {}
    factory = TaskFactory(sweep.path)
    for scenario_path in sweep.scenarios:
        template = ScenarioTemplate(scenario_path)
        for overrides in override_sets(sweep):
            loaded = template.load(overrides=overrides, overrides_from=sweep.path)
            for spec in sweep.planners or (loaded.scenario.planner.name,):
                for seed in sweep.seeds or (loaded.scenario.seed,):
                    index = len(runs)
                    task = factory.task(index, loaded, spec, seed, store, reuse=reuse)
                    if task.key in seen:
                        first = runs[seen[task.key]]
                        raise SweepError(
                            f"{sweep.path}: runs {first.index} and {index} are the same replay ({loaded.scenario.name}, "
                            f"planner {first.planner_spec} and {spec} = {task.inputs.planner}, seed {seed}, "
                            f"overrides {overrides}); list each scenario, planner and seed once"
                        )
                    seen[task.key] = index
                    runs.append(PlannedRun(
                        index=index, scenario=loaded.scenario.name,
                        scenario_file=os.path.relpath(scenario_path, sweep.directory).replace(os.sep, "/"),
                        planner_spec=spec, planner=task.inputs.planner, seed=seed, overrides=overrides, task=task,
                    ))  # fmt: skip
    return runs


def planner_identity(loaded: LoadedScenario, spec: str, seed: int, declared_in: str) -> str:
    """``name@version`` of the planner ``spec`` builds for ``loaded`` (constructing it checks that it can be)."""
    from replaylib.adapter import planner_context
    from replaylib.planner.registry import load_planner

    try:
        planner = load_planner(spec, planner_context(loaded, seed))
    except ReplaylibError as exc:
        raise SweepError(f"{declared_in}: planner {spec!r} for scenario {loaded.path}: {exc}") from None
    return f"{planner.name}@{planner.version}"


__all__ = ["RUNS_DIR", "PlannedRun", "SweepError", "TaskFactory", "override_sets", "plan_sweep", "planner_identity", "recording_location", "slug"]
