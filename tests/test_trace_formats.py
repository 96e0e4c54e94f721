"""Every trace format the importer writes replays: JSONL, gzip JSONL and Parquet, with the same errors;
CSV and other files say what they are and point to ``import``."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from replaylib.cli import main
from replaylib.trace import TraceError, read_trace
from replaylib.trace.importers import import_trace
from replaylib.trace.importers.sinks import PARQUET_SCHEMA

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "traces" / "tiny.jsonl"


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA)


def test_an_imported_parquet_trace_reads_back_as_the_jsonl_it_came_from(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    import_trace("mooncake", TINY, out)
    jsonl, parquet = list(read_trace(TINY)), list(read_trace(out))
    assert [(r.input_length, r.output_length, r.hash_ids, str(r.session_id)) for r in parquet] == \
           [(r.input_length, r.output_length, r.hash_ids, str(r.session_id)) for r in jsonl]
    assert [float(r.timestamp) for r in parquet] == [float(r.timestamp) - float(jsonl[0].timestamp) for r in jsonl]


def test_parquet_is_streamed_in_batches_and_order_is_checked_across_them(tmp_path: Path) -> None:
    from replaylib.trace.parquet import stream_parquet

    rows = [{"timestamp": float(i), "input_length": 10, "output_length": 2, "hash_ids": [i], "session_id": None, "delay": None}
            for i in range(10)]
    path = tmp_path / "t.parquet"
    pq.write_table(_table(rows), path, row_group_size=3)
    assert [first for first, _ in stream_parquet(str(path), batch_rows=3)] == [1, 4, 7, 10]
    rows[5]["timestamp"] = 1.0
    pq.write_table(_table(rows), path, row_group_size=3)
    with pytest.raises(TraceError, match=r"t.parquet:6: field 'timestamp': timestamp 1.0 goes backwards"):
        list(read_trace(path))
    assert len(list(read_trace(path, sort=True))) == 10


@pytest.mark.parametrize(("bad", "message"), [
    ({"input_length": 0}, r":3: field 'input_length': expected an integer from 1 to 16,777,216 .*, got 0"),
    ({"hash_ids": None}, r":3: field 'hash_ids': expected a list of at most input_length integers.*, got null"),
    ({"timestamp": float("inf")}, r":3: field 'timestamp': expected a finite number of milliseconds, 0 to 9007199254740992, got inf"),
])
def test_a_bad_parquet_row_is_named_like_a_bad_jsonl_line(bad: dict, message: str, tmp_path: Path) -> None:
    rows = [{"timestamp": float(i), "input_length": 10, "output_length": 2, "hash_ids": [1], "session_id": None, "delay": None}
            for i in range(4)]
    rows[2].update(bad)
    path = tmp_path / "bad.parquet"
    pq.write_table(_table(rows), path)
    with pytest.raises(TraceError, match=message):
        list(read_trace(path))


def test_a_parquet_table_without_the_trace_columns_points_to_import(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"ts": [1.0], "prompt": [3]}), path)
    with pytest.raises(TraceError, match=r"field 'timestamp': missing column.*import parquet SRC"):
        list(read_trace(path))


def test_csv_and_other_files_say_what_they_are(tmp_path: Path) -> None:
    azure = tmp_path / "azure.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    with pytest.raises(TraceError, match=r"azure.csv:1: this is CSV .*`python -m replaylib import azure SRC"):
        list(read_trace(azure))
    gz = tmp_path / "burst.csv.gz"
    gz.write_bytes(gzip.compress(b"Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,GPT-4,1,2,3,x\n"))
    with pytest.raises(TraceError, match=r"this is CSV .*import burstgpt"):
        list(read_trace(gz))
    generic = tmp_path / "g.csv"
    generic.write_text("ts,prompt,completion\n1,2,3\n")
    with pytest.raises(TraceError, match=r"import csv SRC -o trace.jsonl.gz --map timestamp=COL"):
        list(read_trace(generic))
    blob = tmp_path / "x.bin"
    blob.write_bytes(bytes(range(256)))
    with pytest.raises(TraceError, match=r"binary data"):
        list(read_trace(blob))
    arrow = tmp_path / "rec.arrow"
    arrow.write_bytes(b"ARROW1\x00\x00rest")
    with pytest.raises(TraceError, match=r"Arrow IPC file \(a replaylib recording\?\)"):
        list(read_trace(arrow))


def test_validate_and_record_read_parquet_and_refuse_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.parquet"
    import_trace("mooncake", TINY, trace)
    assert main(["validate", "trace", str(trace)]) == 0
    assert "requests    100" in capsys.readouterr().out
    out = tmp_path / "r.arrow"
    assert main(["record", "--trace", str(trace), "--out", str(out), "--quiet"]) in (0, 1)  # the default's assertions need its own trace
    assert "requests arrived" in capsys.readouterr().out and out.exists()
    csv = tmp_path / "t.csv"
    csv.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    assert main(["record", "--trace", str(csv), "--out", str(tmp_path / "c.arrow"), "--quiet"]) == 2
    assert "this is CSV" in capsys.readouterr().err and not (tmp_path / "c.arrow").exists()
    assert main(["validate", "trace", str(csv)]) == 1
    assert "import azure" in capsys.readouterr().err


def test_validate_finds_a_trace_by_name_on_the_trace_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(TINY, tmp_path / "mine.jsonl")
    monkeypatch.setenv("REPLAYLIB_TRACE_PATH", str(tmp_path))
    assert main(["validate", "trace", "mine.jsonl"]) == 0
    assert f"trace       {tmp_path / 'mine.jsonl'}" in capsys.readouterr().out
    assert main(["validate", "trace", "mien.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "mien.jsonl: no such trace file; did you mean mine.jsonl" in err and "REPLAYLIB_TRACE_PATH" in err
