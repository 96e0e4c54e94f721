"""Every scenario in scenarios/ replays to its golden decision log, and its assertions hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from replaylib.scenario import load_scenario
from tests.planner_helpers import planner_marks, skip_unless_planner_available

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))




def test_the_catalog_is_complete() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"default", "g1_decode_drift", "g2_load_ramp", "g3_tight_budget", "mooncake_conversation",
            "budget_shrink", "node_loss", "metrics_outage", "optimizer_fallback", "dynamo_mooncake"} <= names


@pytest.mark.parametrize("path", [pytest.param(p, marks=planner_marks(p)) for p in SCENARIOS], ids=lambda p: p.stem)
def test_golden(path: Path, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    loaded = load_scenario(path, check_trace=False)
    trace = loaded.trace_path
    if not Path(trace).exists():
        pytest.skip(f"trace not available: {trace}")
    skip_unless_planner_available(loaded.scenario.planner.name)
    result = replay_golden(path)
    failed = [f"[{a.index}] {a.description}: {a.evidence}" for a in result.assertions if not a.passed]
    assert not failed, "scenario assertions failed:\n" + "\n".join(failed)


@pytest.mark.parametrize("planner", ["sla@1", "power@1", "aic@1"])
def test_golden_planner_versions(planner: str, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    """Every built-in planner version keeps a golden on the default scenario, so version diffs stay reviewable."""
    replay_golden(REPO / "scenarios" / "default.yaml", planner=planner)
