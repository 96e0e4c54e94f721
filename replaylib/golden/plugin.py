"""pytest plugin (registered by entry point): the ``replay_golden`` fixture.

``replay_golden("scenarios/g3_tight_budget.yaml")`` replays the scenario,
turns its recording into golden text and asserts it against
``goldens/<test module>/<test name>.golden`` (a parametrized test's name
carries its parameters: ``goldens/test_goldens/test_golden[g3_tight_budget].golden``)
— one line in a test.
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
        """``name`` adds ``[name]`` to the golden's name (for several goldens in one test)."""
        loaded = load_scenario(scenario)
        out = tmp_path / f"{loaded.scenario.name}.arrow"
        result = replay(loaded, out=out, planner=planner)
        text = golden_text(read_recording(out), recording_metadata(out))
        golden = snapshot.use_extension(GoldenExtension)
        assert text == (golden(name=name) if name else golden)
        return result

    return check
