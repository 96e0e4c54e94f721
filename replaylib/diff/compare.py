"""Replaying one scenario under several planners and diffing each against the first."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

from replaylib.diff.engine import diff_recordings
from replaylib.diff.model import CompareReport, DiffError
from replaylib.record.reader import recording_metadata


def recording_name(index: int, planner: str) -> str:
    """The file a planner's recording is written to: ``00-sla_1.arrow``, ``02-pkg.mod_Mine.arrow`` ..."""
    from replaylib.sweep.plan import slug

    return f"{index:02d}-{slug(planner)}.arrow"


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
    executor: str | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    connect_timeout_s: float = 10.0,
) -> CompareReport:
    """Replay ``scenario`` (a path or a ``LoadedScenario``) once per planner spec, same trace and seed.

    The replays are independent tasks on the sweep machinery's executor
    (``executor``/``jobs``/``scheduler`` as for :func:`replaylib.sweep.run_sweep`;
    default a local process pool).  Recordings go to ``out_dir`` (kept) or to
    a temporary folder (removed, and then ``recordings`` is empty).  Planner
    i >= 1 is diffed against planner 0.
    """
    from replaylib.scenario import LoadedScenario, load_scenario
    from replaylib.sweep.executors import make_executor
    from replaylib.sweep.plan import TaskFactory
    from replaylib.sweep.runner import execute_tasks
    from replaylib.sweep.storage import Store

    if len(planners) < 2:
        raise DiffError(f"compare needs at least two planners, got {len(planners)}")
    if out_dir is not None and "://" in os.fspath(out_dir):
        raise DiffError(f"{os.fspath(out_dir)}: compare keeps its recordings in a local folder, not a URL")
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(os.fspath(scenario))  # type: ignore[arg-type]
    run_seed = loaded.scenario.seed if seed is None else seed
    with tempfile.TemporaryDirectory(prefix="replaylib-compare-") as tmp:
        store = Store(os.fspath(out_dir) if out_dir is not None else tmp)
        store.makedirs()
        factory = TaskFactory(loaded.path)
        tasks = [
            factory.task(i, loaded, spec, run_seed, store, dest=store.join(recording_name(i, spec)), reuse=False)
            for i, spec in enumerate(planners)
        ]
        engine = make_executor(executor, jobs=jobs, scheduler=scheduler, connect_timeout_s=connect_timeout_s)
        try:
            outcomes = execute_tasks(
                tasks, engine,
                on_outcome=None if log is None else lambda o: log(f"replayed {loaded.scenario.name} with {planners[o.index]}"),
            )  # fmt: skip
        finally:
            engine.close()
        failed = [(planners[i], o.error) for i, o in sorted(outcomes.items()) if o.error is not None]
        if failed:
            raise DiffError("; ".join(f"replaying {loaded.scenario.name} with {spec} failed: {error}" for spec, error in failed))
        paths = [t.dest for t in tasks]
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
