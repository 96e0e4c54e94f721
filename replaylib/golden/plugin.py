"""pytest plugin (registered by entry point): the ``replay_golden`` fixture.

``replay_golden("scenarios/g3_tight_budget.yaml")`` replays the scenario,
turns its recording into golden text and asserts it against
``goldens/<scenario name>.golden`` — one line in a test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

ReplayGolden = Callable[..., object]


@pytest.fixture
def replay_golden(snapshot, tmp_path: Path) -> ReplayGolden:  # noqa: ANN001 - syrupy's fixture
    """Replay a scenario and assert its decision log equals its golden; returns the ReplayResult."""
    from replaylib.adapter import replay
    from replaylib.golden.extension import GoldenExtension  # syrupy is imported only when the fixture is used
    from replaylib.golden.text import golden_text
    from replaylib.record import read_recording, recording_metadata
    from replaylib.scenario import load_scenario

    def check(scenario: str | Path, *, planner: str | None = None, name: str | None = None) -> object:
        loaded = load_scenario(scenario)
        label = name or (loaded.scenario.name if planner is None else f"{loaded.scenario.name}__{planner.replace(':', '_')}")
        out = tmp_path / f"{label}.arrow"
        result = replay(loaded, out=out, planner=planner)
        text = golden_text(read_recording(out), recording_metadata(out))
        assert text == snapshot(extension_class=GoldenExtension, name=label)
        return result

    return check
