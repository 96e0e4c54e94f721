"""The example planner of docs/writing_a_planner.md replays, passes its scenario's assertions and keeps a golden."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from replaylib.record import read_recording

REPO = Path(__file__).resolve().parents[1]


def test_queue_planner(replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    result = replay_golden(REPO / "examples" / "queue_planner.yaml")
    assert result.planner == "queue@1"
    failed = [f"[{a.index}] {a.description}: {a.evidence}" for a in result.assertions if not a.passed]
    assert not failed, failed
    ticks = read_recording(result.path).filter(pl.col("kind") == "tick")
    assert ticks["target_prefill"].n_unique() > 1  # it really scales
    assert set(ticks["reason"].to_list()) >= {"hold", "scale_out_prefill"}
