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
