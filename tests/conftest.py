"""Shared fixtures: paths to the repo and to the real traces (skipped when absent).

The real traces are found through the trace search path, the setting users have
(``REPLAYLIB_TRACE_PATH``, see ``replaylib.data``); when it is unset the tests
set it to ``../shared/traces`` beside the repository, for this process and the
CLI subprocesses it starts, so scenarios naming a real trace find it the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Custom planners in tests are loaded by import path ("tests.custom_planner_example:...");
# make that work however pytest was launched.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from replaylib.data import ENV_VARS, SearchPath, find_trace  # noqa: E402 - after the sys.path fix

TRACE_ENV = ENV_VARS["traces"]
os.environ.setdefault(TRACE_ENV, str(REPO.parent / "shared" / "traces"))
MOONCAKE = "mooncake_conversation_trace.jsonl"
AZURE_CODE = "azure_llm_2023_code.csv"


def shared_trace(name: str) -> Path:
    """A real trace on the trace search path; skips the test, with the reason, when it is absent."""
    found = find_trace(name, SearchPath.from_env())
    if found is None:
        pytest.skip(f"real trace not available: {name} is not on {TRACE_ENV}={os.environ.get(TRACE_ENV, '')} "
                    "(the shared traces live beside the repo in ../shared/traces)")
    return Path(found)


@pytest.fixture
def mooncake_trace() -> Path:
    return shared_trace(MOONCAKE)


@pytest.fixture
def azure_code_trace() -> Path:
    return shared_trace(AZURE_CODE)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def dynamo_installed() -> None:
    """Skip unless NVIDIA Dynamo's planner is installed (``python -m replaylib.planner.dynamo.install``); then
    import it through the bridge's loader, which first puts in the stand-ins for the modules Dynamo imports
    but cannot get, so that a test may import Dynamo's modules itself, run alone or in any order."""
    from replaylib.planner.dynamo import loader
    from tests.planner_helpers import skip_unless_planner_available

    skip_unless_planner_available("dynamo")
    loader.import_dynamo()
