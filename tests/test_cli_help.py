"""Every verb's --help has a description, an example and the exit statuses; the record progress line
shows the total and a sim-time fraction; projected_w is filled by the adapter when a planner leaves it empty."""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import subprocess
import sys
from pathlib import Path

import msgspec
import polars as pl
import pytest

from replaylib.adapter import replay
from replaylib.cli import VERBS, build_parser
from replaylib.cli.record_cmd import _ProgressBar
from replaylib.record import read_recording
from replaylib.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_help_has_a_description_an_example_and_exit_codes(verb: str) -> None:
    parser = _subparsers(build_parser())[verb]
    leaves = _subparsers(parser) or {verb: parser}
    for name, p in leaves.items():
        text = p.format_help()
        assert p.description, name
        assert "examples:\n  python -m replaylib " in text or "REPLAYLIB_" in text, name
        assert "exit status: 0" in text, name


def test_the_verb_list_shows_every_verb_with_its_line_and_imports_no_registry() -> None:
    """``--help`` (and a mistyped verb) builds the list of verbs alone: each verb's own one line, none of the
    registries, YAML or Arrow that building every verb's arguments would import."""
    code = (
        "import contextlib, io, sys\n"
        "from replaylib.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('yaml', 'pyarrow', 'polars', 'replaylib.timing.importers', 'replaylib.trace.importers',"
        " 'replaylib.data') if m in sys.modules]\n"
        "print(repr((out.getvalue(), heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    text, heavy = ast.literal_eval(done.stdout)
    assert heavy == []
    for verb in VERBS:
        line = importlib.import_module(f"replaylib.cli.{verb}_cmd").HELP.replace("%%", "%")
        assert " ".join(line.split()[:4]) in " ".join(text.split()), verb  # argparse wraps long lines
    bad = subprocess.run([sys.executable, "-m", "replaylib", "recrod"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "invalid choice: 'recrod'" in bad.stderr and "record" in bad.stderr


class _Snap(msgspec.Struct):
    completed: int
    arrived: int


def test_progress_line_shows_the_total_and_the_simulated_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_scenario("default")
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    bar = _ProgressBar(loaded, None)
    assert bar.total == 4640 and 2_390_000 < bar.end_ms <= 2_400_000
    bar(9, bar.end_ms / 4, _Snap(completed=1000, arrived=1100))
    line = buf.getvalue()
    assert "tick 10" in line and "of 4,640 arrived" in line and "( 25%)" in line and f"of {bar.end_ms / 60000:.1f} min" in line


class _NoProjection:
    name = "noproj"
    version = 1

    def __init__(self, ctx) -> None:  # noqa: ANN001
        self.n = (ctx.initial_prefill, ctx.initial_decode)

    def on_tick(self, obs):  # noqa: ANN001, ANN201
        from replaylib.planner import Decision

        return Decision(n_prefill=self.n[0], n_decode=self.n[1], cap_prefill_w=500.0)


def test_the_adapter_fills_an_empty_projected_w_and_records_that_it_did(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"extends: {REPO / 'scenarios' / 'default.yaml'}\nname: s\nticks: 4\nassertions:\n"
                        "  - {always: true, field: projected_w, op: '<=', value: 6000}\n")
    loaded = load_scenario(scenario)
    result = replay(loaded, out=tmp_path / "r.arrow", planner=_NoProjection(_ctx(loaded)))
    assert result.passed, result.assertions
    ticks = read_recording(result.path).filter(pl.col("kind") == "tick")
    gpus = loaded.system.model.gpus_per_worker
    max_cap = loaded.system.gpu.max_cap_w  # decode cap never asked for: the initial (max) cap is kept
    assert ticks["projected_w"].to_list() == [gpus * (2 * 500.0 + 1 * max_cap)] * 4
    assert ticks["projected_w_filled"].to_list() == [True] * 4
    own = read_recording(replay(loaded, out=tmp_path / "aic.arrow").path).filter(pl.col("kind") == "tick")
    assert set(own["projected_w_filled"].to_list()) == {False}


def _ctx(loaded):  # noqa: ANN001, ANN202
    from replaylib.planner import PlannerContext

    s = loaded.scenario
    return PlannerContext(config=s.planner, system=loaded.system, initial_prefill=s.fleet.prefill_workers,
                          initial_decode=s.fleet.decode_workers, fleet=s.fleet)
