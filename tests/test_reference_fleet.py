"""Pin the reference stepper (tests/reference_fleet.py) to docs/fleet_model.md.

Every expected number below is computed by hand from the formulas in the spec,
with the small hand-made system ``TINY`` (unless a test says otherwise):

    prefill pass  = 10 + 0.5 * sum(n) + 0.001 * sum(n * (ctx + n/2))   ms
    decode step   = 5 + 0.25 * b + 0.01 * used                          ms
    KV hand-off   = 2 + 0.1 * isl                                       ms
    start-up      = 1000 ms; speed 1.0 at the initial (max) cap

Worker ids: the initial fleet gets 0..n_p-1 for prefill, then n_p.. for decode.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pytest import approx

from reference_fleet import RefOutcome, ReferenceFleet
from replaylib.scenario.model import FleetConfig
from replaylib.scenario.system import load_system
from replaylib.trace.model import Request
from sim_helpers import hand_system

ROOT = Path(__file__).resolve().parents[1]
H100 = load_system(ROOT / "systems" / "h100_sxm_analytic.yaml")


TINY = hand_system()


def fleet_cfg(**kw) -> FleetConfig:
    base = dict(prefill_workers=1, decode_workers=1, router="round_robin", max_num_batched_tokens=8192, max_num_seqs=16)
    base.update(kw)
    return FleetConfig(**base)


def req(ts, isl, osl, hash_ids=()):
    return Request(timestamp=ts, input_length=isl, output_length=osl, hash_ids=list(hash_ids))


class Run:
    """A reference fleet plus the outcomes reported through on_finish."""

    def __init__(self, requests, system=TINY, block_size=512, **cfg):
        self.finished: dict[int, RefOutcome] = {}
        self.fleet = ReferenceFleet(system, fleet_cfg(**cfg), iter(requests), block_size=block_size, on_finish=self._on_finish)

    def _on_finish(self, o: RefOutcome) -> None:
        assert o.index not in self.finished, "on_finish called twice for one request"
        self.finished[o.index] = o

    def to_end(self):
        return self.fleet.advance_to(1e9)

    def routes(self, role):
        return [(i, w) for _, i, r, w in self.fleet.routing_log if r == role]


# --------------------------------------------------------------------------- single request


def test_single_request_ttft_transfer_and_steps():
    run = Run([req(10, 100, 4)])
    snap = run.to_end()
    o = run.finished[0]
    # pass: n=100, ctx=0 -> 10 + 0.5*100 + 0.001*100*50 = 10 + 50 + 5 = 65 -> first token 75
    assert o.first_token_ms == approx(75.0)
    # hand-off 2 + 0.1*100 = 12 -> placed at 87; ctx = isl + generated = 101
    # step 1: 5 + 0.25 + 0.01*101 = 6.26 -> 93.26 (generated 2, used 102)
    # step 2: 5.25 + 1.02 = 6.27 -> 99.53 (generated 3, used 103)
    # step 3: 5.25 + 1.03 = 6.28 -> 105.81 (generated 4 == osl)
    assert o.completion_ms == approx(75.0 + 12.0 + 6.26 + 6.27 + 6.28)
    assert (o.status, o.drop_reason, o.generated, o.preemptions, o.cached_tokens) == ("completed", None, 4, 0, 0)
    assert o.arrival_ms == 10.0
    assert (snap.ttft_count, snap.ttft_sum_ms) == (1, approx(65.0))
    assert (snap.itl_count, snap.itl_sum_ms) == (3, approx(6.26 + 6.27 + 6.28))
    assert (snap.hit_tokens, snap.lookup_tokens) == (0, 100)
    assert (snap.arrived, snap.completed, snap.dropped, snap.in_flight, snap.done) == (1, 1, 0, 0, True)


def test_outcome_has_exactly_the_spec_fields():
    assert RefOutcome.__struct_fields__ == (
        "index", "arrival_ms", "status", "drop_reason", "first_token_ms",
        "completion_ms", "generated", "preemptions", "cached_tokens",
    )  # fmt: skip


def test_queueing_adds_to_ttft_and_osl_1_completes_at_first_token():
    run = Run([req(10, 100, 1), req(20, 40, 1)])
    snap = run.to_end()
    a, b = run.finished[0], run.finished[1]
    # a: pass 10..75 (65 ms, as above); osl 1 -> completes at its first token, no decode
    assert a.first_token_ms == a.completion_ms == approx(75.0)
    assert a.generated == 1
    # b waits for the worker: pass 75..105.8 = 10 + 0.5*40 + 0.001*40*20 = 10 + 20 + 0.8 = 30.8
    assert b.first_token_ms == b.completion_ms == approx(105.8)
    assert snap.ttft_sum_ms == approx(65.0 + 85.8)
    assert snap.itl_count == 0


def test_simultaneous_arrivals_share_one_pass():
    run = Run([req(10, 100, 1), req(10, 60, 1)])
    run.to_end()
    # sum n = 160 -> 80 ms; sum n(ctx+n/2) = 100*50 + 60*30 = 6800 -> 6.8 ms; 10 + 80 + 6.8 = 96.8
    assert run.finished[0].first_token_ms == approx(106.8)
    assert run.finished[1].first_token_ms == approx(106.8)


def test_arrival_at_a_pass_end_joins_the_next_pass_at_that_time():
    # pass ends are applied before arrivals at the same time; then the scheduling phase
    run = Run([req(10, 100, 1), req(75, 40, 1)])
    run.to_end()
    assert run.finished[0].first_token_ms == approx(75.0)
    assert run.finished[1].first_token_ms == approx(75.0 + 30.8)


# --------------------------------------------------------------------------- chunked prefill


def test_chunked_prefill_splits_a_long_prompt_over_passes():
    run = Run([req(10, 20, 1), req(10, 5, 1)], max_num_batched_tokens=8)
    # queue [A(20), B(5)], budget 8 per pass
    # pass 1: A n=8 ctx=0  -> 10 + 4 + 0.001*8*4  = 14.032   (B not reached: budget used up)
    # pass 2: A n=8 ctx=8  -> 10 + 4 + 0.001*8*12 = 14.096
    # pass 3: A n=4 ctx=16, B n=4 ctx=0 -> 10 + 4 + 0.001*(4*18 + 4*2) = 14.08 -> A's first token
    # pass 4: B n=1 ctx=4  -> 10 + 0.5 + 0.001*1*4.5 = 10.5045 -> B's first token
    snap = run.fleet.advance_to(11)  # pass 1 straddles 11 -> the fleet stops at its end
    assert snap.now_ms == approx(24.032)
    assert snap.workers[0] == (0, "prefill", "active", 2, 0, 0)
    assert snap.lookup_tokens == 20  # only A has been looked up so far
    run.to_end()
    assert run.finished[0].first_token_ms == approx(10 + 14.032 + 14.096 + 14.08)
    assert run.finished[1].first_token_ms == approx(10 + 14.032 + 14.096 + 14.08 + 10.5045)


# --------------------------------------------------------------------------- prefix cache


def _cache_trace():
    return [
        req(10, 20, 1, [1, 2, 3, 4, 5]),
        req(100, 22, 1, [1, 2, 3, 9, 10, 11]),
        req(200, 20, 1, [1, 2, 3, 4, 5]),
    ]


def test_prefix_cache_hit_shortens_the_pass():
    run = Run(_cache_trace(), block_size=4)
    snap = run.to_end()
    # A: 10 + 10 + 0.001*20*10 = 20.2 -> 30.2; its 5 blocks are inserted
    assert run.finished[0].first_token_ms == approx(30.2)
    # B: hits 3 -> cached min(12, 21) = 12; n = 10 at ctx 12 -> 10 + 5 + 0.001*10*17 = 15.17
    assert run.finished[1].cached_tokens == 12
    assert run.finished[1].first_token_ms == approx(115.17)
    # C: hits 5 -> cached min(20, 19) = 19; n = 1 at ctx 19 -> 10 + 0.5 + 0.001*19.5 = 10.5195
    assert run.finished[2].cached_tokens == 19
    assert run.finished[2].first_token_ms == approx(210.5195)
    assert (snap.hit_tokens, snap.lookup_tokens) == (0 + 12 + 19, 20 + 22 + 20)


def test_prefix_cache_off_computes_everything():
    run = Run(_cache_trace(), block_size=4, prefix_cache=False)
    snap = run.to_end()
    # B: 22 tokens -> 10 + 11 + 0.001*22*11 = 21.242
    assert run.finished[1].cached_tokens == 0
    assert run.finished[1].first_token_ms == approx(121.242)
    # C: 10 + 10 + 0.2 = 20.2
    assert run.finished[2].first_token_ms == approx(220.2)
    # SPEC: lookups still happen and are counted (with cached = 0)
    assert (snap.hit_tokens, snap.lookup_tokens) == (0, 62)


def test_lru_eviction_is_tail_first():
    # cache capacity = 20 // 4 = 5 block ids; all osl 1, so the tiny KV capacity never matters
    system = hand_system(capacity_tokens=20)
    trace = [
        req(10, 12, 1, [1, 2, 3]),
        req(100, 8, 1, [4, 5]),
        req(200, 8, 1, [1, 6]),
        req(300, 8, 1, [2, 3]),
        req(400, 8, 1, [5, 4]),
    ]
    run = Run(trace, system=system, block_size=4)
    f = run.fleet
    # LRU ... MRU.  Insert walks last to first, so a request's first block is the freshest.
    f.advance_to(50)
    assert f.prefix_cache_blocks(0) == [3, 2, 1]
    f.advance_to(150)
    assert f.prefix_cache_blocks(0) == [3, 2, 1, 5, 4]
    # [1, 6]: hit 1 (touched) -> [3,2,5,4,1]; insert 6,1 -> [3,2,5,4,6,1]; evict 3 (R0's tail)
    f.advance_to(250)
    assert f.prefix_cache_blocks(0) == [2, 5, 4, 6, 1]
    assert run.finished[2].cached_tokens == 4
    # [2, 3]: hit 1 only (3 was evicted) -> cached 4; touch 2, insert 3,2 -> evict 5 (R1's tail)
    f.advance_to(350)
    assert run.finished[3].cached_tokens == 4
    assert f.prefix_cache_blocks(0) == [4, 6, 1, 3, 2]
    # [5, 4]: block 5 is gone, so no leading hit even though 4 is cached
    f.advance_to(450)
    assert run.finished[4].cached_tokens == 0
    assert f.prefix_cache_blocks(0) == [1, 3, 2, 4, 5]


# --------------------------------------------------------------------------- routing


def test_round_robin():
    run = Run([req(10, 10, 1), req(10, 10, 1), req(10, 10, 1)], prefill_workers=2)
    snap = run.fleet.advance_to(10)
    # passes started at t=10 are not "in flight at t" (they did not start before t): now == t
    assert snap.now_ms == 10.0
    assert run.routes("prefill") == [(0, 0), (1, 1), (2, 0)]
    assert snap.workers == [
        (0, "prefill", "active", 2, 0, 0),
        (1, "prefill", "active", 1, 0, 0),
        (2, "decode", "active", 0, 0, 0),
    ]


def test_least_loaded():
    trace = [req(10, 100, 1), req(10, 30, 1), req(10, 10, 1), req(10, 10, 1), req(20, 5, 1)]
    run = Run(trace, prefill_workers=2, router="least_loaded")
    run.to_end()
    # queued tokens: r0 -> w0 (0 vs 0, lowest id); r1 -> w1 (100 vs 0); r2 -> w1 (100 vs 30);
    # r3 -> w1 (100 vs 40); at t=20 both passes are in flight (done still 0): r4 -> w1 (100 vs 50)
    assert run.routes("prefill") == [(0, 0), (1, 1), (2, 1), (3, 1), (4, 1)]


def _kv_aware_trace():
    return [
        req(10, 20, 1, [1, 2, 3, 4, 5]),
        req(200, 12, 1, [20, 21, 22]),
        req(200, 40, 1, [1, 2, 3, 4, 5, 30, 31, 32, 33, 34]),
    ]


def test_kv_aware_prefers_the_worker_with_the_prefix():
    run = Run(_kv_aware_trace(), block_size=4, prefill_workers=2, router="kv_aware")
    run.to_end()
    # r0 -> w0 (20 vs 20, lowest id).  r1 (no overlap anywhere) -> w0 (12 vs 12).
    # r2: w0 = queued 12 + (40 - min(5*4, 40)) = 32;  w1 = 0 + 40 = 40  -> w0
    assert run.routes("prefill") == [(0, 0), (1, 0), (2, 0)]
    assert run.finished[2].cached_tokens == 20
    # least_loaded sends r2 to the idle worker instead (12 vs 0)
    run = Run(_kv_aware_trace(), block_size=4, prefill_workers=2, router="least_loaded")
    run.to_end()
    assert run.routes("prefill") == [(0, 0), (1, 0), (2, 1)]
    assert run.finished[2].cached_tokens == 0


def test_kv_aware_without_prefix_cache_routes_by_load_alone():
    # with prefix_cache false there is no cache: overlap 0 everywhere, so r2 goes to the
    # idle worker 1 (w0 = 12 queued + 40 = 52 vs w1 = 0 + 40 = 40)
    run = Run(_kv_aware_trace(), block_size=4, prefill_workers=2, router="kv_aware", prefix_cache=False)
    run.to_end()
    assert run.routes("prefill") == [(0, 0), (1, 0), (2, 1)]
    assert run.finished[2].cached_tokens == 0
    assert run.fleet.prefix_cache_blocks(0) == [] and run.fleet.prefix_cache_blocks(1) == []


def test_decode_placement_prefers_most_free_kv():
    trace = [req(10, 100, 50), req(200, 10, 5), req(300, 10, 5)]
    run = Run(trace, decode_workers=2)
    run.to_end()
    # decode ids 1, 2.  r0 -> 1 (tie, lowest id); r1 -> 2 (1 holds r0's KV);
    # r2 -> 2 (r1 completed by then, 2 is empty; 1 still holds r0 (~600 ms of steps))
    assert run.routes("decode") == [(0, 1), (1, 2), (2, 2)]


def test_round_robin_counter_ignores_decode():
    run = Run([req(10, 10, 3), req(200, 10, 3), req(400, 10, 3)], prefill_workers=2, decode_workers=2)
    run.to_end()
    assert run.routes("prefill") == [(0, 0), (1, 1), (2, 0)]


# --------------------------------------------------------------------------- decode admission


def test_admission_limited_by_max_num_seqs():
    run = Run([req(10, 10, 2), req(10, 10, 3), req(10, 10, 2)], max_num_seqs=2)
    snap = run.to_end()
    # one pass: sum n = 30 -> 15; 3*10*5 = 150 -> 0.15; 10 + 15 + 0.15 = 25.15 -> first tokens 35.15
    # hand-off 2 + 1 = 3 -> 38.15; admit r0, r1 (max 2), used 11 + 11 = 22
    # step 1: 5 + 0.5 + 0.22 = 5.72 -> 43.87: r0 done (2/2), r1 at 2; used 24 - 12 = 12; admit r2 -> 23
    # step 2: 5 + 0.5 + 0.23 = 5.73 -> 49.60: r1 done (3/3), r2 done (2/2)
    assert run.finished[0].completion_ms == approx(38.15 + 5.72)
    assert run.finished[1].completion_ms == approx(38.15 + 5.72 + 5.73)
    assert run.finished[2].completion_ms == approx(38.15 + 5.72 + 5.73)
    assert (snap.itl_count, snap.itl_sum_ms) == (4, approx(2 * 5.72 + 2 * 5.73))
    assert snap.preemptions == 0


def test_admission_limited_by_kv():
    system = hand_system(capacity_tokens=100)
    run = Run([req(10, 40, 2), req(10, 40, 2), req(10, 40, 2)], system=system)
    # pass: 3*40 -> 10 + 60 + 0.001*3*40*20 = 72.4 -> 82.4; hand-off 2 + 4 = 6 -> 88.4
    # ctx 41 each: r0 0+41+0+1 <= 100; r1 41+41+1+1 = 84 <= 100; r2 82+41+2+1 = 126 > 100 waits
    # step: 5 + 0.5 + 0.82 = 6.32 -> 94.72: r0, r1 complete; r2 admitted (used 41)
    snap = run.fleet.advance_to(90)  # the step straddles 90
    assert snap.now_ms == approx(94.72)
    assert snap.workers[1] == (1, "decode", "active", 0, 1, 41)
    run.to_end()
    assert run.finished[0].completion_ms == approx(94.72)
    assert run.finished[1].completion_ms == approx(94.72)
    # 5 + 0.25 + 0.41 = 5.66
    assert run.finished[2].completion_ms == approx(94.72 + 5.66)


def test_preemption_under_kv_pressure():
    system = hand_system(capacity_tokens=100)
    run = Run([req(10, 40, 12), req(10, 40, 12)], system=system)
    snap = run.to_end()
    # pass: 10 + 40 + 0.001*2*40*20 = 51.6 -> 61.6; hand-off 6 -> 67.6; both admitted (used 82)
    # steps 1..9 (b=2): used at step k = 82 + 2(k-1): sum = 9*5.5 + 0.01*(9*82 + 72) = 57.6 -> 125.2
    # after step 9: ctx 50 each, used 100, 100 + 2 > 100 -> preempt r1 (admitted last), used 50
    # step 10 (b=1, used 50): 5.75 -> 130.95; r1 can't come back: 51 + 50 + 1 + 1 = 103 > 100
    # step 11 (used 51): 5.76 -> 136.71: r0 at 12/12 completes; r1 re-admitted (50 + 1 <= 100)
    # step 12 (used 50): 5.75 -> 142.46; step 13 (used 51): 5.76 -> 148.22: r1 completes
    assert run.finished[0].completion_ms == approx(136.71)
    assert run.finished[1].completion_ms == approx(148.22)
    assert (run.finished[0].preemptions, run.finished[1].preemptions) == (0, 1)
    assert run.finished[1].generated == 12
    assert snap.preemptions == 1
    assert snap.itl_count == 9 * 2 + 4


def test_preempted_request_goes_back_to_the_front():
    system = hand_system(capacity_tokens=100)
    # as above, plus r2 (isl 5, osl 2) waiting behind (max_num_seqs 2 keeps it out of the batch)
    run = Run([req(10, 40, 12), req(10, 40, 12), req(20, 5, 2)], system=system, max_num_seqs=2)
    run.to_end()
    # r2's pass runs after the first: 61.6 + (10 + 2.5 + 0.001*5*2.5) = 74.1125
    assert run.finished[2].first_token_ms == approx(74.1125)
    # r0/r1 steps as in the previous test: r1 preempted at 125.2 -> waiting [r1, r2].
    # At 130.95 the head r1 does not fit (51 + 50 + 1 + 1 > 100), so r2 (which would fit:
    # 51 + 6 + 1 + 1 <= 100) must wait too.  At 136.71 r0 completes, r1 (ctx 50) and r2 (ctx 6)
    # are admitted: step 5 + 0.5 + 0.01*56 = 6.06 -> 142.77: r2 completes (ctx 7 freed);
    # step 5.25 + 0.01*51 = 5.76 -> 148.53: r1 completes.
    assert run.finished[0].completion_ms == approx(136.71)
    assert run.finished[2].completion_ms == approx(142.77)
    assert run.finished[1].completion_ms == approx(148.53)
    assert [run.finished[i].preemptions for i in range(3)] == [0, 1, 0]


def test_kv_too_large():
    system = hand_system(capacity_tokens=100)
    run = Run([req(10, 100, 5), req(10, 99, 5), req(10, 98, 2)], system=system)
    snap = run.to_end()
    # ctx = isl + 1: 101 + 1 > 100 and 100 + 1 > 100 -> dropped; 99 + 1 <= 100 -> admitted
    assert (run.finished[0].status, run.finished[0].drop_reason) == ("dropped", "kv_too_large")
    assert (run.finished[1].status, run.finished[1].drop_reason) == ("dropped", "kv_too_large")
    assert run.finished[0].first_token_ms is not None and run.finished[0].completion_ms is None
    assert run.finished[2].status == "completed"
    assert snap.dropped == 2 and snap.dropped_by_reason["kv_too_large"] == 2


def test_request_outgrowing_kv_alone_is_dropped_when_preemption_empties_the_batch():
    system = hand_system(capacity_tokens=100)
    run = Run([req(10, 50, 60), req(5000, 10, 1)], system=system)
    # r0 alone: after 49 steps ctx = 100, 100 + 1 > 100 -> preempted, the batch is empty, so
    # admission runs once more and drops it at once (batch empty and ctx + 1 > C).
    snap = run.fleet.advance_to(4000)
    assert (snap.in_flight, snap.preemptions, snap.dropped) == (0, 1, 1)
    assert snap.workers[1] == (1, "decode", "active", 0, 0, 0)
    o = run.finished[0]
    assert (o.status, o.drop_reason, o.generated, o.preemptions) == ("dropped", "kv_too_large", 50, 1)
    snap = run.to_end()
    assert snap.done and run.finished[1].status == "completed"


# --------------------------------------------------------------------------- scaling


def test_draining_prefill_finishes_its_work_then_is_gone():
    run = Run([req(10, 100, 1), req(10, 60, 1), req(20, 10, 1)], prefill_workers=2)
    f = run.fleet
    f.advance_to(10)
    change = f.apply_scaling(1, 1)
    assert change["prefill"]["draining"] == [1]
    snap = f.snapshot()
    assert snap.workers[1] == (1, "prefill", "draining", 1, 0, 0)
    snap = run.to_end()
    assert [w[0] for w in snap.workers] == [0, 2]
    # w1 finished r1: 10 + 0.5*60 + 0.001*60*30 = 41.8 -> 51.8
    assert run.finished[1].first_token_ms == approx(51.8)
    # r2 went to w0 (the only accepting worker): queued behind r0 (10..75): 10 + 5 + 0.05 = 15.05
    assert run.routes("prefill") == [(0, 0), (1, 1), (2, 0)]
    assert run.finished[2].first_token_ms == approx(90.05)


def test_draining_an_idle_worker_is_immediate():
    run = Run([req(10, 10, 2)], decode_workers=2)
    run.fleet.apply_scaling(1, 1)
    assert [w[0] for w in run.fleet.snapshot().workers] == [0, 1]


def test_draining_decode_worker_finishes_its_requests():
    run = Run([req(10, 10, 20), req(10, 10, 20), req(200, 10, 5)], decode_workers=2)
    f = run.fleet
    snap = f.advance_to(40)  # hand-offs at 10 + 20.1 + 3 = 33.1: r0 -> 1, r1 -> 2
    assert [w[4] for w in snap.workers[1:]] == [1, 1]
    f.apply_scaling(1, 1)
    snap = f.snapshot()
    assert snap.workers[2][:3] == (2, "decode", "draining")
    snap = run.to_end()
    assert run.finished[1].status == "completed" and run.finished[1].generated == 20
    assert run.routes("decode") == [(0, 1), (1, 2), (2, 1)]
    assert [w[0] for w in snap.workers] == [0, 1]


def test_apply_scaling_rejects_below_one():
    f = Run([]).fleet
    for args in [(0, 1), (1, 0), (-1, 1), (1, -2)]:
        with pytest.raises(ValueError):
            f.apply_scaling(*args)


def test_startup_delay_new_worker_used_only_when_ready():
    trace = [req(10, 10, 1), req(20, 10, 1), req(1010, 10, 1), req(1020, 10, 1)]
    run = Run(trace)
    f = run.fleet
    f.advance_to(5)
    change = f.apply_scaling(2, 1)
    assert change["prefill"]["created"] == [2]  # ids 0 (prefill) and 1 (decode) are taken
    snap = f.advance_to(500)
    assert snap.workers[2] == (2, "prefill", "starting", 0, 0, 0)
    snap = f.advance_to(1005.5)
    assert snap.workers[2][:3] == (2, "prefill", "active")
    run.to_end()
    # counter c: 0 -> [w0][0]; 1 -> [w0][0]; 2 -> [w0, w2][0]; 3 -> [w0, w2][1]
    assert run.routes("prefill") == [(0, 0), (1, 0), (2, 0), (3, 2)]


def test_only_starting_workers_hold_the_work_until_ready():
    run = Run([req(10, 100, 1), req(20, 100, 1)])
    f = run.fleet
    f.advance_to(5)
    assert f.fail_workers("prefill", 1) == 1
    f.advance_to(15)
    assert (run.finished[0].status, run.finished[0].drop_reason) == ("dropped", "no_prefill_worker")
    f.apply_scaling(1, 1)  # now = 15 -> worker 2 starting, ready at 1015
    run.to_end()
    assert run.routes("prefill") == [(1, 2)]
    # pass starts at 1015: 65 ms
    assert run.finished[1].first_token_ms == approx(1080.0)


def test_zero_startup_delay_is_active_at_once():
    run = Run([req(10, 10, 1)], system=hand_system(startup_delay_ms=0.0))
    run.fleet.apply_scaling(2, 1)
    assert run.fleet.snapshot().workers[2][:3] == (2, "prefill", "active")


# --------------------------------------------------------------------------- caps


def test_caps_slow_prefill_more_than_decode_with_h100_curves():
    trace = [req(10, 1000, 3)]
    plain = Run(trace, system=H100)
    plain.to_end()
    capped = Run(trace, system=H100)
    assert capped.fleet.apply_caps(300, 300) == {"prefill": (300, False), "decode": (300, False)}
    capped.to_end()
    # pass: 8 + 0.089*1000 + 2.65e-6*1000*500 = 98.325 ms; speed at 300 W: prefill 0.46
    p, c = plain.finished[0], capped.finished[0]
    assert p.first_token_ms - 10 == approx(98.325)
    assert c.first_token_ms - 10 == approx(98.325 / 0.46)
    # two decode steps: 14 + 0.15 + 3.28e-5 * 1001 and ... * 1002; speed at 300 W: decode 0.95
    steps = (14.15 + 3.28e-5 * 1001) + (14.15 + 3.28e-5 * 1002)
    transfer = 2.0 + 1.64e-3 * 1000
    assert p.completion_ms - p.first_token_ms == approx(transfer + steps)
    assert c.completion_ms - c.first_token_ms == approx(transfer + steps / 0.95)
    prefill_slowdown = (c.first_token_ms - 10) / (p.first_token_ms - 10)
    decode_slowdown = (c.completion_ms - c.first_token_ms - transfer) / steps
    assert prefill_slowdown == approx(1 / 0.46) and decode_slowdown == approx(1 / 0.95)
    assert prefill_slowdown > 2 * decode_slowdown


def test_apply_caps_clamps_and_reports():
    f = Run([], system=H100).fleet
    assert f.apply_caps(100, 900) == {"prefill": (200, True), "decode": (700, True)}
    assert f.apply_caps(450.0, 700.0) == {"prefill": (450.0, False), "decode": (700.0, False)}


def test_cap_applies_at_pass_start_not_to_work_in_flight():
    run = Run([req(10, 1000, 2), req(20, 1000, 1)], system=H100)
    f = run.fleet
    assert f.advance_to(10).now_ms == 10.0  # r0's pass started at 10 at full speed
    f.apply_caps(200, 200)  # prefill 0.32, decode 0.62
    run.to_end()
    r0, r1 = run.finished[0], run.finished[1]
    assert r0.first_token_ms == approx(10 + 98.325)
    # r1's pass starts at r0's end, with the cap: 98.325 / 0.32
    assert r1.first_token_ms == approx(10 + 98.325 + 98.325 / 0.32)
    # r0's one decode step starts after the cap
    assert r0.completion_ms == approx(r0.first_token_ms + 2.0 + 1.64 + (14.15 + 3.28e-5 * 1001) / 0.62)


# --------------------------------------------------------------------------- faults


def test_fail_prefill_worker_reroutes_its_queue():
    run = Run([req(10, 100, 1), req(10, 60, 1)], prefill_workers=2)
    f = run.fleet
    f.advance_to(10)  # r0 -> w0, r1 -> w1, both passes started at 10
    assert f.fail_workers("prefill", 1) == 1
    assert [w[0] for w in f.snapshot().workers] == [0, 2]
    run.to_end()
    # r1 re-routed to w0 at 10, behind r0 (10..75): 41.8 ms -> 116.8 instead of 51.8
    assert run.finished[1].first_token_ms == approx(116.8)
    assert run.routes("prefill") == [(0, 0), (1, 1), (1, 0)]


def test_fail_decode_worker_replaces_requests_keeping_generated():
    run = Run([req(10, 10, 5), req(10, 10, 5)], decode_workers=2)
    f = run.fleet
    # pass: 10 + 10 + 0.001*2*10*5 = 20.1 -> 30.1; hand-off 3 -> 33.1: r0 -> 1, r1 -> 2
    # steps on each (b=1): 5.25 + 0.11 = 5.36 -> 38.46; 5.37 -> 43.83 (generated 3)
    snap = f.advance_to(40)  # steps straddle 40
    assert snap.now_ms == approx(43.83)
    assert f.fail_workers("decode", 1) == 1  # worker 2: r1 (generated 3, its step discarded) -> 1
    # worker 1: step 43.83 -> +5.38 = 49.21 (r0 gen 4, used 14); admit r1 (ctx 13): used 27
    # step 5 + 0.5 + 0.27 = 5.77 -> 54.98: r0 completes, r1 gen 4, used 14
    # step 5.25 + 0.14 = 5.39 -> 60.37: r1 completes
    run.to_end()
    assert run.finished[0].completion_ms == approx(54.98)
    assert run.finished[1].completion_ms == approx(60.37)
    assert (run.finished[1].generated, run.finished[1].preemptions) == (5, 0)


def test_fail_without_survivor_drops():
    run = Run([req(10, 100, 5), req(10, 100, 5), req(500, 10, 5)])
    f = run.fleet
    f.advance_to(10)
    assert f.fail_workers("decode", 5) == 1  # fewer exist
    assert f.fail_workers("decode", 1) == 0
    f.advance_to(200)
    assert [run.finished[i].drop_reason for i in (0, 1)] == ["no_decode_worker"] * 2
    f.advance_to(500)  # r2 arrives; its pass 10 + 5 + 0.05 runs to 515.05
    assert f.fail_workers("prefill", 1) == 1
    o = run.finished[2]
    assert (o.status, o.drop_reason, o.first_token_ms) == ("dropped", "no_prefill_worker", None)
    snap = run.to_end()
    assert (snap.dropped, snap.completed, snap.in_flight, snap.done) == (3, 0, 0, True)
    assert snap.workers == []


# --------------------------------------------------------------------------- advance_to


def test_advance_to_straddling_pass_and_identical_processing():
    trace = [req(10, 100, 1), req(50, 60, 1), req(60, 20, 30)]
    run = Run(trace)
    f = run.fleet
    snap = f.advance_to(30)  # r0's pass 10..75 is in flight at 30
    assert snap.now_ms == approx(75.0)
    assert (snap.completed, snap.arrived) == (1, 3)
    # r1 + r2 started a pass at 75 (in flight at now: not waited for)
    # 10 + 0.5*80 + 0.001*(60*30 + 20*10) = 10 + 40 + 2 = 52 -> 127
    assert snap.workers[0] == (0, "prefill", "active", 2, 0, 0)
    assert f.advance_to(70).now_ms == approx(75.0)  # t <= now: nothing happens
    assert f.advance_to(80).now_ms == approx(127.0)
    run.to_end()
    once = Run(trace)
    once.to_end()
    assert run.finished == once.finished


def test_first_advance_to_zero_processes_nothing():
    run = Run([req(0, 10, 1)])
    snap = run.fleet.advance_to(0)
    # SPEC: the clock starts at 0 and "if t <= current time, nothing is processed"
    assert (snap.now_ms, snap.arrived) == (0.0, 0)
    snap = run.fleet.advance_to(1)
    assert snap.arrived == 1


# --------------------------------------------------------------------------- conservation


def test_conservation_under_scaling_and_faults():
    rng = random.Random(7)
    trace, t = [], 0
    for _ in range(200):
        t += rng.choice([0, 0, 1, 3, 7, 20])
        isl = rng.randint(1, 700)
        fam = rng.randrange(3)
        hashes = [100 * fam + k for k in range(min(3, -(-isl // 16)))] + [rng.randrange(10**6, 10**7) for _ in range(-(-isl // 16) - 3)]
        trace.append(req(t, isl, rng.randint(1, 120), hashes))
    system = hand_system(capacity_tokens=600, startup_delay_ms=150.0)
    run = Run(trace, system=system, block_size=16, prefill_workers=2, decode_workers=2, router="kv_aware", max_num_batched_tokens=256, max_num_seqs=4)
    f = run.fleet
    t = 0.0
    for i in range(120):
        t += rng.uniform(1, 30)
        snap = f.advance_to(t)
        assert snap.now_ms >= t
        assert snap.completed + snap.dropped + snap.in_flight == snap.arrived
        assert snap.completed + snap.dropped == len(run.finished)
        assert snap.in_flight == len(f.outcomes_in_flight())
        assert all(o.status == "in_flight" for o in f.outcomes_in_flight())
        for w in snap.workers:
            assert w[5] <= 600 and w[4] <= 4
        op = rng.randrange(6)
        if op == 0:
            f.apply_scaling(rng.randint(1, 3), rng.randint(1, 3))
        elif op == 1:
            f.apply_caps(rng.uniform(150, 750), rng.uniform(150, 750))
        elif op == 2 and i % 4 == 0:
            f.fail_workers(rng.choice(["prefill", "decode"]), rng.randint(0, 1))
        t = max(t, snap.now_ms)
    f.apply_scaling(2, 2)
    snap = run.to_end()
    assert snap.completed + snap.dropped + snap.in_flight == snap.arrived == 200
    assert snap.preemptions > 0 and snap.dropped > 0 and snap.completed > 0
    done = [o for o in run.finished.values() if o.status == "completed"]
    assert all(o.generated == trace[o.index].output_length for o in done)
    assert all(o.first_token_ms <= o.completion_ms for o in done)
