"""The docs cannot go stale: marked code blocks run, the reference pages equal what the code generates,
and the README's scenario example is the file it names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from replaylib import reference

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: A runnable block opens with ```sh {test} or ```python {test}.
_BLOCK = re.compile(r"^```(sh|python) \{test\}\n(.*?)^```$", re.S | re.M)


def _blocks() -> list:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in _BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append(pytest.param(m.group(1), m.group(2), id=f"{doc.relative_to(REPO)}:{line}"))
    return out


BLOCKS = _blocks()


def test_the_readme_and_the_planner_guide_have_runnable_blocks() -> None:
    ids = [p.id for p in BLOCKS]
    assert any(i.startswith("README.md") for i in ids) and any(i.startswith("docs/writing_a_planner.md") for i in ids)


@pytest.mark.parametrize(("lang", "code"), BLOCKS)
def test_marked_code_blocks_run(lang: str, code: str, tmp_path: Path) -> None:
    """sh blocks run from the repository root (outputs under $TMPDIR); python blocks from an empty folder."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    if lang == "sh":
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    else:
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


@pytest.mark.parametrize("page", sorted(reference.PAGES))
def test_reference_pages_are_what_the_code_generates(page: str) -> None:
    committed = (REPO / page).read_text()
    assert committed == reference.PAGES[page](), f"{page} is stale: run `python -m replaylib.reference` and commit it"


def test_the_scenario_reference_names_every_key_of_the_model() -> None:
    from msgspec import inspect as mi

    from replaylib.scenario.model import Assertion, Event, Scenario

    text = (REPO / reference.SCENARIO_PAGE).read_text()
    structs = [mi.type_info(Scenario), mi.type_info(Assertion), *(mi.type_info(e) for e in Event.__args__)]
    seen = set()
    while structs:
        s = structs.pop()
        if s.cls in seen:
            continue
        seen.add(s.cls)
        for f in s.fields:
            if f.name != s.tag_field:
                assert f"| `{f.encode_name}` |" in text, (s.cls.__name__, f.name)
            inner = reference._struct_of(f.type)
            if inner is not None:
                structs.append(inner)
    for e in Event.__args__:
        assert f"`type: {e.__struct_config__.tag}`" in text


def test_every_recording_column_is_documented_and_only_those() -> None:
    from replaylib.record.columns import COLUMNS
    from replaylib.record.schema import FIELDS

    assert list(COLUMNS) == list(FIELDS)
    text = (REPO / reference.COLUMNS_PAGE).read_text()
    assert all(f"| `{c}` |" in text for c in FIELDS)


def test_the_readme_scenario_example_is_the_file_it_names() -> None:
    text = (REPO / "README.md").read_text()
    m = re.search(r"`(scenarios/[\w/]+\.yaml)`, as it is.*?\n\n```yaml\n(.*?)```", text, re.S)
    assert m, "the README shows a scenario file verbatim"
    assert m.group(2) == (REPO / m.group(1)).read_text()
