"""Replaying one scenario under several planners and diffing each against the first."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence

import msgspec

from replaylib.diff.engine import diff_recordings
from replaylib.diff.model import AssertionVerdict, CompareReport, DiffError
from replaylib.diff.policy import ComparePolicy, ToleranceSpec, scenario_policy
from replaylib.record.reader import recording_metadata


def recording_name(index: int, planner: str) -> str:
    """The file a planner's recording is written to: ``00-sla_1.arrow``, ``02-pkg.mod_Mine.arrow`` ..."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", planner).strip("_") or "planner"
    return f"{index:02d}-{slug}.arrow"


def compare_planners(
    scenario: str | os.PathLike[str] | object,
    planners: Sequence[str],
    *,
    seed: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    only: str | Sequence[str] | None = None,
    tolerance: ToleranceSpec | None = None,
    policy: ComparePolicy | None = None,
    columns: Sequence[str] | None = None,
    context: int = 2,
    log: Callable[[str], None] | None = None,
) -> CompareReport:
    """Replay ``scenario`` (a path or a ``LoadedScenario``) once per planner spec, same trace and seed.

    Recordings go to ``out_dir`` (kept, and listed in ``recordings``) or to a temporary
    folder (removed; then neither ``recordings`` nor the diffs name any path).  Planner
    i >= 1 is diffed against planner 0 under ``policy`` (default: the scenario's
    ``golden:`` settings, then ``only`` / ``tolerance``).
    """
    from replaylib.adapter import replay
    from replaylib.scenario import LoadedScenario, load_scenario

    if len(planners) < 2:
        raise DiffError(f"compare needs at least two planners, got {len(planners)}")
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(os.fspath(scenario))  # type: ignore[arg-type]
    if policy is None:
        policy = scenario_policy(loaded.scenario, only=only, tolerance=tolerance)
    keep = out_dir is not None
    with tempfile.TemporaryDirectory(prefix="replaylib-compare-") as tmp:
        directory = os.fspath(out_dir) if keep else tmp
        os.makedirs(directory, exist_ok=True)
        paths, verdicts = [], []
        for i, spec in enumerate(planners):
            if log is not None:
                log(f"replaying {loaded.scenario.name} with {spec}")
            out = os.path.join(directory, recording_name(i, spec))
            result = replay(loaded, planner=spec, trace=None, seed=seed, out=out, progress=None)
            paths.append(result.path)
            verdicts.append([AssertionVerdict(index=a.index, description=a.description, passed=a.passed, evidence=a.evidence)
                             for a in result.assertions])  # fmt: skip
        diffs = [diff_recordings(paths[0], p, policy=policy, columns=columns, context=context) for p in paths[1:]]
        labels = [recording_metadata(p).planner for p in paths]
    if not keep:  # the files are gone: do not print their paths
        diffs = [msgspec.structs.replace(d, path_a=None, path_b=None) for d in diffs]
    kpis = [diffs[0].kpis_a, *(d.kpis_b for d in diffs)]
    return CompareReport(
        scenario=loaded.scenario.name,
        seed=seed,
        planners=labels,
        recordings=paths if keep else [],
        diffs=diffs,
        kpis=[k for k in kpis if k is not None],
        assertions=verdicts,
    )


__all__ = ["compare_planners", "recording_name"]
