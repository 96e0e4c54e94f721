"""Differential tests: the fast ``replaylib.sim.Fleet`` against the token-by-token reference.

Both fleets get identical inputs (system, fleet config, trace, block size and a
script of ``advance_to`` / ``apply_scaling`` / ``apply_caps`` / ``fail_workers``
calls) and must agree on every request's outcome and on the snapshot counters
after every ``advance_to``.  Timing constants are drawn non-round so step and
pass boundaries do not coincide with the integer arrival times by accident.

``Fleet`` is imported by the ``fast_fleet_cls`` fixture, so the reference-only
property test runs on its own, and if ``replaylib.sim`` cannot be imported the
fast-fleet tests error at set-up before any example is generated.

The closed-loop tests replay traces with sessions (``session_id`` + ``delay``)
through both fleets with ``closed_loop=ClosedLoop(...)``: the reference reads the
whole trace up front and releases each turn when its predecessor finishes, the
fast fleet streams it through a look-ahead window; they must agree on every
turn's issue time and outcome, and on the held / abandoned turn counts.

The ``test_pinned_*`` scenarios at the end are small deterministic cases, one
per divergence found so far; several pin a rule that docs/fleet_model.md once
left ambiguous.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_fleet import ReferenceFleet
from sim_helpers import hand_system
from replaylib.scenario.model import FleetConfig
from replaylib.scenario.system import (
    DecodeCurve,
    DecodeTable,
    DecodeTiming,
    KvSpec,
    PrefillCurve,
    PrefillTable,
    PrefillTiming,
    TableTiming,
    Timing,
    TransferTiming,
    load_system,
)
from replaylib.sim.arrivals import ClosedLoop
from replaylib.timing.table import default_pass_overhead_ms
from replaylib.trace.model import Request

ROOT = Path(__file__).resolve().parents[1]
H100 = load_system(ROOT / "systems" / "h100_sxm_analytic.yaml")
FINAL_MS = 1e12  # "run to the end"
REL, ABS = 1e-9, 1e-6

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
def fast_fleet_cls():
    from replaylib.sim import Fleet  # the fast, event-skipping fleet under test

    return Fleet


# --------------------------------------------------------------------------- strategies


GOLDEN = 0.6180339887498949


def nonround(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats in [lo, hi) that are never "round", even when shrunk (k = 0 -> lo + 0.1234567 * span)."""
    return st.integers(0, 10**9).map(lambda k: lo + (hi - lo) * ((0.1234567 + k * GOLDEN) % 1.0))


@st.composite
def systems(draw) -> Any:
    """h100_sxm with non-round timing constants, sometimes a tiny KV capacity."""
    timing = Timing(
        prefill=PrefillTiming(
            base_ms=draw(nonround(3.7, 15.3)),
            per_token_ms=draw(nonround(0.011, 0.21)),
            per_token_context_ms=draw(nonround(1e-6, 1e-4)),
        ),
        decode=DecodeTiming(
            base_ms=draw(nonround(3.7, 15.3)),
            per_seq_ms=draw(nonround(0.013, 0.37)),
            per_kv_token_ms=draw(nonround(1e-6, 3e-4)),
        ),
        kv_transfer=TransferTiming(base_ms=draw(nonround(0.3, 7.9)), per_token_ms=draw(nonround(1e-5, 0.013))),
    )
    capacity = draw(st.one_of(st.integers(300, 6000), st.integers(6000, 420_000)))
    return msgspec.structs.replace(
        H100,
        timing=timing,
        kv=KvSpec(capacity_tokens=capacity),
        startup_delay_ms=draw(nonround(13.1, 3000.7)),
    )


@st.composite
def noisy_curve(draw, lo: float, hi: float, n: int, start: float, growth: float) -> tuple[list[float], list[float]]:
    """``n`` strictly increasing x in [lo, hi) and positive y that mostly grow with x, with noise
    (measured curves are not monotone)."""
    xs = sorted({draw(nonround(lo, hi)) for _ in range(n)})
    if len(xs) < 2:
        xs = [lo + 0.137 * (hi - lo), lo + 0.713 * (hi - lo)]
    ys = [start + growth * (x - lo) * draw(nonround(0.6, 1.4)) for x in xs]
    return xs, ys


@st.composite
def table_timings(draw) -> TableTiming:
    """A table timing: 1-3 prefill curves, 1-4 decode curves, non-round and noisy, often
    exercised outside the measured range (the fleet config goes beyond the grids)."""
    n_p = draw(st.integers(1, 3))
    p_contexts = [0] + sorted({int(draw(nonround(50, 3000))) for _ in range(n_p - 1)})
    prefill = []
    for _ in p_contexts:
        xs, ys = draw(noisy_curve(20, 3000, draw(st.integers(2, 6)), draw(nonround(3.7, 15.3)), draw(nonround(0.011, 0.21))))
        tokens = sorted({max(1, int(x)) for x in xs})
        if len(tokens) < 2:
            tokens = [17, 1999]
        prefill.append((tokens, ys[: len(tokens)] + [ys[-1]] * (len(tokens) - len(ys))))
    first_ms = min(ys[0] for _, ys in prefill)  # the overhead may not exceed any curve's first pass
    overhead = draw(st.one_of(st.none(), nonround(0.0, first_ms)))
    if overhead is None and default_pass_overhead_ms(prefill[0][0], prefill[0][1]) > first_ms:
        overhead = 0.5 * first_ms
    budget = draw(st.one_of(st.none(), st.integers(64, 2048)))
    n_d = draw(st.integers(1, 4))
    d_contexts = sorted({draw(nonround(5, 2500)) for _ in range(n_d)})
    decode = []
    for _ in d_contexts:
        xs, ys = draw(noisy_curve(1, 14, draw(st.integers(2, 6)), draw(nonround(3.7, 15.3)), draw(nonround(0.013, 0.37))))
        decode.append(([max(1.0, x) for x in xs], ys))
    return TableTiming(
        prefill=PrefillTable(
            curves=[PrefillCurve(context=c, tokens=t, pass_ms=y) for c, (t, y) in zip(p_contexts, prefill)],
            pass_overhead_ms=overhead,
            measured_max_num_batched_tokens=budget,
        ),
        decode=DecodeTable(curves=[DecodeCurve(context=c, batch=b, step_ms=y) for c, (b, y) in zip(d_contexts, decode)]),
        kv_transfer=TransferTiming(base_ms=draw(nonround(0.3, 7.9)), per_token_ms=draw(nonround(1e-5, 0.013))),
    )


@st.composite
def table_systems(draw) -> Any:
    """h100_sxm timed by a drawn table instead of its formulas."""
    system = draw(systems())
    return msgspec.structs.replace(system, timing=draw(table_timings()))


fleet_configs = st.builds(
    FleetConfig,
    prefill_workers=st.integers(1, 3),
    decode_workers=st.integers(1, 3),
    router=st.sampled_from(["round_robin", "least_loaded", "kv_aware"]),
    max_num_batched_tokens=st.integers(64, 4096),
    max_num_seqs=st.integers(1, 16),
    prefix_cache=st.booleans(),
)

FAMILY_BLOCKS = 12  # longest shared prefix, in blocks


@st.composite
def traces(draw, block_size: int) -> list[Request]:
    """20-150 requests; prompts drawn from a few prefix families sharing leading blocks."""
    n = draw(st.integers(20, 150))
    horizon = draw(st.sampled_from([40, 400, 4000, 30_000]))  # bursty ... sparse
    n_families = draw(st.integers(1, 4))
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, horizon),  # timestamp (ms)
                st.integers(1, 3000),  # isl
                st.integers(1, 300),  # osl
                st.integers(-1, n_families - 1),  # prefix family (-1: none)
                st.integers(0, FAMILY_BLOCKS),  # shared leading blocks
            ),
            min_size=n,
            max_size=n,
        )
    )
    rows.sort(key=lambda r: r[0])
    unique = itertools.count(1_000_000)
    trace = []
    for ts, isl, osl, family, shared in rows:
        n_blocks = -(-isl // block_size)
        prefix = [1000 * (family + 1) + j for j in range(min(shared, n_blocks))] if family >= 0 else []
        hash_ids = prefix + [next(unique) for _ in range(n_blocks - len(prefix))]
        trace.append(Request(timestamp=ts, input_length=isl, output_length=osl, hash_ids=hash_ids))
    return trace


@st.composite
def session_traces(draw, block_size: int) -> list[Request]:
    """A trace whose rows mostly belong to a few sessions, with delays (some missing, some 0).

    Later turns extend their session's previous prompt (shared leading blocks), as in a
    conversation.  Timestamps are the recorded ones; closed loop mostly ignores them.
    """
    base = draw(traces(block_size))
    n_sessions = draw(st.integers(1, 12))
    delays = st.one_of(st.none(), st.just(0), st.integers(0, 50), nonround(0.1, 3000.0))
    last_ids: dict[int, list[int]] = {}
    out = []
    for row in base:
        sid = draw(st.one_of(st.none(), st.integers(0, n_sessions - 1), st.integers(0, n_sessions - 1)))
        if sid is None:
            out.append(row)
            continue
        shared = last_ids.get(sid, [])[: max(0, row.input_length // block_size)]
        n_blocks = -(-row.input_length // block_size)
        ids = shared[:n_blocks] + row.hash_ids[len(shared[:n_blocks]):]
        last_ids[sid] = ids
        sid_value: int | str = sid if sid % 2 else f"s{sid}"  # both id types
        out.append(msgspec.structs.replace(row, hash_ids=ids, session_id=sid_value, delay=draw(delays)))
    return out


closed_loops = st.builds(
    ClosedLoop,
    lookahead_ms=st.one_of(st.just(0.0), nonround(1.0, 500.0), st.just(600_000.0)),
    session_timeout_ms=st.one_of(nonround(50.0, 2000.0), st.just(3_600_000.0)),
)


step_sizes = st.one_of(st.integers(1, 2500), st.floats(0.05, 4000, allow_nan=False, allow_infinity=False))

operations = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.tuples(st.just("scale"), st.integers(1, 3), st.integers(1, 3)),
    st.tuples(
        st.just("caps"),
        st.floats(150, 750, allow_nan=False, allow_infinity=False),
        st.floats(150, 750, allow_nan=False, allow_infinity=False),
    ),
    st.tuples(st.just("fail"), st.sampled_from(["prefill", "decode"]), st.integers(0, 2)),
)


@st.composite
def cases(draw, with_operations: bool = True, system_strategy: Any = None):
    block_size = draw(st.integers(16, 64))
    system = draw((system_strategy or systems)())
    config = draw(fleet_configs)
    trace = draw(traces(block_size))
    script = draw(st.lists(st.tuples(step_sizes, operations if with_operations else st.none()), max_size=40))
    return system, config, trace, block_size, script


@st.composite
def closed_cases(draw):
    block_size = draw(st.integers(16, 64))
    system = draw(st.one_of(systems(), table_systems()))  # both timing forms
    config = draw(fleet_configs)
    trace = draw(session_traces(block_size))
    script = draw(st.lists(st.tuples(step_sizes, operations), max_size=40))
    return system, config, trace, block_size, script, draw(closed_loops)


# --------------------------------------------------------------------------- running and comparing


@dataclass
class Replay:
    outcomes: dict[int, tuple]  # index -> outcome tuple
    ticks: list[tuple]  # counters after every advance_to
    fail_results: list[int]


def _outcome(o: Any) -> tuple:
    return (
        o.index,
        o.arrival_ms,
        o.status,
        o.drop_reason,
        o.first_token_ms,
        o.completion_ms,
        o.generated,
        o.preemptions,
        o.cached_tokens,
    )


OUTCOME_FIELDS = (
    "index", "arrival_ms", "status", "drop_reason", "first_token_ms",
    "completion_ms", "generated", "preemptions", "cached_tokens",
)  # fmt: skip
TIME_FIELDS = {"arrival_ms", "first_token_ms", "completion_ms"}


def _dropped(snap: Any) -> tuple[int, dict | None]:
    """(total, by reason or None): the fast Snapshot may report drops as a count or by reason."""
    d = snap.dropped
    if isinstance(d, Mapping):
        return sum(d.values()), {k: v for k, v in d.items() if v}
    by_reason = getattr(snap, "dropped_by_reason", None)
    return int(d), ({k: v for k, v in by_reason.items() if v} if by_reason is not None else None)


def _counters(snap: Any) -> tuple:
    total, by_reason = _dropped(snap)
    return (snap.now_ms, bool(snap.done), snap.arrived, snap.completed, total, by_reason, snap.in_flight,
            snap.turns_held, snap.turns_abandoned)


def replay(fleet_cls: Any, system: Any, config: FleetConfig, trace: list[Request], block_size: int, script: list,
           closed_loop: ClosedLoop | None = None) -> Replay:
    finished: dict[int, tuple] = {}

    def on_finish(o: Any) -> None:
        assert o.index not in finished, f"on_finish called twice for request {o.index}"
        assert o.status in ("completed", "dropped", "abandoned"), o
        finished[o.index] = _outcome(o)

    fleet = fleet_cls(system, config, iter(trace), block_size=block_size, on_finish=on_finish, closed_loop=closed_loop)
    ticks, fails = [], []
    t = 0.0
    for dt, op in script:
        t += dt
        snap = fleet.advance_to(t)
        assert snap.now_ms >= t
        ticks.append(_counters(snap))
        # conservation at every stop: what arrived is completed, dropped or in flight
        assert snap.completed + _dropped(snap)[0] + snap.in_flight == snap.arrived
        assert snap.arrived + snap.turns_abandoned <= len(trace)
        if op is None:
            continue
        if op[0] == "scale":
            fleet.apply_scaling(op[1], op[2])
        elif op[0] == "caps":
            fleet.apply_caps(op[1], op[2])
        else:
            fails.append(fleet.fail_workers(op[1], op[2]))
    snap = fleet.advance_to(FINAL_MS)
    ticks.append(_counters(snap))
    for o in fleet.outcomes_in_flight():
        assert o.status == "in_flight", o
        assert o.index not in finished, f"request {o.index} both finished and in flight"
        finished[o.index] = _outcome(o)
    arrived, completed, dropped, in_flight = snap.arrived, snap.completed, _dropped(snap)[0], snap.in_flight
    abandoned = sum(1 for o in finished.values() if o[2] == "abandoned")
    assert abandoned == snap.turns_abandoned and snap.turns_held == 0
    assert completed + dropped + in_flight == arrived and arrived + abandoned == len(finished) == len(trace)
    if closed_loop is None:
        assert abandoned == 0
    return Replay(finished, ticks, fails)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def assert_same_outcomes(expected: dict[int, tuple], actual: dict[int, tuple], exact_times: bool = False) -> None:
    assert sorted(expected) == sorted(actual), "different sets of requests"
    for i in sorted(expected):
        e, a = expected[i], actual[i]
        for name, ev, av in zip(OUTCOME_FIELDS, e, a):
            same = ev == av if (exact_times or name not in TIME_FIELDS) else _close(ev, av)
            assert same, f"request {i}: {name} differs: expected {ev!r}, got {av!r}\n  expected {e}\n  actual   {a}"


def assert_same_ticks(expected: list[tuple], actual: list[tuple]) -> None:
    assert len(expected) == len(actual)
    names = ("now_ms", "done", "arrived", "completed", "dropped", "dropped_by_reason", "in_flight", "turns_held", "turns_abandoned")
    for k, (e, a) in enumerate(zip(expected, actual)):
        for name, ev, av in zip(names, e, a):
            if name == "now_ms":
                same = _close(ev, av)
            elif name == "dropped_by_reason":
                same = ev is None or av is None or ev == av
            else:
                same = ev == av
            assert same, f"advance_to call {k}: {name} differs: reference {ev!r}, fast {av!r}\n  ref  {e}\n  fast {a}"


# --------------------------------------------------------------------------- the tests


def assert_fleets_agree(fleet_cls: Any, case: tuple, closed_loop: ClosedLoop | None = None) -> None:
    system, config, trace, block_size, script = case
    ref = replay(ReferenceFleet, system, config, trace, block_size, script, closed_loop)
    fast = replay(fleet_cls, system, config, trace, block_size, script, closed_loop)
    assert_same_outcomes(ref.outcomes, fast.outcomes)
    assert_same_ticks(ref.ticks, fast.ticks)
    assert ref.fail_results == fast.fail_results


@SETTINGS
@given(case=cases())
def test_fast_fleet_matches_reference(fast_fleet_cls, case):
    assert_fleets_agree(fast_fleet_cls, case)


@SETTINGS
@given(case=cases(system_strategy=table_systems))
def test_fast_fleet_matches_reference_on_table_systems(fast_fleet_cls, case):
    """The same on measured-table timing: the fleet's runs split at the table's grid points
    and still agree with the reference's one-step-at-a-time lookups."""
    assert_fleets_agree(fast_fleet_cls, case)


@SETTINGS
@given(case=closed_cases())
def test_fast_fleet_matches_reference_closed_loop(fast_fleet_cls, case):
    *case, closed_loop = case
    assert_fleets_agree(fast_fleet_cls, tuple(case), closed_loop)


@SETTINGS
@given(case=cases(), closed_loop=closed_loops)
def test_closed_loop_without_sessions_is_open_loop(fast_fleet_cls, case, closed_loop):
    """Rows without a session arrive at their timestamps in both modes: closed loop changes nothing."""
    system, config, trace, block_size, script = case
    for fleet_cls in (ReferenceFleet, fast_fleet_cls):
        open_ = replay(fleet_cls, system, config, trace, block_size, script)
        closed = replay(fleet_cls, system, config, trace, block_size, script, closed_loop)
        assert_same_outcomes(open_.outcomes, closed.outcomes, exact_times=True)
        assert [t[:7] for t in open_.ticks] == [t[:7] for t in closed.ticks]


def _stops_only(script: list) -> list:
    return [(dt, None) for dt, _ in script]


@SETTINGS
@given(cases(with_operations=False))
def test_reference_timing_does_not_depend_on_where_advance_to_stops(case):
    system, config, trace, block_size, script = case
    straight = replay(ReferenceFleet, system, config, trace, block_size, [])
    stopped = replay(ReferenceFleet, system, config, trace, block_size, _stops_only(script))
    assert_same_outcomes(straight.outcomes, stopped.outcomes, exact_times=True)
    assert straight.ticks[-1][1:] == stopped.ticks[-1][1:]


@SETTINGS
@given(case=cases(with_operations=False))
def test_fast_fleet_timing_does_not_depend_on_where_advance_to_stops(fast_fleet_cls, case):
    system, config, trace, block_size, script = case
    fleet_cls = fast_fleet_cls
    straight = replay(fleet_cls, system, config, trace, block_size, [])
    stopped = replay(fleet_cls, system, config, trace, block_size, _stops_only(script))
    assert_same_outcomes(straight.outcomes, stopped.outcomes)
    assert straight.ticks[-1][1:] == stopped.ticks[-1][1:]


# --------------------------------------------------------------------------- pinned scenarios
# Small deterministic cases, one per divergence found (or suspected) between the two fleets,
# so a failure reads as one line instead of a Hypothesis shrink.  Numbers use the same small
# hand-made system as tests/test_reference_fleet.py:
#   pass = 10 + 0.5 sum(n) + 0.001 sum(n (ctx + n/2)); step = 5 + 0.25 b + 0.01 used;
#   hand-off = 2 + 0.1 isl; start-up 1000 ms.


def _req(ts: float, isl: int, osl: int, hash_ids: tuple[int, ...] = ()) -> Request:
    return Request(timestamp=ts, input_length=isl, output_length=osl, hash_ids=list(hash_ids))


def _pinned(fleet_cls, trace, script, capacity_tokens=10_000, block_size=512, **cfg) -> dict[int, tuple]:
    base = dict(prefill_workers=1, decode_workers=1, router="round_robin", max_num_batched_tokens=8192, max_num_seqs=16)
    config = FleetConfig(**{**base, **cfg})
    system = hand_system(capacity_tokens)
    ref = replay(ReferenceFleet, system, config, trace, block_size, script)
    fast = replay(fleet_cls, system, config, trace, block_size, script)
    assert_same_outcomes(ref.outcomes, fast.outcomes)
    assert_same_ticks(ref.ticks, fast.ticks)
    assert ref.fail_results == fast.fail_results
    return ref.outcomes


def test_pinned_replacement_onto_a_step_started_at_now(fast_fleet_cls):
    # advance_to(40) stops at 43.83, the end of both decode workers' second step; both start
    # their third step in the scheduling phase at 43.83.  fail_workers then re-places r1 on
    # worker 1: it must wait for the end of the step already started at 43.83 (r0 completes
    # at 54.98, r1 at 60.37 -- see test_fail_decode_worker_replaces_requests_keeping_generated),
    # not join that step.
    out = _pinned(fast_fleet_cls, [_req(10, 10, 5), _req(10, 10, 5)], [(40, ("fail", "decode", 1))], decode_workers=2)
    assert math.isclose(out[0][5], 54.98) and math.isclose(out[1][5], 60.37)


def test_pinned_request_outgrowing_kv_alone(fast_fleet_cls):
    # r0 alone reaches ctx == C (100) after 49 steps and is preempted, emptying the batch:
    # admission runs once more and drops it at once (kv_too_large).  Before the spec said
    # so, a fleet that only schedules "touched" workers left it in flight forever.
    _pinned(fast_fleet_cls, [_req(10, 50, 60), _req(5000, 10, 1)], [(4000, None)], capacity_tokens=100)


def test_pinned_order_of_replacement_after_several_decode_failures(fast_fleet_cls):
    # r0 -> worker 1, r1 -> 2, r2 -> 3; at 230 workers 3 and 2 fail and r1, r2 (too big to fit
    # together in C = 200) move to worker 1.  Failed workers' requests are re-placed in
    # ascending worker-id order (r1 first).
    trace = [_req(10, 10, 3), _req(10, 80, 60), _req(10, 90, 60)]
    _pinned(fast_fleet_cls, trace, [(230, ("fail", "decode", 2))], capacity_tokens=200, decode_workers=3)


def test_pinned_order_of_rerouting_after_several_prefill_failures(fast_fleet_cls):
    # r0, r1, r2 -> prefill workers 0, 1, 2; at 10 workers 2 and 1 fail.  Worker 1's queue is
    # re-routed before worker 2's, so worker 0's queue is r0, r1, r2 and with a 16-token
    # budget r1 finishes a pass before r2.
    trace = [_req(10, 10, 1), _req(10, 10, 1), _req(10, 10, 1)]
    _pinned(fast_fleet_cls, trace, [(10, ("fail", "prefill", 2))], prefill_workers=3, max_num_batched_tokens=16)


def test_pinned_kv_aware_with_prefix_cache_off(fast_fleet_cls):
    # With prefix_cache false there is no cache at all, so kv_aware sees no overlap and r2
    # goes to the idle worker 1 instead of following its prefix to worker 0.
    trace = [
        _req(10, 20, 1, (1, 2, 3, 4, 5)),
        _req(200, 12, 1, (20, 21, 22)),
        _req(200, 40, 1, (1, 2, 3, 4, 5, 30, 31, 32, 33, 34)),
    ]
    _pinned(fast_fleet_cls, trace, [], block_size=4, prefill_workers=2, router="kv_aware", prefix_cache=False)


def test_pinned_starting_worker_set_draining_while_holding_work(fast_fleet_cls):
    # The only decode workers are two starting ones (ready at 1005); r0 -> 2, r1 -> 3 at 33.1;
    # at 50 worker 3 is set draining.  A draining worker runs work only once its start-up is
    # over, so r1 waits for worker 3's ready_at.
    trace = [_req(10, 10, 3), _req(10, 10, 3)]
    script = [(5, ("fail", "decode", 1)), (0.5, ("scale", 1, 2)), (44.5, ("scale", 1, 1))]
    _pinned(fast_fleet_cls, trace, script)
