"""The sweep file: a matrix of scenarios x planners x seeds x overrides of scenario keys.

```yaml
name: budget_sweep                      # default: the file's stem
scenarios: [../scenarios/default.yaml]  # relative to this file; glob patterns allowed
planners: [sla@1, aic@2]                # default: each scenario's own planner
seeds: [0, 1, 2]                        # or {start: 0, count: 8}; default: each scenario's own seed
overrides:                              # every combination of these values (cartesian product)
  power.total_gpu_power_limit_w: [4000, 6000, 8000]
  fleet.router: [kv_aware, round_robin]
cases:                                  # optional: sets of keys that vary together, crossed with the rest
  - {planner.max_gpu_budget: 16, fleet.prefill_workers: 2}
  - {planner.max_gpu_budget: 32, fleet.prefill_workers: 4}
```

Every override key is a scenario key path (:mod:`replaylib.scenario.overrides`);
its value replaces the scenario's.  A bad file is a :class:`ScenarioError`
naming the file, the key and what was expected; nothing is run.
"""

from __future__ import annotations

import glob
import os
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from replaylib.scenario.overrides import check_override_key
from replaylib.scenario.validate import convert
from replaylib.scenario.yamlio import ScenarioError, read_yaml

NonNegI = Annotated[int, Meta(ge=0)]


class SeedRange(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``seeds: {start: 0, count: 8}`` is seeds 0 .. 7."""

    start: NonNegI = 0
    count: NonNegI


class SweepFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The sweep file as written (see the module docstring)."""

    scenarios: list[str] | str
    name: str | None = None
    description: str = ""
    planners: list[str] | None = None
    seeds: list[NonNegI] | SeedRange | None = None
    overrides: dict[str, list[Any]] = {}
    cases: list[dict[str, Any]] | None = None


class Sweep(msgspec.Struct, frozen=True, kw_only=True):
    """A validated sweep: every axis resolved; ``None`` axes take each scenario's own value."""

    path: str  #: the sweep file ("<library>" when built in code)
    name: str
    description: str
    scenarios: tuple[str, ...]  #: absolute paths, in the order given (patterns expanded, sorted)
    planners: tuple[str, ...] | None
    seeds: tuple[int, ...] | None
    overrides: dict[str, list[Any]]  #: key path -> values (product over keys, in the order given)
    cases: tuple[dict[str, Any], ...] | None  #: override sets, each crossed with ``overrides``

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    @property
    def override_keys(self) -> tuple[str, ...]:
        """Every key any run overrides: the matrix's first, then the cases', in order of appearance."""
        keys = list(self.overrides)
        for case in self.cases or ():
            keys += [k for k in case if k not in keys]
        return tuple(keys)


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read and validate a sweep file (scenario files and keys are checked when the runs are planned)."""
    path = os.fspath(path)
    doc = read_yaml(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ScenarioError(path, None, f"expected a mapping at the top level, got {type(doc).__name__}")
    return sweep_from_mapping(doc, path)


def sweep_from_mapping(doc: dict[str, Any], path: str) -> Sweep:
    """A :class:`Sweep` from a parsed mapping; relative scenario paths are relative to ``path``'s folder."""
    raw = convert(doc, SweepFile, lambda keys: path)
    here = os.path.dirname(os.path.abspath(path))
    patterns = [raw.scenarios] if isinstance(raw.scenarios, str) else raw.scenarios
    _non_empty(path, "scenarios", patterns)
    scenarios: list[str] = []
    for i, pattern in enumerate(patterns):
        full = os.path.normpath(os.path.join(here, pattern))
        if glob.has_magic(pattern):
            found = sorted(glob.glob(full))
            if not found:
                raise ScenarioError(path, f"scenarios[{i}]", f"the pattern {pattern!r} matches no file (looked in {os.path.dirname(full)})")
            scenarios += found
        elif not os.path.isfile(full):
            raise ScenarioError(path, f"scenarios[{i}]", f"scenario file not found: {full}")
        else:
            scenarios.append(full)
    if raw.planners is not None:
        _non_empty(path, "planners", raw.planners)
        for i, spec in enumerate(raw.planners):
            if not spec.strip():
                raise ScenarioError(path, f"planners[{i}]", "expected a planner spec (name@version or pkg.module:Class), got an empty string")
    seeds: tuple[int, ...] | None = None
    if isinstance(raw.seeds, SeedRange):
        seeds = tuple(range(raw.seeds.start, raw.seeds.start + raw.seeds.count))
    elif raw.seeds is not None:
        seeds = tuple(raw.seeds)
    if seeds is not None:
        _non_empty(path, "seeds", seeds)
    for key, values in raw.overrides.items():
        check_override_key(key, declared_in=path)
        _non_empty(path, f"overrides.{key}", values)
    if raw.cases is not None:
        _non_empty(path, "cases", raw.cases)
        for i, case in enumerate(raw.cases):
            if not case:
                raise ScenarioError(path, f"cases[{i}]", "empty case: expected at least one key path and its value")
            for key in case:
                check_override_key(key, declared_in=path)
                if key in raw.overrides:
                    raise ScenarioError(path, f"cases[{i}].{key}", "this key is also in overrides: give its values in one place")
    return Sweep(
        path=path,
        name=raw.name if raw.name is not None else os.path.splitext(os.path.basename(path))[0],
        description=raw.description,
        scenarios=tuple(scenarios),
        planners=tuple(p.strip() for p in raw.planners) if raw.planners is not None else None,
        seeds=seeds,
        overrides=dict(raw.overrides),
        cases=tuple(raw.cases) if raw.cases is not None else None,
    )


def _non_empty(path: str, key: str, values: Any) -> None:
    if len(values) == 0:
        raise ScenarioError(path, key, "empty list: the sweep's matrix would have no runs")


__all__ = ["SeedRange", "Sweep", "SweepFile", "load_sweep", "sweep_from_mapping"]
