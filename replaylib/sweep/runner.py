"""Running a sweep: plan every run, check the output, start the executor, run, write the table.

Bad input — the sweep file, a scenario, an override, a planner, duplicate
runs, an output folder that cannot be written, an executor that cannot start
— raises before any run starts.  Once running, a failed run is reported
(``log``) and recorded as an ``error`` row; the others go on.  An interrupt
stops the sweep, and the table is still written with the runs finished so far
(the rest are ``error`` rows "not run"); re-running the same sweep reuses
every recording already made.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import msgspec
import polars as pl

from replaylib.sweep.executors import Executor, make_executor
from replaylib.sweep.plan import RUNS_DIR, PlannedRun, plan_sweep, slug
from replaylib.sweep.progress import ProgressBar
from replaylib.sweep.spec import Sweep, load_sweep
from replaylib.sweep.storage import Store
from replaylib.sweep.table import results_table, write_table
from replaylib.sweep.task import RunOutcome, RunTask, describe_error, execute_task

Log = Callable[[str], None]


class SweepResult(msgspec.Struct, frozen=True, kw_only=True):
    sweep: Sweep
    out: str  #: the output folder (path or URL)
    table_path: str  #: the Parquet table's location
    runs: list[PlannedRun]
    outcomes: list[RunOutcome]  #: in run order
    table: pl.DataFrame

    @property
    def reused(self) -> int:
        return sum(1 for o in self.outcomes if o.reused)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        """Every run finished and every assertion held."""
        return all(o.status == "passed" for o in self.outcomes)


def default_out(sweep: Sweep) -> str:
    """``recordings/sweeps/<name>`` in the current folder (beside ``record``'s recordings)."""
    return os.path.join("recordings", "sweeps", slug(sweep.name))


def execute_tasks(
    tasks: Sequence[RunTask],
    executor: Executor,
    *,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> dict[int, RunOutcome]:
    """Run ``tasks`` on ``executor``; every outcome by task index (a run the executor lost is an error outcome)."""
    outcomes: dict[int, RunOutcome] = {}

    def done(outcome: RunOutcome) -> None:
        outcomes[outcome.index] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    def lost(task: RunTask, exc: BaseException) -> None:
        done(RunOutcome(index=task.index, key=task.key, error=f"the {executor.name} executor lost this run: {describe_error(exc)}"))

    executor.run(execute_task, tasks, done, lost)
    return outcomes


def run_sweep(
    sweep: Sweep | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    executor: str | Executor | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    connect_timeout_s: float = 10.0,
    reuse: bool = True,
    progress: bool = False,
    log: Log | None = None,
) -> SweepResult:
    """Run every cell of ``sweep`` (a :class:`Sweep` or a sweep file) and write its recordings and table to ``out``.

    ``executor`` is a name (``serial``, ``process``, ``dask``; default: ``dask``
    with a ``scheduler``, else ``process`` on ``jobs`` cores, all by default) or
    an executor object (kept open: the caller closes it); ``connect_timeout_s``
    bounds the wait for the scheduler.  ``reuse=False``
    replays every run even when its recording exists.  ``progress`` draws a
    progress line on stderr; ``log`` receives one line per failed run.
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    store = Store(out if out is not None else default_out(sweep))
    runs = plan_sweep(sweep, store, reuse=reuse)
    store.makedirs(RUNS_DIR)
    own = executor is None or isinstance(executor, str)
    engine: Executor = make_executor(executor, jobs=jobs, scheduler=scheduler, connect_timeout_s=connect_timeout_s) if own else executor  # type: ignore[arg-type]
    bar = ProgressBar(len(runs), workers=engine.workers) if progress else None
    by_index = {r.index: r for r in runs}

    def report(outcome: RunOutcome) -> None:
        if bar is not None:
            bar.update(outcome)
        if outcome.status != "passed" and log is not None:
            run = by_index[outcome.index]
            what = outcome.error if outcome.error is not None else "assertion failed: " + "; ".join(
                f"[{a.index}] {a.description} -- {a.evidence}" for a in outcome.assertions if not a.passed
            )
            if bar is not None:
                bar.stream.write("\r\033[K")
            log(f"run {run.index} ({run.scenario}, {run.planner_spec}, seed {run.seed}"
                + (f", {run.overrides}" if run.overrides else "") + f") {outcome.status}: {what}")
            if bar is not None:
                bar.draw()

    outcomes: dict[int, RunOutcome] = {}
    try:
        outcomes = execute_tasks([r.task for r in runs], engine, on_outcome=lambda o: (outcomes.__setitem__(o.index, o), report(o)))
    finally:
        if bar is not None:
            bar.close()
        if own:
            engine.close()
        table = results_table(runs, outcomes, store, sweep.override_keys)
        table_path = write_table(table, store)
    return SweepResult(
        sweep=sweep, out=store.location, table_path=table_path, runs=runs,
        outcomes=[outcomes[r.index] for r in runs], table=table,
    )  # fmt: skip


__all__ = ["SweepResult", "default_out", "execute_tasks", "run_sweep"]
