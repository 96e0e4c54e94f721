"""Every scenario in scenarios/ replays to its golden decision log, and its assertions hold.

Every golden here runs on a clean clone: each catalog scenario replays a trace
the repository ships (the real Mooncake traffic through its 10-minute excerpt).
The full-hour real-trace check is tests/test_real_traces.py.
"""

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


def test_every_golden_scenario_replays_a_shipped_trace() -> None:
    """No golden can be skipped for a missing file: every catalog trace is inside the repository."""
    for path in SCENARIOS:
        trace = Path(load_scenario(path, check_trace=False).trace_path).resolve()
        assert trace.is_relative_to(REPO), f"{path.name} replays {trace}, outside the repository"
        assert trace.exists(), f"{path.name}: {trace} is missing"


@pytest.mark.parametrize("path", [pytest.param(p, marks=planner_marks(p)) for p in SCENARIOS], ids=lambda p: p.stem)
def test_golden(path: Path, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    # only an optional planner that is not installed (Dynamo's) skips; a missing trace cannot (see above)
    skip_unless_planner_available(load_scenario(path, check_trace=False).scenario.planner.name)
    replay_golden(path)  # fails on a changed decision and on any failing scenario assertion


@pytest.mark.parametrize("planner", ["sla@1", "power@1", "aic@1"])
def test_golden_planner_versions(planner: str, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    """Every built-in planner version keeps a golden on the default scenario, so version diffs stay reviewable."""
    replay_golden(REPO / "scenarios" / "default.yaml", planner=planner)
