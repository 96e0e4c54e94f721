"""Scaled models and the ``sensitivity`` verb: how an uncertain curve moves KPIs and decisions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim_helpers import hand_system
from replaylib.diff.sensitivity import SensitivityError, parse_scales, render_sensitivity, sensitivity
from replaylib.timing import power_model, run_step, timing_model
from replaylib.timing.scaled import ScaledPower, ScaledTiming, knobs

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "h200_llama8b_dynamo.yaml"


def test_scaled_timing_scales_passes_steps_runs_and_hand_offs() -> None:
    base = timing_model(hand_system())
    t = ScaledTiming(base, prefill=1.5, decode=2.0, kv_transfer=3.0)
    assert t.prefill_pass_ms([(100, 0)], 0.8) == pytest.approx(1.5 * base.prefill_pass_ms([(100, 0)], 0.8))
    assert t.prefill_tokens_per_s(1000, 512, 1.0) == pytest.approx(base.prefill_tokens_per_s(1000, 512, 1.0) / 1.5)
    first, growth, steps = t.decode_run(4, 400, 1.0)
    for i in range(5):
        assert run_step(first, growth, i) == pytest.approx(2.0 * base.decode_step_ms(4, 400 + 4 * i, 1.0))
    assert t.decode_max_batch(40, 100, 1.0, 1000) == base.decode_max_batch(20, 100, 1.0, 1000)
    assert t.kv_transfer_end_ms(10.0, 30) == pytest.approx(10.0 + 3.0 * 5.0)
    with pytest.raises(ValueError, match="must be > 0"):
        ScaledTiming(base, decode=0.0)


def test_scaled_power_scales_the_slowdown_not_the_uncapped_speed() -> None:
    base = power_model(hand_system())
    p = ScaledPower(base, slowdown={"prefill": 1.2}, draw={"decode": 1.1})
    assert p.speed("prefill", 700) == 1.0  # uncapped stays 1
    s = base.speed("prefill", 400)  # 0.60
    assert p.speed("prefill", 400) == pytest.approx(1 - 1.2 * (1 - s))
    assert p.speed("decode", 250) == base.speed("decode", 250)
    assert p.worker_w("decode", 700, 150_000, 1.0) == pytest.approx(1.1 * base.worker_w("decode", 700, 150_000, 1.0))
    assert p.worker_w("decode", 250, 1e9, 1.0) == 250  # never above the cap
    assert p.saturated_w("decode", 700) == pytest.approx(1.1 * 350)


def test_parse_scales() -> None:
    assert parse_scales(["speed_curve.prefill=0.8,1.2", "timing.decode=1.1"]) == [
        ("speed_curve.prefill", 0.8), ("speed_curve.prefill", 1.2), ("timing.decode", 1.1)]
    for bad, message in (("speed_curve.prefil=0.8", "expected KNOB=F1,F2"), ("timing.decode=fast", "'fast' is not a number"),
                         ("timing.decode=-1", "must be a finite number > 0"), ("timing.decode", "expected KNOB=F1,F2")):
        with pytest.raises(SensitivityError, match=message):
            parse_scales([bad])
    assert {"speed_curve.prefill", "speed_curve.decode", "timing.prefill", "timing.decode", "power_model.decode"} <= set(knobs())


def test_sensitivity_moves_kpis_and_decisions_and_a_factor_of_one_moves_nothing() -> None:
    report = sensitivity(SCENARIO, [("speed_curve.prefill", 1.0), ("speed_curve.prefill", 0.8), ("timing.prefill", 2.0)])
    base, same, gentler, slower = report.variants
    assert (base.label, same.label, gentler.label) == ("base", "speed_curve.prefill x1", "speed_curve.prefill x0.8")
    assert same.kpis == base.kpis and same.first_decision_change is None
    # a gentler cap curve makes low prefill caps cheap: the planner picks them
    assert gentler.mean_cap_prefill_w < base.mean_cap_prefill_w and gentler.first_decision_change is not None
    # twice the prefill time: first tokens come later
    assert slower.kpis.ttft_p50_ms > 1.5 * base.kpis.ttft_p50_ms
    text = render_sensitivity(report)
    assert "speed_curve.prefill x0.8" in text and "first tick deciding differently" in text and "SLA attainment" in text


def test_sensitivity_chooses_who_sees_the_scaled_curve(tmp_path: Path) -> None:
    """At tick 0 every fleet has run at the uncapped speed (1 whatever the curve), so the first
    sweep depends on the planner's curve alone: ``fleet`` decides as the base, ``planner`` as ``both``."""
    from replaylib.record import read_recording

    def first_caps(to: str) -> tuple:
        out = tmp_path / to
        report = sensitivity(SCENARIO, [("speed_curve.prefill", 0.8)], to=to, out_dir=out)  # type: ignore[arg-type]
        rows = []
        for v in report.variants:
            df = read_recording(v.recording)
            tick0 = df.filter((df["kind"] == "tick") & (df["tick"] == 0)).row(0, named=True)
            rows.append((tick0["target_cap_prefill_w"], tick0["target_cap_decode_w"], tick0["target_prefill"]))
        return tuple(rows)

    (base, both), (_, fleet), (_, planner) = first_caps("both"), first_caps("fleet"), first_caps("planner")
    assert both != base
    assert fleet == base
    assert planner == both


def test_sensitivity_cli(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "replaylib", "sensitivity", "--scenario", str(SCENARIO),
                          "--scale", "speed_curve.decode=0.8,1.2", "--out-dir", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "speed_curve.decode x0.8" in run.stdout and "speed_curve.decode x1.2" in run.stdout
    assert len(list(tmp_path.glob("*.arrow"))) == 3
    run = subprocess.run([sys.executable, "-m", "replaylib", "sensitivity", "--scenario", str(SCENARIO), "--scale", "gpu.tdp=2"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "expected KNOB=F1,F2" in run.stderr and "Traceback" not in run.stderr
