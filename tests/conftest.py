"""Shared fixtures: paths to the repo and to the real traces in ../shared (skipped when absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Custom planners in tests are loaded by import path ("tests.custom_planner_example:...");
# make that work however pytest was launched.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SHARED_TRACES = REPO.parent / "shared" / "traces"
MOONCAKE = SHARED_TRACES / "mooncake_conversation_trace.jsonl"
AZURE_CODE = SHARED_TRACES / "azure_llm_2023_code.csv"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real trace not available: {path} (the shared traces live beside the repo in ../shared/traces)")
    return path


@pytest.fixture
def mooncake_trace() -> Path:
    return _need(MOONCAKE)


@pytest.fixture
def azure_code_trace() -> Path:
    return _need(AZURE_CODE)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def dynamo_installed() -> None:
    """Skip unless NVIDIA Dynamo's planner is installed (``python -m replaylib.planner.dynamo.install``)."""
    from tests.planner_helpers import skip_unless_planner_available

    skip_unless_planner_available("dynamo")
