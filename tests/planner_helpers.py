"""Skipping tests whose planner is external and not installed (NVIDIA Dynamo's: ``dynamo``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Set by CI's Dynamo step: a planner that cannot load fails its tests instead of skipping them.
REQUIRE_EXTERNAL = os.environ.get("REPLAYLIB_REQUIRE_DYNAMO") == "1"


def skip_unless_planner_available(spec: str) -> None:
    """Skip (with the reason) when ``spec`` names an external planner that is not installed here."""
    from replaylib.planner.registry import unavailable_reason

    reason = unavailable_reason(spec)
    if reason is not None:
        if REQUIRE_EXTERNAL:
            pytest.fail(f"REPLAYLIB_REQUIRE_DYNAMO=1 but {reason}")
        pytest.skip(reason)


def planner_marks(scenario: Path) -> list[pytest.MarkDecorator]:
    """The marker of the scenario's planner when it is external (``dynamo``), so ``-m dynamo`` selects it."""
    from replaylib.planner.registry import EXTERNAL
    from replaylib.scenario import load_scenario

    name = load_scenario(scenario, check_trace=False).scenario.planner.name.partition("@")[0]
    return [getattr(pytest.mark, name)] if name in EXTERNAL else []
