"""Sweeps: a matrix of replays (scenarios x planners x seeds x overrides) as independent tasks on an executor.

``run_sweep("sweeps/budget.yaml", out="out/budget", jobs=8)`` plans every run
(:mod:`~replaylib.sweep.plan`), runs them on a local process pool or Dask
(:mod:`~replaylib.sweep.executors`), writes one recording per run and one
Parquet table (:mod:`~replaylib.sweep.table`).  Exports are imported on first
use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replaylib._lazy import lazy_exports

if TYPE_CHECKING:
    from replaylib.sweep.executors import EXECUTORS, Executor, ExecutorError, make_executor, register_executor
    from replaylib.sweep.plan import PlannedRun, SweepError, plan_sweep
    from replaylib.sweep.runner import SweepResult, execute_tasks, run_sweep
    from replaylib.sweep.spec import Sweep, load_sweep, sweep_from_mapping
    from replaylib.sweep.storage import StorageError, Store
    from replaylib.sweep.task import RunInputs, RunOutcome, RunTask, execute_task

_EXPORTS = {
    "EXECUTORS": "replaylib.sweep.executors",
    "Executor": "replaylib.sweep.executors",
    "ExecutorError": "replaylib.sweep.executors",
    "make_executor": "replaylib.sweep.executors",
    "register_executor": "replaylib.sweep.executors",
    "PlannedRun": "replaylib.sweep.plan",
    "SweepError": "replaylib.sweep.plan",
    "plan_sweep": "replaylib.sweep.plan",
    "SweepResult": "replaylib.sweep.runner",
    "execute_tasks": "replaylib.sweep.runner",
    "run_sweep": "replaylib.sweep.runner",
    "Sweep": "replaylib.sweep.spec",
    "load_sweep": "replaylib.sweep.spec",
    "sweep_from_mapping": "replaylib.sweep.spec",
    "StorageError": "replaylib.sweep.storage",
    "Store": "replaylib.sweep.storage",
    "RunInputs": "replaylib.sweep.task",
    "RunOutcome": "replaylib.sweep.task",
    "RunTask": "replaylib.sweep.task",
    "execute_task": "replaylib.sweep.task",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
