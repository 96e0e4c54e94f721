"""Goldens in a user's own project, as a new user runs them (issue 13's evidence).

Each test builds a throw-away project in ``tmp_path`` — ``pyproject.toml``, a planner
package, a scenario, a test module using ``replay_golden`` — and runs pytest in it with
replaylib installed into a virtual environment of its own, editable as the README says
(``pip install -e``) and, for the message check, as a regular install.  The environments
are made once per session: ``python -m venv --without-pip``, this interpreter's
site-packages on a ``.pth`` line (pytest, syrupy, polars ... without downloading), then
``pip install --no-build-isolation --no-deps`` of this checkout — offline, so CI can run it.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PLANNERS = '''
"""A user's planner: sla@1, asking for one more decode worker at tick $BUMP_TICK when set."""

import os

import msgspec

from replaylib.planner.sla import SlaPlanner


class Tweaked(SlaPlanner):
    name = "tweaked"
    version = 1

    def on_tick(self, obs):
        decision = super().on_tick(obs)
        bump = os.environ.get("BUMP_TICK")
        if bump is not None and obs.tick == int(bump):
            decision = msgspec.structs.replace(decision, n_decode=decision.n_decode + 1)
        return decision
'''

SCENARIO = """
system: h100_sxm
seed: 1
trace: {path: ../traces/ramp_30min.jsonl.gz, block_size: 512, limit: 600}
fleet: {prefill_workers: 2, decode_workers: 2}
planner: {name: sla@1, adjustment_interval_s: 60, ttft_ms: 2000, itl_ms: 50, max_gpu_budget: 32}
power:
  total_gpu_power_limit_w: 12000
  noise:
    power_prefill: {kind: gaussian, sigma: 8}
    power_decode: {kind: ar1, phi: 0.7, sigma: 5}
    ttft: {kind: gaussian, sigma: 25}
    itl: {kind: gaussian, sigma: 0.5}
assertions:
  - {always: true, field: dropped, op: "==", value: 0, description: "no request is dropped"}
"""

TESTS = '''
import os

import pytest

PLANNER = "my_planners.planners:Tweaked"


def _options():
    opts = {"seed": int(os.environ.get("SEED", "1"))}
    if "ONLY" in os.environ:
        opts["only"] = os.environ["ONLY"]
    if "TOL" in os.environ:
        opts["tolerance"] = float(os.environ["TOL"])
    if "ALLOW" in os.environ:
        opts["allow_failed_assertions"] = True
    return opts


def test_mine(replay_golden):
    replay_golden(os.environ.get("SCENARIO", "scenarios/ramp.yaml"), planner=PLANNER, **_options())


@pytest.mark.parametrize("planner", ["sla@1", PLANNER])
def test_versions(planner, replay_golden):
    replay_golden("scenarios/ramp.yaml", planner=planner)
'''


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages")) or sorted(venv.glob("Lib/site-packages"))
    assert found, f"no site-packages in {venv}"
    return found[0]


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _make_venv(root: Path, editable: bool) -> Path:
    venv = root / ("venv-editable" if editable else "venv-regular")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    parents = [p for p in (*site.getsitepackages(), site.getusersitepackages()) if os.path.isdir(p)]
    (_site_packages(venv) / "_parent_site.pth").write_text("\n".join(parents) + "\n")
    cmd = [str(_python(venv)), "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-q"]
    cmd += ["-e", str(REPO)] if editable else [str(REPO)]
    # REPLAYLIB_BUILD_NATIVE=0: an editable install would otherwise compile into this checkout, where mypy is installed
    run = subprocess.run(cmd, capture_output=True, text=True, env=_env(REPLAYLIB_BUILD_NATIVE="0"))
    assert run.returncode == 0, f"pip install into {venv} failed:\n{run.stdout}\n{run.stderr}"
    return venv


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH", "COV_", "SEED", "BUMP_TICK"))}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user_venvs")
    return {"editable": _make_venv(root, editable=True), "regular": _make_venv(root, editable=False)}


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "my-planners"\nversion = "0.1.0"\n\n'
                                         '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')  # fmt: skip
    (root / "my_planners").mkdir()
    (root / "my_planners" / "__init__.py").write_text("")
    (root / "my_planners" / "planners.py").write_text(PLANNERS)
    (root / "systems").mkdir()
    shutil.copy(REPO / "systems" / "h100_sxm.yaml", root / "systems" / "h100_sxm.yaml")
    (root / "traces").mkdir()
    shutil.copy(REPO / "traces" / "ramp_30min.jsonl.gz", root / "traces" / "ramp_30min.jsonl.gz")
    (root / "scenarios").mkdir()
    (root / "scenarios" / "ramp.yaml").write_text(SCENARIO)
    (root / "tests").mkdir()
    (root / "tests" / "test_planner.py").write_text(TESTS)
    return root


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout + proc.stderr

    def failure(self, test: str) -> str:
        """The failure message of ``test`` (from the line naming the golden to the update command)."""
        m = re.search(r"(goldens/test_planner/" + re.escape(test) + r"[^\n]* does not match.*?to accept the replay[^\n]*)", self.out, re.S)
        assert m, f"no golden failure for {test} in:\n{self.out}"
        return m.group(1)


def _pytest(venv: Path, project: Path, *args: str, **env: str) -> Run:
    cmd = [str(_python(venv)), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args]
    return Run(subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=_env(**env), timeout=600))


@pytest.fixture(scope="session")
def user_project(venvs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose goldens were written by ``pytest --snapshot-update``."""
    project = _project(tmp_path_factory.mktemp("user") / "my-planners")
    run = _pytest(venvs["editable"], project, "-q", "--snapshot-update")
    assert run.code == 0, run.out
    assert "3 snapshots generated" in run.out
    assert "Can not relate" not in run.out and "Warning" not in run.out, run.out
    return project


def _goldens(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "goldens" / "test_planner").iterdir())


def test_the_installs_are_what_they_claim(venvs: dict[str, Path]) -> None:
    where = {}
    for mode, venv in venvs.items():
        run = subprocess.run([str(_python(venv)), "-c", "import replaylib; print(replaylib.__file__)"],
                             capture_output=True, text=True, env=_env(), cwd=venv)  # fmt: skip
        assert run.returncode == 0, run.stderr
        where[mode] = Path(run.stdout.strip()).resolve()
    assert where["editable"].is_relative_to(REPO)
    assert where["regular"].is_relative_to(venvs["regular"].resolve())


def test_goldens_are_named_after_their_tests_even_for_import_paths(user_project: Path, venvs: dict[str, Path]) -> None:
    assert _goldens(user_project) == [
        "test_mine.golden", "test_versions[my_planners.planners%3ATweaked].golden", "test_versions[sla@1].golden",
    ]  # fmt: skip
    run = _pytest(venvs["editable"], user_project, "-q")
    assert run.code == 0, run.out
    assert "3 snapshots passed" in run.out and "unused" not in run.out and "Can not relate" not in run.out


@pytest.fixture(scope="session")
def bumped(user_project: Path, venvs: dict[str, Path]) -> dict[str, Run]:
    """``test_mine`` after the planner changed its decision at tick 5, under -q, -v and -vv."""
    return {flag: _pytest(venvs["editable"], user_project, flag, "-k", "test_mine", BUMP_TICK="5") for flag in ("-q", "-v", "-vv")}


def test_a_changed_decision_fails_naming_the_first_diverging_tick(bumped: dict[str, Run]) -> None:
    runs = bumped
    for flag, run in runs.items():
        assert run.code == 1, (flag, run.out)
    message = runs["-q"].failure("test_mine.golden")
    lines = message.splitlines()
    assert "first diverging tick: 5" in message
    row = next(ln for ln in lines if ln.strip().startswith("target_decode "))
    golden_value, replay_value = (int(x) for x in row.split()[1:3])
    assert replay_value == golden_value + 1
    # expected vs actual for the changed decisions only: no observation or outcome rows
    table = lines[lines.index(next(ln for ln in lines if ln.strip().startswith("column "))) + 1 :]
    shown = [ln.split()[0] for ln in table if ln.startswith("    ") and len(ln.split()) == 3]
    assert shown and all(c in {"target_decode", "projected_w", "reason", "t_sched_ms", "predicted_rate", "c_ttft", "c_itl"}
                         for c in shown), shown  # fmt: skip
    assert "not judged (summarised)" in message  # the rest is counted, not listed
    assert "python -m pytest --snapshot-update tests/test_planner.py::test_mine" in message
    assert "AssertionError" not in runs["-q"].out and "assert " not in message
    assert runs["-v"].failure("test_mine.golden") == message == runs["-vv"].failure("test_mine.golden")


def test_the_message_is_the_same_with_a_regular_install(
    user_project: Path, venvs: dict[str, Path], bumped: dict[str, Run], tmp_path: Path
) -> None:
    other = tmp_path / "copy" / "my-planners"
    shutil.copytree(user_project, other)
    regular = _pytest(venvs["regular"], other, "-q", "-k", "test_mine", BUMP_TICK="5")
    assert regular.code == 1
    assert regular.failure("test_mine.golden") == bumped["-q"].failure("test_mine.golden")


def test_a_seed_change_passes_by_default_and_fails_when_everything_is_judged_exactly(user_project: Path, venvs: dict[str, Path]) -> None:
    venv = venvs["editable"]
    same = _pytest(venv, user_project, "-q", "-k", "test_mine", SEED="2")
    assert same.code == 0, same.out  # decisions identical; observations and outcomes differ but are summarised
    strict = _pytest(venv, user_project, "-q", "-k", "test_mine", SEED="2", ONLY="all", TOL="0")
    assert strict.code == 1, strict.out
    message = strict.failure("test_mine.golden")
    assert "decisions, observations and outcomes differ" in message and "first diverging tick: 0" in message
    assert "metadata: seed golden 1 | replay 2" in message


def test_snapshot_update_rewrites_and_unused_goldens_are_reported(user_project: Path, venvs: dict[str, Path], tmp_path: Path) -> None:
    venv = venvs["editable"]
    project = tmp_path / "my-planners"
    shutil.copytree(user_project, project)
    golden = project / "goldens" / "test_planner" / "test_mine.golden"
    before = golden.read_text()
    update = _pytest(venv, project, "-q", "--snapshot-update", BUMP_TICK="5")
    assert update.code == 0 and "2 snapshots updated" in update.out and "1 snapshot passed" in update.out, update.out
    after = golden.read_text()
    changed = [ln for ln in after.splitlines() if ln not in before.splitlines()]
    assert after != before and any(ln.startswith("    target_decode: ") for ln in changed)
    # a golden no test uses is reported (and the rewritten golden now holds), then removed by --snapshot-update
    tests = project / "tests" / "test_planner.py"
    tests.write_text(tests.read_text().replace('@pytest.mark.parametrize("planner", ["sla@1", PLANNER])',
                                               '@pytest.mark.parametrize("planner", [PLANNER])'))  # fmt: skip
    unused = _pytest(venv, project, "-q", BUMP_TICK="5")
    assert unused.code == 1 and "2 passed" in unused.out and "1 snapshot unused" in unused.out, unused.out
    cleaned = _pytest(venv, project, "-q", "--snapshot-update", BUMP_TICK="5")
    assert cleaned.code == 0 and "1 unused snapshot deleted" in cleaned.out, cleaned.out
    assert _goldens(project) == ["test_mine.golden", "test_versions[my_planners.planners%3ATweaked].golden"]


def test_a_failing_assertion_fails_the_test_and_is_never_written(venvs: dict[str, Path], tmp_path: Path) -> None:
    venv = venvs["editable"]
    project = _project(tmp_path / "my-planners")
    (project / "scenarios" / "broken.yaml").write_text(
        SCENARIO + '  - {always: true, field: gpus, op: "<", value: 2, description: "never fewer than 2 GPUs"}\n'
    )
    run = _pytest(venv, project, "-q", "--snapshot-update", "-k", "test_mine", SCENARIO="scenarios/broken.yaml")
    assert run.code == 1, run.out
    assert "1 of 2 scenario assertions failed" in run.out and "FAIL [1] never fewer than 2 GPUs" in run.out
    assert "the golden was not written" in run.out
    assert not (project / "goldens" / "test_planner" / "test_mine.golden").exists()
    allowed = _pytest(venv, project, "-q", "--snapshot-update", "-k", "test_mine", SCENARIO="scenarios/broken.yaml", ALLOW="1")
    assert allowed.code == 0 and (project / "goldens" / "test_planner" / "test_mine.golden").exists(), allowed.out


def test_an_old_format_golden_says_how_to_regenerate(user_project: Path, venvs: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "my-planners"
    shutil.copytree(user_project, project)
    golden = project / "goldens" / "test_planner" / "test_mine.golden"
    golden.write_text('# replaylib golden v1 | scenario ramp\n{"kind":"tick","seq":0,"tick":0,"now_ms":1.0}\n')
    run = _pytest(venvs["editable"], project, "-q", "-k", "test_mine")
    assert run.code == 1
    assert "goldens/test_planner/test_mine.golden: a golden in the old v1 format" in run.out
    assert "--snapshot-update" in run.out and "Traceback" not in run.out
    assert _pytest(venvs["editable"], project, "-q", "-k", "test_mine", "--snapshot-update").code == 0
    assert golden.read_text().startswith("# replaylib golden v2")


def test_bad_options_fail_with_a_clear_message(user_project: Path, venvs: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "my-planners"
    shutil.copytree(user_project, project)
    (project / "tests" / "test_bad.py").write_text(textwrap.dedent('''
        def test_bad_tolerance(replay_golden):
            replay_golden("scenarios/ramp.yaml", tolerance={"obs_powr_decode_w": 0.1})

        def test_bad_only(replay_golden):
            replay_golden("scenarios/ramp.yaml", only="decsions")
    '''))
    run = _pytest(venvs["editable"], project, "-q", "tests/test_bad.py")
    assert run.code == 1
    assert "unknown column or column class 'obs_powr_decode_w' (did you mean obs_power_decode_w" in run.out
    assert "unknown column class 'decsions'" in run.out and "Traceback" not in run.out
