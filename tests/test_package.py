"""The package runs anywhere: bundled data found with importlib.resources, scenarios by name, search paths
for a user's own folders, ``list``, and a wheel installed outside the repository replaying by name."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from replaylib.cli import main
from replaylib.data import (
    _MAX_LISTED,
    CatalogError,
    SearchPath,
    bundled_dir,
    find_scenario,
    find_trace,
    scenario_entries,
    system_entries,
)
from replaylib.planner import registry
from replaylib.scenario import ScenarioError, load_scenario

REPO = Path(__file__).resolve().parents[1]
EMPTY = SearchPath()  # no user folders, whatever the environment says


def test_bundled_folders_are_the_repositorys_and_found_by_importlib_resources() -> None:
    for kind in ("scenarios", "systems", "traces"):
        found = importlib.resources.files(f"replaylib.data.{kind}")
        assert Path(str(found)).resolve() == (REPO / kind).resolve() == bundled_dir(kind).resolve()


def test_every_catalog_scenario_has_a_name_and_templates_have_none() -> None:
    names = [e.name for e in scenario_entries(EMPTY)]
    on_disk = sorted(p.relative_to(REPO / "scenarios").with_suffix("").as_posix() for p in (REPO / "scenarios").rglob("*.yaml")
                     if not any(part.startswith("_") for part in p.relative_to(REPO / "scenarios").parts))
    assert names == on_disk and "default" in names
    assert not any(n.startswith("_base") for n in names)


def _user_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    (root / "testbed").mkdir(parents=True)
    (root / "other").mkdir()
    body = f"extends: {REPO / 'scenarios' / '_base' / 'h100.yaml'}\ndescription: {{}}\nticks: 2\n"
    (root / "testbed" / "a1_burst.yaml").write_text(body.format("user burst"))
    (root / "testbed" / "same.yaml").write_text(body.format("one"))
    (root / "other" / "same.yaml").write_text(body.format("two"))
    (root / "default.yaml").write_text(body.format("a user default shadowing the bundled one"))
    return root


def test_names_in_subfolders_bare_names_ambiguity_and_shadowing(tmp_path: Path) -> None:
    root = _user_catalog(tmp_path)
    search = SearchPath(scenarios=(str(root),))
    assert find_scenario("testbed/a1_burst", search) == str(root / "testbed" / "a1_burst.yaml")
    assert find_scenario("a1_burst", search) == str(root / "testbed" / "a1_burst.yaml")  # unique bare name
    with pytest.raises(CatalogError, match=r"ambiguous: other/same, testbed/same"):
        find_scenario("same", search)
    assert find_scenario("default", search) == str(root / "default.yaml")  # the user's folder comes first
    assert find_scenario("g1_decode_drift", search) == str(REPO / "scenarios" / "g1_decode_drift.yaml")
    entries = {e.name: e for e in scenario_entries(search)}
    assert entries["default"].description.startswith("a user default") and not entries["default"].bundled
    assert entries["g2_load_ramp"].bundled


def test_unknown_scenario_lists_the_known_ones_and_suggests_the_nearest() -> None:
    with pytest.raises(CatalogError) as info:
        find_scenario("g1_decod_drift", EMPTY)
    text = str(info.value)
    # the nearest name comes first (the testbed catalog adds further, less close, suggestions after it)
    assert "unknown scenario 'g1_decod_drift'; did you mean g1_decode_drift" in text
    names = [e.name for e in scenario_entries(EMPTY)]
    known = ", ".join(names)
    listed = known if len(names) <= _MAX_LISTED else ", ".join(names[:_MAX_LISTED]) + f", ... ({len(names)} in all)"
    assert f"Known: {listed}." in text and "REPLAYLIB_SCENARIO_PATH" in text
    assert known.startswith("budget_shrink, closed_loop_sessions, default, ") and "sweeps" not in known  # a sweep file is no scenario
    with pytest.raises(CatalogError, match=r"no such scenario file; did you mean the scenario named g3_tight_budget"):
        find_scenario("elsewhere/g3_tight_budgt.yaml", EMPTY)


def test_record_unknown_scenario_exits_2_without_a_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["record", "--scenario", "node_los", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown scenario 'node_los'; did you mean node_loss?") and "Traceback" not in err
    assert not (tmp_path / "recordings").exists()


def test_environment_variables_and_flags_add_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = _user_catalog(tmp_path)
    extra = tmp_path / "extra"
    extra.mkdir()
    monkeypatch.setenv("REPLAYLIB_SCENARIO_PATH", os.pathsep.join([str(extra), str(root)]))
    assert SearchPath.from_env(scenarios=["flag"]).scenarios == ("flag", str(extra), str(root))
    assert main(["list", "scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[0] == "testbed/a1_burst" and "user burst" in line and str(root) in line for line in lines)
    assert len({line.split()[0] for line in lines}) == len(lines)  # one line per name
    monkeypatch.delenv("REPLAYLIB_SCENARIO_PATH")
    out = tmp_path / "r.arrow"
    assert main(["record", "--scenario", "a1_burst", "--scenario-dir", str(root), "--out", str(out), "--quiet"]) == 0
    assert "scenario a1_burst" in capsys.readouterr().out and out.exists()


def test_system_and_trace_search_paths(tmp_path: Path) -> None:
    systems = tmp_path / "sys"
    systems.mkdir()
    sku = (REPO / "systems" / "h100_sxm.yaml").read_text().replace("name: h100_sxm", "name: my_sku", 1)
    (systems / "my_sku.yaml").write_text(sku)
    traces = tmp_path / "tr"
    (traces / "sub").mkdir(parents=True)
    shutil.copy(REPO / "traces" / "tiny.jsonl", traces / "sub" / "mine.jsonl")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsystem: my_sku\ntrace: {path: sub/mine.jsonl}\nticks: 2\nplanner: {max_gpu_budget: 8}\n")
    known = ", ".join(e.name for e in system_entries())
    with pytest.raises(ScenarioError, match=rf"unknown system 'my_sku'.*Known: {known}\."):
        load_scenario(scenario, search=EMPTY)
    with pytest.raises(ScenarioError, match=r"trace file not found: .*nor sub/mine.jsonl on the trace search path"):
        load_scenario(scenario, search=SearchPath(systems=(str(systems),)))
    loaded = load_scenario(scenario, search=SearchPath(systems=(str(systems),), traces=(str(traces),)))
    assert loaded.system.name == "my_sku" and loaded.trace_path == str(traces / "sub" / "mine.jsonl")
    assert {e.name for e in system_entries(SearchPath(systems=(str(systems),)))} >= {"my_sku", "h100_sxm"}
    assert find_trace("tiny.jsonl", EMPTY) == str(REPO / "traces" / "tiny.jsonl")  # bundled traces by name


def test_list_verbs_print_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "systems"]) == 0
    bundled = sorted(p.stem for p in (REPO / "systems").glob("*.yaml"))
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == bundled
    assert main(["list", "traces"]) == 0
    assert "tiny.jsonl" in capsys.readouterr().out
    assert main(["list", "planners"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [*registry.available_planners(), *sorted(registry.EXTERNAL)]
    assert all(len(line.split()) > 3 for line in lines)  # every planner says what it does


def test_an_external_planner_is_listed_and_named_without_importing_it(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """An optional-dependency planner (like the Dynamo bridge) lists and resolves without being imported."""
    monkeypatch.setitem(registry.EXTERNAL, "lazy", registry.ExternalPlanner(
        factory="replaylib_no_such_module.planner:load", availability="replaylib_no_such_module.planner:why",
        about="needs an extra (pip install 'replaylib[lazy]')"))
    assert main(["list", "planners"]) == 0
    assert any(line.startswith("lazy ") and "replaylib[lazy]" in line for line in capsys.readouterr().out.splitlines())
    assert "replaylib_no_such_module" not in sys.modules
    assert registry.resolve_spec("lazy") == "lazy"
    with pytest.raises(registry.PlannerError, match=r"constructing planner 'lazy' failed: ModuleNotFoundError"):
        registry.load_planner("lazy", None)  # type: ignore[arg-type]


def test_recording_name_does_not_depend_on_how_the_planner_is_spelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "short.yaml"
    scenario.write_text(f"extends: {REPO / 'scenarios' / 'default.yaml'}\nname: short\nticks: 2\nassertions: []\n")
    for spelling in ("aic", "aic@2", " aic@2 "):
        assert main(["record", "--scenario", str(scenario), "--planner", spelling, "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == ["short__aic_v2.arrow"]
    assert main(["record", "--scenario", str(scenario), "--planner", "tests.custom_planner_example:FixedPlanner", "--quiet"]) == 0
    assert (tmp_path / "recordings" / "short__fixed_v7.arrow").exists()
    capsys.readouterr()


# -- the wheel, outside the repository ----------------------------------------------------------------


def _tracked(root: Path) -> list[str]:
    run = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"not a git checkout ({run.stderr.strip()}): cannot tell which files ship")
    return [line for line in run.stdout.splitlines() if (root / line).exists()]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist built from a copy of the tracked files (no stale build/ or egg-info), by setuptools' own hook."""
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked(REPO):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("sdist")
    run = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
                         cwd=src, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    (found,) = out.glob("replaylib-*.tar.gz")
    return found


@pytest.fixture(scope="module")
def wheel(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the sdist (so both carry the data), without build isolation."""
    out = tmp_path_factory.mktemp("wheel")
    # REPLAYLIB_BUILD_NATIVE=0: a pure wheel (the compiled build is tests/test_native.py's; a build without
    # isolation would compile only where mypy happens to be installed).
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(sdist)],
                         capture_output=True, text=True, env={**os.environ, "REPLAYLIB_BUILD_NATIVE": "0"})
    assert run.returncode == 0, run.stderr[-3000:]
    (found,) = out.glob("replaylib-*.whl")
    return found


def test_the_sdist_holds_the_data_folders(sdist: Path) -> None:
    import tarfile

    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for rel in _tracked(REPO):
        if rel.split("/", 1)[0] in ("scenarios", "systems", "traces", "replaylib") or rel in ("setup.py", "pyproject.toml"):
            assert rel in names, rel


def test_the_wheel_holds_every_module_and_every_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _tracked(REPO)
    for rel in tracked:
        top = rel.split("/", 1)[0]
        if top == "replaylib" and rel.endswith(".py"):
            assert rel in names, rel
        elif top in ("scenarios", "systems", "traces"):
            assert f"replaylib/data/{rel}" in names, rel
    assert not any("__pycache__" in n for n in names)


def test_a_wheel_installed_outside_the_repo_records_the_default_and_a_scenario_by_name(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies (pyarrow, polars ...) come from this environment; .pth files here are not processed,
    # so this environment's (editable) replaylib stays invisible to the new one
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLAYLIB_", "PYTHON"))}
    probe = textwrap.dedent("""
        import importlib.resources, replaylib
        print(replaylib.__file__)
        print(importlib.resources.files("replaylib.data.scenarios") / "default.yaml")
    """)
    where = subprocess.run([str(py), "-c", probe], cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where) and Path(where[1]).is_file()
    for args, name in ((["record", "--quiet"], "default__aic_v2.arrow"),
                       (["record", "--quiet", "--scenario", "g3_tight_budget"], "g3_tight_budget__aic_v2.arrow")):
        run = subprocess.run([str(py), "-m", "replaylib", *args], cwd=work, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.startswith("PASS ") and (work / "recordings" / name).is_file()
    listed = subprocess.run([str(py), "-m", "replaylib", "list", "scenarios"], cwd=work, env=env, capture_output=True, text=True)
    assert "g1_decode_drift" in listed.stdout and listed.returncode == 0
