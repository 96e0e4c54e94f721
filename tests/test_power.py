"""The synthetic power overlay, bias timelines, seeded noise and the metrics source (replaylib.power)."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from replaylib.power import MetricsSource, Noise, Overlay, bias_at, signal_rng
from replaylib.scenario.model import (
    BiasRamp,
    BiasSine,
    BiasStep,
    NoiseSpec,
    PowerConfig,
)
from replaylib.sim import Fleet
from replaylib.sim.metrics import RoleCounts, Snapshot, TrafficWindow, WorkerMetrics
from tests.sim_helpers import fleet_config, h100, req

SYSTEM = h100()
IDLE = SYSTEM.gpu.idle_w  # 70
TDP = SYSTEM.gpu.tdp_w  # 700
PM_P = SYSTEM.power_model.prefill  # 680 W uncapped, base 0.45 x TDP, saturates at 4096 tokens per pass
PM_D = SYSTEM.power_model.decode  # 350 W uncapped, base 0.25 x TDP, saturates at 300k KV tokens
MAX_CAP = SYSTEM.gpu.max_cap_w
WINDOW_MS = 60_000.0


# -- hand-built metrics --------------------------------------------------------------------------


def worker(
    role: str = "prefill",
    *,
    wid: int = 0,
    state: str = "active",
    cap: float = MAX_CAP,
    busy_ms: float = WINDOW_MS,
    passes: int = 10,
    tokens: int = 0,
    batched: int = 0,
    decode_requests: int = 0,
    kv_used: int = 0,
) -> WorkerMetrics:
    return WorkerMetrics(
        worker_id=wid, role=role, state=state, ready_at_ms=0.0, cap_w=cap,
        batched_prefill_tokens=batched, prefill_requests=1 if batched else 0, decode_requests=decode_requests,
        kv_tokens_used=kv_used, kv_capacity_tokens=SYSTEM.kv.capacity_tokens,
        queued_requests=0, queued_tokens=0, busy_ms=busy_ms, passes=passes, tokens=tokens,
    )


def prefill_worker(tokens_per_pass: int, **kw: object) -> WorkerMetrics:
    passes = int(kw.pop("passes", 10))  # type: ignore[arg-type]
    return worker("prefill", passes=passes, tokens=tokens_per_pass * passes, **kw)  # type: ignore[arg-type]


def decode_worker(kv_used: int, **kw: object) -> WorkerMetrics:
    return worker("decode", kv_used=kv_used, decode_requests=8, passes=100, tokens=800, **kw)  # type: ignore[arg-type]


def snapshot(
    workers: list[WorkerMetrics],
    *,
    now_ms: float = WINDOW_MS,
    window_ms: float = WINDOW_MS,
    cap_p: float = MAX_CAP,
    cap_d: float = MAX_CAP,
    ttft: list[float] = (),  # type: ignore[assignment]
    itl: list[float] = (),  # type: ignore[assignment]
) -> Snapshot:
    window = TrafficWindow(start_ms=now_ms - window_ms, end_ms=now_ms)
    for v in ttft:
        window.ttft.add(v)
    for v in itl:
        window.itl.add(v)

    def counts(role: str) -> RoleCounts:
        states = [w.state for w in workers if w.role == role]
        return RoleCounts(states.count("active"), states.count("starting"), states.count("draining"))

    return Snapshot(
        now_ms=now_ms, done=False, prefill=counts("prefill"), decode=counts("decode"),
        cap_prefill_w=cap_p, cap_decode_w=cap_d, workers=tuple(workers), window=window,
        arrived=0, completed=0, dropped=0, in_flight=0, dropped_by_reason={}, preemptions=0,
    )


def overlay(*, bias: dict | None = None, noise: dict | None = None, events: list | None = None, seed: int = 0) -> Overlay:
    config = PowerConfig(bias=bias or {}, noise={k: NoiseSpec(**v) for k, v in (noise or {}).items()})
    return Overlay(SYSTEM, config, events or [], seed)


def prefill_expected(tokens_per_pass: float) -> float:
    base = PM_P.base_fraction * TDP
    return base + (PM_P.uncapped_w - base) * min(1.0, tokens_per_pass / PM_P.saturation_tokens)


def decode_expected(kv: float) -> float:
    base = PM_D.base_fraction * TDP
    return base + (PM_D.uncapped_w - base) * min(1.0, kv / PM_D.hbm_saturation_kv_tokens)


# -- the per-worker power model ------------------------------------------------------------------


def test_idle_and_starting_workers_draw_idle_power() -> None:
    ov = overlay()
    idle_prefill = worker("prefill", busy_ms=0.0, passes=0)
    idle_decode = worker("decode", busy_ms=0.0, passes=0)
    # a starting worker draws idle power whatever its metrics claim
    starting = worker("prefill", state="starting", busy_ms=WINDOW_MS, passes=5, tokens=5 * 4096, batched=4096)
    starting_d = worker("decode", state="starting", busy_ms=WINDOW_MS, decode_requests=50, kv_used=300_000)
    for w in (idle_prefill, idle_decode, starting, starting_d):
        assert ov.worker_power(w, WINDOW_MS) == IDLE
    r = ov.read(snapshot([idle_prefill, starting, idle_decode, starting_d]))
    assert r.power_prefill_w == IDLE and r.power_decode_w == IDLE
    assert r.gpus == 4 * SYSTEM.model.gpus_per_worker
    assert r.power_total_w == pytest.approx(IDLE * r.gpus)


def test_zero_length_window_uses_the_pass_in_flight() -> None:
    ov = overlay()
    assert ov.worker_power(worker("prefill", busy_ms=0, passes=0), 0.0) == IDLE
    # busy because a pass is in flight: draw follows the tokens of that pass
    w = worker("prefill", busy_ms=0, passes=0, tokens=0, batched=2048)
    assert ov.worker_power(w, 0.0) == pytest.approx(prefill_expected(2048))


def test_prefill_draw_rises_with_tokens_per_pass_and_saturates() -> None:
    ov = overlay()
    sizes = [16, 256, 1024, 2048, 3072, 4096, 8192, 65536]
    draws = [ov.worker_power(prefill_worker(n), WINDOW_MS) for n in sizes]
    assert all(b > a for a, b in itertools.pairwise(draws[:6]))  # strictly rising up to saturation
    for n, d in zip(sizes, draws):
        assert d == pytest.approx(prefill_expected(n))
    assert draws[0] == pytest.approx(PM_P.base_fraction * TDP, abs=2.0)  # a tiny pass draws about the base
    assert draws[5] == pytest.approx(PM_P.uncapped_w)
    assert draws[6] == draws[7] == draws[5]  # saturated
    # per pass, not per window: 10 passes of 400 tokens draw less than 1 pass of 4000
    many_small = ov.worker_power(worker("prefill", passes=10, tokens=4000), WINDOW_MS)
    one_big = ov.worker_power(worker("prefill", passes=1, tokens=4000), WINDOW_MS)
    assert many_small < one_big


def test_decode_draw_rises_with_kv_in_use_and_saturates() -> None:
    ov = overlay()
    kvs = [0, 10_000, 75_000, 150_000, 299_000, 300_000, 420_000]
    draws = [ov.worker_power(decode_worker(k), WINDOW_MS) for k in kvs]
    assert all(b > a for a, b in itertools.pairwise(draws[:5]))
    for k, d in zip(kvs, draws):
        assert d == pytest.approx(decode_expected(k))
    assert draws[0] == pytest.approx(PM_D.base_fraction * TDP)
    assert draws[5] == draws[6] == pytest.approx(PM_D.uncapped_w)
    assert draws[-1] < PM_P.uncapped_w  # memory-bound: well under the prefill draw


def test_busy_fraction_interpolates_between_idle_and_busy_draw() -> None:
    ov = overlay()
    full = ov.worker_power(prefill_worker(4096), WINDOW_MS)
    for frac in (0.1, 0.25, 0.5, 0.9):
        w = prefill_worker(4096, busy_ms=frac * WINDOW_MS)
        assert ov.worker_power(w, WINDOW_MS) == pytest.approx(IDLE + frac * (full - IDLE))
    # busy time beyond the window counts as fully busy, not more
    assert ov.worker_power(prefill_worker(4096, busy_ms=2 * WINDOW_MS), WINDOW_MS) == pytest.approx(full)
    d_full = ov.worker_power(decode_worker(150_000), WINDOW_MS)
    assert ov.worker_power(decode_worker(150_000, busy_ms=WINDOW_MS / 4), WINDOW_MS) == pytest.approx(IDLE + (d_full - IDLE) / 4)


@pytest.mark.parametrize("cap", [200.0, 250.0, 300.0, 400.0, 600.0])
def test_draw_never_exceeds_the_applied_cap(cap: float) -> None:
    ov = overlay()
    p = ov.worker_power(prefill_worker(8192, cap=cap), WINDOW_MS)
    d = ov.worker_power(decode_worker(400_000, cap=cap), WINDOW_MS)
    assert p == pytest.approx(min(PM_P.uncapped_w, cap))
    assert d == pytest.approx(min(PM_D.uncapped_w, cap))
    assert p <= cap and d <= cap
    r = ov.read(snapshot([prefill_worker(8192, cap=cap), decode_worker(400_000, wid=1, cap=cap)], cap_p=cap, cap_d=cap))
    assert r.power_prefill_w is not None and r.power_prefill_w <= cap
    assert r.power_decode_w is not None and r.power_decode_w <= cap
    if cap < PM_P.uncapped_w:
        assert r.power_prefill_w == pytest.approx(cap)  # compute-bound prefill runs into the cap


@pytest.mark.parametrize("bias", [-5000.0, -300.0, 300.0, 5000.0])
def test_bias_cannot_push_readings_outside_idle_and_cap(bias: float) -> None:
    ov = overlay(
        bias={"power_bias_prefill": bias, "power_bias_decode": bias},
        noise={"power_prefill": {"kind": "gaussian", "sigma": 50.0}, "power_decode": {"kind": "gaussian", "sigma": 50.0}},
    )
    cap_p, cap_d = 450.0, 300.0
    snap = snapshot([prefill_worker(2048, cap=cap_p), decode_worker(100_000, wid=1, cap=cap_d)], cap_p=cap_p, cap_d=cap_d)
    for _ in range(50):
        r = ov.read(snap)
        assert IDLE <= r.power_prefill_w <= cap_p  # type: ignore[operator]
        assert IDLE <= r.power_decode_w <= cap_d  # type: ignore[operator]
        if bias <= -1000:
            assert r.power_prefill_w == IDLE and r.power_decode_w == IDLE
        if bias >= 1000:
            assert r.power_prefill_w == cap_p and r.power_decode_w == cap_d


def test_role_without_workers_reads_none_and_total_counts_gpus() -> None:
    ov = overlay()
    r = ov.read(snapshot([prefill_worker(4096), prefill_worker(4096, wid=1, busy_ms=0.0, passes=0)]))
    assert r.power_decode_w is None
    mean = (PM_P.uncapped_w + IDLE) / 2
    assert r.power_prefill_w == pytest.approx(mean)
    assert r.gpus == 2 * SYSTEM.model.gpus_per_worker
    assert r.power_total_w == pytest.approx(mean * r.gpus)


def test_latency_readings_none_without_samples_and_shifted_by_bias() -> None:
    ov = overlay(bias={"ttft_bias": 100.0, "itl_bias": -1000.0})
    r = ov.read(snapshot([prefill_worker(1024)]))
    assert r.ttft is None and r.itl is None  # no samples: None, not 0
    r = ov.read(snapshot([prefill_worker(1024)], ttft=[500.0, 500.0], itl=[20.0]))
    assert r.ttft is not None and r.ttft.count == 2
    assert r.ttft.mean_ms == pytest.approx(600.0)
    assert r.itl is not None and r.itl.mean_ms == 0.0 and r.itl.p99_ms == 0.0  # never negative


def test_overlay_on_a_real_fleet_snapshot() -> None:
    """Snapshots from a real Fleet: busy prefill draws more than idle, an idle later window reads idle."""
    rows = [req(0, 6000, 4), req(10, 6000, 4)]
    fleet = Fleet(SYSTEM, fleet_config(max_num_batched_tokens=8192), rows, block_size=512)
    ov = overlay()
    busy = fleet.advance_to(300.0)  # mid-prefill: the pass is atomic, so the fleet runs to its end
    assert busy.now_ms >= 300.0
    assert busy.now_ms > 500.0  # one 6000-token pass takes ~590 ms on this SKU
    r_busy = ov.read(busy)
    assert r_busy.power_prefill_w == pytest.approx(PM_P.uncapped_w)  # busy all window, 6000 tokens per pass: saturated
    assert r_busy.power_decode_w == IDLE  # nothing handed off yet
    idle = fleet.advance_to(600_000.0)
    assert idle.done
    r_idle = ov.read(fleet.advance_to(1_200_000.0))  # a whole window with nothing to do
    assert r_idle.power_prefill_w == IDLE and r_idle.power_decode_w == IDLE
    assert busy.window.ttft.count + idle.window.ttft.count == 2  # one first token per window


# -- bias timelines -------------------------------------------------------------------------------


def test_bias_step() -> None:
    ev = BiasStep(at_s=100.0, signal="power_bias_decode", delta=25.0)
    assert bias_at(3.0, [ev], 99.999) == 3.0
    assert bias_at(3.0, [ev], 100.0) == 28.0
    assert bias_at(3.0, [ev], 1e6) == 28.0


def test_bias_ramp_is_linear_then_holds() -> None:
    ev = BiasRamp(at_s=300.0, signal="power_bias_decode", delta=60.0, duration_s=600.0)
    assert bias_at(0.0, [ev], 299.0) == 0.0
    assert bias_at(0.0, [ev], 300.0) == 0.0
    assert bias_at(0.0, [ev], 450.0) == pytest.approx(15.0)
    assert bias_at(0.0, [ev], 600.0) == pytest.approx(30.0)
    assert bias_at(0.0, [ev], 900.0) == pytest.approx(60.0)
    assert bias_at(0.0, [ev], 5000.0) == pytest.approx(60.0)
    assert bias_at(-10.0, [ev], 600.0) == pytest.approx(20.0)  # on top of the constant


def test_bias_sine_with_and_without_duration() -> None:
    forever = BiasSine(at_s=10.0, signal="ttft_bias", amplitude=40.0, period_s=100.0)
    assert bias_at(0.0, [forever], 5.0) == 0.0
    assert bias_at(0.0, [forever], 10.0) == pytest.approx(0.0, abs=1e-9)
    assert bias_at(0.0, [forever], 35.0) == pytest.approx(40.0)  # quarter period
    assert bias_at(0.0, [forever], 85.0) == pytest.approx(-40.0)  # three quarters
    assert bias_at(0.0, [forever], 10_035.0) == pytest.approx(40.0)  # still going
    limited = BiasSine(at_s=10.0, signal="ttft_bias", amplitude=40.0, period_s=100.0, duration_s=200.0)
    assert bias_at(0.0, [limited], 35.0) == pytest.approx(40.0)
    assert bias_at(0.0, [limited], 135.0) == pytest.approx(40.0)
    assert bias_at(0.0, [limited], 235.0) == 0.0  # over
    assert bias_at(7.0, [limited], 1000.0) == 7.0


def test_bias_events_add_up() -> None:
    evs = [
        BiasStep(at_s=0.0, signal="itl_bias", delta=1.0),
        BiasRamp(at_s=0.0, signal="itl_bias", delta=10.0, duration_s=10.0),
        BiasSine(at_s=0.0, signal="itl_bias", amplitude=2.0, period_s=20.0),
    ]
    assert bias_at(0.5, evs, 5.0) == pytest.approx(0.5 + 1.0 + 5.0 + 2.0)


def test_overlay_applies_constant_and_event_bias_to_the_right_signal_only() -> None:
    events = [
        BiasStep(at_s=30.0, signal="power_bias_decode", delta=40.0),
        BiasStep(at_s=30.0, signal="ttft_bias", delta=250.0),
    ]
    plain = overlay()
    biased = overlay(bias={"power_bias_prefill": -20.0, "itl_bias": 3.0}, events=events)
    workers = [prefill_worker(2048), decode_worker(100_000, wid=1)]
    for now_s, after in ((20.0, False), (30.0, True), (90.0, True)):
        snap = snapshot(workers, now_ms=now_s * 1000, window_ms=10_000.0, ttft=[800.0], itl=[25.0])
        a, b = plain.read(snap), biased.read(snap)
        assert b.power_prefill_w == pytest.approx(a.power_prefill_w - 20.0)  # type: ignore[operator]
        assert b.power_decode_w == pytest.approx(a.power_decode_w + (40.0 if after else 0.0))  # type: ignore[operator]
        assert b.ttft.mean_ms == pytest.approx(a.ttft.mean_ms + (250.0 if after else 0.0))  # type: ignore[union-attr]
        assert b.itl.mean_ms == pytest.approx(a.itl.mean_ms + 3.0)  # type: ignore[union-attr]
        assert biased.bias("power_prefill", now_s) == -20.0
        assert biased.bias("power_decode", now_s) == (40.0 if after else 0.0)
        assert biased.bias("itl", now_s) == 3.0


# -- noise ----------------------------------------------------------------------------------------


def draws(noise: Noise, n: int) -> list[float]:
    return [noise.draw() for _ in range(n)]


def test_no_noise_is_zero() -> None:
    assert draws(Noise(NoiseSpec(), random.Random(1)), 100) == [0.0] * 100


def test_gaussian_noise_has_the_configured_sigma() -> None:
    xs = draws(Noise(NoiseSpec(kind="gaussian", sigma=6.0), random.Random(11)), 20_000)
    assert statistics.fmean(xs) == pytest.approx(0.0, abs=0.15)
    assert statistics.pstdev(xs) == pytest.approx(6.0, rel=0.03)
    assert abs(_lag1(xs)) < 0.03  # independent draws


def _lag1(xs: list[float]) -> float:
    m = statistics.fmean(xs)
    num = sum((a - m) * (b - m) for a, b in itertools.pairwise(xs))
    den = sum((a - m) ** 2 for a in xs)
    return num / den


@pytest.mark.parametrize("phi", [0.3, 0.7, 0.9])
def test_ar1_noise_has_lag1_autocorrelation_phi(phi: float) -> None:
    xs = draws(Noise(NoiseSpec(kind="ar1", sigma=4.0, phi=phi), random.Random(5)), 30_000)
    assert _lag1(xs) == pytest.approx(phi, abs=0.03)
    assert statistics.pstdev(xs) == pytest.approx(4.0 / math.sqrt(1 - phi * phi), rel=0.08)


def test_same_seed_same_sequence_different_seed_different() -> None:
    spec = NoiseSpec(kind="ar1", sigma=3.0, phi=0.5)
    a = draws(Noise(spec, signal_rng(7, "power_decode")), 200)
    b = draws(Noise(spec, signal_rng(7, "power_decode")), 200)
    c = draws(Noise(spec, signal_rng(8, "power_decode")), 200)
    d = draws(Noise(spec, signal_rng(7, "power_prefill")), 200)
    assert a == b
    assert a != c and a != d


def _read_many(ov: Overlay, n: int = 100) -> list:
    snap = snapshot([prefill_worker(2048), decode_worker(100_000, wid=1)], ttft=[900.0, 1100.0], itl=[30.0])
    return [ov.read(snap) for _ in range(n)]


def test_noise_on_one_signal_does_not_change_another_signals_numbers() -> None:
    base = _read_many(overlay(seed=3))
    decode_noisy = _read_many(overlay(seed=3, noise={"power_decode": {"kind": "ar1", "sigma": 4.0, "phi": 0.7}}))
    both_noisy = _read_many(overlay(seed=3, noise={"power_decode": {"kind": "ar1", "sigma": 4.0, "phi": 0.7},
                                                   "power_prefill": {"kind": "gaussian", "sigma": 6.0},
                                                   "ttft": {"kind": "gaussian", "sigma": 20.0}}))
    # power_prefill, ttft, itl identical with and without decode noise
    assert [r.power_prefill_w for r in decode_noisy] == [r.power_prefill_w for r in base]
    assert [r.ttft for r in decode_noisy] == [r.ttft for r in base]
    assert [r.itl for r in decode_noisy] == [r.itl for r in base]
    # decode is noisy, and its noise sequence is the same whether or not other signals are noisy
    assert len({r.power_decode_w for r in decode_noisy}) > 50
    assert [r.power_decode_w for r in both_noisy] == [r.power_decode_w for r in decode_noisy]
    assert [r.itl for r in both_noisy] == [r.itl for r in base]
    assert [r.power_prefill_w for r in both_noisy] != [r.power_prefill_w for r in base]


def test_each_signal_has_its_own_noise_stream() -> None:
    """Same spec on two signals: the two noise sequences are different (not one stream copied)."""
    spec = {"kind": "gaussian", "sigma": 6.0}
    quiet = _read_many(overlay(seed=4))
    noisy = _read_many(overlay(seed=4, noise={"power_prefill": spec, "power_decode": spec}))
    eps_p = [n.power_prefill_w - q.power_prefill_w for n, q in zip(noisy, quiet)]
    eps_d = [n.power_decode_w - q.power_decode_w for n, q in zip(noisy, quiet)]
    assert eps_p != pytest.approx(eps_d)
    assert abs(statistics.correlation(eps_p, eps_d)) < 0.35


def test_overlay_noise_is_seeded() -> None:
    noise = {"power_prefill": {"kind": "gaussian", "sigma": 6.0}}
    a = [r.power_prefill_w for r in _read_many(overlay(seed=1, noise=noise))]
    b = [r.power_prefill_w for r in _read_many(overlay(seed=1, noise=noise))]
    c = [r.power_prefill_w for r in _read_many(overlay(seed=2, noise=noise))]
    assert a == b and a != c
    assert statistics.pstdev(a) == pytest.approx(6.0, rel=0.3)


# -- the metrics source ---------------------------------------------------------------------------


def _push(src: MetricsSource, tick: int) -> None:
    src.push(tick * 1000.0, {"power_prefill": 100.0 + tick, "power_decode": 200.0 + tick, "ttft": f"t{tick}", "itl": f"i{tick}"})


def test_metrics_source_current_value_and_missing_signal() -> None:
    src = MetricsSource()
    assert src.observe("power_prefill") is None  # nothing pushed yet
    src.push(0.0, {"power_prefill": 5.0})
    assert src.observe("power_prefill") == 5.0
    assert src.observe("power_decode") is None


def test_outage_hides_listed_signals_until_it_ends() -> None:
    src = MetricsSource()
    for tick in range(3):
        _push(src, tick)
    src.start_outage(["ttft", "power_decode"], until_ms=5000.0)
    assert src.observe("ttft") is None and src.observe("power_decode") is None
    assert src.observe("power_prefill") == 102.0 and src.observe("itl") == "i2"  # not listed: unaffected
    _push(src, 4)
    assert src.observe("ttft") is None and src.in_outage("ttft") and not src.in_outage("itl")
    _push(src, 5)  # now == until: over
    assert src.observe("ttft") == "t5" and src.observe("power_decode") == 205.0
    assert not src.in_outage("ttft")


def test_open_ended_outage() -> None:
    src = MetricsSource()
    src.start_outage(["itl"], until_ms=math.inf)
    for tick in range(100):
        _push(src, tick)
        assert src.observe("itl") is None
        assert src.observe("ttft") == f"t{tick}"


def test_stale_serves_the_value_from_lag_ticks_ago() -> None:
    src = MetricsSource()
    _push(src, 0)
    src.start_stale(["power_prefill"], lag=3, until_ms=9000.0)
    assert src.observe("power_prefill") is None  # not enough history yet
    _push(src, 1)
    _push(src, 2)
    assert src.observe("power_prefill") is None
    for tick in range(3, 9):
        _push(src, tick)
        assert src.observe("power_prefill") == 100.0 + tick - 3
        assert src.observe("power_decode") == 200.0 + tick  # not listed: current
    _push(src, 9)  # window over: current again
    assert src.observe("power_prefill") == 109.0


def test_stale_with_long_lag_uses_bounded_history() -> None:
    src = MetricsSource(max_lag=64)
    for tick in range(200):
        _push(src, tick)
    src.start_stale(["power_decode"], lag=64, until_ms=math.inf)
    assert src.observe("power_decode") == 200.0 + 199 - 64
    assert all(len(h) <= 65 for h in src._history.values())


def test_outage_wins_over_staleness() -> None:
    src = MetricsSource()
    for tick in range(5):
        _push(src, tick)
    src.start_stale(["itl"], lag=1, until_ms=10_000.0)
    src.start_outage(["itl"], until_ms=6000.0)
    assert src.observe("itl") is None
    _push(src, 6)
    assert src.observe("itl") == "i4"  # stale again once the outage ends (history holds ticks 0-4, 6)
