"""The documented real-trace check: the whole hour of the real Mooncake conversation trace.

The catalog's ``mooncake_conversation`` golden replays the shipped 10-minute excerpt
(``traces/mooncake_conversation_10min.jsonl.gz``), so it runs on every clone.  The full
hour needs the shared trace beside the repository (``../shared/traces``); this check
skips, saying so, when it is absent.  It replays
``scenarios/real_traces/mooncake_conversation_1h.yaml``, requires its assertions, and
requires that every tick of the first ten minutes decides exactly as the excerpt's golden.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from replaylib.adapter import replay
from replaylib.diff import diff_frames
from replaylib.golden import golden_text, parse_golden
from replaylib.record import read_metadata, read_recording
from replaylib.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
FULL_HOUR = REPO / "scenarios" / "real_traces" / "mooncake_conversation_1h.yaml"
EXCERPT_GOLDEN = REPO / "goldens" / "test_goldens" / "test_golden[mooncake_conversation].golden"
EXCERPT_SPAN_MS = 600_000.0  # the excerpt holds the requests that arrive in the first ten minutes


def _first_ten_minutes(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of the ticks whose planner clock is still inside the excerpt's span."""
    ticks = frame.filter((pl.col("kind") == "tick") & (pl.col("now_ms") <= EXCERPT_SPAN_MS))["tick"]
    return frame.filter(pl.col("tick").is_in(ticks.implode()) & (pl.col("kind") != "assertion"))


@pytest.mark.shared_trace
def test_full_hour_of_the_real_trace(mooncake_trace: Path, tmp_path: Path) -> None:
    loaded = load_scenario(FULL_HOUR)
    assert Path(loaded.trace_path).resolve() == mooncake_trace.resolve()
    out = tmp_path / "full_hour.arrow"
    result = replay(loaded, out=out)
    failed = [f"[{a.index}] {a.description}: {a.evidence}" for a in result.assertions if not a.passed]
    assert result.finished and not failed, failed
    full = parse_golden(golden_text(read_recording(out), read_metadata(out))).frame  # at golden precision
    excerpt = parse_golden(EXCERPT_GOLDEN.read_text(encoding="utf-8")).frame
    head_full, head_excerpt = _first_ten_minutes(full), _first_ten_minutes(excerpt)
    assert head_excerpt.filter(pl.col("kind") == "tick").height >= 8
    report = diff_frames(head_excerpt, head_full, kpis=False)
    assert report.identical, f"the full hour decides differently from the excerpt at tick {report.first_divergence}"
