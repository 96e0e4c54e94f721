"""Built-in planners, predictors, capacity model and registry (no simulator: hand-built observations)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from replaylib.planner import (
    Decision,
    LatencyObs,
    Observation,
    PlannerContext,
    PlannerError,
    RoleObs,
    available_planners,
    load_planner,
)
from replaylib.planner import capacity as cap
from replaylib.planner.aic import AicPlanner, AicPlannerV2, build_perf_table, relative_drift
from replaylib.planner.common import cut_to_fit
from replaylib.planner.power import PowerPlanner
from replaylib.planner.predictors import (
    ConstantPredictor,
    KalmanPredictor,
    MovingAveragePredictor,
    make_predictor,
)
from replaylib.planner.sla import SlaPlanner
from replaylib.scenario.model import FleetConfig
from replaylib.scenario import load_system
from replaylib.scenario.model import PlannerConfig
from replaylib.scenario.system import System

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def h100() -> System:
    return load_system(REPO / "systems" / "h100_sxm_analytic.yaml")


# -- helpers -------------------------------------------------------------------------------


def role(
    *,
    active: int = 2,
    starting: int = 0,
    draining: int = 0,
    cap_w: float = 700.0,
    power_w: float | None = None,
    busy: float = 0.0,
    queued_tokens: int = 0,
    running: int = 0,
    kv: int = 0,
) -> RoleObs:
    return RoleObs(
        active=active, starting=starting, draining=draining, cap_w=cap_w, power_w=power_w,
        busy_fraction=busy, queued_requests=0, queued_tokens=queued_tokens, running_requests=running,
        kv_tokens_used=kv, kv_capacity_tokens=420_000 * (active + starting + draining),
    )


def lat(mean_ms: float) -> LatencyObs:
    return LatencyObs(mean_ms=mean_ms, p50_ms=mean_ms, p99_ms=mean_ms, count=100)


def obs(
    tick: int = 0,
    rate: float | None = 10.0,
    *,
    isl: float | None = 6000.0,
    osl: float | None = 350.0,
    hit: float | None = 0.3,
    ttft: float | None = None,
    itl: float | None = None,
    prefill: RoleObs | None = None,
    decode: RoleObs | None = None,
    budget_w: float | None = None,
    fault: str | None = None,
) -> Observation:
    return Observation(
        tick=tick, now_ms=60_000.0 * (tick + 1), window_s=60.0,
        arrivals=int(round((rate or 0.0) * 60)), request_rate=rate, mean_isl=isl, mean_osl=osl,
        prefix_hit_rate=hit, ttft=None if ttft is None else lat(ttft), itl=None if itl is None else lat(itl),
        prefill=prefill or role(), decode=decode or role(), budget_w=budget_w,
        optimizer_fault=fault,  # type: ignore[arg-type]
    )


def ctx_for(system: System, *, initial: tuple[int, int] = (2, 2), **config: Any) -> PlannerContext:
    config.setdefault("predictor", "constant")
    config.setdefault("max_gpu_budget", 64)
    return PlannerContext(config=PlannerConfig(**config), system=system, initial_prefill=initial[0], initial_decode=initial[1])


def make(spec: str, system: System, *, initial: tuple[int, int] = (2, 2), **config: Any) -> Any:
    return load_planner(spec, ctx_for(system, initial=initial, **config))


def needs(system: System, rate: float, *, isl: float = 6000.0, osl: float = 350.0, hit: float = 0.3,
          cap_p: float = 700.0, cap_d: float = 700.0, itl_ms: float = 50.0) -> tuple[float, float]:
    """Fractional replicas a load needs, by hand from the capacity functions (no corrections)."""
    need_p = rate * isl * (1 - hit) / cap.prefill_tokens_per_s(system, isl, cap_p)
    need_d = rate * osl / cap.decode_tokens_per_s(system, isl, osl, cap_d, itl_ms)
    return need_p, need_d


def goodput(system: System, d: Decision, rate: float) -> float:
    need_p, need_d = needs(system, rate, cap_p=d.cap_prefill_w or 700.0, cap_d=d.cap_decode_w or 700.0)
    return min(1.0, d.n_prefill / need_p, d.n_decode / need_d)


# -- predictors ------------------------------------------------------------------------------


def test_constant_predictor_is_the_last_value_and_skips_none_and_nan() -> None:
    p = ConstantPredictor()
    assert p.predict() is None
    p.observe(None)
    assert p.predict() is None
    p.observe(3.0)
    p.observe(5.0)
    p.observe(None)
    p.observe(float("nan"))
    assert p.predict() == 5.0


def test_moving_average_uses_the_last_window_values_only() -> None:
    p = MovingAveragePredictor(3)
    assert p.predict() is None
    for v in (1.0, None, 2.0):
        p.observe(v)
    assert p.predict() == pytest.approx(1.5)  # the None did not count as a value
    for v in (3.0, 4.0):
        p.observe(v)
    assert p.predict() == pytest.approx((2.0 + 3.0 + 4.0) / 3)
    with pytest.raises(ValueError):
        MovingAveragePredictor(0)


def test_kalman_matches_hand_computed_updates() -> None:
    p = KalmanPredictor()
    assert p.predict() is None
    p.observe(10.0)
    assert p.predict() == 10.0
    q2, r2 = 0.1**2, 0.2**2
    var = r2
    level = 10.0
    for z in (20.0, 20.0, None, 20.0):
        p.observe(z)
        if z is None:
            continue
        prior = var + q2
        k = prior / (prior + r2)
        level += k * (z - level)
        var = (1 - k) * prior
        assert p.predict() == pytest.approx(level)
    assert 10.0 < p.predict() < 20.0  # type: ignore[operator]


def test_kalman_is_scale_free_and_settles_on_a_constant_input() -> None:
    a, b = KalmanPredictor(), KalmanPredictor()
    for z in (3.0, 5.0, 4.0, 8.0, 6.0):
        a.observe(z)
        b.observe(1000.0 * z)
    assert b.predict() == pytest.approx(1000.0 * a.predict())  # type: ignore[operator]
    c = KalmanPredictor()
    c.observe(0.0)
    for _ in range(60):
        c.observe(7.0)
    assert c.predict() == pytest.approx(7.0, rel=1e-6)


def test_make_predictor_kinds_and_unknown() -> None:
    assert isinstance(make_predictor("constant", 5), ConstantPredictor)
    assert isinstance(make_predictor("moving_average", 5), MovingAveragePredictor)
    assert isinstance(make_predictor("kalman", 5), KalmanPredictor)
    with pytest.raises(ValueError, match="unknown predictor"):
        make_predictor("arima", 5)


# -- capacity: hand computations from systems/h100_sxm.yaml ---------------------------------------
# prefill: base 8, per_token 0.089, per_token_context 2.65e-6; decode: base 14, per_seq 0.15,
# per_kv_token 3.28e-5; kv 420000 tokens; prefill speed 400 W -> 0.60, 450 W -> 0.67, 200 W -> 0.32;
# decode speed 250 W -> 0.82.


def test_prefill_throughput_by_hand(h100: System) -> None:
    pass_ms = 8 + 0.089 * 8192 + 2.65e-6 * 8192 * 2048  # 781.5476224 ms, context = isl/2
    assert cap.prefill_tokens_per_s(h100, 4096, 700) == pytest.approx(8192 * 1000 / pass_ms)
    assert cap.prefill_tokens_per_s(h100, 4096, 700) == pytest.approx(10481.7, abs=0.1)
    assert cap.prefill_tokens_per_s(h100, 4096, 400) == pytest.approx(0.60 * 8192 * 1000 / pass_ms)
    assert cap.prefill_tokens_per_s(h100, 4096, 450) == pytest.approx(0.67 * 8192 * 1000 / pass_ms)
    assert cap.prefill_tokens_per_s(h100, 4096, 100) == pytest.approx(0.32 * 8192 * 1000 / pass_ms)  # clamped to 200 W
    small = 8 + 0.089 * 2048 + 2.65e-6 * 2048 * 2048
    assert cap.prefill_tokens_per_s(h100, 4096, 700, max_num_batched_tokens=2048) == pytest.approx(2048 * 1000 / small)


def test_prefill_request_time_by_hand(h100: System) -> None:
    # 10000 tokens = 2 passes: 2 x 8 + 0.089 x 10000 + 2.65e-6 x 10000^2 / 2 = 16 + 890 + 132.5
    assert cap.prefill_request_ms(h100, 10_000, 700) == pytest.approx(1038.5)
    assert cap.prefill_request_ms(h100, 10_000, 500) == pytest.approx(1038.5 / 0.74)
    # 4000 cached: 6000 new in 1 pass at context 4000: 8 + 534 + 2.65e-6 x (6000 x 4000 + 6000^2 / 2)
    assert cap.prefill_request_ms(h100, 10_000, 700, cached_tokens=4000) == pytest.approx(8 + 534 + 2.65e-6 * 42e6)
    assert cap.prefill_request_ms(h100, 8192, 700) == pytest.approx(8 + 0.089 * 8192 + 2.65e-6 * 8192**2 / 2)  # exactly 1 pass


def test_decode_point_limited_by_itl_by_hand(h100: System) -> None:
    per_seq = 0.15 + 3.28e-5 * 1100  # isl 1000 + osl 200 / 2 = 1100 KV tokens per sequence
    p = cap.decode_point(h100, 1000, 200, 700, 50)
    assert p.batch == 193 == math.floor(36 / per_seq)
    assert p.limited_by == "itl"
    assert p.step_ms == pytest.approx(14 + 193 * per_seq)
    assert p.tokens_per_s == pytest.approx(193_000 / (14 + 193 * per_seq))
    low = cap.decode_point(h100, 1000, 200, 250, 50)  # speed 0.82: room 41 - 14 = 27 ms
    assert low.batch == 145 == math.floor(27 / per_seq)
    assert low.step_ms == pytest.approx((14 + 145 * per_seq) / 0.82)
    assert cap.decode_tokens_per_s(h100, 1000, 200, 700, 50) == pytest.approx(p.tokens_per_s)


def test_decode_point_kv_and_seq_limits_and_infeasible(h100: System) -> None:
    kv = cap.decode_point(h100, 8000, 1000, 700, 200)  # ITL allows 433; KV allows 420000 // 8501 = 49
    assert (kv.batch, kv.limited_by) == (49, "kv")
    assert kv.step_ms == pytest.approx(14 + 49 * (0.15 + 3.28e-5 * 8500))
    seqs = cap.decode_point(h100, 100, 10, 700, 100)  # ITL allows 560
    assert (seqs.batch, seqs.limited_by) == (256, "max_num_seqs")
    assert cap.decode_point(h100, 100, 10, 700, 100, max_num_seqs=64).batch == 64
    bad = cap.decode_point(h100, 1000, 200, 700, 10)  # base step alone is 14 ms
    assert (bad.batch, bad.tokens_per_s, bad.limited_by) == (0, 0.0, "infeasible")


def test_power_functions_by_hand(h100: System) -> None:
    assert cap.loaded_power_w(h100, "prefill", 700) == 680
    assert cap.loaded_power_w(h100, "prefill", 500) == 500
    assert cap.loaded_power_w(h100, "decode", 700) == 350
    assert cap.loaded_power_w(h100, "decode", 300) == 300
    assert cap.loaded_power_w(h100, "decode", 100) == 200  # clamped to min_cap_w
    # decode base 0.25 x 700 = 175 W; half load (150k of 300k KV tokens) -> 262.5 W; half busy -> 70 + 0.5 x 192.5
    assert cap.worker_power_w(h100, "decode", 700, load=150_000, busy=1.0) == pytest.approx(262.5)
    assert cap.worker_power_w(h100, "decode", 700, load=150_000, busy=0.5) == pytest.approx(166.25)
    assert cap.worker_power_w(h100, "decode", 700, load=600_000, busy=1.0) == 350  # saturated beyond 300k
    assert cap.worker_power_w(h100, "prefill", 400, load=8192, busy=1.0) == 400  # the cap binds
    # prefill base 0.45 x 700 = 315 W; 2048 of 4096 saturation tokens -> halfway to 680 W
    assert cap.worker_power_w(h100, "prefill", 700, load=2048, busy=1.0) == pytest.approx(497.5)


def test_queueing_formulas_by_hand() -> None:
    assert cap.queued_ttft_ms(1000, 400, 0.5) == pytest.approx(1200)
    assert cap.queued_ttft_ms(1000, 400, 0.99) == pytest.approx(1000 + 0.95 * 400 / 0.1)  # rho clamped to 0.95
    assert cap.utilization_ceiling(1000, 400, 1200) == pytest.approx(0.5)
    assert cap.utilization_ceiling(1000, 400, 900) == 0.0


def test_cut_to_fit_cuts_the_role_with_more_headroom() -> None:
    # prefill needs 1.9 (2 workers), decode 5.5 (6): after a cut decode keeps 5/5.5, prefill 1/1.9
    fit = cut_to_fit(2, 6, cost_prefill=1, cost_decode=1, limit=7, need_prefill=1.9, need_decode=5.5, floor=1)
    assert (fit.n_prefill, fit.n_decode, fit.cut_prefill, fit.cut_decode) == (2, 5, 0, 1)
    fit = cut_to_fit(4, 2, cost_prefill=1, cost_decode=1, limit=5, need_prefill=4.0, need_decode=1.1, floor=1)
    assert (fit.n_prefill, fit.n_decode) == (4, 1)  # decode keeps 1/1.1 > prefill's 3/4
    fit = cut_to_fit(4, 2, cost_prefill=1, cost_decode=1, limit=5, need_prefill=4.0, need_decode=1.9, floor=1)
    assert (fit.n_prefill, fit.n_decode) == (3, 2)  # prefill keeps 3/4 > decode's 1/1.9
    fit = cut_to_fit(1, 1, cost_prefill=1, cost_decode=1, limit=1, need_prefill=1, need_decode=1, floor=1)
    assert not fit.feasible


# -- sla@1 ---------------------------------------------------------------------------------------


def test_sla_sizes_with_the_documented_formula(h100: System) -> None:
    pl = make("sla@1", h100, correction=False)
    d = pl.on_tick(obs(rate=10.0))
    need_p, need_d = needs(h100, 10.0)
    assert (d.n_prefill, d.n_decode) == (math.ceil(need_p), math.ceil(need_d)) == (5, 2)
    assert (d.cap_prefill_w, d.cap_decode_w) == (None, None)
    assert d.projected_w == pytest.approx((5 * 700 + 2 * 700) * 2)
    assert (d.predicted_rate, d.predicted_isl, d.predicted_osl) == (10.0, 6000.0, 350.0)
    assert d.reason == "scale_out"


def test_sla_without_traffic_data_holds(h100: System) -> None:
    pl = make("sla@1", h100, initial=(3, 2))
    d = pl.on_tick(obs(0, rate=0.0, isl=None, osl=None, hit=None))
    assert (d.n_prefill, d.n_decode, d.reason) == (3, 2, "no_data")
    assert d.predicted_rate == 0.0 and d.predicted_isl is None
    d = pl.on_tick(obs(1, rate=None, isl=None, osl=None, hit=None))
    assert (d.n_prefill, d.n_decode, d.reason) == (3, 2, "no_data")


def test_sla_scales_out_monotonically_on_a_ramp(h100: System) -> None:
    pl = make("sla@1", h100, initial=(1, 1), predictor="moving_average", predictor_window=3)
    ns = []
    for t, rate in enumerate([2, 4, 6, 8, 10, 12, 14, 16]):
        d = pl.on_tick(obs(t, rate=float(rate)))
        ns.append((d.n_prefill, d.n_decode))
        assert d.reason in ("scale_out", "hold")
    assert all(b[0] >= a[0] and b[1] >= a[1] for a, b in zip(ns, ns[1:]))
    assert ns[-1][0] > ns[0][0] and ns[-1][1] > ns[0][1]


def test_sla_scales_in_only_after_persistence_to_the_highest_lower_target(h100: System) -> None:
    pl = make("sla@1", h100, correction=False)
    high = pl.on_tick(obs(0, rate=20.0))
    d1 = pl.on_tick(obs(1, rate=6.0))
    d2 = pl.on_tick(obs(2, rate=2.0))
    assert (d1.n_prefill, d2.n_prefill) == (high.n_prefill, high.n_prefill)
    assert d1.reason == d2.reason == "scale_in_pending"
    d3 = pl.on_tick(obs(3, rate=2.0))
    assert d3.reason == "scale_in"
    assert d3.n_prefill == math.ceil(needs(h100, 6.0)[0]) < high.n_prefill  # the highest of the lower targets


def test_sla_scale_in_ticks_param(h100: System) -> None:
    pl = make("sla@1", h100, correction=False, params={"scale_in_ticks": 1})
    high = pl.on_tick(obs(0, rate=20.0))
    d = pl.on_tick(obs(1, rate=2.0))
    assert d.reason == "scale_in" and d.n_prefill < high.n_prefill


def _noisy_ttft_run(h100: System, rates: list[float]) -> list[int]:
    """c_ttft alternating high/low (as noisy TTFT readings make it): prefill replicas per tick."""
    pl = make("sla@1", h100)
    out = []
    for t, rate in enumerate(rates):
        quiet = obs(t, rate=rate, prefill=role(active=4))
        expected = pl.expected_ttft_ms(quiet)
        factor = 2.0 if t % 4 == 0 else 1.0
        out.append(pl.on_tick(obs(t, rate=rate, prefill=role(active=4), ttft=expected * factor)).n_prefill)
    return out


def test_sla_noisy_corrections_cannot_scale_in_while_load_rises(h100: System) -> None:
    rising = _noisy_ttft_run(h100, [10.0 + 0.2 * t for t in range(12)])
    assert all(b >= a for a, b in zip(rising, rising[1:])), rising
    flat = _noisy_ttft_run(h100, [10.0] * 12)  # the same noise on a flat load does scale in
    assert any(b < a for a, b in zip(flat, flat[1:])), flat


def test_sla_respects_min_endpoint(h100: System) -> None:
    pl = make("sla@1", h100, initial=(3, 3), min_endpoint=2)
    for t in range(4):
        d = pl.on_tick(obs(t, rate=0.01))
    assert (d.n_prefill, d.n_decode) == (2, 2)


def test_sla_respects_max_gpu_budget(h100: System) -> None:
    pl = make("sla@1", h100, max_gpu_budget=12, correction=False)
    d = pl.on_tick(obs(0, rate=200.0))
    # needs ~(82, 34): (5, 5) is cut one at a time from the role keeping the larger share of its need
    assert (d.n_prefill, d.n_decode) == (4, 2)
    assert (d.n_prefill + d.n_decode) * 2 <= 12
    d2 = pl.on_tick(obs(1, rate=200.0))
    assert d2.reason == "gpu_limit" and (d2.n_prefill, d2.n_decode) == (d.n_prefill, d.n_decode)


def test_sla_rejects_a_gpu_budget_below_two_endpoints(h100: System) -> None:
    with pytest.raises(PlannerError, match="max_gpu_budget"):
        make("sla@1", h100, max_gpu_budget=3, min_endpoint=1)


def test_sla_corrections_are_ratios_clamped(h100: System) -> None:
    pl = make("sla@1", h100, correction_min=0.5, correction_max=2.0)
    busy_decode = role(active=2, running=100, kv=300_000)
    base = obs(0, decode=busy_decode)
    e_ttft, e_itl = pl.expected_ttft_ms(base), pl.expected_itl_ms(base)
    assert e_itl == pytest.approx(14 + 0.15 * 50 + 3.28e-5 * 150_000)  # step of the current batch per worker
    d = pl.on_tick(obs(0, decode=busy_decode, ttft=1.5 * e_ttft, itl=0.8 * e_itl))
    assert (d.c_ttft, d.c_itl) == (pytest.approx(1.5), pytest.approx(0.8))
    d = pl.on_tick(obs(1, decode=busy_decode, ttft=100 * e_ttft, itl=0.01 * e_itl))
    assert (d.c_ttft, d.c_itl) == (2.0, 0.5)
    d = pl.on_tick(obs(2, decode=busy_decode))  # no readings: factors kept
    assert (d.c_ttft, d.c_itl) == (2.0, 0.5)


def test_sla_correction_changes_the_sizing(h100: System) -> None:
    plain = make("sla@1", h100, correction=False).on_tick(obs(0, rate=10.0, ttft=1e6))
    corrected_pl = make("sla@1", h100)
    e = corrected_pl.expected_ttft_ms(obs(0, rate=10.0))
    corrected = corrected_pl.on_tick(obs(0, rate=10.0, ttft=1.5 * e))
    assert corrected.n_prefill == math.ceil(1.5 * needs(h100, 10.0)[0]) > plain.n_prefill


def test_sla_uses_configured_default_caps(h100: System) -> None:
    d = make("sla@1", h100, default_cap_prefill_w=500.0).on_tick(obs(0))
    assert (d.cap_prefill_w, d.cap_decode_w) == (500.0, None)
    need_p, _ = needs(h100, 10.0, cap_p=500.0)
    assert d.n_prefill == math.ceil(need_p)


def test_engine_knobs_come_from_the_fleet_config(h100: System) -> None:
    with pytest.raises(PlannerError, match="scale_in_ticks"):
        make("sla@1", h100, params={"scale_in_ticks": 0})
    ctx = msgspec.structs.replace(ctx_for(h100, correction=False), fleet=FleetConfig(max_num_seqs=8))
    small = load_planner("sla@1", ctx).on_tick(obs(0, rate=10.0))
    assert small.n_decode == math.ceil(10.0 * 350 / (8 * 1000 / cap.decode_step_ms(h100, 8, 8 * 6175, 700)))


# -- power@1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [3000.0, 4500.0, 6000.0, 7000.0, 9000.0, 20000.0])
@pytest.mark.parametrize("rate", [2.0, 10.0, 30.0])
def test_power_never_exceeds_a_feasible_budget(h100: System, budget: float, rate: float) -> None:
    pl = make("power@1", h100, correction=False)
    d = pl.on_tick(obs(0, rate=rate, budget_w=budget))
    assert d.projected_w == pytest.approx((d.n_prefill + d.n_decode) * 700 * 2)
    assert d.projected_w <= budget
    sla = make("sla@1", h100, correction=False).on_tick(obs(0, rate=rate))
    if sla.projected_w > budget:
        assert d.reason.startswith("budget_cut_")


def test_power_names_the_cut_role(h100: System) -> None:
    # rate 10: wants (5, 2), needs (4.11, 1.71); 7000 W fits 5 workers at 700 W x 2 GPUs
    d = make("power@1", h100, correction=False).on_tick(obs(0, rate=10.0, budget_w=7000.0))
    assert (d.n_prefill, d.n_decode, d.reason) == (3, 2, "budget_cut_prefill")
    # decode-heavy: short prompts, long outputs
    pl = make("power@1", h100, correction=False, initial=(1, 1))
    d = pl.on_tick(obs(0, rate=20.0, isl=500.0, osl=2000.0, budget_w=7000.0))
    assert d.reason == "budget_cut_decode" and d.n_prefill == 1 and d.projected_w <= 7000.0
    # 5600 W: (5, 2) -> (4, 2) -> (3, 2) -> decode then has more headroom than prefill
    d = make("power@1", h100, correction=False).on_tick(obs(0, rate=10.0, budget_w=5600.0))
    assert (d.n_prefill, d.n_decode, d.reason) == (3, 1, "budget_cut_both")


def test_power_budget_floor_and_recovery(h100: System) -> None:
    pl = make("power@1", h100, correction=False)
    d = pl.on_tick(obs(0, rate=10.0, budget_w=1000.0))
    assert (d.n_prefill, d.n_decode, d.reason) == (1, 1, "budget_floor")
    d = pl.on_tick(obs(1, rate=10.0, budget_w=None))  # budget lifted: back to the SLA target at once
    assert (d.n_prefill, d.n_decode, d.reason) == (5, 2, "scale_out")


def test_power_caps_are_explicit_defaults_or_sku_max(h100: System) -> None:
    d = make("power@1", h100).on_tick(obs(0))
    assert (d.cap_prefill_w, d.cap_decode_w) == (700.0, 700.0)
    d = make("power@1", h100, default_cap_prefill_w=550.0, default_cap_decode_w=900.0).on_tick(obs(0, budget_w=5000.0))
    assert (d.cap_prefill_w, d.cap_decode_w) == (550.0, 700.0)  # 900 clamped to the SKU max
    assert d.projected_w == pytest.approx((d.n_prefill * 550 + d.n_decode * 700) * 2) and d.projected_w <= 5000.0


# -- aic@1 ---------------------------------------------------------------------------------------


def test_perf_table_covers_the_cap_range_in_25w_steps(h100: System) -> None:
    t = build_perf_table(h100)
    caps = [r.cap_w for r in t.rows]
    assert caps[0] == 200 and caps[-1] == 700 and len(caps) == 21
    assert all(b - a == 25 for a, b in zip(caps, caps[1:]))
    r = t.row(400.0)
    assert (r.prefill_speed, r.prefill_power_w, r.decode_power_w) == (pytest.approx(0.60), 400.0, 350.0)


def test_aic_lowers_caps_and_beats_power_goodput_under_a_tight_budget(h100: System) -> None:
    budget = 5000.0
    p = make("power@1", h100, correction=False).on_tick(obs(0, rate=10.0, budget_w=budget))
    a = make("aic@1", h100, correction=False).on_tick(obs(0, rate=10.0, budget_w=budget))
    assert a.sweep and a.projected_w <= budget
    assert a.cap_prefill_w < 700.0 and a.cap_decode_w < 700.0
    assert a.projected_w == pytest.approx((a.n_prefill * a.cap_prefill_w + a.n_decode * a.cap_decode_w) * 2)
    assert goodput(h100, a, 10.0) > goodput(h100, p, 10.0) + 0.1


def test_aic_reaches_full_goodput_when_the_budget_allows(h100: System) -> None:
    a = make("aic@1", h100, correction=False).on_tick(obs(0, rate=10.0, budget_w=9000.0))
    assert goodput(h100, a, 10.0) == pytest.approx(1.0)
    assert a.projected_w <= 9000.0


def test_aic_corrections_are_emas_of_clamped_ratios(h100: System) -> None:
    pl = make("aic@1", h100, ema_alpha=0.3, correction_max=2.0, correction_min=0.5)
    busy = role(active=2, running=100, kv=300_000, busy=1.0, power_w=None)
    base = obs(0, decode=busy)
    e_ttft = pl.expected_ttft_ms(base)
    e_pow = pl.expected_role_power_w(base, "decode")
    assert e_pow == pytest.approx(175 + (350 - 175) * 0.5)  # KV 150000 per worker = half of HBM saturation
    d = pl.on_tick(obs(0, decode=role(active=2, running=100, kv=300_000, busy=1.0, power_w=1.2 * e_pow), ttft=1.5 * e_ttft))
    assert d.c_ttft == pytest.approx(0.7 + 0.3 * 1.5)
    assert d.c_power_d == pytest.approx(0.7 + 0.3 * 1.2)
    assert d.c_power_p == 1.0 and d.c_itl == 1.0  # no prefill power / ITL reading: unchanged
    d = pl.on_tick(obs(1, decode=busy, ttft=1.5 * e_ttft))
    assert d.c_ttft == pytest.approx(0.7 * 1.15 + 0.3 * 1.5)
    cs = []
    for t in range(2, 40):
        cs.append(pl.on_tick(obs(t, decode=busy, ttft=50 * e_ttft)).c_ttft)
    assert all(b >= a for a, b in zip(cs, cs[1:])) and cs[-1] == pytest.approx(2.0, abs=1e-3) and max(cs) <= 2.0


def test_aic_power_correction_scales_expected_watts_in_the_optimiser(h100: System) -> None:
    plain = make("aic@1", h100, correction=False)
    plain.on_tick(obs(0, rate=10.0))
    cool = make("aic@1", h100, correction=False)
    cool.c_power_p = 0.6  # prefill draws less than the table says (a draw above the cap is impossible)
    cool.on_tick(obs(0, rate=10.0))
    assert cool.last_point is not None and plain.last_point is not None
    assert cool.last_point.expected_w < plain.last_point.expected_w


def test_aic_sweeps_periodically(h100: System) -> None:
    pl = make("aic@1", h100, correction=False, reoptimize_every_ticks=4, drift_threshold=10.0)
    ds = [pl.on_tick(obs(t, rate=10.0)) for t in range(10)]
    assert [t for t, d in enumerate(ds) if d.sweep] == [0, 4, 8]
    assert [ds[0].reason, ds[4].reason, ds[8].reason] == ["sweep_initial", "sweep_periodic", "sweep_periodic"]


def test_aic_sweeps_after_drift_persists(h100: System) -> None:
    pl = make("aic@1", h100, correction=False, reoptimize_every_ticks=100, drift_threshold=0.15, drift_ticks=3)
    rates = [10.0, 10.0, 13.0, 10.0, 13.0, 13.0, 13.0, 13.0]  # one-tick spike, then a lasting 30 % rise
    ds = [pl.on_tick(obs(t, rate=r)) for t, r in enumerate(rates)]
    assert [t for t, d in enumerate(ds) if d.sweep] == [0, 6]
    assert ds[0].reason == "sweep_initial" and ds[6].reason == "sweep_drift"
    assert relative_drift((13.0,), (10.0,)) == pytest.approx(0.3)


def test_aic_sweeps_when_the_budget_changes(h100: System) -> None:
    pl = make("aic@1", h100, correction=False, reoptimize_every_ticks=100)
    assert pl.on_tick(obs(0, budget_w=9000.0)).sweep
    assert not pl.on_tick(obs(1, budget_w=9000.0)).sweep
    d = pl.on_tick(obs(2, budget_w=4000.0))
    assert d.sweep and d.projected_w <= 4000.0


def test_aic_keeps_caps_between_sweeps(h100: System) -> None:
    pl = make("aic@1", h100, correction=False, reoptimize_every_ticks=100, drift_threshold=100.0)
    first = pl.on_tick(obs(0, rate=10.0))
    later = pl.on_tick(obs(1, rate=30.0))
    assert not later.sweep
    assert (later.cap_prefill_w, later.cap_decode_w) == (first.cap_prefill_w, first.cap_decode_w)
    assert later.n_prefill > first.n_prefill  # replicas still follow the load


@pytest.mark.parametrize("mode", ["raise", "empty"])
def test_aic_optimizer_failures_fall_back_after_m_and_reset_on_success(h100: System, mode: str) -> None:
    pl = make("aic@1", h100, correction=False, reoptimize_every_ticks=1, max_optimizer_failures=3,
              default_cap_prefill_w=600.0, default_cap_decode_w=400.0)
    first = pl.on_tick(obs(0, rate=10.0))
    assert first.sweep and (first.cap_prefill_w, first.cap_decode_w) != (600.0, 400.0)
    chosen = (first.cap_prefill_w, first.cap_decode_w)
    f1 = pl.on_tick(obs(1, rate=10.0, fault=mode))
    f2 = pl.on_tick(obs(2, rate=10.0, fault=mode))
    assert (f1.reason, f2.reason) == (f"optimizer_{mode}",) * 2
    assert not f1.sweep and (f2.cap_prefill_w, f2.cap_decode_w) == chosen  # below M: caps kept
    f3 = pl.on_tick(obs(3, rate=10.0, fault=mode))
    assert f3.reason == "fallback_default_caps" and (f3.cap_prefill_w, f3.cap_decode_w) == (600.0, 400.0)
    assert pl.failures == 3
    ok = pl.on_tick(obs(4, rate=10.0))
    assert ok.sweep and ok.reason == "sweep_retry"
    assert pl.failures == 0
    g1 = pl.on_tick(obs(5, rate=10.0, fault=mode))
    g2 = pl.on_tick(obs(6, rate=10.0, fault=mode))
    assert (g1.reason, g2.reason) == (f"optimizer_{mode}",) * 2  # the count restarted after the success


def test_aic_fallback_without_defaults_uses_sku_max(h100: System) -> None:
    pl = make("aic@1", h100, max_optimizer_failures=1)
    d = pl.on_tick(obs(0, fault="raise"))
    assert d.reason == "fallback_default_caps" and (d.cap_prefill_w, d.cap_decode_w) == (700.0, 700.0)


def test_aic_infeasible_budget_counts_as_a_failure(h100: System) -> None:
    pl = make("aic@1", h100, max_optimizer_failures=2)
    assert pl.on_tick(obs(0, budget_w=500.0)).reason == "optimizer_empty"  # < 2 workers x 2 GPUs x 200 W
    assert pl.on_tick(obs(1, budget_w=500.0)).reason == "fallback_default_caps"


# -- aic@2 ---------------------------------------------------------------------------------------


def _ttft_of(system: System, d: Decision, rate: float) -> float:
    """M/D/1 TTFT of the decision's prefill fleet at this load (the capacity model, no correction)."""
    isl, hit = 6000.0, 0.3
    unloaded = cap.prefill_request_ms(system, isl, d.cap_prefill_w, cached_tokens=isl * hit)  # type: ignore[arg-type]
    service = cap.prefill_service_ms(system, isl, d.cap_prefill_w, cached_tokens=isl * hit)  # type: ignore[arg-type]
    return cap.queued_ttft_ms(unloaded, service, rate * service / 1000.0 / d.n_prefill)


def test_aic2_differs_from_aic1_by_sizing_prefill_for_ttft(h100: System) -> None:
    v1 = make("aic@1", h100, correction=False)
    v2 = make("aic@2", h100, correction=False)
    assert isinstance(v1, AicPlanner) and isinstance(v2, AicPlannerV2) and v2.version == 2
    rates = [4.0, 6.0, 8.0, 10.0, 12.0]
    d1 = [v1.on_tick(obs(t, rate=r)) for t, r in enumerate(rates)]
    d2 = [v2.on_tick(obs(t, rate=r)) for t, r in enumerate(rates)]
    assert [(d.n_prefill, d.cap_prefill_w) for d in d1] != [(d.n_prefill, d.cap_prefill_w) for d in d2]
    for d, r in zip(d2, rates):
        assert _ttft_of(h100, d, r) <= 2000.0
    assert any(_ttft_of(h100, d, r) > 2000.0 for d, r in zip(d1, rates))


def test_aic1_is_unchanged_by_the_v2_hook(h100: System) -> None:
    v1 = make("aic@1", h100)
    wl_obs = obs(0, rate=10.0)
    v1.on_tick(wl_obs)
    assert v1.prefill_utilization(v1.workload(), 400.0) == 1.0
    v2 = make("aic@2", h100)
    v2.on_tick(wl_obs)
    assert 0.5 <= v2.prefill_utilization(v2.workload(), 400.0) < 1.0


# -- registry ------------------------------------------------------------------------------------


def test_available_planners_sorted() -> None:
    assert available_planners() == ["aic@1", "aic@2", "power@1", "sla@1"]


@pytest.mark.parametrize(
    ("spec", "cls", "version"),
    [("sla@1", SlaPlanner, 1), ("sla", SlaPlanner, 1), ("power@1", PowerPlanner, 1), ("aic@1", AicPlanner, 1),
     ("aic@2", AicPlannerV2, 2), ("aic", AicPlannerV2, 2), (" power ", PowerPlanner, 1)],
)
def test_load_builtin_by_name_and_version(h100: System, spec: str, cls: type, version: int) -> None:
    pl = load_planner(spec, ctx_for(h100))
    assert type(pl) is cls and pl.version == version and pl.name == spec.strip().split("@")[0]


def test_load_by_import_path(h100: System) -> None:
    pl = load_planner("tests.custom_planner_example:FixedPlanner", ctx_for(h100, initial=(2, 3), params={"extra_decode": 1}))
    assert (pl.name, pl.version) == ("fixed", 7)
    d = pl.on_tick(obs(0))
    assert (d.n_prefill, d.n_decode, d.reason) == (2, 4, "fixed")
    inner = load_planner("tests.custom_planner_example:Outer.Inner", ctx_for(h100))
    assert inner.name == "inner"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty planner spec"),
        ("nope", "unknown planner 'nope'.*available: aic@1, aic@2, power@1, sla@1"),
        ("nope@1", "unknown planner 'nope'"),
        ("@1", "unknown planner ''"),
        ("sla@9", "has no version 9; available: sla@1"),
        ("sla@x", "bad planner version 'x'"),
        ("sla@", "bad planner version ''"),
        ("sla@1@2", "bad planner version '1@2'"),
        ("no_such_module_xyz:Planner", "cannot import module 'no_such_module_xyz'"),
        ("tests.custom_planner_example:Missing", "has no attribute 'Missing'.*FixedPlanner"),
        ("tests.custom_planner_example:Outer.Missing", "has no attribute 'Outer.Missing'"),
        ("tests.custom_planner_example:", "expected pkg.module:Class"),
        (":FixedPlanner", "expected pkg.module:Class"),
        ("a:b:c", "expected pkg.module:Class"),
        ("tests.custom_planner_example:CONSTANT", "is a int, not a class"),
        ("tests.custom_planner_example:NoOnTick", "without a callable 'on_tick"),
        ("tests.custom_planner_example:BadVersion", "without an int 'version'"),
        ("tests.custom_planner_example:Exploding", "constructing planner .* failed: RuntimeError: boom in constructor"),
    ],
)
def test_load_planner_errors(h100: System, spec: str, message: str) -> None:
    with pytest.raises(PlannerError, match=message):
        load_planner(spec, ctx_for(h100))


def test_builtin_constructor_errors_are_planner_errors(h100: System) -> None:
    with pytest.raises(PlannerError, match="rejected its configuration.*max_gpu_budget"):
        load_planner("aic@1", ctx_for(h100, max_gpu_budget=2))
