"""Start-up stays cheap: ``--help`` and verb registration import neither pyarrow nor polars,
and ``record`` summarises from the rows it recorded instead of reading its file back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replaylib.cli import VERBS

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pyarrow", "polars", "numpy", "pandas", "dask", "distributed")


def _imported(*args: str) -> set[str]:
    """Top-level packages imported by ``python -m replaylib ARGS`` (from ``-X importtime``)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "replaylib", *args], capture_output=True, text=True, cwd=REPO)
    modules = set()
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            modules.add(name.split(".")[0])
    assert modules, run.stderr[-2000:]
    return modules


def test_help_imports_neither_pyarrow_nor_polars() -> None:
    imported = _imported("--help")
    assert "replaylib" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help_imports_nothing_heavy(verb: str) -> None:
    # every verb registers with argparse work only; its dependencies are imported when it runs
    imported = _imported(verb, "--help")
    assert not imported & set(HEAVY), (verb, sorted(imported & set(HEAVY)))


def test_record_does_not_import_polars(tmp_path: Path) -> None:
    # the summary is computed from the rows as they were recorded (no read-back through polars)
    imported = _imported("record", "--quiet", "--out", str(tmp_path / "r.arrow"))
    assert "pyarrow" in imported  # the recording is written
    assert "polars" not in imported
    assert (tmp_path / "r.arrow").exists()


def _modules_after(*args: str) -> set[str]:
    """``sys.modules`` after ``replaylib.cli.main(ARGS)`` in a fresh interpreter."""
    code = ("import sys; from replaylib.cli import main; sys.stdout = open('/dev/null', 'w'); "
            f"code = main({list(args)!r}); sys.stdout = sys.__stdout__; print(code, *sorted(sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    words = run.stdout.split()
    assert words, run.stderr[-2000:]
    return set(words[1:])


def test_running_one_verb_builds_that_verb_alone(tmp_path: Path) -> None:
    # `record` does not register `systems` and `import` (their importer registries cost ~50 ms), nor `list` them;
    # a mistyped verb still gets the whole parser, so the error lists every verb
    record = _modules_after("record", "--quiet", "--out", str(tmp_path / "r.arrow"))
    assert "replaylib.cli.record_cmd" in record and (tmp_path / "r.arrow").exists()  # it ran
    assert not {"replaylib.cli.systems_cmd", "replaylib.timing.importers", "replaylib.trace.importers"} & record
    listing = _modules_after("list", "planners")
    assert "replaylib.cli.list_cmd" in listing and "replaylib.cli.systems_cmd" not in listing
    bad = subprocess.run([sys.executable, "-m", "replaylib", "recrod"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "invalid choice: 'recrod'" in bad.stderr and "systems" in bad.stderr  # the whole list
