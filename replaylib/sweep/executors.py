"""Executors: where a sweep's independent run tasks execute, found by name in a registry.

- ``serial`` — one after another in this process (the reference; ``--jobs 1``);
- ``process`` — a local process pool, every core by default (``--jobs N``);
- ``dask`` — Dask distributed: a scheduler at ``--scheduler tcp://host:port``
  (a cluster of any size), or without one a ``LocalCluster`` of ``--jobs``
  single-threaded worker processes.  Needs ``pip install 'replaylib[dask]'``.

An executor runs ``fn(task)`` for every task and hands each result to
``on_result`` as it completes (in completion order; the caller orders them).
``fn`` reports its own failures in its result; an executor-level failure (a
worker process that died, a lost Dask worker) becomes ``on_error(task, exc)``.
Every executor produces the same results for the same tasks: the replay is
deterministic and nothing about the executor reaches a recording.

Register another engine with :func:`register_executor` (a factory taking
:class:`ExecutorOptions`); it is then selectable by name.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from replaylib.errors import ReplaylibError

T = TypeVar("T")
R = TypeVar("R")


class ExecutorError(ReplaylibError):
    """An executor that cannot start (unknown name, unreachable scheduler, missing extra)."""


class ExecutorOptions(msgspec.Struct, frozen=True, kw_only=True):
    jobs: int | None = None  #: worker processes (local pool, local Dask cluster); default: every core
    scheduler: str | None = None  #: a Dask scheduler address (tcp://host:port)
    connect_timeout_s: float = 10.0  #: how long to try reaching the scheduler


class Executor(Protocol):
    name: str
    #: how many tasks run at once (for the progress display)
    workers: int

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_result: Callable[[R], None],
        on_error: Callable[[T, BaseException], None],
    ) -> None: ...

    def close(self) -> None: ...


def default_jobs() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class SerialExecutor:
    """Each task in turn, in this process."""

    name = "serial"
    workers = 1

    def __init__(self, options: ExecutorOptions) -> None:
        pass

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], on_result: Callable[[R], None],
            on_error: Callable[[T, BaseException], None]) -> None:
        for task in tasks:
            on_result(fn(task))

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A local pool of worker processes (see :func:`_pool_context` for how they start)."""

    name = "process"

    def __init__(self, options: ExecutorOptions) -> None:
        self.workers = options.jobs or default_jobs()
        if self.workers < 1:
            raise ExecutorError(f"--jobs must be at least 1, got {self.workers}")

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], on_result: Callable[[R], None],
            on_error: Callable[[T, BaseException], None]) -> None:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        if not tasks:
            return
        context = _pool_context()
        workers = min(self.workers, len(tasks))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            # keep a bounded window of submitted tasks: memory stays flat for 100,000 runs
            pending: dict[Any, T] = {}
            queue = iter(tasks)
            window = 4 * workers
            for task in queue:
                pending[pool.submit(fn, task)] = task
                if len(pending) >= window:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:  # the caller orders results by task
                    task = pending.pop(future)
                    exc = future.exception()
                    if exc is not None:
                        on_error(task, exc)
                    else:
                        on_result(future.result())
                for task in queue:
                    pending[pool.submit(fn, task)] = task
                    if len(pending) >= window:
                        break
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def close(self) -> None:
        pass


def _pool_context() -> Any:
    """Worker processes forked from a clean server process that has imported replaylib once (forkserver).

    Not plain ``fork``: a parent that has used polars or pyarrow has thread
    pools that a forked child would inherit locked.  Where forkserver is not
    available, ``spawn``.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["replaylib.sweep.task"])
        return context
    return multiprocessing.get_context("spawn")  # pragma: no cover - not POSIX


class DaskExecutor:
    """Dask distributed: an existing scheduler, or a local cluster of single-threaded worker processes."""

    name = "dask"

    def __init__(self, options: ExecutorOptions) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError("the dask executor needs Dask distributed: pip install 'replaylib[dask]'") from None
        self.cluster = None
        if options.scheduler:
            address = options.scheduler
            try:
                self.client = Client(address, timeout=f"{options.connect_timeout_s}s", set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            jobs = options.jobs or default_jobs()
            if jobs < 1:
                raise ExecutorError(f"--jobs must be at least 1, got {jobs}")
            # processes, one thread each: a replay is pure Python, threads would share one GIL
            self.cluster = local_cluster(jobs)
            self.client = Client(self.cluster, set_as_default=False)
        info = self.client.scheduler_info()
        self.workers = max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def run(self, fn: Callable[[T], R], tasks: Sequence[T], on_result: Callable[[R], None],
            on_error: Callable[[T, BaseException], None]) -> None:
        from distributed import as_completed

        if not tasks:
            return
        # A bounded window of runs submitted (every task carries its scenario): the client and the scheduler
        # hold a few per worker, not all 100,000.  The first run of each worker goes alone, to time a run;
        # then short runs go in batches (dask_batch_size), long ones still alone.
        window = max(4 * self.workers, 16)
        queue = deque(enumerate(tasks))
        live: dict[str, tuple[Any, list[T]]] = {}  # key -> (future, its tasks)
        timing = _RunTiming()

        def submit(size: int) -> Any:
            batch = [queue.popleft() for _ in range(min(size, len(queue)))]
            if not batch:
                return None
            i, first = batch[0]
            key = f"replaylib-run-{getattr(first, 'key', i)}-{i}" + (f"+{len(batch) - 1}" if len(batch) > 1 else "")
            items = [task for _, task in batch]
            future = self.client.submit(run_batch, fn, items, key=key, pure=False)
            live[key] = (future, items)
            return future

        def in_flight() -> int:
            return sum(len(items) for _, items in live.values())

        running = as_completed([f for f in (submit(1) for _ in range(self.workers)) if f is not None], loop=self.client.loop)
        try:
            for future in running:
                _, items = live.pop(future.key)
                try:
                    results, seconds = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker, a task that could not be unpickled ...
                    for task in items:
                        on_error(task, exc)
                else:
                    timing.add(len(items), seconds)
                    for task, (ok, value) in zip(items, results, strict=True):
                        if ok:
                            on_result(value)
                        else:
                            on_error(task, value)
                future.release()
                while queue and in_flight() < window:
                    running.add(submit(dask_batch_size(timing.per_run(), len(queue), self.workers)))
        except BaseException:
            self.client.cancel([f for f, _ in live.values()])
            raise

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


#: A Dask task costs a few milliseconds of scheduling, messaging and bookkeeping besides its run, on the
#: scheduler's machine and the worker's: runs shorter than this go to a worker in batches that take about
#: this long (a run of the default scenario takes ~0.1 s), at most DASK_MAX_BATCH runs.
DASK_TASK_S = 0.25
DASK_MAX_BATCH = 8


def dask_batch_size(per_run_s: float | None, left: int, workers: int) -> int:
    """How many runs the next Dask task takes: enough for ``DASK_TASK_S`` at ``per_run_s`` a run (the mean so
    far; None: no run timed yet, so one), at most ``DASK_MAX_BATCH``, and no more than a share of the ``left``
    runs that keeps two tasks per worker for the end (a batch never leaves the other workers idle while it
    finishes)."""
    if per_run_s is None:
        return 1
    size = DASK_MAX_BATCH if per_run_s <= 0.0 else math.ceil(DASK_TASK_S / per_run_s)
    return max(1, min(size, DASK_MAX_BATCH, left // (2 * workers)))


def run_batch(fn: Callable[[T], R], tasks: list[T]) -> tuple[list[tuple[bool, Any]], float]:
    """On a worker: ``fn`` of each task, in turn, each one's result or exception (``(True, result)`` or
    ``(False, exc)``: one task's failure does not lose the others), and the seconds they took."""
    start = time.perf_counter()
    out: list[tuple[bool, Any]] = []
    for task in tasks:
        try:
            out.append((True, fn(task)))
        except Exception as exc:  # noqa: BLE001 - reported as that task's on_error
            out.append((False, exc))
    return out, time.perf_counter() - start


class _RunTiming:
    """The mean seconds of a run on the workers, from the batches done."""

    def __init__(self) -> None:
        self.runs = 0
        self.seconds = 0.0

    def add(self, runs: int, seconds: float) -> None:
        self.runs += runs
        self.seconds += seconds

    def per_run(self) -> float | None:
        return self.seconds / self.runs if self.runs else None


#: The Dask configuration a sweep's workers should run with (README "Sweeps"): the worker's sampling profiler
#: off.  It takes the GIL from the running task every 10 ms to walk its stack, which a replay, pure Python
#: from end to end, pays for: measured here, a 2-worker LocalCluster's runs took ~10% longer with it on.
DASK_WORKER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False}


def local_cluster(workers: int) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes, configured for replays
    (``DASK_WORKER_CONFIG``; the worker processes take the configuration they are started with)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(DASK_WORKER_CONFIG):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


#: name -> factory(options); see :func:`register_executor`.
EXECUTORS: dict[str, Callable[[ExecutorOptions], Executor]] = {
    "serial": SerialExecutor,
    "process": ProcessExecutor,
    "dask": DaskExecutor,
}


def register_executor(name: str, factory: Callable[[ExecutorOptions], Executor]) -> None:
    """Make ``factory`` selectable as ``--executor name``."""
    if name in EXECUTORS:
        raise ValueError(f"an executor named {name!r} is already registered")
    EXECUTORS[name] = factory


def make_executor(
    name: str | None = None, *, jobs: int | None = None, scheduler: str | None = None, connect_timeout_s: float = 10.0
) -> Executor:
    """The executor ``name`` (default: ``dask`` with a scheduler, else ``serial`` for one job, else ``process``)."""
    if name is None:
        name = "dask" if scheduler else "serial" if jobs == 1 else "process"
    if scheduler and name != "dask":
        raise ExecutorError(f"a scheduler address is for the dask executor, not {name!r}")
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ExecutorError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ExecutorError(f"--jobs must be at least 1, got {jobs}")
    return factory(ExecutorOptions(jobs=jobs, scheduler=scheduler, connect_timeout_s=connect_timeout_s))


__all__ = [
    "EXECUTORS",
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "ExecutorOptions",
    "ProcessExecutor",
    "SerialExecutor",
    "default_jobs",
    "make_executor",
    "register_executor",
]
