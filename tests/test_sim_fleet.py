"""Behaviour of the event-skipping fleet on small hand-checked cases and on the real trace."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from replaylib.sim import Fleet, RequestOutcome
from replaylib.trace import read_trace
from sim_helpers import fleet_config, h100, req, tiny_system


def run(system, config, rows, *, block_size=16, until=1e9, step=None, actions=None):  # noqa: ANN001, ANN201
    """Replay rows; ``actions`` maps a tick time to a callable(fleet) run after that tick."""
    outs: dict[int, RequestOutcome] = {}
    fleet = Fleet(system, config, rows, block_size=block_size, on_finish=lambda o: outs.__setitem__(o.index, o))
    snaps = []
    times = sorted(actions or {}) if step is None else []
    t = 0.0
    while True:
        t = times.pop(0) if times else (t + step if step else until)
        snap = fleet.advance_to(t)
        snaps.append(snap)
        if actions and t in actions:
            actions[t](fleet)
        if snap.done or snap.now_ms >= until:
            break
    return outs, snaps, fleet


def test_single_request_timing_follows_the_timing_model() -> None:
    outs, snaps, _ = run(tiny_system(), fleet_config(), [req(0, 100, 4)])
    o = outs[0]
    pass_ms = 5.3 + 0.11 * 100
    assert o.first_token_ms == pytest.approx(pass_ms)
    steps = [7.7 + 0.13 * 1 + 0.0011 * (101 + i) for i in range(3)]  # ctx grows by one token a step
    assert o.completion_ms == pytest.approx(pass_ms + 0.9 + sum(steps))
    assert (o.status, o.generated, o.preemptions) == ("completed", 4, 0)
    itl = snaps[-1].window.itl
    assert itl.count == 3 and itl.mean == pytest.approx(sum(steps) / 3)


def test_osl_one_completes_at_first_token() -> None:
    outs, _, _ = run(tiny_system(), fleet_config(), [req(3, 50, 1)])
    assert outs[0].completion_ms == outs[0].first_token_ms == pytest.approx(3 + 5.3 + 0.11 * 50)


def test_chunked_prefill_splits_a_long_prompt() -> None:
    outs, snaps, _ = run(tiny_system(), fleet_config(max_num_batched_tokens=64), [req(0, 150, 2)])
    passes = [5.3 + 0.11 * n for n in (64, 64, 22)]
    assert outs[0].first_token_ms == pytest.approx(sum(passes))
    assert sum(w.passes for s in snaps for w in s.workers if w.role == "prefill") == 3


def test_shared_prefix_is_not_recomputed() -> None:
    prompt = [7, 8, 9]  # 3 shared blocks of 16 tokens
    rows = [req(0, 64, 2, prompt + [100]), req(1000, 64, 2, prompt + [200])]
    outs, snaps, _ = run(tiny_system(), fleet_config(), rows)
    second = outs[1]
    assert second.cached_tokens == 48
    assert second.first_token_ms - 1000 == pytest.approx(5.3 + 0.11 * 16)  # only the new block is computed
    hit = sum(s.window.hit_tokens for s in snaps)
    assert hit == 48 and sum(s.window.prefill_tokens for s in snaps) == 64 + 16
    outs_off, _, _ = run(tiny_system(), fleet_config(prefix_cache=False), rows)
    assert outs_off[1].cached_tokens == 0
    assert outs_off[1].first_token_ms - 1000 == pytest.approx(5.3 + 0.11 * 64)


def test_full_hit_still_computes_one_token() -> None:
    rows = [req(0, 32, 2, [1, 2]), req(500, 32, 2, [1, 2])]
    outs, _, _ = run(tiny_system(), fleet_config(), rows)
    assert outs[1].cached_tokens == 31


def test_kv_aware_router_follows_the_cache() -> None:
    rows = [req(0, 64, 2, [1, 2, 3, 4]), req(0, 64, 2, [9, 10, 11, 12]), req(500, 64, 2, [9, 10, 11, 13])]
    outs, _, _ = run(tiny_system(), fleet_config(prefill_workers=2, router="kv_aware"), rows)
    assert outs[2].cached_tokens == 48  # routed to the worker that served request 1
    outs_rr, _, _ = run(tiny_system(), fleet_config(prefill_workers=2, router="round_robin"), rows)
    assert outs_rr[2].cached_tokens == 0  # round robin sends it to worker 0, which never saw the prefix


def test_preemption_under_kv_pressure() -> None:
    system = tiny_system(kv_tokens=250)
    rows = [req(0, 100, 40), req(0, 100, 40)]
    outs, snaps, _ = run(system, fleet_config(), rows)
    assert snaps[-1].preemptions >= 1
    assert outs[1].preemptions >= 1 and outs[0].preemptions == 0  # the newest admitted is preempted
    assert all(o.status == "completed" and o.generated == 40 for o in outs.values())
    assert outs[1].completion_ms > outs[0].completion_ms


def test_request_larger_than_kv_is_dropped() -> None:
    outs, snaps, _ = run(tiny_system(kv_tokens=120), fleet_config(), [req(0, 150, 3), req(1, 20, 3)])
    assert (outs[0].status, outs[0].drop_reason) == ("dropped", "kv_too_large")
    assert outs[1].status == "completed"
    assert snaps[-1].dropped_by_reason["kv_too_large"] == 1


def test_max_num_seqs_limits_the_batch() -> None:
    rows = [req(0, 10, 30) for _ in range(5)]
    _, snaps, _ = run(tiny_system(), fleet_config(max_num_seqs=2), rows, step=20.0)
    assert max(w.decode_requests for s in snaps for w in s.workers if w.role == "decode") == 2
    assert snaps[-1].completed == 5


def test_startup_delay_and_routing_to_active_workers() -> None:
    system = tiny_system(startup_ms=1000.0)
    rows = [req(t, 40, 2) for t in range(0, 3000, 100)]
    seen: list[tuple[float, bool, int]] = []
    fleet = Fleet(system, fleet_config(), rows, block_size=16)
    fleet.advance_to(150)
    result = fleet.apply_scaling(2, 1)
    assert result.started == (2,) and result.draining == ()
    for t in range(200, 3200, 100):
        s = fleet.advance_to(t)
        new = next(w for w in s.workers if w.worker_id == 2)
        seen.append((s.now_ms, new.state == "starting", new.passes))
    for now, starting, passes in seen:
        if now < 150 + 1000:
            assert starting and passes == 0
    assert any(not starting and passes > 0 for _, starting, passes in seen)  # serves once ready


def test_draining_finishes_work_then_disappears() -> None:
    rows = [req(0, 500, 200), req(0, 500, 200)]
    fleet = Fleet(tiny_system(), fleet_config(decode_workers=2), rows, block_size=16)
    s = fleet.advance_to(200)
    assert sum(w.decode_requests for w in s.workers if w.role == "decode") == 2
    result = fleet.apply_scaling(1, 1)
    assert result.draining == (2,)  # the newest decode worker
    s = fleet.advance_to(300)
    assert s.decode.draining == 1 and s.decode.active == 1
    done = fleet.advance_to(1e7)
    assert done.completed == 2 and done.decode.draining == 0
    assert [w.worker_id for w in done.workers if w.role == "decode"] == [1]


def test_scaling_validation() -> None:
    fleet = Fleet(tiny_system(), fleet_config(), [req(0, 10, 2)])
    for bad in [(0, 1), (1, 0), (-1, 2), (1.5, 1)]:
        with pytest.raises(ValueError):
            fleet.apply_scaling(*bad)  # type: ignore[arg-type]


def test_caps_are_clamped_and_reported() -> None:
    fleet = Fleet(h100(), fleet_config(), [req(0, 10, 2)])
    r = fleet.apply_caps(50, 900)
    assert (r.applied_prefill_w, r.applied_decode_w) == (200, 700)
    assert r.clamped_prefill and r.clamped_decode
    r = fleet.apply_caps(450, 300)
    assert not r.clamped_prefill and fleet.caps == (450, 300)


def test_caps_slow_prefill_more_than_decode() -> None:
    rows = [req(i * 50.0, 2000, 100) for i in range(20)]

    def measure(cap: float) -> tuple[float, float]:
        fleet = Fleet(h100(), fleet_config(), rows, block_size=512)
        fleet.apply_caps(cap, cap)
        s = fleet.advance_to(1e9)
        return s.window.ttft.mean, s.window.itl.mean  # type: ignore[return-value]

    ttft_full, itl_full = measure(700)
    ttft_cap, itl_cap = measure(300)
    assert ttft_cap / ttft_full > 1.8  # compute-bound prefill: speed 0.46 at 300 W
    assert itl_cap / itl_full < 1.1  # memory-bound decode: speed 0.95 at 300 W
    assert ttft_cap / ttft_full > itl_cap / itl_full


def test_fail_workers_requeues_and_drops_without_survivors() -> None:
    rows = [req(0, 300, 100), req(0, 300, 100), req(10, 300, 100)]
    outs: dict[int, RequestOutcome] = {}
    fleet = Fleet(tiny_system(), fleet_config(decode_workers=2), rows, block_size=16, on_finish=lambda o: outs.__setitem__(o.index, o))
    s = fleet.advance_to(120)
    assert sum(w.decode_requests for w in s.workers if w.role == "decode") >= 1
    assert fleet.fail_workers("decode", 1) == 1
    s = fleet.advance_to(1e7)
    assert s.completed == 3 and all(o.generated == 100 for o in outs.values())

    outs.clear()
    fleet = Fleet(tiny_system(), fleet_config(), rows, block_size=16, on_finish=lambda o: outs.__setitem__(o.index, o))
    s = fleet.advance_to(5)  # the first pass (requests 0 and 1) is atomic: now is its end
    assert s.now_ms == pytest.approx(5.3 + 0.11 * 600)
    fleet.fail_workers("prefill", 1)  # request 2 is queued on the only prefill worker
    s = fleet.advance_to(1e7)
    assert s.dropped == 1 and s.dropped_by_reason["no_prefill_worker"] == 1 and s.done
    assert (outs[2].status, outs[2].drop_reason) == ("dropped", "no_prefill_worker")
    assert outs[0].status == outs[1].status == "completed"


def test_long_pass_makes_now_overshoot_and_stops_do_not_change_timings() -> None:
    rows = [req(0, 4000, 3), req(1, 30, 5)]
    fleet = Fleet(tiny_system(), fleet_config(max_num_batched_tokens=8192), rows, block_size=16)
    s = fleet.advance_to(10)  # the 4,030-token pass is in flight at t=10 and atomic
    assert s.now_ms == pytest.approx(5.3 + 0.11 * 4000) and s.now_ms > 10
    once, _, _ = run(tiny_system(), fleet_config(), rows)
    many, _, _ = run(tiny_system(), fleet_config(), rows, step=0.7)
    assert once == many


def test_idle_fleet_advances_to_the_tick() -> None:
    fleet = Fleet(tiny_system(), fleet_config(), [req(50_000, 10, 2)])
    s = fleet.advance_to(1000)
    assert s.now_ms == 1000 and not s.done and s.arrived == 0
    assert fleet.advance_to(500).now_ms == 1000  # never goes back


def test_out_of_order_rows_are_refused() -> None:
    fleet = Fleet(tiny_system(), fleet_config(), [req(10, 10, 2), req(5, 10, 2)])
    with pytest.raises(ValueError, match="before its predecessor"):
        fleet.advance_to(100)


@pytest.fixture(scope="module")
def real_replay(request: pytest.FixtureRequest):  # noqa: ANN201
    from conftest import MOONCAKE, shared_trace

    path = shared_trace(MOONCAKE)
    outs: list[RequestOutcome] = []
    rows = list(read_trace(path))
    fleet = Fleet(h100(), fleet_config(prefill_workers=6, decode_workers=2, router="kv_aware"), rows, block_size=512, on_finish=outs.append)
    snaps = []
    t = 0.0
    while True:
        t += 10_000
        snaps.append(fleet.advance_to(t))
        if t == 1_800_000:  # half way: lose a decode node and scale back up
            fleet.fail_workers("decode", 1)
            fleet.apply_scaling(6, 2)
        if snaps[-1].done:
            break
    return rows, outs, snaps


def test_real_trace_conservation(real_replay) -> None:  # noqa: ANN001
    rows, outs, snaps = real_replay
    last = snaps[-1]
    assert last.arrived == len(rows) == 12031
    assert last.completed + last.dropped + last.in_flight == last.arrived
    assert last.in_flight == 0 and last.done
    assert sorted(o.index for o in outs) == list(range(len(rows)))  # every request ends exactly once
    completed = [o for o in outs if o.status == "completed"]
    assert all(o.generated == rows[o.index].output_length for o in completed)
    # tokens in = tokens processed (no recompute: preempted requests keep their KV)
    prefill_tokens = sum(s.window.prefill_tokens for s in snaps)
    assert prefill_tokens == sum(rows[o.index].input_length - o.cached_tokens for o in completed)
    decode_tokens = sum(s.window.decode_tokens for s in snaps)
    assert decode_tokens == sum(rows[o.index].output_length - 1 for o in completed)
    assert sum(s.window.itl.count for s in snaps) == decode_tokens
    assert sum(s.window.hit_tokens for s in snaps) == sum(o.cached_tokens for o in outs)


def test_real_trace_littles_law(real_replay) -> None:  # noqa: ANN001
    rows, outs, snaps = real_replay
    horizon = snaps[-1].now_ms
    # time-average number in the system, sampled every 10 s, against arrival rate x mean sojourn
    samples = [s.in_flight for s in snaps]
    l_sampled = sum(samples) / len(samples)
    sojourn = [o.completion_ms - o.arrival_ms for o in outs if o.status == "completed"]
    lam = len(sojourn) / horizon
    l_little = lam * (sum(sojourn) / len(sojourn))
    assert math.isclose(l_sampled, l_little, rel_tol=0.05), (l_sampled, l_little)
