"""The streaming Mooncake JSONL reader and writer: happy paths, every error, round trips."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from replaylib.trace import Request, TraceError, read_trace, write_trace
from replaylib.trace import reader as reader_mod

ROW = {"timestamp": 0, "input_length": 1024, "output_length": 10, "hash_ids": [0, 1]}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _rows(**over: object) -> str:
    return json.dumps({**ROW, **over})


def test_reads_typed_rows_and_keeps_optional_fields(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "t.jsonl",
        [_rows(), _rows(timestamp=5.5, session_id="s1", delay=250), _rows(timestamp=6, session_id=7)],
    )
    rows = list(read_trace(p))
    assert rows[0] == Request(timestamp=0, input_length=1024, output_length=10, hash_ids=[0, 1])
    assert isinstance(rows[0].timestamp, int) and isinstance(rows[1].timestamp, float)
    assert rows[1].session_id == "s1" and rows[1].delay == 250
    assert rows[2].session_id == 7 and rows[2].delay is None


def test_aliases_are_accepted(tmp_path: Path) -> None:
    line = json.dumps({"created_time": 3, "input_tokens": 600, "output_tokens": 4, "hash_ids": [9, 8], "delay_ms": 12})
    (row,) = read_trace(_write(tmp_path / "a.jsonl", [line]))
    assert (row.timestamp, row.input_length, row.output_length, row.delay) == (3, 600, 4, 12)


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    (row,) = read_trace(_write(tmp_path / "u.jsonl", [_rows(model="qwen", type="text")]))
    assert row.input_length == 1024


def test_gzip_is_detected_by_content(tmp_path: Path) -> None:
    p = tmp_path / "t.data"  # no .gz suffix: detection is by magic bytes
    with gzip.open(p, "wt") as fh:
        fh.write(_rows() + "\n" + _rows(timestamp=1) + "\n")
    assert [r.timestamp for r in read_trace(p)] == [0, 1]


def test_blank_final_line_is_fine(tmp_path: Path) -> None:
    p = tmp_path / "b.jsonl"
    p.write_text(_rows() + "\n\n")
    assert len(list(read_trace(p))) == 1
    p.write_text(_rows())  # no final newline at all
    assert len(list(read_trace(p))) == 1


@pytest.mark.parametrize(
    ("lines", "line", "field", "fragment"),
    [
        (["{not json"], 1, None, "malformed JSON"),
        ([_rows(), "[1, 2]"], 2, None, "expected a JSON object"),
        ([json.dumps({"timestamp": 0, "output_length": 1, "hash_ids": []})], 1, "input_length", "missing (or its alias 'input_tokens')"),
        ([_rows(input_length="12")], 1, "input_length", 'got "12"'),
        ([_rows(input_length=12.0)], 1, "input_length", "got 12.0"),
        ([_rows(output_length=-3)], 1, "output_length", "expected an integer from 1 to 16,777,216 (replaylib.limits.MAX_TOKENS), got -3"),
        ([_rows(input_length=0)], 1, "input_length", "got 0"),
        ([_rows(hash_ids=[1, -2])], 1, "hash_ids[1]", "each 0 to 9223372036854775807 (a signed 64-bit id), got -2"),
        ([_rows(hash_ids="0,1")], 1, "hash_ids", 'got "0,1"'),
        ([_rows(hash_ids=[1, 2.5])], 1, "hash_ids[1]", "got 2.5"),
        ([_rows(timestamp=-1)], 1, "timestamp", "got -1"),
        ([_rows(timestamp=True)], 1, "timestamp", "got true"),
        ([_rows(session_id=[1])], 1, "session_id", "a string or an integer"),
        ([_rows(timestamp=10), _rows(timestamp=20), _rows(timestamp=15)], 3, "timestamp", "goes backwards (line 2 has 20)"),
        ([_rows(), "", _rows(timestamp=1)], 2, None, "blank line between requests"),
    ],
)
def test_bad_input_names_file_line_and_field(
    tmp_path: Path, lines: list[str], line: int, field: str | None, fragment: str
) -> None:
    p = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TraceError) as info:
        list(read_trace(p))
    err = info.value
    assert (err.path, err.line, err.field) == (str(p), line, field)
    assert fragment in str(err)
    assert str(err).startswith(f"{p}:{line}: ")


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    with pytest.raises(TraceError, match="empty"):
        list(read_trace(p))
    p.write_text("\n\n")
    with pytest.raises(TraceError, match="empty"):
        list(read_trace(p))


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        list(read_trace(tmp_path / "nope.jsonl"))


def test_corrupt_gzip_is_a_trace_error(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl.gz"
    data = gzip.compress(((_rows() + "\n") * 1000).encode())
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="cannot read"):
        list(read_trace(p))


def test_sort_reorders_stably(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "s.jsonl",
        [_rows(timestamp=10, input_length=11), _rows(timestamp=5, input_length=12), _rows(timestamp=10, input_length=13)],
    )
    assert [(r.timestamp, r.input_length) for r in read_trace(p, sort=True)] == [(5, 12), (10, 11), (10, 13)]


def test_errors_are_found_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "_CHUNK_BYTES", 64)  # many tiny chunks, lines straddle them
    lines = [_rows(timestamp=i) for i in range(50)]
    lines[37] = _rows(timestamp=37, output_length=0)
    p = _write(tmp_path / "c.jsonl", lines)
    with pytest.raises(TraceError) as info:
        list(read_trace(p))
    assert (info.value.line, info.value.field) == (38, "output_length")
    lines[37] = _rows(timestamp=37)
    _write(p, lines)
    assert [r.timestamp for r in read_trace(p)] == list(range(50))


def test_alias_rows_and_canonical_rows_mix_with_correct_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "_CHUNK_BYTES", 100)
    lines = [_rows(timestamp=i) if i % 3 else json.dumps({"created_time": i, "input_tokens": 5, "output_tokens": 1, "hash_ids": []}) for i in range(30)]
    lines.append(_rows(timestamp=1))  # line 31 goes backwards
    with pytest.raises(TraceError) as info:
        list(read_trace(_write(tmp_path / "m.jsonl", lines)))
    assert info.value.line == 31 and "line 30 has 29" in str(info.value)


def test_writer_round_trips_byte_stably(tmp_path: Path) -> None:
    rows = [
        Request(timestamp=0, input_length=10, output_length=2, hash_ids=[1]),
        Request(timestamp=1.25, input_length=600, output_length=3, hash_ids=[1, 2], session_id="a", delay=40),
        Request(timestamp=7, input_length=5, output_length=1, hash_ids=[], session_id=3),
    ]
    first = tmp_path / "one.jsonl"
    write_trace(first, rows)
    second = tmp_path / "two.jsonl"
    assert write_trace(second, read_trace(first)) == 3
    assert first.read_bytes() == second.read_bytes()
    assert list(read_trace(second)) == rows
    gz1, gz2 = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_trace(gz1, rows)
    write_trace(gz2, read_trace(gz1))
    assert gz1.read_bytes() == gz2.read_bytes()  # deterministic gzip header
    assert gzip.decompress(gz1.read_bytes()) == first.read_bytes()


def test_writer_is_atomic_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "keep.jsonl"
    out.write_text("previous contents\n")

    def rows():  # noqa: ANN202
        yield Request(timestamp=0, input_length=1, output_length=1, hash_ids=[])
        raise RuntimeError("source failed mid-way")

    with pytest.raises(RuntimeError):
        write_trace(out, rows())
    assert out.read_text() == "previous contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.jsonl"]


def test_validate_cli_reports_statistics_and_errors(tmp_path: Path) -> None:
    good = _write(tmp_path / "g.jsonl", [_rows(timestamp=0, hash_ids=[0, 1]), _rows(timestamp=2000, hash_ids=[0, 2])])
    run = subprocess.run([sys.executable, "-m", "replaylib", "validate", "trace", str(good)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "requests    2" in run.stdout
    assert "25.0% of input blocks repeat" in run.stdout  # block 0 repeats once among 4
    bad = _write(tmp_path / "b.jsonl", [_rows(), _rows(hash_ids=[-1])])
    run = subprocess.run([sys.executable, "-m", "replaylib", "validate", "trace", str(bad)], capture_output=True, text=True)
    assert run.returncode == 1
    assert f"{bad}:2: field 'hash_ids[0]'" in run.stderr


def test_real_mooncake_trace(mooncake_trace: Path) -> None:
    n = 0
    last = -1
    for row in read_trace(mooncake_trace):
        assert row.timestamp >= last
        assert len(row.hash_ids) == -(-row.input_length // 512)
        last = row.timestamp
        n += 1
    assert n == 12031
    run = subprocess.run(
        [sys.executable, "-m", "replaylib", "validate", "trace", str(mooncake_trace)], capture_output=True, text=True
    )
    assert run.returncode == 0 and "requests    12,031" in run.stdout
