"""Trace importers (issue 7): every format on small fixtures, the real Azure trace, bad input.

NOTE: a test that an imported trace replays through the default scenario is to be
added once the simulator exists (left to the maintainer of ``replaylib.sim``).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaylib.cli import main as cli_main
from replaylib.trace import Request, TraceError, read_trace, write_trace
from replaylib.trace.importers import FORMATS, ImportOptions, TraceImportError, format_report, import_trace
from replaylib.trace.importers.blocks import Reblocker
from replaylib.trace.stats import trace_stats

REPO = Path(__file__).resolve().parents[1]
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
BURST_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    return _write(path, [json.dumps(r) for r in rows])


def _read(path: Path) -> list[Request]:
    return list(read_trace(path))


def _blocks(n: int, bs: int = 512) -> int:
    return -(-n // bs)


def _azure_ns(text: str) -> int:
    """Independent parse of an Azure timestamp (7 fractional digits) to epoch-free ns."""
    whole, _, frac = text.partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").timestamp()
    return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9])


# --------------------------------------------------------------------------------------- azure


def test_azure_small_keeps_sub_ms_precision_and_lengths(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "az.csv",
        [
            AZURE_HEADER,
            "2023-11-16 18:17:03.9799600,4808,10",
            "2023-11-16 18:17:04.0319600,3180,8",  # +52 ms exactly
            "2023-11-16 18:17:04.0781490,110,27",  # +98.189 ms
            "2023-11-16 18:17:04.0781490,1,1",  # same instant
            "2023-11-16 19:14:19.9280160,549,173",
        ],
    )
    report = import_trace("azure", src, tmp_path / "out.jsonl")
    rows = _read(tmp_path / "out.jsonl")
    assert [r.timestamp for r in rows] == [0, 52, 98.189, 98.189, 3435948.056]
    assert isinstance(rows[1].timestamp, int) and isinstance(rows[2].timestamp, float)
    assert [(r.input_length, r.output_length) for r in rows] == [(4808, 10), (3180, 8), (110, 27), (1, 1), (549, 173)]
    assert [len(r.hash_ids) for r in rows] == [_blocks(r.input_length) for r in rows]
    all_ids = [i for r in rows for i in r.hash_ids]
    assert len(all_ids) == len(set(all_ids)) and all_ids == list(range(len(all_ids)))  # unique, deterministic
    assert report.rows_read == report.rows_written == 5 and report.dropped == {}
    assert report.span_s == pytest.approx(3435.948056)
    assert report.rate_per_s == pytest.approx(5 / 3435.948056)


def test_azure_2024_zone_offsets_and_whitespace_fallback(tmp_path: Path) -> None:
    tz = _write(tmp_path / "tz.csv", [AZURE_HEADER, "2024-05-10 00:00:00.0160000+00:00,5,5", "2024-05-10 01:00:00.5+01:00,5,5"])
    import_trace("azure", tz, tmp_path / "tz.jsonl")
    assert [r.timestamp for r in _read(tmp_path / "tz.jsonl")] == [0, 484]  # 00:00:00.5 UTC
    ws = _write(tmp_path / "ws.csv", [AZURE_HEADER, " 2023-11-16 18:17:03.1000000 ,5,5", "2023-11-16 18:17:04,5,5"])
    import_trace("azure", ws, tmp_path / "ws.jsonl")  # not strict ISO: parsed by polars instead of Arrow
    assert [r.timestamp for r in _read(tmp_path / "ws.jsonl")] == [0, 900]


@pytest.mark.shared_trace
def test_azure_real_trace(tmp_path: Path, azure_code_trace: Path) -> None:
    AZURE_REAL = azure_code_trace  # noqa: N806
    with AZURE_REAL.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    # 8,819 data rows: `wc -l` prints 8,819 because the last row has no trailing newline.
    assert len(table) == 8_819
    out = tmp_path / "azure.jsonl"
    report = import_trace("azure", AZURE_REAL, out)
    rows = _read(out)  # validates: types, ranges, non-decreasing timestamps
    assert report.rows_read == report.rows_written == len(rows) == len(table)
    first_ns = _azure_ns(table[0]["TIMESTAMP"])
    expected = [(_azure_ns(t["TIMESTAMP"]) - first_ns) / 1e6 for t in table]
    assert rows[0].timestamp == 0
    assert rows[-1].timestamp == expected[-1] == 3435948.056
    assert all(abs(r.timestamp - e) < 1e-6 for r, e in zip(rows, expected))  # every row, well under 1 ms
    assert [r.input_length for r in rows] == [int(t["ContextTokens"]) for t in table]
    assert [r.output_length for r in rows] == [int(t["GeneratedTokens"]) for t in table]
    stats = trace_stats(iter(rows))
    assert stats.block_mismatches == 0 and stats.prefix_reuse == 0.0
    code = subprocess.run(
        [sys.executable, "-m", "replaylib", "validate", "trace", str(out)], cwd=REPO, capture_output=True, text=True
    )
    assert code.returncode == 0, code.stderr


# ------------------------------------------------------------------------------------ burstgpt


def _burst(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "burst.csv",
        [
            BURST_HEADER,
            "0,ChatGPT,472,18,490,Conversation log",
            "1.5,GPT-4,1000,0,1000,Conversation log",  # failed
            "2.25,ChatGPT,10,20,30,API log",
            "3,ChatGPT,700,0,700,API log",  # failed
            "5,GPT-4,600,10,610,API log",
        ],
    )


def test_burstgpt_drops_failed_requests_and_counts_them(tmp_path: Path) -> None:
    report = import_trace("burstgpt", _burst(tmp_path), tmp_path / "b.jsonl")
    rows = _read(tmp_path / "b.jsonl")
    assert [(r.timestamp, r.input_length, r.output_length) for r in rows] == [(0, 472, 18), (2250, 10, 20), (5000, 600, 10)]
    assert report.rows_read == 5 and report.rows_written == 3
    assert report.dropped == {"failed (0 response tokens)": 2}
    assert "2 failed (0 response tokens)" in format_report(report)


def test_burstgpt_model_and_log_type_filters(tmp_path: Path) -> None:
    src = _burst(tmp_path)
    r1 = import_trace("burstgpt", src, tmp_path / "m.jsonl", ImportOptions(model="chatgpt"))
    assert [r.input_length for r in _read(tmp_path / "m.jsonl")] == [472, 10]
    assert r1.dropped == {"model not 'chatgpt'": 2, "failed (0 response tokens)": 1}
    r2 = import_trace("burstgpt", src, tmp_path / "l.jsonl", ImportOptions(model="ChatGPT", log_type="api log"))
    rows = _read(tmp_path / "l.jsonl")
    assert [r.input_length for r in rows] == [10] and rows[0].timestamp == 0  # rebased to the first written row
    assert r2.dropped == {"log type not 'api log'": 1, "model not 'ChatGPT'": 2, "failed (0 response tokens)": 1}
    assert r2.rows_read == r2.rows_written + sum(r2.dropped.values())


# ------------------------------------------------------------------------------------- bailian


def _bailian(tmp_path: Path) -> Path:
    rows = [
        {"chat_id": 10, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 40, "output_length": 5, "type": "text", "turn": 1, "hash_ids": [1, 2, 3]},
        {"chat_id": 11, "parent_chat_id": -1, "timestamp": 0.5, "input_length": 40, "output_length": 5, "type": "text", "turn": 1, "hash_ids": [1, 2, 4]},
        {"chat_id": 12, "parent_chat_id": 10, "timestamp": 1.25, "input_length": 70, "output_length": 5, "type": "text", "turn": 2, "hash_ids": [1, 2, 3, 5, 6]},
        {"chat_id": 13, "parent_chat_id": 12, "timestamp": 61.114, "input_length": 64, "output_length": 9, "type": "search", "turn": 3, "hash_ids": [1, 2, 3, 5]},
        {"chat_id": 14, "parent_chat_id": -1, "timestamp": 62.0, "input_length": 16, "output_length": 0, "type": "text", "turn": 1, "hash_ids": [9]},
    ]
    return _jsonl(tmp_path / "qwen.jsonl", rows)


def test_bailian_sessions_from_root_chat_and_reblocking(tmp_path: Path) -> None:
    report = import_trace("bailian", _bailian(tmp_path), tmp_path / "q.jsonl", ImportOptions(block_size=32))
    rows = _read(tmp_path / "q.jsonl")
    assert [r.timestamp for r in rows] == [0, 500, 1250, 61114]
    assert [r.session_id for r in rows] == [10, 11, 10, 10]
    assert report.dropped == {"zero output tokens": 1}
    assert [len(r.hash_ids) for r in rows] == [_blocks(r.input_length, 32) for r in rows]
    a, b, c, d = (r.hash_ids for r in rows)
    assert a[0] == b[0] == c[0] == d[0]  # source ids [1, 2] -> one shared 32-token block
    assert a[1] != b[1]  # [3] vs [4]
    assert a[1] != c[1]  # a partial block [3] is not the full block [3, 5]
    assert c[1] == d[1]  # [3, 5] in both
    assert c[2] != a[1]
    assert "re-blocked from 16-token to 32-token" in report.hash_ids


def test_bailian_block_size_16_keeps_source_ids(tmp_path: Path) -> None:
    import_trace("bailian", _bailian(tmp_path), tmp_path / "q.jsonl", ImportOptions(block_size=16))
    assert [r.hash_ids for r in _read(tmp_path / "q.jsonl")] == [[1, 2, 3], [1, 2, 4], [1, 2, 3, 5, 6], [1, 2, 3, 5]]


def test_reblocker_is_deterministic_prefix_preserving_and_fixes_counts() -> None:
    r = Reblocker(16, 64)
    x = r(list(range(10)), 160)  # 10 ids of 16 tokens -> 3 blocks of 64
    y = Reblocker(16, 64)(list(range(8)) + [99, 98], 160)
    assert len(x) == 3 and x[:2] == y[:2] and x[2] != y[2]
    assert x == Reblocker(16, 64)(list(range(10)), 160)
    short = r(list(range(4)), 160)  # fewer source ids than the length needs: padded with fresh ids
    longer = r(list(range(12)), 64)  # more than needed: surplus ignored
    assert len(short) == 3 and short[0] == x[0] and len(longer) == 1 and longer[0] == x[0]
    assert r.adjusted == 2
    assert all(0 <= i < 2**63 for i in x + short)


def test_bailian_sampling_keeps_whole_sessions(tmp_path: Path) -> None:
    rows = []
    for s in range(200):
        for turn in range(3):
            chat = s * 10 + turn
            rows.append({"chat_id": chat, "parent_chat_id": chat - 1 if turn else -1, "timestamp": s + turn * 0.1,
                         "input_length": 32, "output_length": 4, "hash_ids": [chat, chat + 1]})
    src = _jsonl(tmp_path / "q.jsonl", rows)
    report = import_trace("bailian", src, tmp_path / "s.jsonl", ImportOptions(sample=0.5, seed=3))
    out = _read(tmp_path / "s.jsonl")
    per_session: dict[object, int] = {}
    for r in out:
        per_session[r.session_id] = per_session.get(r.session_id, 0) + 1
    assert set(per_session.values()) == {3}
    assert 60 <= len(per_session) <= 140
    assert report.dropped == {"sampled out": 600 - len(out)}


# ------------------------------------------------------------------------------------ mooncake


def test_mooncake_normalises_variants_and_sorts(tmp_path: Path) -> None:
    src = _jsonl(
        tmp_path / "m.jsonl",
        [
            {"created_time": 2000.0, "input_tokens": 600, "output_tokens": 3, "hash_ids": [0, 1], "session_id": "a"},
            {"timestamp": 1000, "input_length": 100, "output_length": 3, "hash_ids": [0], "session_id": "a", "delay_ms": 250.0, "x": 1},
            {"timestamp": 1500.25, "input_length": 512, "output_length": 7, "hash_ids": [5], "session_id": 7, "delay": 1.5},
        ],
    )
    report = import_trace("mooncake", src, tmp_path / "out.jsonl")
    rows = _read(tmp_path / "out.jsonl")
    assert rows == [
        Request(0, 100, 3, [0], "a", 250),
        Request(500.25, 512, 7, [5], 7, 1.5),
        Request(1000, 600, 3, [0, 1], "a"),
    ]
    assert isinstance(rows[0].delay, int) and isinstance(rows[2].timestamp, int)  # 2000.0 - 1000 -> int ms
    assert report.sorted and "sorted" in " ".join(report.notes)


def test_mooncake_without_sort_fails_on_out_of_order_line(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "m.jsonl", [{"timestamp": 5, "input_length": 1, "output_length": 1, "hash_ids": [0]}] * 2
                 + [{"timestamp": 4, "input_length": 1, "output_length": 1, "hash_ids": [0]}])
    with pytest.raises(TraceImportError, match=r"m.jsonl: line 3, field 'timestamp': timestamp goes backwards .*--sort") as e:
        import_trace("mooncake", src, tmp_path / "out.jsonl", ImportOptions(sort=False))
    assert e.value.row == 3 and e.value.column == "timestamp"


def test_mooncake_reblocks_to_larger_blocks_and_rejects_smaller(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "m.jsonl", [{"timestamp": 0, "input_length": 1500, "output_length": 1, "hash_ids": [0, 1, 2]},
                                         {"timestamp": 1, "input_length": 1100, "output_length": 1, "hash_ids": [0, 1, 7]}])
    import_trace("mooncake", src, tmp_path / "out.jsonl", ImportOptions(block_size=1024))
    a, b = (r.hash_ids for r in _read(tmp_path / "out.jsonl"))
    assert len(a) == len(b) == 2 and a[0] == b[0] and a[1] != b[1]
    with pytest.raises(TraceError, match="multiple of the source block size 512"):
        import_trace("mooncake", src, tmp_path / "x.jsonl", ImportOptions(block_size=256))
    assert not (tmp_path / "x.jsonl").exists()


def test_mooncake_bad_line_names_line_and_field(tmp_path: Path) -> None:
    src = _write(tmp_path / "m.jsonl", [json.dumps({"timestamp": 0, "input_length": 3, "output_length": 1, "hash_ids": [0]}),
                                        json.dumps({"timestamp": 1, "input_length": -3, "output_length": 1, "hash_ids": [0]})])
    with pytest.raises(TraceError, match=r"m.jsonl:2: field 'input_length'"):
        import_trace("mooncake", src, tmp_path / "out.jsonl")


@pytest.mark.shared_trace
def test_mooncake_shared_real_trace_roundtrips(tmp_path: Path, mooncake_trace: Path) -> None:
    real = mooncake_trace
    import_trace("mooncake", real, tmp_path / "m.jsonl")
    assert (tmp_path / "m.jsonl").read_bytes() == _canonical(real, tmp_path)


def _canonical(path: Path, tmp_path: Path) -> bytes:
    rows = list(read_trace(path, sort=True))
    first = rows[0].timestamp
    write_trace(tmp_path / "ref.jsonl", (msgspec.structs.replace(r, timestamp=r.timestamp - first) for r in rows))
    return (tmp_path / "ref.jsonl").read_bytes()


# ---------------------------------------------------------------------------------- csv/parquet


@pytest.mark.parametrize(
    ("unit", "values", "expected"),
    [
        ("s", ["10", "10.5", "12"], [0, 500, 2000]),
        ("ms", ["100", "100.25", "101"], [0, 0.25, 1]),
        ("us", ["0", "1500", "2000000"], [0, 1.5, 2000]),
        ("ns", ["7", "1000007", "1000008"], [0, 1, 1.000001]),
        ("datetime", ["2024-01-01T00:00:00", "2024-01-01T00:00:01.5", "2024-01-01T00:01:00"], [0, 1500, 60000]),
    ],
)
def test_csv_time_units_and_column_map(tmp_path: Path, unit: str, values: list[str], expected: list[float]) -> None:
    src = _write(tmp_path / "t.csv", ["ts,prompt_tokens,completion_tokens,user"] + [f"{v},{100 * (i + 1)},5,u{i % 2}" for i, v in enumerate(values)])
    opts = ImportOptions(
        columns={"timestamp": "ts", "input_length": "prompt_tokens", "output_length": "completion_tokens", "session_id": "user"},
        time_unit=unit,  # type: ignore[arg-type]
    )
    import_trace("csv", src, tmp_path / "t.jsonl", opts)
    rows = _read(tmp_path / "t.jsonl")
    assert [r.timestamp for r in rows] == expected
    assert [r.input_length for r in rows] == [100, 200, 300] and [r.session_id for r in rows] == ["u0", "u1", "u0"]


def test_csv_custom_time_format_and_integral_float_counts(tmp_path: Path) -> None:
    src = _write(tmp_path / "t.csv", ["when,input_length,output_length", "16/11/2023 18:17:03,10.0,2", "16/11/2023 18:17:05,20,3.0"])
    import_trace("csv", src, tmp_path / "t.jsonl", ImportOptions(columns={"timestamp": "when"}, time_unit="datetime", time_format="%d/%m/%Y %H:%M:%S"))
    assert [(r.timestamp, r.input_length, r.output_length) for r in _read(tmp_path / "t.jsonl")] == [(0, 10, 2), (2000, 20, 3)]


def test_parquet_source_native_datetime_and_hash_ids(tmp_path: Path) -> None:
    table = pa.table(
        {
            "t": pa.array([datetime(2024, 1, 1, 0, 0, 0), datetime(2024, 1, 1, 0, 0, 2, 250)], pa.timestamp("us")),
            "input_length": [1024, 600],
            "output_length": [8, 9],
            "blocks": pa.array([[1, 2], [1, 3]], pa.list_(pa.int64())),
            "conv": [5, 5],
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    opts = ImportOptions(columns={"timestamp": "t", "hash_ids": "blocks", "session_id": "conv"}, source_block_size=512)
    report = import_trace("parquet", tmp_path / "in.parquet", tmp_path / "out.jsonl", opts)
    rows = _read(tmp_path / "out.jsonl")
    assert rows == [Request(0, 1024, 8, [1, 2], 5), Request(2000.25, 600, 9, [1, 3], 5)]
    assert report.hash_ids.startswith("kept from the source")


def test_parquet_output_has_the_same_columns(tmp_path: Path) -> None:
    src = _burst(tmp_path)
    import_trace("burstgpt", src, tmp_path / "b.jsonl")
    import_trace("burstgpt", src, tmp_path / "b.parquet")
    table = pq.read_table(tmp_path / "b.parquet")
    assert table.schema.field("hash_ids").type == pa.list_(pa.int64())
    assert table.column_names == ["timestamp", "input_length", "output_length", "hash_ids", "session_id", "delay"]
    jsonl = _read(tmp_path / "b.jsonl")
    assert table.column("timestamp").to_pylist() == [float(r.timestamp) for r in jsonl]
    assert table.column("hash_ids").to_pylist() == [r.hash_ids for r in jsonl]
    assert table.column("input_length").to_pylist() == [r.input_length for r in jsonl]


# ------------------------------------------------------------------------------ common options


def _ticks(tmp_path: Path, n: int = 100) -> Path:
    """An Azure file with one request every 100 ms; ContextTokens = row number."""
    lines = [AZURE_HEADER] + [f"2023-11-16 18:{i // 600:02d}:{(i % 600) / 10:010.7f},{i + 1},3" for i in range(n)]
    return _write(tmp_path / "ticks.csv", lines)


def test_window_rebases_to_the_first_written_row_and_speedup_divides(tmp_path: Path) -> None:
    src = _ticks(tmp_path)
    report = import_trace("azure", src, tmp_path / "w.jsonl", ImportOptions(start_s=1.0, end_s=2.0, speedup=4))
    rows = _read(tmp_path / "w.jsonl")
    assert [r.input_length for r in rows] == list(range(11, 21))  # offsets 1.0 .. 1.9 s
    assert [r.timestamp for r in rows] == [25 * i for i in range(10)]
    assert report.dropped == {"before --start": 10, "after --end": 1}
    assert report.rows_read == 21 and report.stopped_early is not None  # streaming stopped at --end
    sorted_report = import_trace("azure", src, tmp_path / "w2.jsonl", ImportOptions(start_s=1.0, end_s=2.0, speedup=4, sort=True))
    assert (tmp_path / "w2.jsonl").read_bytes() == (tmp_path / "w.jsonl").read_bytes()
    assert sorted_report.rows_read == 100 and sorted_report.dropped == {"before --start": 10, "after --end": 80}


def test_limit_and_sample_are_deterministic(tmp_path: Path) -> None:
    src = _ticks(tmp_path, 1000)
    report = import_trace("azure", src, tmp_path / "l.jsonl", ImportOptions(limit=7))
    assert report.rows_written == 7 and len(_read(tmp_path / "l.jsonl")) == 7 and "--limit" in (report.stopped_early or "")
    outs = []
    for i, seed in enumerate((1, 1, 2)):
        import_trace("azure", src, tmp_path / f"s{i}.jsonl", ImportOptions(sample=0.3, seed=seed))
        outs.append((tmp_path / f"s{i}.jsonl").read_bytes())
    assert outs[0] == outs[1] != outs[2]
    kept = _read(tmp_path / "s0.jsonl")
    assert 220 <= len(kept) <= 380 and kept[0].timestamp == 0
    # a sampled row is kept whatever the window: sampling hashes the source row number
    import_trace("azure", src, tmp_path / "sw.jsonl", ImportOptions(sample=0.3, seed=1, start_s=50))
    late = {r.input_length for r in kept if r.input_length > 500}
    assert {r.input_length for r in _read(tmp_path / "sw.jsonl")} == late


def test_shared_prefix_tokens_model_a_system_prompt(tmp_path: Path) -> None:
    src = _write(tmp_path / "az.csv", [AZURE_HEADER, "2023-11-16 18:00:00.0,3000,1", "2023-11-16 18:00:01.0,700,1",
                                       "2023-11-16 18:00:02.0,100,1", "2023-11-16 18:00:03.0,1100,1"])
    report = import_trace("azure", src, tmp_path / "p.jsonl", ImportOptions(shared_prefix_tokens=1100))
    ids = [r.hash_ids for r in _read(tmp_path / "p.jsonl")]
    assert ids == [[0, 1, 2, 3, 4, 5], [0, 6], [7], [0, 1, 8]]
    assert "2 shared prefix block(s)" in report.hash_ids


def test_same_inputs_give_byte_identical_outputs(tmp_path: Path) -> None:
    src = _ticks(tmp_path, 300)
    for name in ("a.jsonl", "b.jsonl", "a.jsonl.gz", "b.jsonl.gz", "a.parquet", "b.parquet"):
        import_trace("azure", src, tmp_path / name, ImportOptions(sample=0.5, seed=9, batch_rows=64))
    for ext in ("jsonl", "jsonl.gz", "parquet"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    assert gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()) == (tmp_path / "a.jsonl").read_bytes()
    # and the JSONL is canonical: reading and rewriting it reproduces it
    write_trace(tmp_path / "c.jsonl", read_trace(tmp_path / "a.jsonl"))
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_out_of_order_rows_fail_unless_sorted(tmp_path: Path) -> None:
    src = _write(tmp_path / "az.csv", [AZURE_HEADER, "2023-11-16 18:00:01.0,1,1", "2023-11-16 18:00:02.0,2,1",
                                       "2023-11-16 18:00:00.5,3,1"])
    with pytest.raises(TraceImportError, match=r"data row 3, column 'TIMESTAMP': timestamp goes backwards by 1,500.000 ms"):
        import_trace("azure", src, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()
    report = import_trace("azure", src, tmp_path / "o.jsonl", ImportOptions(sort=True))
    assert [(r.timestamp, r.input_length) for r in _read(tmp_path / "o.jsonl")] == [(0, 3), (500, 1), (1500, 2)]
    assert report.sorted


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=40))
def test_ns_offsets_are_written_exactly(tmp_path_factory: pytest.TempPathFactory, gaps: list[int]) -> None:
    tmp = tmp_path_factory.mktemp("ns")
    stamps = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    src = _write(tmp / "t.csv", ["timestamp,input_length,output_length"] + [f"{t},1,1" for t in stamps])
    import_trace("csv", src, tmp / "t.jsonl", ImportOptions(time_unit="ns"))
    got = [r.timestamp for r in _read(tmp / "t.jsonl")]
    want = [(t - stamps[0]) / 1e6 for t in stamps]
    assert got == want  # == the nearest double to the exact ms value; ints when whole


# -------------------------------------------------------------------------------------- errors


def _previous(path: Path) -> Path:
    path.write_text("previous content\n")
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["TIMESTAMP,ContextTokens", "2023-11-16 18:00:00.0,1"], r"column 'GeneratedTokens': missing column; the header has: TIMESTAMP, ContextTokens"),
        ([AZURE_HEADER, "2023-11-16 18:00:00.0,1,1", "yesterday,1,1"], r"data row 2, column 'TIMESTAMP': cannot parse 'yesterday' as a datetime"),
        ([AZURE_HEADER, "2023-11-16 18:00:00.0,1,1", "2023-11-16 18:00:00.5,7,-4"], r"data row 2, column 'GeneratedTokens': negative token count '-4'"),
        ([AZURE_HEADER, "2023-11-16 18:00:00.0,1,1", "2023-11-16 18:00:00.5,,4"], r"data row 2, column 'ContextTokens': empty value"),
        ([AZURE_HEADER, "2023-11-16 18:00:00.0,1.5,1"], r"data row 1, column 'ContextTokens': cannot parse '1.5' as a token count"),
        ([AZURE_HEADER], r"nothing to write: the source holds no rows"),
        ([AZURE_HEADER, "16.11.2023 18:00,1,1"], r"data row 1, column 'TIMESTAMP': cannot parse '16.11.2023 18:00' as a datetime in any of the layouts"),
    ],
)
def test_bad_azure_input_names_row_and_column_and_leaves_output_alone(tmp_path: Path, lines: list[str], message: str) -> None:
    src = _write(tmp_path / "bad.csv", lines)
    dst = _previous(tmp_path / "out.jsonl")
    with pytest.raises(TraceImportError, match=message):
        import_trace("azure", src, dst)
    assert dst.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.jsonl"]  # no temporary left behind


def test_error_row_numbers_count_across_batches(tmp_path: Path) -> None:
    lines = [f"2023-11-16 18:00:{i / 100:010.7f},5,5" for i in range(3000)]
    lines[2345] = "2023-11-16 18:00:23.4500000,5,-1"
    src = _write(tmp_path / "big.csv", [AZURE_HEADER] + lines)
    with pytest.raises(TraceImportError, match=r"data row 2346, column 'GeneratedTokens'") as e:
        import_trace("azure", src, tmp_path / "o.parquet", ImportOptions(batch_rows=64))  # ~4 KiB CSV blocks
    assert e.value.row == 2346
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    ("fmt", "rows", "message"),
    [
        ("bailian", [{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0, "input_length": -1, "output_length": 1, "hash_ids": []}],
         r"line 1, field 'input_length': Expected `int` >= 0"),
        ("bailian", [{"chat_id": 1, "parent_chat_id": -1, "timestamp": "noon", "input_length": 1, "output_length": 1, "hash_ids": []}],
         r"line 1, field 'timestamp': Expected `float`, got `str`"),
        ("bailian", [{"chat_id": 1, "timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": []}],
         r"line 1, field 'parent_chat_id': missing"),
        ("mooncake", [{"timestamp": "noon", "input_length": 1, "output_length": 1, "hash_ids": []}], r"m.jsonl:1: field 'timestamp'"),
    ],
)
def test_bad_jsonl_input(tmp_path: Path, fmt: str, rows: list[dict], message: str) -> None:
    src = _jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(TraceError, match=message):
        import_trace(fmt, src, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    ("fmt", "opts", "message"),
    [
        ("nonsense", ImportOptions(), r"unknown format 'nonsense'; expected one of mooncake, azure"),
        ("azure", ImportOptions(model="gpt-4"), r"--model: applies only to burstgpt, not to azure"),
        ("azure", ImportOptions(speedup=0), r"--speedup: must be a finite number > 0"),
        ("azure", ImportOptions(sample=1.5), r"--sample: must be a fraction in \(0, 1\]"),
        ("azure", ImportOptions(start_s=5, end_s=5), r"--end: must be greater than --start"),
        ("csv", ImportOptions(), r"column 'timestamp': needs --time-unit"),
        ("csv", ImportOptions(columns={"prompt": "x"}, time_unit="s"), r"--map: unknown field\(s\) prompt"),
        ("bailian", ImportOptions(shared_prefix_tokens=100), r"--shared-prefix-tokens only applies to sources without hash ids"),
    ],
)
def test_bad_options_and_unknown_format(tmp_path: Path, fmt: str, opts: ImportOptions, message: str) -> None:
    src = _write(tmp_path / "in.csv", ["timestamp,input_length,output_length", "0,1,1"])
    if fmt == "bailian":
        src = _bailian(tmp_path)
    with pytest.raises(TraceImportError, match=message):
        import_trace(fmt, src, tmp_path / "o.jsonl", opts)
    assert not (tmp_path / "o.jsonl").exists()


def test_numeric_time_out_of_int64_range_is_an_error(tmp_path: Path) -> None:
    src = _write(tmp_path / "t.csv", ["timestamp,input_length,output_length", "1,1,1", "100000000000,1,1"])
    with pytest.raises(TraceImportError, match=r"data row 2, column 'timestamp': '100000000000' s is out of range"):
        import_trace("csv", src, tmp_path / "o.jsonl", ImportOptions(time_unit="s"))


def test_gzip_sources_are_detected_by_content(tmp_path: Path) -> None:
    plain = _burst(tmp_path)
    packed = tmp_path / "burst.data"  # no .gz suffix: detected by the magic bytes
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    import_trace("burstgpt", plain, tmp_path / "a.jsonl")
    import_trace("burstgpt", packed, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    q = _bailian(tmp_path)
    (tmp_path / "q.jsonl.gz").write_bytes(gzip.compress(q.read_bytes()))
    import_trace("bailian", q, tmp_path / "c.jsonl")
    import_trace("bailian", tmp_path / "q.jsonl.gz", tmp_path / "d.jsonl")
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "d.jsonl").read_bytes()


def test_unsupported_output_suffix(tmp_path: Path) -> None:
    with pytest.raises(TraceImportError, match=r"must end in .jsonl, .jsonl.gz or .parquet"):
        import_trace("burstgpt", _burst(tmp_path), tmp_path / "o.csv")


# ----------------------------------------------------------------------------------------- CLI


def test_cli_imports_and_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _burst(tmp_path)
    code = cli_main(["import", "burstgpt", str(src), "-o", str(tmp_path / "b.jsonl.gz"), "--block-size", "256", "--model", "ChatGPT"])
    out = capsys.readouterr().out
    assert code == 0
    assert "5 read, 2 written, 3 dropped" in out and "1 failed (0 response tokens)" in out and "rows/s" in out
    (tmp_path / "b.jsonl").write_bytes(gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()))
    assert [len(r.hash_ids) for r in _read(tmp_path / "b.jsonl")] == [2, 1]
    assert cli_main(["import", "csv", str(src), "-o", str(tmp_path / "c.jsonl"), "--json", "--time-unit", "s",
                     "--map", "timestamp=Timestamp,input_length=Request tokens", "--map", "output_length=Response tokens"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows_written"] == 3 and report["dropped"] == {"zero output tokens": 2}


def test_cli_bad_input_exits_2_without_output(tmp_path: Path) -> None:
    src = _write(tmp_path / "bad.csv", [AZURE_HEADER, "2023-11-16 18:00:00.0,1,1", "2023-11-16 18:00:00.5,-7,1"])
    dst = _previous(tmp_path / "out.jsonl")
    proc = subprocess.run([sys.executable, "-m", "replaylib", "import", "azure", str(src), "-o", str(dst)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "bad.csv: data row 2, column 'ContextTokens': negative token count '-7'" in proc.stderr
    assert dst.read_text() == "previous content\n" and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.jsonl"]
    unknown = subprocess.run([sys.executable, "-m", "replaylib", "import", "sharegpt", str(src), "-o", str(dst)],
                             cwd=REPO, capture_output=True, text=True)
    assert unknown.returncode == 2 and "invalid choice: 'sharegpt'" in unknown.stderr
    bad_map = subprocess.run([sys.executable, "-m", "replaylib", "import", "csv", str(src), "-o", str(dst), "--map", "timestamp"],
                             cwd=REPO, capture_output=True, text=True)
    assert bad_map.returncode == 2 and "expected FIELD=COLUMN" in bad_map.stderr


def test_cli_help_lists_formats_and_sort_memory_warning() -> None:
    proc = subprocess.run([sys.executable, "-m", "replaylib", "import", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for fmt in FORMATS:
        assert fmt in proc.stdout
    assert "WHOLE trace" in proc.stdout and "in memory" in proc.stdout


def test_polars_independent_check_of_csv_import(tmp_path: Path) -> None:
    """Cross-check a mapped CSV import against a plain polars computation."""
    src = _ticks(tmp_path, 500)
    import_trace("azure", src, tmp_path / "x.jsonl")
    df = pl.read_csv(src).with_columns(pl.col("TIMESTAMP").str.to_datetime(time_unit="ns").dt.epoch("ns").alias("ns"))
    want = ((df["ns"] - df["ns"][0]) / 1e6).to_list()
    got = [r.timestamp for r in _read(tmp_path / "x.jsonl")]
    assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(got, want)) and len(got) == len(want)


# -- imported traces replay ------------------------------------------------------------------


def _replay_imported(trace: Path, tmp_path: Path) -> tuple[object, dict]:
    from replaylib.adapter import replay
    from replaylib.record import read_recording
    from replaylib.scenario import load_scenario

    default = Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml"
    result = replay(load_scenario(default), out=tmp_path / "imported.arrow", trace=trace)
    last = read_recording(result.path).filter(pl.col("kind") == "tick").tail(1).row(0, named=True)
    return result, last


def test_imported_traces_replay_through_the_default_scenario(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "az.csv",
        [AZURE_HEADER] + [f"2023-11-16 18:17:{s:02d}.{s * 7 % 10}000000,{200 + 37 * s},{3 + s % 11}" for s in range(40)],
    )
    out = tmp_path / "az.jsonl.gz"
    import_trace("azure", src, out)
    result, last = _replay_imported(out, tmp_path)
    assert result.finished  # type: ignore[attr-defined]
    assert last["arrived"] == last["completed"] == 40 and last["dropped"] == 0 and last["in_flight"] == 0


@pytest.mark.shared_trace
def test_real_azure_trace_replays_through_the_default_scenario(tmp_path: Path, azure_code_trace: Path) -> None:
    AZURE_REAL = azure_code_trace  # noqa: N806
    out = tmp_path / "azure.jsonl"
    report = import_trace("azure", AZURE_REAL, out)
    result, last = _replay_imported(out, tmp_path)
    assert result.finished  # type: ignore[attr-defined]
    assert last["arrived"] == report.rows_written == last["completed"] + last["dropped"] + last["in_flight"]
    assert last["completed"] == report.rows_written
