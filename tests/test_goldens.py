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
#: The counterparts of NVIDIA Dynamo's power-planner stress testbed (issue 12); templates in _base/ are not scenarios.
TESTBED = sorted((REPO / "scenarios" / "testbed").glob("*.yaml"))
#: The testbed's 30 IDs, every one with a counterpart.
TESTBED_IDS = {"a1", "a2", "a3", "a4", "a5", "a6", "b7", "b8", "b9", "b10", "b11", "c12", "c13", "c14", "c15", "c16",
               "d17", "d18", "d19", "d20", "d21", "e21", "e22", "e23", "e24", "e25", "f26", "g1", "g2", "g3"}




def test_the_catalog_is_complete() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"default", "g1_decode_drift", "g2_load_ramp", "g3_tight_budget", "mooncake_conversation",
            "budget_shrink", "node_loss", "metrics_outage", "optimizer_fallback", "dynamo_mooncake"} <= names


def test_the_testbed_catalog_is_complete() -> None:
    """One scenario per covered testbed ID, named <id>_<what>, each declaring the name of its file."""
    ids = [p.stem.split("_", 1)[0] for p in TESTBED]
    assert sorted(ids) == sorted(TESTBED_IDS), "one scenario per testbed ID"
    for path in TESTBED:
        loaded = load_scenario(path, check_trace=False).scenario
        assert loaded.name == path.stem, f"{path.name}: name {loaded.name!r} differs from the file name"
        assert 2 <= len(loaded.assertions) <= 5, f"{path.name}: {len(loaded.assertions)} assertions"
        assert path.read_text().startswith("# "), f"{path.name}: no comment header"


def test_every_golden_scenario_replays_a_shipped_trace() -> None:
    """No golden can be skipped for a missing file: every catalog trace is inside the repository."""
    for path in [*SCENARIOS, *TESTBED]:
        trace = Path(load_scenario(path, check_trace=False).trace_path).resolve()
        assert trace.is_relative_to(REPO), f"{path.name} replays {trace}, outside the repository"
        assert trace.exists(), f"{path.name}: {trace} is missing"


@pytest.mark.parametrize("path", [pytest.param(p, marks=planner_marks(p)) for p in SCENARIOS], ids=lambda p: p.stem)
def test_golden(path: Path, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    # only an optional planner that is not installed (Dynamo's) skips; a missing trace cannot (see above)
    skip_unless_planner_available(load_scenario(path, check_trace=False).scenario.planner.name)
    replay_golden(path)  # fails on a changed decision and on any failing scenario assertion


@pytest.mark.parametrize("path", TESTBED, ids=lambda p: p.stem)
def test_testbed_golden(path: Path, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    replay_golden(path)  # fails on a changed decision and on any failing scenario assertion


@pytest.mark.parametrize("planner", ["sla@1", "power@1", "aic@1"])
def test_golden_planner_versions(planner: str, replay_golden) -> None:  # noqa: ANN001 - plugin fixture
    """Every built-in planner version keeps a golden on the default scenario, so version diffs stay reviewable.

    An older version may fail the scenario's assertions (aic@1, which sizes prefill for throughput, leaves
    requests unfinished on the aiconfigurator H100): its golden records the verdicts, so a change of
    verdict is still a golden change."""
    replay_golden(REPO / "scenarios" / "default.yaml", planner=planner, allow_failed_assertions=True)
