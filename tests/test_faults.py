"""Faults during a replay: SIGKILL, SIGINT and SIGTERM at several points, a full filesystem, two writers.

Each replay runs as a user runs it (``python -m replaylib record`` in a subprocess).  The planner
``tests.hardening_planners:Blocking`` writes a marker file at a chosen tick and waits there, so the
fault comes at a known point: before any batch of events was flushed, after one, after several.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from scenario_helpers import REPO, tiny_scenario

from replaylib.record import read_recording

BATCH = 256  # RecordingWriter's default batch_rows: what a kill can lose at most
# 100 requests spread over 100 minutes (speedup 0.01), a tick a second: ~6,000 ticks, one row or more each
SCENARIO = (
    "system: h100_sxm\n"
    "trace: {path: ../traces/tiny.jsonl, speedup: 0.01}\n"
    "fleet: {prefill_workers: 1, decode_workers: 1}\n"
    "planner: {name: sla@1, adjustment_interval_s: 1, params: {block_at: BLOCK_AT, marker: MARKER, release: RELEASE}}\n"
)


def _scenario(root: Path, block_at: int) -> tuple[Path, Path, Path]:
    marker, release = root / f"at_{block_at}", root / f"release_{block_at}"
    body = SCENARIO.replace("BLOCK_AT", str(block_at)).replace("MARKER", str(marker)).replace("RELEASE", str(release))
    return tiny_scenario(root, body, name=f"fault_{block_at}"), marker, release


def _record(scenario: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "replaylib", "record", "--scenario", str(scenario), "--planner",
           "tests.hardening_planners:Blocking", "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the replay ended before reaching its marker: {proc.communicate()}")
        assert time.monotonic() < deadline, "the replay never reached its marker"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The uninterrupted replay (the planner never blocks), to compare prefixes against."""
    root = tmp_path_factory.mktemp("complete")
    scenario, _, _ = _scenario(root, -1)
    proc = _record(scenario, root / "full.arrow")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1), err
    df = read_recording(root / "full.arrow")
    assert df.height > 3 * BATCH  # long enough for kills after several batches
    return df


def _check_partial(partial: Path, complete: pl.DataFrame, at_tick: int) -> pl.DataFrame:
    """Plain pyarrow and polars read the partial; it is a prefix of the complete replay holding every
    batch flushed before the fault."""
    table = pa.ipc.open_stream(partial).read_all()
    df = pl.read_ipc_stream(partial)
    assert df.height == table.num_rows
    assert read_recording(partial, partial=True).equals(df)
    assert df.equals(complete.head(df.height))
    rows_before = complete.filter(pl.col("tick") < at_tick).height  # the rows recorded before the planner blocked
    assert df.height >= rows_before // BATCH * BATCH
    assert df.height <= rows_before + 1
    return df


@pytest.mark.parametrize("at_tick", [5, 300, 900])
def test_sigkill_leaves_the_old_recording_and_a_partial_every_reader_reads(
        at_tick: int, complete: pl.DataFrame, tmp_path: Path) -> None:
    scenario, marker, _ = _scenario(tmp_path, at_tick)
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"the previous recording")
    proc = _record(scenario, out)
    _wait_for(marker, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == b"the previous recording"
    _check_partial(Path(str(out) + ".partial"), complete, at_tick)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("at_tick", [5, 600])
def test_sigint_and_sigterm_keep_a_partial_and_say_where(
        sig: int, code: int, word: str, at_tick: int, complete: pl.DataFrame, tmp_path: Path) -> None:
    scenario, marker, _ = _scenario(tmp_path, at_tick)
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"the previous recording")
    proc = _record(scenario, out)
    _wait_for(marker, proc)
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    partial = Path(str(out) + ".partial")
    assert err.startswith(word) and str(partial) in err and "Traceback" not in err, err
    assert out.read_bytes() == b"the previous recording"
    df = _check_partial(partial, complete, at_tick)
    assert df.height == complete.filter(pl.col("tick") < at_tick).height  # an orderly stop loses nothing
    assert pa.ipc.open_stream(partial).read_all().num_rows == df.height  # ended with its end-of-stream marker


def test_a_second_writer_to_the_same_out_refuses_and_the_first_publishes(complete: pl.DataFrame, tmp_path: Path) -> None:
    scenario, marker, release = _scenario(tmp_path, 400)
    out = tmp_path / "rec.arrow"
    first = _record(scenario, out)
    _wait_for(marker, first)
    second = _record(scenario, out)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "another replay is writing" in err and "Traceback" not in err, err
    release.touch()
    _, err = first.communicate(timeout=300)
    assert first.returncode in (0, 1), err
    assert not Path(str(out) + ".partial").exists()
    assert pa.ipc.open_file(out).read_all().num_rows == complete.height  # whole, not interleaved
    assert pl.read_ipc(out).equals(complete)


def test_two_writers_one_after_the_other_both_publish(tmp_path: Path) -> None:
    """The lock is per run: once the first writer is done (or killed), the next one writes."""
    from replaylib.record import EventRow, RecordingWriter
    from replaylib.report.output import OutputError

    out = tmp_path / "w.arrow"
    a = RecordingWriter(out, {})
    with pytest.raises(OutputError, match="another replay is writing"):
        RecordingWriter(out, {})
    a.append(EventRow(kind="tick", seq=0, tick=0, now_ms=0.0))
    a.close()
    b = RecordingWriter(out, {})
    b.append(EventRow(kind="tick", seq=0, tick=0, now_ms=0.0))
    b.append(EventRow(kind="tick", seq=1, tick=1, now_ms=1.0))
    b.close()
    assert read_recording(out).height == 2


def _tmpfs(mount: Path, options: str):
    """Mount a tmpfs with ``options`` at ``mount`` for one test, where this test may mount one."""
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root in a namespace that allows it): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 96 KiB tmpfs: a full disk at once."""
    yield from _tmpfs(tmp_path / "small", "size=96k")


def test_a_full_filesystem_is_a_clean_error_and_leaves_nothing(small_fs: Path, tmp_path: Path) -> None:
    scenario, _, _ = _scenario(tmp_path, -1)
    out = small_fs / "rec.arrow"
    out.write_bytes(b"the previous recording")
    proc = _record(scenario, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert err.startswith("error: ") and "No space left on device" in err and "Traceback" not in err, err
    assert sorted(p.name for p in small_fs.iterdir()) == ["rec.arrow"]
    assert out.read_bytes() == b"the previous recording"


@pytest.fixture
def read_only_fs(tmp_path: Path):
    """A read-only tmpfs (root ignores file modes, not a read-only mount)."""
    yield from _tmpfs(tmp_path / "ro", "ro,size=64k")


def test_a_read_only_filesystem_is_refused_before_anything_runs(read_only_fs: Path, tmp_path: Path) -> None:
    scenario, _, _ = _scenario(tmp_path, -1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv in (["record", "--scenario", str(scenario), "--out", str(read_only_fs / "rec.arrow"), "--quiet"],
                 ["import", "mooncake", str(REPO / "traces" / "tiny.jsonl"), "-o", str(read_only_fs / "t.jsonl")]):
        done = subprocess.run([sys.executable, "-m", "replaylib", *argv], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and "not writable" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert list(read_only_fs.iterdir()) == []


def test_bad_input_deep_into_a_replay_removes_the_partial_after_batches_were_flushed(tmp_path: Path) -> None:
    rows = [f'{{"timestamp": {100 * i}, "input_length": 600, "output_length": 4, "hash_ids": [{i}, {i + 10**6}]}}'
            for i in range(6000)]
    rows[5000] = '{"timestamp": 500000, "input_length": 600, "output_length": 0, "hash_ids": [1]}'
    trace = tmp_path / "long.jsonl"
    trace.write_text("\n".join(rows) + "\n")
    scenario = tiny_scenario(tmp_path, "system: h100_sxm\ntrace: {path: ../long.jsonl}\n"
                             "fleet: {prefill_workers: 1, decode_workers: 1}\nplanner: {name: sla@1, adjustment_interval_s: 0.1}\n")
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"the previous recording")
    done = subprocess.run([sys.executable, "-m", "replaylib", "record", "--scenario", str(scenario), "--out", str(out), "--quiet"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "long.jsonl:5001: field 'output_length'" in done.stderr, done.stderr
    assert out.read_bytes() == b"the previous recording"
    assert not Path(str(out) + ".partial").exists()
