"""Replaying one scenario under several planners and diffing each against the first."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence

from replaylib.diff.engine import diff_recordings
from replaylib.diff.model import CompareReport, DiffError
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
    tolerance: float = 0.0,
    columns: Sequence[str] | None = None,
    context: int = 2,
    log: Callable[[str], None] | None = None,
) -> CompareReport:
    """Replay ``scenario`` (a path or a ``LoadedScenario``) once per planner spec, same trace and seed.

    Recordings go to ``out_dir`` (kept) or to a temporary folder (removed, and
    then ``recordings`` is empty).  Planner i >= 1 is diffed against planner 0.
    """
    from replaylib.adapter import replay
    from replaylib.scenario import LoadedScenario, load_scenario

    if len(planners) < 2:
        raise DiffError(f"compare needs at least two planners, got {len(planners)}")
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(os.fspath(scenario))  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="replaylib-compare-") as tmp:
        directory = os.fspath(out_dir) if out_dir is not None else tmp
        os.makedirs(directory, exist_ok=True)
        paths = []
        for i, spec in enumerate(planners):
            if log is not None:
                log(f"replaying {loaded.scenario.name} with {spec}")
            result = replay(loaded, planner=spec, trace=None, seed=seed, out=os.path.join(directory, recording_name(i, spec)), progress=None)
            paths.append(result.path)
        diffs = [diff_recordings(paths[0], p, tolerance=tolerance, columns=columns, context=context) for p in paths[1:]]
        labels = [recording_metadata(p).planner for p in paths]
    kpis = [diffs[0].kpis_a, *(d.kpis_b for d in diffs)]
    return CompareReport(
        scenario=loaded.scenario.name,
        seed=seed,
        planners=labels,
        recordings=paths if out_dir is not None else [],
        diffs=diffs,
        kpis=[k for k in kpis if k is not None],
    )


__all__ = ["compare_planners", "recording_name"]
