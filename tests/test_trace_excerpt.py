"""The shipped excerpt of the real Mooncake trace is faithful to its source.

``traces/mooncake_conversation_10min.jsonl.gz`` is cut from the shared real trace by
our own importer (the command is in ``traces/README.md``), so that goldens and CI can
replay real traffic without the full trace.  The test re-cuts it and compares
bytes, and checks it row by row against the source.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from replaylib.cli import main
from replaylib.trace import read_trace

EXCERPT = Path(__file__).resolve().parents[1] / "traces" / "mooncake_conversation_10min.jsonl.gz"
SPAN_MS = 600_000


def test_excerpt_is_the_first_ten_minutes_of_the_source(mooncake_trace: Path) -> None:
    excerpt = list(read_trace(EXCERPT))
    source = list(itertools.takewhile(lambda r: r.timestamp < SPAN_MS, read_trace(mooncake_trace)))
    assert len(excerpt) == len(source) > 1000
    for i, (got, want) in enumerate(zip(excerpt, source, strict=True)):
        assert (got.timestamp, got.input_length, got.output_length, got.hash_ids) == (
            want.timestamp, want.input_length, want.output_length, want.hash_ids,
        ), f"row {i + 1} differs from the source"


def test_excerpt_is_reproduced_byte_for_byte_by_its_command(mooncake_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "excerpt.jsonl.gz"
    assert main(["import", "mooncake", str(mooncake_trace), "-o", str(out), "--end", str(SPAN_MS // 1000)]) == 0
    assert out.read_bytes() == EXCERPT.read_bytes()


def test_excerpt_is_a_valid_trace_on_its_own() -> None:
    rows = list(read_trace(EXCERPT))
    assert rows[0].timestamp == 0 and rows[-1].timestamp < SPAN_MS
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(rows))
    assert all(r.hash_ids for r in rows)
