"""Recordings (replaylib.record) and the ``record`` verb: schema, metadata, conservation, incremental and
atomic writing, interruption, determinism across processes, CLI behaviour, read errors."""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa
import pytest
import yaml

from replaylib.adapter import loop, replay
from replaylib.cli import main
from replaylib.record import (
    ARROW_SCHEMA,
    FIELDS,
    EventRow,
    RecordingError,
    RecordingWriter,
    read_recording,
    recording_metadata,
)
from replaylib.record.schema import METADATA_KEYS, OPTIONAL_METADATA_KEYS
from replaylib.scenario import load_scenario
from replaylib.trace import read_trace

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "scenarios" / "default.yaml"
BASE = REPO / "scenarios" / "_base" / "h100.yaml"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory):
    """One replay of scenarios/default.yaml shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("default") / "default.arrow"
    loaded = load_scenario(DEFAULT)
    result = replay(loaded, out=out)
    return loaded, result, out, read_recording(out)


def tick_rows(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("kind") == "tick")


# -- schema -----------------------------------------------------------------------------------------

#: What each annotation of EventRow must become in Arrow (written out, not derived from schema.py).
ANNOTATION_TYPES = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list[int]": pa.list_(pa.int64()),
}


def test_every_column_has_the_arrow_type_of_its_annotation(default_run) -> None:
    _, _, out, df = default_run
    schema = pa.ipc.open_file(out).schema
    assert schema.names == list(FIELDS) == list(EventRow.__struct_fields__)
    for name in FIELDS:
        annotation = str(EventRow.__annotations__[name])
        base = annotation.removesuffix(" | None")
        field = schema.field(name)
        assert field.type == ANNOTATION_TYPES[base], (name, annotation, field.type)
        assert field.nullable == annotation.endswith("| None"), name
        assert ARROW_SCHEMA.field(name).type == field.type
    polars_of = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean, "list[int]": pl.List(pl.Int64)}
    for name in FIELDS:
        assert df.schema[name] == polars_of[str(EventRow.__annotations__[name]).removesuffix(" | None")], name


def test_nulls_stay_nulls(default_run) -> None:
    _, _, _, df = default_run
    ticks = tick_rows(df)
    empty = ticks.filter(pl.col("ttft_count") == 0)
    assert empty.height >= 1, "expected a tick without first tokens (the last one of the default replay)"
    for col in ("ttft_mean_ms", "ttft_p50_ms", "ttft_p99_ms", "ttft_violation", "obs_ttft_ms"):
        assert empty[col].null_count() == empty.height, col
    assert empty["ttft_within_sla"].to_list() == [0] * empty.height  # a count of 0 is a real 0
    busy = ticks.filter(pl.col("ttft_count") > 0)
    assert busy["ttft_mean_ms"].null_count() == 0 and (busy["ttft_mean_ms"] > 0).all()
    # non-tick rows carry no tick columns
    other = df.filter(pl.col("kind") != "tick")
    assert other.height > 0
    for col in ("t_sched_ms", "fleet_ms", "power_total_w", "arrived", "budget_clamped", "gpus"):
        assert other[col].null_count() == other.height, col
    scale = df.filter(pl.col("kind") == "scale")
    assert scale["power_prefill_w"].null_count() == scale.height and scale["target_prefill"].null_count() == 0
    for col in ("kind", "seq", "tick", "now_ms"):
        assert df[col].null_count() == 0


def test_rows_are_in_seq_order_and_kinds_are_known(default_run) -> None:
    _, result, _, df = default_run
    assert df["seq"].to_list() == list(range(df.height)) and df.height == result.rows
    assert set(df["kind"].unique()) <= {"tick", "scale", "cap", "fault", "sweep", "assertion"}
    assert tick_rows(df)["tick"].to_list() == list(range(result.ticks))
    assert df.filter(pl.col("kind") == "assertion").height == len(result.assertions)


# -- metadata ---------------------------------------------------------------------------------------


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_metadata_keys_present_and_typed(default_run) -> None:
    loaded, _, out, _ = default_run
    raw = pa.ipc.open_file(out).schema.metadata
    assert {k.decode() for k in raw} == set(METADATA_KEYS) | set(OPTIONAL_METADATA_KEYS)
    meta = recording_metadata(out)
    assert (meta.planner_name, meta.planner_version, meta.planner) == ("aic", 2, "aic@2")
    assert isinstance(meta.planner_version, int) and isinstance(meta.seed, int) and isinstance(meta.schema_version, int)
    assert meta.scenario_name == "default"
    assert meta.scenario_hash == loaded.content_hash and len(meta.scenario_hash) == 64
    assert meta.trace_sha256 == sha256(loaded.trace_path) == sha256(REPO / "traces" / "diurnal_40min.jsonl.gz")
    assert meta.systems_sha256 == sha256(REPO / "systems" / "h100_sxm.yaml")
    assert meta.trace_path == "../traces/diurnal_40min.jsonl.gz"  # relative to the scenario: machine-independent
    assert meta.seed == 7  # from scenarios/_base/h100.yaml
    assert meta.trace_mode == "open_loop"
    assert (meta.system_name, meta.gpus_per_worker) == ("h100_sxm", 2)
    assert (meta.ttft_target_ms, meta.itl_target_ms) == (2000.0, 40.0)
    assert isinstance(meta.ttft_target_ms, float)
    assert meta.overrides == {}  # a plain replay overrides nothing


def test_seed_and_trace_overrides_reach_the_metadata(tmp_path: Path) -> None:
    loaded = load_scenario(DEFAULT)
    trace = tmp_path / "copy.jsonl"
    trace.write_bytes(b"".join(line for i, line in enumerate((REPO / "traces" / "tiny.jsonl").read_bytes().splitlines(True)) if i < 20))
    result = replay(loaded, out=tmp_path / "o.arrow", trace=trace, seed=123)
    meta = recording_metadata(result.path)
    assert meta.seed == 123
    assert meta.trace_sha256 == sha256(trace)
    assert tick_rows(read_recording(result.path))["arrived"][-1] == 20


# -- conservation -----------------------------------------------------------------------------------


def test_request_conservation_on_a_finished_replay(default_run) -> None:
    loaded, result, _, df = default_run
    assert result.finished
    n = sum(1 for _ in read_trace(loaded.trace_path))
    last = tick_rows(df).row(-1, named=True)
    assert last["completed"] + last["dropped"] + last["in_flight"] == last["arrived"] == n == 4640
    ticks = tick_rows(df)
    assert (ticks["completed"] + ticks["dropped"] + ticks["in_flight"] == ticks["arrived"]).all()
    assert ticks["arrived"].is_sorted() and ticks["completed"].is_sorted()


# -- incremental, atomic writing --------------------------------------------------------------------


def _row(i: int) -> EventRow:
    return EventRow(kind="tick", seq=i, tick=i, now_ms=1000.0 * i, power_total_w=float(i) if i % 3 else None, ttft_hist=[i, 1])


def test_writer_flushes_batches_and_holds_at_most_batch_rows(tmp_path: Path) -> None:
    out = tmp_path / "w.arrow"
    w = RecordingWriter(out, {"k": "v"}, batch_rows=4)
    for i in range(23):
        w.append(_row(i))
        assert len(w._rows) <= 4
        assert w.rows_written == (i + 1) // 4 * 4  # flushed as it goes
        assert not out.exists()  # nothing published before close
    assert w.close() == str(out)
    assert not Path(str(out) + ".partial").exists()
    assert pa.ipc.open_file(out).num_record_batches == 6  # 5 full batches and the rest
    df = read_recording(out)
    assert df["seq"].to_list() == list(range(23))
    assert df["power_total_w"].to_list() == [float(i) if i % 3 else None for i in range(23)]
    assert df["ttft_hist"].to_list() == [[i, 1] for i in range(23)]


def test_writer_rejects_rows_out_of_order(tmp_path: Path) -> None:
    w = RecordingWriter(tmp_path / "w.arrow", {})
    w.append(_row(0))
    with pytest.raises(ValueError, match="expected 1, got 2"):
        w.append(_row(2))
    w.abort()


def test_small_batches_in_a_replay_give_the_same_recording(default_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded, result, _, df = default_run
    monkeypatch.setattr(loop, "RecordingWriter", functools.partial(RecordingWriter, batch_rows=8))
    out = tmp_path / "small.arrow"
    replay(loaded, out=out)
    assert pa.ipc.open_file(out).num_record_batches == -(-result.rows // 8) > 1
    assert read_recording(out).equals(df)


# -- interruption -----------------------------------------------------------------------------------


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # an Arrow IPC stream's end-of-stream marker


def _strip_eos(data: bytes) -> bytes:
    """The bytes a killed writer leaves: its partial stream without the end marker an orderly stop writes."""
    assert data.startswith(b"\xff\xff\xff\xff") and data.endswith(_EOS)
    return data[:-8]


def test_interrupted_replay_keeps_the_old_file_and_a_readable_partial(default_run, tmp_path: Path) -> None:
    loaded, _, default_out, full = default_run
    out = tmp_path / "rec.arrow"
    shutil.copyfile(default_out, out)
    old = out.read_bytes()
    calls = []

    def progress(tick: int, now_ms: float, snap: object) -> None:
        calls.append(tick)
        if tick == 4:  # the fifth tick ("tick 5" on the progress bar) has been recorded: Ctrl-C
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay(loaded, out=out, progress=progress)
    assert calls == [0, 1, 2, 3, 4]
    assert out.read_bytes() == old  # byte for byte
    partial = Path(str(out) + ".partial")
    with pytest.raises(RecordingError, match="a partial recording"):
        read_recording(partial)  # never taken for a complete one
    df = read_recording(partial, partial=True)
    assert pl.from_arrow(pa.ipc.open_stream(partial).read_all()).equals(df)  # plain pyarrow and polars read it too
    assert pl.read_ipc_stream(partial).equals(df)
    assert tick_rows(df)["tick"].to_list() == [0, 1, 2, 3, 4]
    assert df["tick"].max() == 4
    assert df.filter(pl.col("kind") != "tick").height > 0  # its scale/cap/sweep rows too
    assert df.equals(full.head(df.height))  # exactly the prefix of the uninterrupted replay
    assert full.row(df.height, named=True)["tick"] == 5
    assert recording_metadata(partial, partial=True).scenario_name == "default"

    # a killed process leaves no end marker: still readable, by plain pyarrow and polars too
    killed = tmp_path / "killed.arrow.partial"
    killed.write_bytes(_strip_eos(partial.read_bytes()))
    assert read_recording(killed, partial=True).equals(df)
    assert pa.ipc.open_stream(killed).read_all().num_rows == df.height
    assert pl.read_ipc_stream(killed).height == df.height
    assert recording_metadata(killed, partial=True).seed == 7

    # a complete recording cut short (its footer lost) is refused as truncated, never read as a shorter one
    cut = tmp_path / "cut.arrow"
    cut.write_bytes(Path(default_out).read_bytes()[:-20])
    with pytest.raises(RecordingError, match=f"{cut}: truncated recording"):
        read_recording(cut)
    assert read_recording(cut, partial=True).equals(full)  # what is left, on request


def test_file_cut_inside_a_batch_keeps_the_complete_batches(tmp_path: Path) -> None:
    out = tmp_path / "w.arrow"
    w = RecordingWriter(out, {"k": "v"}, batch_rows=5)
    for i in range(23):
        w.append(_row(i))
    w.abort()
    body = _strip_eos(Path(w.partial).read_bytes())
    cut = tmp_path / "cut.arrow.partial"
    cut.write_bytes(body[:-40])  # a damaged tail: the last batch (rows 20-22) lost part of its bytes
    df = read_recording(cut, partial=True)
    assert df["seq"].to_list() == list(range(20))
    cut.write_bytes(body[:100])  # not even the schema survived
    with pytest.raises(RecordingError, match=str(cut)):
        read_recording(cut, partial=True)


def test_writer_used_as_context_manager(tmp_path: Path) -> None:
    out = tmp_path / "cm.arrow"
    with pytest.raises(RuntimeError), RecordingWriter(out, {}) as w:
        w.append(_row(0))
        raise RuntimeError("boom")
    assert not out.exists() and read_recording(str(out) + ".partial", partial=True).height == 1
    with RecordingWriter(out, {}) as w:
        w.append(_row(0))
        w.append(_row(1))
    assert read_recording(out).height == 2 and not Path(str(out) + ".partial").exists()


# -- determinism across processes -------------------------------------------------------------------


def _record(out: Path, hashseed: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    cmd = [sys.executable, "-m", "replaylib", "record", "--scenario", "scenarios/g1_decode_drift.yaml", "--out", str(out), "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_recordings_are_byte_identical_across_hash_seeds_and_differ_by_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.arrow", tmp_path / "b.arrow", tmp_path / "c.arrow"
    procs = [_record(a, "0"), _record(b, "4242"), _record(c, "0", "--seed", "8")]  # three processes at once
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err + out
        assert "scenario g1_decode_drift" in out
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert (recording_metadata(a).seed, recording_metadata(c).seed) == (7, 8)
    # not just the metadata: the seeded noise changes the readings
    ticks_a, ticks_c = tick_rows(read_recording(a)), tick_rows(read_recording(c))
    assert ticks_a["power_prefill_w"].to_list() != ticks_c["power_prefill_w"].to_list()


# -- the record verb --------------------------------------------------------------------------------


def test_record_without_arguments_runs_the_default_scenario(default_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, _, default_out, _ = default_run
    monkeypatch.chdir(tmp_path)
    assert main(["record"]) == 0
    out, err = capsys.readouterr()
    written = tmp_path / "recordings" / "default__aic_v2.arrow"
    assert written.read_bytes() == default_out.read_bytes()  # same inputs, same bytes as the library call
    lines = out.splitlines()
    assert lines[0] == "PASS 4/4 assertions | SLA attainment 79.96% (TTFT 79.96%, ITL 100.00%) | budget kept: peak 58.5% of 5,000 W"
    assert lines[1].startswith("scenario default (") and "planner aic@2" in lines[1] and "seed 7" in lines[1]
    assert "41 ticks" in lines[2] and "stopped" not in lines[2]
    assert any(line.split() == ["requests", "arrived", "4,640"] for line in lines)
    assert any(line.strip().startswith("SLA attainment") for line in lines)
    passes = [line for line in lines if line.startswith("  PASS")]
    assert len(passes) == 4 and not any("FAIL" in line for line in lines)
    assert err == ""  # not a TTY: no progress bar


def test_record_planner_override(default_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, aic = default_run
    out = tmp_path / "sla.arrow"
    # sla@1 knows no power budget: it keeps the default's requests flowing but breaks its 5 kW budget assertions
    assert main(["record", "--scenario", str(DEFAULT), "--planner", "sla@1", "--out", str(out), "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "FAIL  [2] the planner stays within the 5 kW budget by itself" in text and "PASS  [1]" in text
    assert "planner sla@1" in text.splitlines()[1] and "aic" not in text
    assert recording_metadata(out).planner == "sla@1"
    sla = tick_rows(read_recording(out))
    assert sla["reason"].to_list() != tick_rows(aic)["reason"].to_list()  # really another planner's decisions


def test_record_bad_scenario_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["record", "--scenario", str(missing), "--out", str(tmp_path / "o.arrow")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and str(missing) in err
    assert not (tmp_path / "o.arrow").exists()


def test_record_bad_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nplanner: [unclosed\n")
    assert main(["record", "--scenario", str(bad), "--out", str(tmp_path / "o.arrow")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(bad) in err and "invalid YAML" in err


def test_record_missing_trace_override_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--scenario", str(DEFAULT), "--trace", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o.arrow")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.jsonl" in err and err.count("\n") == 1


def _short_scenario(tmp_path: Path, assertions: list[dict]) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump({"extends": str(BASE), "name": "short", "ticks": 3, "assertions": assertions}))
    return path


def test_record_failing_assertion_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _short_scenario(tmp_path, [
        {"always": True, "field": "dropped", "op": "==", "value": 0},
        {"at_tick": 1, "field": "dropped", "op": "<", "value": 0, "description": "impossible"},
    ])
    assert main(["record", "--scenario", str(scenario), "--out", str(tmp_path / "o.arrow"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "stopped at the tick limit" in out
    assert "  PASS  [0]" in out and "  FAIL  [1] impossible -- tick 1: dropped = 0" in out
    assert (tmp_path / "o.arrow").exists()  # the recording is still written


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_bar_only_on_a_tty_without_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: bool,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _short_scenario(tmp_path, [])
    args = ["record", "--scenario", str(scenario), "--out", str(tmp_path / "o.arrow")] + (["--quiet"] if quiet else [])
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(args) == 0
    if quiet:
        assert tty.getvalue() == ""
    else:
        assert "\r  tick 3/3" in tty.getvalue() and tty.getvalue().endswith("\n")
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["record", "--scenario", str(scenario), "--out", str(tmp_path / "p.arrow")]) == 0  # not a TTY
    assert capsys.readouterr().err == ""


# -- read errors ------------------------------------------------------------------------------------


def test_read_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.arrow"
    with pytest.raises(RecordingError, match=f"{missing}: no such recording"):
        read_recording(missing)
    with pytest.raises(RecordingError, match=f"{missing}: no such recording"):
        recording_metadata(missing)
    text = tmp_path / "notes.txt"
    text.write_text("hello, not arrow\n")
    with pytest.raises(RecordingError, match=f"{text}: not a readable recording"):
        read_recording(text)
    with pytest.raises(RecordingError, match=str(text)):
        recording_metadata(text)
    empty = tmp_path / "empty.arrow"
    empty.write_bytes(b"")
    with pytest.raises(RecordingError, match=str(empty)):
        read_recording(empty)
    other = tmp_path / "other.arrow"
    table = pa.table({"a": [1, 2]})
    with pa.OSFile(str(other), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(RecordingError, match=f"{other}: not a replaylib recording"):
        read_recording(other)
    with pytest.raises(RecordingError, match=f"{other}: recording metadata lacks"):
        recording_metadata(other)


def test_replay_kpis_equal_the_kpis_of_the_recording_read_back(default_run) -> None:
    # the adapter accumulates the KPIs as it records; reading the file back gives the same numbers
    from replaylib.record.kpis import compute_kpis

    _, result, out, _ = default_run
    assert result.kpis == compute_kpis(read_recording(out), recording_metadata(out))
    assert result.meta == recording_metadata(out)
    assert result.kpis.ticks == result.ticks and result.kpis.completed and result.kpis.gpu_hours


def test_rows_become_the_same_arrays_as_through_pa_array_without_importing_pandas() -> None:
    """The writer's JSON-lines batches equal pa.array's on awkward values (float extremes, -0.0, big ints,
    quotes, newlines and non-ASCII text, empty and None lists); a NaN or infinity takes the pa.array path."""
    from replaylib.record.schema import ARROW_SCHEMA, EventRow
    from replaylib.record.writer import rows_to_batch

    def reference(rows: list[EventRow]) -> pa.RecordBatch:
        cols = zip(*(msgspec.structs.astuple(r) for r in rows), strict=True)
        return pa.RecordBatch.from_arrays([pa.array(c, type=ARROW_SCHEMA.field(i).type) for i, c in enumerate(cols)],
                                          schema=ARROW_SCHEMA)

    floats = [0.1, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 2.0**53 + 2, 123456.789012345678, -1e-7]
    rows = [EventRow(kind="tick", seq=i, tick=i, now_ms=x, power_total_w=-x, c_ttft=x * 3, ttft_hist=[0, 2**62, -5],
                     itl_hist=[] if i % 2 else None, reason='a "quoted"\nline, ünïcode ✓', arrived=2**62 + i,
                     passed=bool(i % 2), detail=None)
            for i, x in enumerate(floats)]
    batch = rows_to_batch(rows, ARROW_SCHEMA)
    assert batch.equals(reference(rows))
    signs = [math.copysign(1.0, v) for v in batch.column("now_ms").to_pylist()]
    assert signs == [math.copysign(1.0, x) for x in floats]  # -0.0 stays -0.0
    odd = [EventRow(kind="tick", seq=0, tick=0, now_ms=1.0, c_ttft=math.nan), EventRow(kind="tick", seq=1, tick=1, now_ms=math.inf)]
    out = rows_to_batch(odd, ARROW_SCHEMA)
    assert math.isnan(out.column("c_ttft")[0].as_py()) and out.column("now_ms")[1].as_py() == math.inf
    assert rows_to_batch(rows[:1], ARROW_SCHEMA).num_rows == 1
    code = ("import sys; from replaylib.record.schema import ARROW_SCHEMA, EventRow; from replaylib.record.writer import "
            "rows_to_batch; rows_to_batch([EventRow(kind='tick', seq=0, tick=0, now_ms=1.5, reason='x')], ARROW_SCHEMA); "
            "print('pandas' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
