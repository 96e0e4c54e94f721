"""The compiled fleet (built by the install where it can) against its pure-Python reference.

Which build runs is decided before the fleet's modules load (``replaylib.native``): a stale or
incomplete build, or ``REPLAYLIB_PURE_PYTHON=1``, runs the sources.  The tests marked ``native`` need the
compiled build (they skip without it; ``REPLAYLIB_REQUIRE_NATIVE=1`` fails instead)
and replay the same scenarios with both builds: the recordings must be byte-identical.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from replaylib import native

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _package(tmp_path: Path, *, built: tuple[str, ...] = native.MODULES, hashes: bool = True) -> Path:
    """A package directory with the modules' sources and, for ``built``, fake extensions with their hashes."""
    for name in native.MODULES:
        source = Path(native.source_path(str(tmp_path), name))
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {name}\n")
    for name in built:
        ext = source_of(tmp_path, name).with_suffix(SUFFIX)
        ext.write_bytes(b"\x7fELF")
        if hashes:
            Path(str(ext) + native.HASH_SUFFIX).write_text(native.source_sha256(str(source_of(tmp_path, name))) + "\n")
    return tmp_path


def source_of(pkg: Path, name: str) -> Path:
    return Path(native.source_path(str(pkg), name))


def test_no_extension_is_the_pure_build(tmp_path: Path) -> None:
    assert native.build_state(str(_package(tmp_path, built=()))) == native.PURE


def test_a_build_matching_its_sources_is_used(tmp_path: Path) -> None:
    assert native.build_state(str(_package(tmp_path))) == native.COMPILED


def test_an_edited_source_makes_the_build_stale(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    source_of(pkg, "timing.runs").write_text("# timing.runs, edited after the build\n")
    state = native.build_state(str(pkg))
    assert state.startswith(native.PURE) and "older than timing.runs's source" in state


def test_a_partial_or_unhashed_build_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "unhashed").mkdir()
    partial = native.build_state(str(_package(tmp_path / "partial", built=("sim.fleet", "sim.histogram", "timing.runs"))))
    assert partial.startswith(native.PURE) and "no sim.prefix_cache extension" in partial
    unhashed = native.build_state(str(_package(tmp_path / "unhashed", hashes=False)))
    assert unhashed.startswith(native.PURE) and "no source hash" in unhashed


def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """select() below changes sys.meta_path and native.BUILD: on copies, restored after the test."""
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, native._SourceFinder)])
    monkeypatch.setattr(native, "BUILD", native.BUILD)
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    monkeypatch.delenv(native.REQUIRE_ENV, raising=False)


def test_a_stale_build_loads_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _isolated(monkeypatch)
    pkg = _package(tmp_path)
    source_of(pkg, "sim.fleet").write_text("# fleet, edited after the build\n")
    state = native.select(str(pkg))
    assert "older than sim.fleet's source" in state and native.BUILD == state
    finders = [f for f in sys.meta_path if isinstance(f, native._SourceFinder)]
    assert finders and sys.meta_path[0] is finders[0]  # before the path finder that prefers extensions
    for name in native.MODULES:
        spec = finders[0].find_spec(f"{native.PACKAGE}.{name}")
        assert spec is not None and spec.origin == str(source_of(pkg, name))
    assert finders[0].find_spec("replaylib.sim.metrics") is None  # every other module is found as usual


def test_a_fresh_build_is_loaded_and_required_builds_fail_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _isolated(monkeypatch)
    pkg = _package(tmp_path)
    assert native.select(str(pkg)) == native.COMPILED
    assert not any(isinstance(f, native._SourceFinder) for f in sys.meta_path)
    source_of(pkg, "sim.fleet").write_text("# edited\n")
    monkeypatch.setenv(native.REQUIRE_ENV, "1")
    with pytest.raises(ImportError, match="older than sim.fleet's source"):
        native.select(str(pkg))


def _child(code: str, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k not in (native.PURE_ENV, native.REQUIRE_ENV)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**full, **env}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize(("value", "mode"), [(None, "auto"), ("", "auto"), ("1", "required"), ("0", "off")])
def test_the_install_switch_and_the_build_requirements_follow_it(value: str | None, mode: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """setup.py and the build backend read REPLAYLIB_BUILD_NATIVE through native.build_mode: the backend asks
    for mypy unless the compile is off."""
    import importlib.util

    if value is None:
        monkeypatch.delenv(native.BUILD_ENV, raising=False)
    else:
        monkeypatch.setenv(native.BUILD_ENV, value)
    assert native.build_mode() == mode
    pytest.importorskip("setuptools")
    spec = importlib.util.spec_from_file_location("_test_backend", ROOT / "build_backend" / "backend.py")
    assert spec is not None and spec.loader is not None
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    assert backend._native() == ([] if mode == "off" else backend.NATIVE_REQUIRES)


def test_a_bad_install_switch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.BUILD_ENV, "yes")
    with pytest.raises(ValueError, match=r"REPLAYLIB_BUILD_NATIVE='yes': expected 1 .*, 0 .* or unset"):
        native.build_mode()


def test_pure_python_on_request() -> None:
    """REPLAYLIB_PURE_PYTHON=1 loads the sources, whatever is built."""
    code = ("import importlib, json, replaylib; from replaylib import native; print(json.dumps([native.BUILD, "
            "*(importlib.import_module('replaylib.' + name).__file__ for name in native.MODULES)]))")
    build, *files = json.loads(_child(code, REPLAYLIB_PURE_PYTHON="1"))
    assert build == native.PURE_ASKED
    assert [Path(f).name for f in files] == [Path(native.source_path("", name)).name for name in native.MODULES]


def _compiled() -> None:
    if native.BUILD != native.COMPILED:
        if os.environ.get(native.REQUIRE_ENV) == "1":
            pytest.fail(f"{native.REQUIRE_ENV}=1 but this process runs {native.BUILD}")
        pytest.skip(f"no compiled fleet here ({native.BUILD}); install with REPLAYLIB_BUILD_NATIVE=1 pip install -e . to see why it was not built")


@pytest.mark.native
def test_the_compiled_modules_are_loaded() -> None:
    _compiled()
    import importlib

    for name in native.MODULES:
        assert not str(importlib.import_module(f"replaylib.{name}").__file__).endswith(".py"), name


# Scenarios that reach the fleet's paths: open loop with caps and scaling, closed-loop sessions, worker
# failures, a shrinking budget, the ranked (many-worker) router and the real Mooncake hour.
SCENARIOS = ["default", "closed_loop_sessions", "node_loss", "budget_shrink", "g2_load_ramp", "mooncake_conversation"]


@pytest.mark.native
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_compiled_and_pure_record_the_same_bytes(scenario: str, tmp_path: Path) -> None:
    _compiled()
    digests, summaries = [], []
    for build_env in ({}, {native.PURE_ENV: "1"}):
        out = tmp_path / f"{len(digests)}.arrow"
        env = {k: v for k, v in os.environ.items() if k not in (native.PURE_ENV, native.REQUIRE_ENV)}
        run = subprocess.run([sys.executable, "-m", "replaylib", "record", "--scenario", scenario, "--out", str(out),
                              "--json", "--quiet"], capture_output=True, text=True, env={**env, **build_env}, cwd=tmp_path)
        if run.returncode != 0 and "not found" in run.stderr and scenario == "mooncake_conversation":
            pytest.skip(f"the shared Mooncake trace is not here: {run.stderr.strip()[:200]}")
        assert run.returncode in (0, 1), run.stderr  # 1: an assertion of the scenario failed (same in both)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        summaries.append(run.stdout.replace(str(out), "<out>"))
    assert digests[0] == digests[1]
    assert summaries[0] == summaries[1]


# tests/test_sim_ranked.py's random fleets (scaling, node losses, cap changes, small caches), in ranked mode
# from the first worker and in scan mode, each router: every outcome and snapshot, digested in a child.
_RANDOM_FLEETS = """
import hashlib, sys
import msgspec
sys.path.insert(0, "tests")
import test_sim_ranked as t
from replaylib.sim import Fleet, fleet as fleet_mod
for seed, router, small in t.CASES:
    system, config, rows, script = t.random_case(seed, router)
    for threshold in (1, 10**9):
        fleet_mod.RANKED_FROM_WORKERS, fleet_mod.SMALL_GROUP = threshold, small
        assert Fleet(system, config, rows, block_size=t.BLOCK)._ranked_mode == (threshold == 1)
        outs, snaps, in_flight = t.replay(Fleet, system, config, rows, script)
        digest = hashlib.sha256(msgspec.json.encode([sorted(outs.items()), snaps, in_flight])).hexdigest()
        print(seed, router, small, threshold, len(outs), digest)
"""


@pytest.mark.native
def test_compiled_and_pure_replay_random_big_fleets_alike() -> None:
    _compiled()
    compiled = _child(_RANDOM_FLEETS).splitlines()
    pure = _child(_RANDOM_FLEETS, REPLAYLIB_PURE_PYTHON="1").splitlines()
    assert len(compiled) == 2 * 26 and all(int(line.split()[4]) > 300 for line in compiled)
    assert compiled == pure
