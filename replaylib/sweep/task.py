"""One run of a sweep as an independent task: what a worker gets, what it does, what it returns.

:func:`execute_task` runs in a worker process (a local pool's or a Dask
worker's).  It never raises for a failed replay: the failure comes back as a
:class:`RunOutcome` with ``error`` set, so one bad run does not stop the
others.  A run is keyed by the content hash of its resolved inputs
(:class:`RunInputs`); a recording already at the run's destination with the
same inputs is reused instead of replayed (a resumed sweep), and a fresh
recording is checked against the inputs the sweep planned before it is
published (a worker with another trace or replaylib version cannot slip a
different recording under the key).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import traceback
from typing import Any, Literal

import msgspec

from replaylib import __version__
from replaylib.adapter.loop import AssertionResult
from replaylib.errors import ReplaylibError
from replaylib.record.kpis import Kpis
from replaylib.record.meta import RecordingMeta
from replaylib.scenario.loader import LoadedScenario
from replaylib.sweep.storage import Store

Status = Literal["passed", "failed", "error"]


class RunInputs(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a recording depends on; its hash is the run's key.  All of it is in the recording's metadata."""

    replaylib_version: str
    scenario_hash: str  #: the merged, validated scenario with its overrides applied
    trace_sha256: str
    systems_sha256: str
    planner: str  #: name@version
    seed: int
    overrides: dict[str, Any]

    @classmethod
    def from_meta(cls, meta: RecordingMeta) -> RunInputs:
        return cls(
            replaylib_version=meta.replaylib_version,
            scenario_hash=meta.scenario_hash,
            trace_sha256=meta.trace_sha256,
            systems_sha256=meta.systems_sha256,
            planner=meta.planner,
            seed=meta.seed,
            overrides=dict(meta.overrides),
        )

    @property
    def key(self) -> str:
        return hashlib.sha256(msgspec.json.encode(self, order="sorted")).hexdigest()

    def differences(self, other: RunInputs) -> list[str]:
        """The fields that differ, as ``name: mine != other`` (canonical JSON for comparison)."""
        mine, theirs = msgspec.to_builtins(self, order="sorted"), msgspec.to_builtins(other, order="sorted")
        enc = msgspec.json.encode
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if enc(mine[k], order="sorted") != enc(theirs[k], order="sorted")]


class RunTask(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs to run (or reuse) one recording."""

    index: int
    key: str  #: ``inputs.key``
    inputs: RunInputs
    loaded: LoadedScenario
    planner: str  #: the spec to construct
    seed: int
    store: str  #: the output folder (path or URL)
    dest: str  #: the recording's location in it
    reuse: bool = True  #: reuse a recording already at ``dest`` when its inputs are the same


class RunOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What came of one task."""

    index: int
    key: str
    reused: bool = False  #: an existing recording with the same inputs was summarised instead of replayed
    planner: str | None = None  #: name@version that ran
    passed: bool | None = None  #: every assertion held (None: the run failed)
    assertions: tuple[AssertionResult, ...] = ()
    kpis: Kpis | None = None
    sha256: str | None = None  #: of the recording
    error: str | None = None
    seconds: float = 0.0  #: wall time in the worker (progress and ETA only; never recorded)

    @property
    def status(self) -> Status:
        return "error" if self.error is not None else "passed" if self.passed else "failed"


def execute_task(task: RunTask) -> RunOutcome:
    """Run (or reuse) ``task``'s recording; any failure is returned as ``RunOutcome.error``."""
    start = time.perf_counter()
    try:
        outcome = _execute(task)
    except Exception as exc:  # noqa: BLE001 - a failed run is reported, not raised
        outcome = RunOutcome(index=task.index, key=task.key, error=describe_error(exc))
    return msgspec.structs.replace(outcome, seconds=time.perf_counter() - start)


def describe_error(exc: BaseException) -> str:
    """One line: the message of a replaylib error; type, message and where it was raised for anything else."""
    if isinstance(exc, ReplaylibError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _execute(task: RunTask) -> RunOutcome:
    from replaylib.adapter import replay, sha256_file
    from replaylib.record.writer import partial_path

    if task.inputs.replaylib_version != __version__:
        raise ReplaylibError(f"this worker runs replaylib {__version__}; the sweep was planned with {task.inputs.replaylib_version}")
    store = Store(task.store)
    if task.reuse and store.exists(task.dest):
        reused = _reuse(task, store)
        if reused is not None:
            return reused
    scratch = store.scratch_dir(task.dest)
    tmp = os.path.join(scratch, f".{os.path.basename(task.dest)}.tmp")
    try:
        try:
            result = replay(task.loaded, out=tmp, planner=task.planner, seed=task.seed)
        except BaseException:
            if not store.url and os.path.exists(partial_path(tmp)):
                os.replace(partial_path(tmp), partial_path(task.dest))  # the events so far, for inspection
            raise
        got = RunInputs.from_meta(result.meta)
        if got != task.inputs:
            os.remove(tmp)
            raise ReplaylibError(
                "the replay's inputs on this worker are not those the sweep planned (is the trace, the systems file or "
                f"replaylib the same here?): {'; '.join(got.differences(task.inputs))}"
            )
        digest = sha256_file(tmp)
        store.publish(tmp, task.dest)
    finally:
        if store.url:
            shutil.rmtree(scratch, ignore_errors=True)
    return RunOutcome(
        index=task.index, key=task.key, planner=result.planner, passed=result.passed,
        assertions=result.assertions, kpis=result.kpis, sha256=digest,
    )  # fmt: skip


def _reuse(task: RunTask, store: Store) -> RunOutcome | None:
    """The outcome of the recording already at ``task.dest`` if its inputs are ``task.inputs`` (else None)."""
    import tempfile

    import polars as pl

    from replaylib.adapter import sha256_file
    from replaylib.record.kpis import compute_kpis
    from replaylib.record.meta import RecordingError
    from replaylib.record.reader import read_recording, recording_metadata

    with tempfile.TemporaryDirectory(prefix="replaylib-reuse-") as tmp:
        try:
            local = store.fetch(task.dest, os.path.join(tmp, "r.arrow"))
            meta = recording_metadata(local)
            if RunInputs.from_meta(meta) != task.inputs:
                return None
            df = read_recording(local)
        except (RecordingError, OSError):
            return None  # damaged or unreadable: replay it again
        rows = df.filter(pl.col("kind") == "assertion").select("detail", "passed").iter_rows()
        assertions = []
        for i, (detail, passed) in enumerate(rows):
            description, _, evidence = (detail or "").partition(" -- ")
            assertions.append(AssertionResult(index=i, description=description, passed=bool(passed), evidence=evidence))
        return RunOutcome(
            index=task.index, key=task.key, reused=True, planner=meta.planner,
            passed=all(a.passed for a in assertions), assertions=tuple(assertions),
            kpis=compute_kpis(df, meta), sha256=sha256_file(local),
        )  # fmt: skip


__all__ = ["RunInputs", "RunOutcome", "RunTask", "Status", "describe_error", "execute_task"]
