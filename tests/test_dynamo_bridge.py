"""The Dynamo bridge's own parts, without Dynamo: stand-ins, snapshot and decision mapping, the
optional planner hooks in the tick loop, planner metadata in recordings and diffs, the registry's
lazy loading, the installer, and the "Dynamo not installed" error.  (With Dynamo: test_dynamo_planner.py.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from replaylib.adapter import replay
from replaylib.cli import main as cli_main
from replaylib.diff import compare_metadata, diff_recordings
from replaylib.planner import Observation, PlannerContext, PlannerError, RoleObs, WorkerObs, load_planner
from replaylib.planner.dynamo import install, loader, snapshot, standins
from replaylib.planner.registry import EXTERNAL, unavailable_reason
from replaylib.record import recording_metadata
from replaylib.record.reader import RecordingMeta
from replaylib.scenario import load_scenario
from replaylib.scenario.model import PlannerConfig
from tests.hooked_planner_example import DEFAULT_META, HookedPlanner

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "traces" / "tiny.jsonl"


# -- helpers ----------------------------------------------------------------------------------


def worker(wid: int, role: str, state: str = "active", **kw: Any) -> WorkerObs:
    fields: dict[str, Any] = dict(
        worker_id=wid, role=role, state=state, ready_at_ms=0.0, cap_w=700.0, batched_prefill_tokens=0,
        prefill_requests=0, decode_requests=0, kv_tokens_used=0, kv_capacity_tokens=1_000_000, queued_requests=0,
        queued_tokens=0, busy_ms=0.0, passes=0, tokens=0,
    )
    fields.update(kw)
    return WorkerObs(**fields)


def role(active: int, starting: int = 0, draining: int = 0) -> RoleObs:
    return RoleObs(active=active, starting=starting, draining=draining, cap_w=700.0, power_w=None, busy_fraction=0.0,
                   queued_requests=0, queued_tokens=0, running_requests=0, kv_tokens_used=0, kv_capacity_tokens=0)


def observation(workers: tuple[WorkerObs, ...], prefill: RoleObs, decode: RoleObs, **kw: Any) -> Observation:
    fields: dict[str, Any] = dict(
        tick=3, now_ms=20_400.0, window_s=5.0, arrivals=10, request_rate=2.0, mean_isl=3000.0, mean_osl=150.0,
        prefix_hit_rate=0.25, ttft=None, itl=None, prefill=prefill, decode=decode, budget_w=None, workers=workers,
    )
    fields.update(kw)
    return Observation(**fields)


def tiny_scenario(tmp_path: Path, planner: dict[str, Any] | None = None, name: str = "tiny") -> Path:
    body = {
        "name": name, "system": str(REPO / "systems" / "h100_sxm.yaml"), "trace": {"path": str(TINY)},
        "fleet": {"prefill_workers": 1, "decode_workers": 1},
        "planner": {"name": "sla@1", "adjustment_interval_s": 10, **(planner or {})},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(body))
    return path


# -- stand-ins --------------------------------------------------------------------------------


@pytest.fixture
def clean_imports() -> Any:
    """Run with no stand-in finder or stand-in module left behind afterwards."""
    finders = list(sys.meta_path)
    modules = {k: v for k, v in sys.modules.items() if k.split(".")[0] in standins.PACKAGES}
    yield
    sys.meta_path[:] = finders
    for k in [k for k in sys.modules if k.split(".")[0] in standins.PACKAGES]:
        del sys.modules[k]
    sys.modules.update(modules)
    standins.reset_calls()


def test_standins_import_anything_and_refuse_every_call(clean_imports: None) -> None:
    if any(standins._is_real(p) for p in standins.PACKAGES):
        pytest.skip("a real AISimulate package is installed here")
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, standins._Finder)]
    for k in [k for k in sys.modules if k.split(".")[0] in standins.PACKAGES]:
        del sys.modules[k]
    assert standins.install() == standins.PACKAGES
    assert standins.install() == standins.PACKAGES  # idempotent: one finder each
    assert sum(isinstance(f, standins._Finder) for f in sys.meta_path) == 2
    standins.reset_calls()

    from aisimulate.config.common import Choices  # type: ignore[import-not-found]
    from aisimulate_core.sdk import ForwardPassPerfModelConfig  # type: ignore[import-not-found]

    import aisimulate_core.sdk as sdk  # type: ignore[import-not-found]

    assert sdk.ForwardPassPerfModelConfig is ForwardPassPerfModelConfig  # one stand-in per name
    assert sys.modules["aisimulate_core.sdk"] is sdk
    with pytest.raises(standins.AISimulateUnavailable, match=r"aisimulate_core\.sdk\.ForwardPassPerfModelConfig is part of AISimulate"):
        ForwardPassPerfModelConfig(model="x")
    with pytest.raises(standins.AISimulateUnavailable, match=r"ForwardPassPerfModelConfig\.from_legacy_engine_config"):
        ForwardPassPerfModelConfig.from_legacy_engine_config({}, "prefill", {})

    class Derived(Choices):  # Dynamo subclasses stand-ins in places; instantiating refuses too
        pass

    with pytest.raises(standins.AISimulateUnavailable):
        Derived()
    assert len(standins.calls()) == 3
    assert standins.calls()[0] == "aisimulate_core.sdk.ForwardPassPerfModelConfig"
    standins.reset_calls()
    assert standins.calls() == ()


def test_a_real_package_is_never_stood_in_for(tmp_path: Path, clean_imports: None, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, standins._Finder)]
    for k in [k for k in sys.modules if k.split(".")[0] in standins.PACKAGES]:
        del sys.modules[k]
    (tmp_path / "aisimulate").mkdir()
    (tmp_path / "aisimulate" / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    active = standins.install()
    assert "aisimulate" not in active
    import aisimulate  # type: ignore[import-not-found]

    assert aisimulate.REAL is True


# -- snapshot and decision mapping -------------------------------------------------------------


def test_snapshot_lists_workers_by_role_and_state_and_counts_from_the_roles() -> None:
    workers = (
        worker(0, "prefill", batched_prefill_tokens=4096, prefill_requests=2, queued_requests=3, queued_tokens=30_000,
               busy_ms=4000.0, passes=8, kv_tokens_used=5000),
        worker(1, "prefill", "starting"),
        worker(2, "decode", decode_requests=40, kv_tokens_used=120_000, queued_requests=2, queued_tokens=9000,
               busy_ms=4500.0, passes=300),
        worker(3, "decode", "draining", decode_requests=3, kv_tokens_used=9000),
        worker(4, "prefill", "draining"),
    )
    # the role counts already reflect a node loss after the snapshot: one active prefill worker fewer
    obs = observation(workers, prefill=role(0, 1, 1), decode=role(1, 0, 1))
    s = snapshot.dynamo_snapshot(obs)
    assert (s["tick_ordinal"], s["now_ms"]) == (3, 20_400.0)
    assert s["active_prefill_ids"] == [0] and s["starting_prefill_ids"] == [1] and s["draining_prefill_ids"] == [4]
    assert s["active_decode_ids"] == [2] and s["starting_decode_ids"] == [] and s["draining_decode_ids"] == [3]
    assert (s["active_prefill_count"], s["non_draining_prefill_count"], s["total_prefill_count"]) == (0, 1, 2)
    assert (s["active_decode_count"], s["non_draining_decode_count"], s["total_decode_count"]) == (1, 1, 2)
    # forward-pass metrics for every worker that runs passes (not the starting one)
    assert [f["worker_id"] for f in s["prefill_fpm_snapshots"]] == [0, 4]
    assert [f["worker_id"] for f in s["decode_fpm_snapshots"]] == [2, 3]
    p0 = s["prefill_fpm_snapshots"][0]
    assert p0["wall_time"] == pytest.approx(0.5)  # 4000 ms busy over 8 passes
    assert (p0["num_prefill_requests"], p0["sum_prefill_tokens"]) == (2, 4096)
    assert (p0["num_queued_prefill"], p0["sum_queued_prefill_tokens"]) == (3, 30_000 - 4096)  # beyond the pass in flight
    assert p0["sum_decode_kv_tokens"] == 0  # a prefill worker's KV is its prefix cache, not decode KV
    d2 = s["decode_fpm_snapshots"][0]
    assert (d2["num_decode_requests"], d2["sum_decode_kv_tokens"]) == (40, 120_000)
    assert (d2["num_queued_decode"], d2["sum_queued_decode_kv_tokens"]) == (2, 9000)
    assert (d2["num_queued_prefill"], d2["sum_queued_prefill_tokens"]) == (0, 0)
    assert d2["wall_time"] == pytest.approx(0.015)
    idle = s["prefill_fpm_snapshots"][1]
    assert idle["wall_time"] == 0.0  # Dynamo's idle heartbeat
    t = s["traffic"]
    assert (t["duration_s"], t["num_req"], t["avg_isl"], t["avg_osl"], t["avg_kv_hit_rate"]) == (5.0, 10.0, 3000.0, 150.0, 0.25)
    assert (t["shape_count"], t["hit_rate_count"], t["ttft_count"]) == (10.0, 10.0, 0.0)


def test_decision_keeps_unchanged_roles_and_follows_dynamos_schedule() -> None:
    obs = observation((), prefill=role(2, 1, 1), decode=role(3))
    d = snapshot.to_decision({"target_prefill": None, "target_decode": None, "next_tick_ms": 25_000.0}, obs, None, 180.0)
    assert (d.n_prefill, d.n_decode) == (3, 3)  # None: the role's non-draining count
    assert d.next_tick_s == pytest.approx(4.6)  # absolute 25 s from now 20.4 s
    assert d.reason == "hold"
    d = snapshot.to_decision({"target_prefill": 5, "target_decode": 2, "next_tick_ms": 20_000.0}, obs,
                             {"load_decision_reason": "scale_up", "load_decision_reason_prefill": "scale_up",
                              "load_decision_reason_decode": "scale_down", "predicted_num_req": 360.0,
                              "predicted_isl": 3000}, 180.0)
    assert (d.n_prefill, d.n_decode) == (5, 2)
    assert d.next_tick_s == snapshot.OVERDUE_STEP_S  # Dynamo's next tick already passed: as soon as possible
    assert d.reason == "load scale_up (prefill scale_up, decode scale_down)"
    assert d.predicted_rate == pytest.approx(2.0) and d.predicted_isl == 3000.0
    assert snapshot.next_tick_s(None, 1.0) is None


def test_reason_names_each_loop_and_skipped_actions() -> None:
    assert snapshot.reason({"load_decision_reason": "no_change", "load_decision_reason_prefill": "no_change",
                            "load_decision_reason_decode": "no_change"}) == "load no_change"
    assert snapshot.reason({"throughput_decision_reason": "scale_up", "execute_action": "skip_short_circuit",
                            "short_circuit_reason": "propose: p: veto"}) == "throughput scale_up; skip_short_circuit; propose: p: veto"
    assert snapshot.reason({"execute_action": "apply"}) == "hold"


# -- optional planner hooks in the tick loop -----------------------------------------------------


@pytest.fixture
def hooked() -> Any:
    HookedPlanner.instances.clear()
    HookedPlanner.next_meta = DEFAULT_META
    yield HookedPlanner
    HookedPlanner.next_meta = DEFAULT_META


HOOKED = "tests.hooked_planner_example:HookedPlanner"


def test_loop_uses_first_tick_metadata_and_close(tmp_path: Path, hooked: Any) -> None:
    loaded = load_scenario(tiny_scenario(tmp_path))
    out = tmp_path / "h.arrow"
    result = replay(loaded, out=out, planner=HOOKED)
    planner = HookedPlanner.instances[-1]
    assert planner.closed == 1
    assert planner.saw_workers and all(roles == ("decode", "prefill") for roles in planner.saw_workers)
    import polars as pl

    from replaylib.record import read_recording

    ticks = read_recording(out).filter(pl.col("kind") == "tick")
    sched = ticks["t_sched_ms"].to_list()
    assert sched[0] == 2500.0  # the planner's own first tick, not the 10 s interval
    assert all(b == pytest.approx(max(a, f) + 7000.0) for a, f, b in zip(sched, ticks["fleet_ms"].to_list(), sched[1:]))
    meta = recording_metadata(out)
    assert meta.planner_metadata == {"config": '{"a": 1, "nested": {"b": 2}}', "engine_version": "9.1"}
    assert result.planner == "hooked@3"


def test_a_planner_passed_as_an_object_is_not_closed_by_the_replay(tmp_path: Path, hooked: Any) -> None:
    loaded = load_scenario(tiny_scenario(tmp_path))
    planner = HookedPlanner(PlannerContext(config=PlannerConfig(), system=loaded.system, initial_prefill=1, initial_decode=1))
    replay(loaded, out=tmp_path / "o.arrow", planner=planner)
    assert planner.closed == 0


@pytest.mark.parametrize(("meta", "message"), [
    ({"Bad-Key": "x"}, "metadata() key 'Bad-Key'"),
    ({"ok": 3}, "metadata() key 'ok' has a int value"),
    (["not", "a", "dict"], "metadata() returned list"),
])
def test_bad_planner_metadata_is_a_planner_error_and_closes_the_planner(
    tmp_path: Path, hooked: Any, meta: Any, message: str
) -> None:
    loaded = load_scenario(tiny_scenario(tmp_path))
    HookedPlanner.next_meta = meta
    with pytest.raises(PlannerError, match=re.escape(message)):
        replay(loaded, out=tmp_path / "bad.arrow", planner=HOOKED)
    assert HookedPlanner.instances[-1].closed == 1
    assert not (tmp_path / "bad.arrow").exists()


# -- planner metadata in diffs --------------------------------------------------------------------


def _meta(**planner_metadata: str) -> RecordingMeta:
    return RecordingMeta(
        replaylib_version="0", schema_version=1, planner_name="dynamo", planner_version=1, scenario_name="s",
        scenario_hash="h", trace_path="t", trace_sha256="x" * 64, systems_sha256="y", system_name="h100_sxm", seed=0,
        ttft_target_ms=1.0, itl_target_ms=1.0, gpus_per_worker=2, planner_metadata=planner_metadata,
    )


def test_metadata_diff_shows_planner_keys_and_json_fields_one_by_one() -> None:
    a = _meta(dynamo_version="1.6.1", dynamo_config=json.dumps({"mode": "disagg", "scheduling": {"scale_interval_seconds": 5.0}, "x": 1}))
    b = _meta(dynamo_version="1.7.0", dynamo_config=json.dumps({"mode": "disagg", "scheduling": {"scale_interval_seconds": 10.0}, "y": 2}),
              only_b="z")
    rows = [(m.key, m.a, m.b) for m in compare_metadata(a, b)]
    assert rows == [
        ("planner.dynamo_config.scheduling.scale_interval_seconds", "5.0", "10.0"),
        ("planner.dynamo_config.x", "1", "(absent)"),
        ("planner.dynamo_config.y", "(absent)", "2"),
        ("planner.dynamo_version", "1.6.1", "1.7.0"),
        ("planner.only_b", "(absent)", "z"),
    ]
    assert compare_metadata(a, a) == []


def test_diff_of_recordings_reports_a_planner_metadata_change(
    tmp_path: Path, hooked: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load_scenario(tiny_scenario(tmp_path))
    replay(loaded, out=tmp_path / "a.arrow", planner=HOOKED)
    HookedPlanner.next_meta = {"engine_version": "9.2", "config": json.dumps({"a": 1, "nested": {"b": 3}})}
    replay(loaded, out=tmp_path / "b.arrow", planner=HOOKED)
    report = diff_recordings(tmp_path / "a.arrow", tmp_path / "b.arrow")
    assert report.identical  # same decisions: metadata differences do not count
    assert [m.key for m in report.metadata] == ["planner.config.nested.b", "planner.engine_version"]
    assert cli_main(["diff", str(tmp_path / "a.arrow"), str(tmp_path / "b.arrow")]) == 0
    out = capsys.readouterr().out
    assert "planner.engine_version" in out and "9.1" in out and "9.2" in out


# -- registry ----------------------------------------------------------------------------------------


def test_the_cli_and_registry_import_nothing_of_dynamo() -> None:
    code = (
        "import sys, replaylib.cli, replaylib.planner.registry, replaylib.planner.dynamo; "
        "from replaylib.planner.registry import unavailable_reason; unavailable_reason('dynamo'); "
        "print([m for m in sys.modules if m.split('.')[0] in ('dynamo', 'aisimulate', 'aisimulate_core', 'pydantic')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_registry_names_dynamo_and_reports_whether_it_can_load() -> None:
    assert "dynamo" in EXTERNAL
    from replaylib.planner import dynamo

    assert (unavailable_reason("dynamo") is None) == (dynamo.installed_version() is not None)
    assert unavailable_reason("dynamo@1") == unavailable_reason("dynamo")
    assert unavailable_reason("sla@1") is None and unavailable_reason("pkg.mod:Cls") is None
    with pytest.raises(PlannerError, match=r"external planner \(dynamo: NVIDIA Dynamo's own planner"):
        load_planner("nosuch", PlannerContext(config=PlannerConfig(), system=load_scenario(REPO / "scenarios/default.yaml").system,
                                              initial_prefill=1, initial_decode=1))


def test_dynamo_not_installed_is_a_clear_error_exit_2_and_no_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(loader, "installed_version", lambda: None)
    loader.import_dynamo.cache_clear()
    try:
        out = tmp_path / "rec.arrow"
        code = cli_main(["record", "--scenario", str(tiny_scenario(tmp_path)), "--planner", "dynamo", "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
    finally:
        loader.import_dynamo.cache_clear()
    assert code == 2
    assert "planner 'dynamo': NVIDIA Dynamo's planner is not installed" in err
    assert "python -m replaylib.planner.dynamo.install" in err
    assert "Traceback" not in err
    assert not out.exists() and not Path(str(out) + ".partial").exists()


# -- installer ----------------------------------------------------------------------------------------


def test_installer_pins_dependencies_to_dynamos_declared_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = {
        "ai-dynamo": ["kubernetes<33.0.0,>=32.0.1", "prometheus-client<1.0,>=0.23.1",
                      "aisimulate==0.13.0; python_version >= '3.11'", "vllm[flashinfer]==0.31.0; extra == 'vllm'",
                      "msgspec>=0.19.0"],
        "ai-dynamo-runtime": ["pydantic<=2.13.5,>=2.10.6", "uvloop>=0.21.0"],
    }
    monkeypatch.setattr(install.importlib.metadata, "requires", lambda dist: declared[dist])
    ranges = install.declared_ranges()
    assert ranges["kubernetes"] == "<33.0.0,>=32.0.1" and ranges["pydantic"] == "<=2.13.5,>=2.10.6"
    assert "aisimulate" not in ranges and "vllm" not in ranges  # behind markers
    reqs = install.dependency_requirements()
    assert "kubernetes<33.0.0,>=32.0.1" in reqs and "pydantic<=2.13.5,>=2.10.6" in reqs and "prophet" in reqs
    assert len(reqs) == len(install.PLANNER_IMPORTS)


def test_installer_dry_run_and_bad_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert install.main(["--dry-run", "--version", "1.6.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "--no-deps ai-dynamo==1.6.1 ai-dynamo-runtime==1.6.1" in out[0]
    assert all(name in out[1] for name in ("pydantic", "scikit-learn", "prophet", "pmdarima", "filterpy"))
    assert install.main(["--version", "latest; rm -rf /"]) == 2
    assert "expected a release number" in capsys.readouterr().err


def test_observation_workers_default_to_empty() -> None:
    obs = observation((), prefill=role(1), decode=role(1))
    assert msgspec.structs.replace(obs, workers=()).workers == ()
    assert Observation.__struct_fields__[-1] == "workers"
