"""NVIDIA Dynamo's own planner in the loop (``--planner dynamo``): needs Dynamo installed
(``python -m replaylib.planner.dynamo.install``); every test here skips with that reason otherwise,
and CI's Dynamo step runs them with Dynamo installed (``-m dynamo``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest

from replaylib.adapter import replay
from replaylib.cli import main as cli_main
from replaylib.diff import diff_recordings
from replaylib.planner import PlannerContext, PlannerError, load_planner
from replaylib.planner.dynamo import installed_version, loader, standins
from replaylib.planner.dynamo.bridge import DynamoPlanner
from replaylib.record import read_recording, recording_metadata
from replaylib.scenario import load_scenario

pytestmark = [pytest.mark.dynamo, pytest.mark.usefixtures("dynamo_installed")]

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "dynamo_mooncake.yaml"
TINY = REPO / "traces" / "tiny.jsonl"
PROFILE = REPO.parent / "shared" / "profiles" / "dynamo_h200_tp1p_tp1d"


def scenario(tmp_path: Path, dynamo: dict[str, Any] | None = None, *, trace: Path = TINY, **planner: Any) -> Path:
    """A small scenario under ``dynamo`` on the tiny trace (or another one)."""
    body = {
        "name": "dyn", "system": str(REPO / "systems" / "h100_sxm.yaml"), "trace": {"path": str(trace)},
        "fleet": {"prefill_workers": 2, "decode_workers": 2},
        "planner": {"name": "dynamo", "adjustment_interval_s": 5, **planner, "dynamo": dynamo or {}},
    }
    path = tmp_path / "dyn.yaml"
    path.write_text(json.dumps(body))
    return path


def ticks(path: Path) -> pl.DataFrame:
    return read_recording(path).filter(pl.col("kind") == "tick")


def ctx_of(path: Path) -> PlannerContext:
    loaded = load_scenario(path)
    sc = loaded.scenario
    return PlannerContext(config=sc.planner, system=loaded.system, initial_prefill=sc.fleet.prefill_workers,
                          initial_decode=sc.fleet.decode_workers, fleet=sc.fleet, seed=sc.seed)


class Spy:
    """Wraps a bridge's Dynamo adapter: keeps a copy of every snapshot it is fed and every answer."""

    def __init__(self, planner: DynamoPlanner) -> None:
        self.snapshots: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        inner = planner.adapter.on_tick

        def on_tick(snapshot: dict[str, Any]) -> dict[str, Any]:
            self.snapshots.append(copy.deepcopy(snapshot))
            answer = inner(snapshot)
            self.answers.append(dict(answer))
            return answer

        planner.adapter.on_tick = on_tick


# -- the differential test ----------------------------------------------------------------------


def test_dynamos_adapter_fed_the_same_snapshots_gives_the_recorded_targets(tmp_path: Path) -> None:
    """Dynamo's adapter on its own, fed the snapshots the bridge sent during a replay of real
    Mooncake traffic, answers exactly the targets and next ticks the recording holds, at every tick."""
    ctx = ctx_of(SCENARIO)
    bridged = DynamoPlanner(ctx)
    spy = Spy(bridged)
    out = tmp_path / "bridged.arrow"
    try:
        replay(load_scenario(SCENARIO), out=out, planner=bridged)
    finally:
        bridged.close()
    rec = ticks(out)
    assert rec.height == len(spy.snapshots) > 100

    api = loader.import_dynamo()
    direct = api.create_replay_planner_adapter(bridged.setup.config, bridged.setup.capabilities, capture_details=True)
    with loader.logging_guard():
        direct.start()
        assert direct.initial_tick_ms() == rec["t_sched_ms"][0]
        answers = [direct.on_tick(copy.deepcopy(s)) for s in spy.snapshots]
        direct.close()
    assert answers == spy.answers
    scaled = 0
    for i, (answer, row) in enumerate(zip(answers, rec.iter_rows(named=True))):
        current_p = row["prefill_active"] + row["prefill_starting"]
        current_d = row["decode_active"] + row["decode_starting"]
        want_p = current_p if answer["target_prefill"] is None else answer["target_prefill"]
        want_d = current_d if answer["target_decode"] is None else answer["target_decode"]
        assert (row["target_prefill"], row["target_decode"]) == (want_p, want_d), f"tick {i}"
        scaled += answer["target_prefill"] is not None or answer["target_decode"] is not None
        if i + 1 < rec.height:
            nxt = rec["t_sched_ms"][i + 1]
            assert nxt == pytest.approx(max(answer["next_tick_ms"], row["now_ms"] + 1.0)), f"tick {i + 1} scheduled off Dynamo's time"
    assert scaled >= 5  # the replay exercised Dynamo's scaling, not only its holds


def test_the_bridges_snapshots_parse_with_dynamos_own_readers(tmp_path: Path) -> None:
    from dynamo.planner.core.types import ScheduledTick
    from dynamo.planner.offline.replay_adapter import _build_fpm_from_dict

    bridged = DynamoPlanner(ctx_of(SCENARIO))
    spy = Spy(bridged)
    try:
        replay(load_scenario(SCENARIO), out=tmp_path / "r.arrow", planner=bridged)
        snap = next(s for s in spy.snapshots if s["prefill_fpm_snapshots"] and s["decode_fpm_snapshots"])
        fpm = _build_fpm_from_dict(snap["prefill_fpm_snapshots"][0])
        assert fpm.worker_id == str(snap["prefill_fpm_snapshots"][0]["worker_id"])
        bridged.adapter._pending_traffic = None  # Dynamo accumulates unconsumed windows: read this one alone
        tick_input = bridged.adapter._build_tick_input(
            ScheduledTick(at_s=1.0, need_worker_states=True, need_worker_fpm=True, need_traffic_metrics=True), snap)
    finally:
        bridged.close()
    assert tick_input.worker_counts.ready_num_prefill == snap["active_prefill_count"]
    assert len(tick_input.fpm_observations.prefill) == len(snap["active_prefill_ids"])
    assert tick_input.traffic is not None and tick_input.traffic.num_req == snap["traffic"]["num_req"]


# -- records, reasons, metadata, determinism --------------------------------------------------------


def test_recording_names_dynamo_its_config_and_reasons(tmp_path: Path) -> None:
    out = tmp_path / "r.arrow"
    result = replay(load_scenario(SCENARIO), out=out)
    assert result.planner == "dynamo@1" and result.finished and result.passed
    meta = recording_metadata(out)
    own = meta.planner_metadata
    assert own["dynamo_version"] == installed_version()
    assert len(own["dynamo_planner_sha256"]) == 64
    config = json.loads(own["dynamo_config"])
    assert (config["mode"], config["optimization_target"]) == ("disagg", "throughput")
    assert (config["load_adjustment_interval_seconds"], config["max_gpu_budget"]) == (5, 20)
    assert (config["report_interval_hours"], config["live_dashboard_port"]) == (None, 0)  # a replay writes no reports
    caps = json.loads(own["dynamo_capabilities"])
    system = load_scenario(SCENARIO).system
    assert caps["prefill"]["context_length"] == system.model.context_length == 131072
    assert caps["decode"]["max_kv_tokens"] == system.kv.capacity_tokens
    assert caps["decode"]["num_gpu"] == caps["prefill"]["gpu_cost_per_replica"] == system.model.gpus_per_worker
    reasons = set(ticks(out)["reason"].to_list())
    assert "load scaling_in_progress" in reasons and any(r.startswith("load scale_up") for r in reasons)
    assert any(r.startswith("load scale_down") for r in reasons)


def test_two_replays_are_byte_identical(tmp_path: Path) -> None:
    path = scenario(tmp_path, {"optimization_target": "latency"})
    replay(load_scenario(path), out=tmp_path / "a.arrow")
    replay(load_scenario(path), out=tmp_path / "b.arrow")
    assert (tmp_path / "a.arrow").read_bytes() == (tmp_path / "b.arrow").read_bytes()


def test_dynamo_leaves_the_callers_logging_alone(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYN_LOG", raising=False)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    replay(load_scenario(scenario(tmp_path)), out=tmp_path / "r.arrow")
    assert (list(root.handlers), root.level) == before
    captured = capfd.readouterr()
    assert "Easy prefill" not in captured.err + captured.out and "AllowUnauthenticatedAuth" not in captured.err


def test_diff_shows_a_dynamo_version_and_config_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path)
    replay(load_scenario(path), out=tmp_path / "a.arrow")
    real = loader.import_dynamo()
    monkeypatch.setattr("replaylib.planner.dynamo.bridge.import_dynamo", lambda: msgspec.structs.replace(real, version="99.0.0"))
    replay(load_scenario(path), out=tmp_path / "b.arrow")
    report = diff_recordings(tmp_path / "a.arrow", tmp_path / "b.arrow")
    assert [(m.key, m.a, m.b) for m in report.metadata] == [("planner.dynamo_version", real.version, "99.0.0")]
    assert report.identical
    assert cli_main(["diff", str(tmp_path / "a.arrow"), str(tmp_path / "b.arrow")]) == 0
    assert "planner.dynamo_version" in capsys.readouterr().out

    changed = scenario(tmp_path, {"load_scaling_down_sensitivity": 50})
    replay(load_scenario(changed), out=tmp_path / "c.arrow")
    keys = [m.key for m in diff_recordings(tmp_path / "a.arrow", tmp_path / "c.arrow", force=True).metadata]
    assert "planner.dynamo_config.load_scaling_down_sensitivity" in keys


# -- configuration ------------------------------------------------------------------------------------


def test_scenario_keys_map_to_dynamos_config_and_the_block_wins(tmp_path: Path) -> None:
    ctx = ctx_of(scenario(tmp_path, {"ttft": 777, "decode_min_endpoint": 2, "worker_capabilities": {"context_length": 4096,
                                                                                                  "decode": {"max_kv_tokens": 5000}}},
                          adjustment_interval_s=10, ttft_ms=2500, itl_ms=30, predictor="kalman", min_endpoint=1,
                          max_gpu_budget=16))
    planner = DynamoPlanner(ctx)
    planner.close()
    c = planner.setup.config
    assert (c.load_adjustment_interval_seconds, c.itl_ms, c.load_predictor, c.min_endpoint, c.max_gpu_budget) == (10, 30, "kalman", 1, 16)
    assert c.ttft_ms == 777  # the block's alias `ttft` wins over the scenario's ttft_ms
    assert c.decode_min_endpoint == 2 and (c.prefill_engine_num_gpu, c.decode_engine_num_gpu) == (2, 2)
    assert planner.initial_tick_s == 10.0  # Dynamo's own first tick: its scale interval
    caps = planner.setup.capabilities
    assert (caps.prefill.context_length, caps.decode.context_length) == (4096, 4096)
    assert (caps.prefill.max_kv_tokens, caps.decode.max_kv_tokens) == (ctx.system.kv.capacity_tokens, 5000)
    default = DynamoPlanner(ctx_of(scenario(tmp_path, predictor="moving_average")))
    default.close()
    assert default.setup.config.load_predictor == "arima"  # no Dynamo counterpart: Dynamo's default stays


# -- specs and bad input ------------------------------------------------------------------------------


def test_version_specs(tmp_path: Path) -> None:
    ctx = ctx_of(scenario(tmp_path))
    for spec in ("dynamo", f"dynamo@{installed_version()}", "dynamo@1"):
        planner = load_planner(spec, ctx)
        assert (planner.name, planner.version) == ("dynamo", 1)
        planner.close()  # type: ignore[attr-defined]
    with pytest.raises(PlannerError, match=rf"dynamo@99\.1\.0 asks for ai-dynamo 99\.1\.0, and ai-dynamo {installed_version()} is installed"):
        load_planner("dynamo@99.1.0", ctx)
    with pytest.raises(PlannerError, match="the dynamo bridge has version 1, not 7"):
        load_planner("dynamo@7", ctx)


def _record_fails(tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out.arrow"
    assert cli_main(["record", "--scenario", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not out.exists()
    return err


@pytest.mark.parametrize(("dynamo", "planner", "expected"), [
    ({"mode": "agg"}, {}, "planner.dynamo.mode: 'agg' plans aggregated workers, and replaylib's fleet is disaggregated"),
    ({"load_scaling_down_sensitivity": 150}, {}, "Dynamo's PlannerConfig rejects planner.dynamo.load_scaling_down_sensitivity: Input should be less than or equal to 100 (got 150)"),
    ({"load_adjustment_interval_secs": 5}, {}, "planner.dynamo.load_adjustment_interval_secs: not a field of Dynamo's PlannerConfig"),
    ({"optimization_target": "load"}, {}, "optimization_target='load' requires prefill_scale_up_queue_tokens"),
    ({"min_endpoint": 0}, {}, "min_endpoint 0 lets Dynamo scale prefill to zero workers"),
    ({"worker_capabilities": {"prefill": {"context_len": 4096}}}, {}, "planner.dynamo.worker_capabilities.prefill.context_len: not a field of Dynamo's EngineCapabilities; did you mean 'context_length'?"),
    ({}, {"adjustment_interval_s": 2.5}, "planner.adjustment_interval_s: 2.5 s; Dynamo's load_adjustment_interval_seconds takes whole seconds"),
    ({"load_adjustment_interval_seconds": 7, "scheduling": {"scale_interval_seconds": 5}}, {}, "scheduling.scale_interval_seconds must evenly divide"),
])
def test_bad_configuration_names_the_field_exits_2_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dynamo: dict[str, Any], planner: dict[str, Any], expected: str
) -> None:
    err = _record_fails(tmp_path, scenario(tmp_path, dynamo, **planner), capsys)
    assert "planner 'dynamo'" in err
    assert expected in err


def test_did_you_mean_for_a_misspelt_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _record_fails(tmp_path, scenario(tmp_path, {"load_adjustment_interval_secs": 5}), capsys)
    assert "did you mean 'load_adjustment_interval_seconds'?" in err


def test_sla_target_needs_aisimulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not loader.import_dynamo().stood_in:
        pytest.skip("AISimulate is really installed here: the SLA target can run")
    err = _record_fails(tmp_path, scenario(tmp_path, {"optimization_target": "sla"}), capsys)
    assert "planner.dynamo.optimization_target: 'sla' runs Dynamo's AISimulate performance model" in err
    assert "AISimulate is not installed" in err


def test_throughput_scaling_from_the_shared_profile_still_needs_aisimulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Dynamo's throughput scaling exists only under the SLA target, whose performance model is
    AISimulate's even when a pre-deployment profile is given: with the real H200 profile from
    ../shared/profiles the planner still refuses at load, saying why."""
    if not PROFILE.exists():
        pytest.skip(f"shared profile not available: {PROFILE}")
    if not loader.import_dynamo().stood_in:
        pytest.skip("AISimulate is really installed here")
    err = _record_fails(tmp_path, scenario(tmp_path, {
        "optimization_target": "sla", "enable_throughput_scaling": True, "enable_load_scaling": False,
        "profile_results_dir": str(PROFILE), "pre_deployment_sweeping_mode": "thorough",
    }), capsys)
    assert "'sla' runs Dynamo's AISimulate performance model" in err


def test_a_missing_dependency_of_dynamo_is_named(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['pmdarima'] = None\n"
            "from replaylib.planner.dynamo.loader import import_dynamo\n"
            "try:\n    import_dynamo()\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.startswith("PlannerError NVIDIA Dynamo's planner (ai-dynamo ")
    assert "module 'pmdarima' is missing" in out and "python -m replaylib.planner.dynamo.install --deps-only" in out


def test_dynamo_raising_inside_on_tick_names_the_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from dynamo.planner.offline.replay_adapter import ReplayPlannerAdapter

    original = ReplayPlannerAdapter.on_tick

    def on_tick(self: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
        if snapshot["tick_ordinal"] == 3:
            raise KeyError("active_prefill_ids")
        return original(self, snapshot)

    monkeypatch.setattr(ReplayPlannerAdapter, "on_tick", on_tick)
    out = tmp_path / "out.arrow"
    assert cli_main(["record", "--scenario", str(scenario(tmp_path)), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "planner dynamo@1 raised at tick 3" in err and "Dynamo's planner raised at tick 3" in err
    assert "KeyError" in err and "Traceback" not in err
    assert not out.exists()


def test_a_swallowed_aisimulate_call_still_fails_the_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not loader.import_dynamo().stood_in:
        pytest.skip("AISimulate is really installed here")
    from dynamo.planner.offline.replay_adapter import ReplayPlannerAdapter

    original = ReplayPlannerAdapter.on_tick

    def on_tick(self: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
        if snapshot["tick_ordinal"] == 2:
            from aisimulate_core.sdk import ForwardPassPerfModelConfig  # type: ignore[import-not-found]

            try:
                ForwardPassPerfModelConfig(model="m")
            except Exception:  # noqa: BLE001 - Dynamo swallows broad exceptions in places
                pass
        return original(self, snapshot)

    monkeypatch.setattr(ReplayPlannerAdapter, "on_tick", on_tick)
    with pytest.raises(PlannerError, match=r"called AISimulate's aisimulate_core\.sdk\.ForwardPassPerfModelConfig at tick 2"):
        replay(load_scenario(scenario(tmp_path)), out=tmp_path / "r.arrow")
    assert standins.calls() == ()


# -- end to end on the real trace ------------------------------------------------------------------------


@pytest.mark.shared_trace
def test_record_and_compare_on_the_full_mooncake_trace(mooncake_trace: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "full.arrow"
    code = cli_main(["record", "--trace", str(mooncake_trace), "--planner", "dynamo", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code in (0, 1), printed  # 1: the default scenario's own assertions are about its own trace
    assert "planner dynamo@1" in printed
    rec = ticks(out)
    assert rec["completed"].max() == 12031 and rec["dropped"].max() == 0
    assert rec["reason"].null_count() == 0 and rec["reason"].str.starts_with("load ").all()
    assert read_recording(out).filter(pl.col("kind") == "scale").height > 0

    code = cli_main(["compare", "--scenario", str(REPO / "scenarios" / "mooncake_conversation.yaml"),
                     "--planner", "dynamo", "--planner", "sla@1", "--out-dir", str(tmp_path / "cmp")])
    table = capsys.readouterr().out
    assert code == 0
    header = next(line for line in table.splitlines() if "dynamo@1" in line and "sla@1" in line)
    assert header
    assert os.path.exists(tmp_path / "cmp")
