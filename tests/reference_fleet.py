"""A slow, obviously-correct reference stepper for ``replaylib.sim.Fleet`` (tests only).

This is a literal transcription of ``docs/fleet_model.md`` as a plain
discrete-event simulation.  Every prefill pass and **every decode step** is its
own event on one global priority queue; nothing is computed in closed form.
It exists so that a differential test can hold the fast, event-skipping
``Fleet`` to the contract.  Clarity beats speed here: it only has to handle a
few hundred requests and a few tens of thousands of steps.

Places where the spec is ambiguous are marked ``# SPEC:`` with the reading
chosen (the most literal one).

Durations come from the same timing-model object the fast fleet uses
(``replaylib.timing``), asked for **one** pass or **one** step at a time —
never a run of steps — so the differential test holds the fleet's closed-form
runs (and their splits at a table's grid points) to the model's own steps.

Closed loop (``closed_loop=ClosedLoop(...)``) is transcribed the slow way too:
the whole trace is read up front, every row knows the next row of its session,
and each turn's arrival (or abandonment) is pushed as an event the moment its
predecessor finishes -- no look-ahead window, no forgetting of sessions, which
is exactly what the fast fleet's streaming source must be equivalent to.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import msgspec

from replaylib.scenario.model import FleetConfig
from replaylib.scenario.system import System
from replaylib.sim.arrivals import ClosedLoop
from replaylib.timing import PowerModel, TimingModel, power_model, timing_model
from replaylib.trace.model import Request

PREFILL = "prefill"
DECODE = "decode"
ROLES = (PREFILL, DECODE)

STARTING = "starting"
ACTIVE = "active"
DRAINING = "draining"
GONE = "gone"

NO_PREFILL_WORKER = "no_prefill_worker"
NO_DECODE_WORKER = "no_decode_worker"
KV_TOO_LARGE = "kv_too_large"
DROP_REASONS = (NO_PREFILL_WORKER, NO_DECODE_WORKER, KV_TOO_LARGE)

# Event kinds.  Their numeric value is the order in which events at the same
# timestamp are applied ("workers becoming ready; prefill pass ends; decode
# step ends; hand-offs arriving; trace arrivals").
EV_READY = 0
EV_PASS_END = 1
EV_STEP_END = 2
EV_HANDOFF = 3
EV_ARRIVAL = 4
EV_ABANDON = 5  # closed loop: a session turn that will never be issued


# --------------------------------------------------------------------------- public records


class RefOutcome(msgspec.Struct, frozen=True):
    """What happened to one request (the spec's ``RequestOutcome``)."""

    index: int
    arrival_ms: float
    status: str  # "completed" | "dropped" | "in_flight" | "abandoned"
    drop_reason: str | None
    first_token_ms: float | None
    completion_ms: float | None
    generated: int
    preemptions: int
    cached_tokens: int


class RefSnapshot(msgspec.Struct, frozen=True):
    """The fleet at ``now_ms``.  All counters are cumulative since the start."""

    now_ms: float
    done: bool
    arrived: int
    completed: int
    dropped: int
    dropped_by_reason: dict[str, int]
    in_flight: int
    preemptions: int
    ttft_count: int
    ttft_sum_ms: float
    itl_count: int
    itl_sum_ms: float
    hit_tokens: int
    lookup_tokens: int
    turns_held: int
    turns_abandoned: int
    #: ``(worker_id, role, state, queued_requests, running, kv_used)`` per non-gone worker, by id.
    workers: list[tuple[int, str, str, int, int, int]]


# --------------------------------------------------------------------------- internal state


@dataclass(eq=False)
class _Req:
    index: int
    arrival_ms: float
    isl: int
    osl: int
    hash_ids: list[int]
    status: str = "in_flight"
    drop_reason: str | None = None
    first_token_ms: float | None = None
    completion_ms: float | None = None
    generated: int = 0
    preemptions: int = 0
    cached_tokens: int = 0
    # Prefill progress on the current prefill worker.
    scheduled: bool = False  # has it looked the prefix cache up (been put in a pass) yet?
    done: int = 0  # prompt tokens computed (0 while not scheduled)

    def ctx(self) -> int:
        return self.isl + self.generated

    def outcome(self) -> RefOutcome:
        return RefOutcome(
            index=self.index,
            arrival_ms=self.arrival_ms,
            status=self.status,
            drop_reason=self.drop_reason,
            first_token_ms=self.first_token_ms,
            completion_ms=self.completion_ms,
            generated=self.generated,
            preemptions=self.preemptions,
            cached_tokens=self.cached_tokens,
        )


@dataclass(eq=False)
class _Work:
    """A prefill pass or a decode step in flight."""

    start: float
    duration: float
    end: float
    #: prefill: ``(request, n, ctx)`` chunks; decode: the requests in the step (admission order).
    items: list[Any]


@dataclass(eq=False)
class _Worker:
    id: int
    role: str
    state: str
    ready_at: float
    work: _Work | None = None
    # prefill
    queue: list[_Req] = field(default_factory=list)
    cache: OrderedDict[int, None] = field(default_factory=OrderedDict)  # LRU first ... MRU last
    # decode
    waiting: deque[_Req] = field(default_factory=deque)
    running: list[_Req] = field(default_factory=list)  # in admission order
    used: int = 0

    started_up: bool = False  # its start-up delay is over (the initial fleet: from time 0)

    def is_ready(self) -> bool:
        # "ready = active, or draining after its start-up": a worker put to draining while
        # still starting holds its work until ready_at.
        return self.state == ACTIVE or (self.state == DRAINING and self.started_up)

    def is_accepting(self) -> bool:
        return self.state in (ACTIVE, STARTING)

    def holds_nothing(self) -> bool:
        return not self.queue and not self.waiting and not self.running


# --------------------------------------------------------------------------- the stepper


class ReferenceFleet:
    """Token-by-token discrete-event simulation of the fleet in ``docs/fleet_model.md``."""

    def __init__(
        self,
        system: System,
        fleet_config: FleetConfig,
        requests: Iterable[Request],
        block_size: int = 512,
        on_finish: Callable[[RefOutcome], Any] | None = None,
        closed_loop: ClosedLoop | None = None,
        timing: TimingModel | None = None,
        power: PowerModel | None = None,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.system = system
        self.timing = timing if timing is not None else timing_model(system)
        self.power = power if power is not None else power_model(system)
        self.cfg = fleet_config
        self.block_size = block_size
        self.on_finish = on_finish

        self.now = 0.0
        self._t = 0.0  # the time being processed: an event time, or `now` between advance_to calls
        self._events: list[tuple] = []  # heap of (time, kind, tie_breaker, seq, payload)
        self._seq = itertools.count()  # only makes heap entries comparable; never decides order
        self._workers: dict[int, _Worker] = {}  # non-gone workers
        self._next_worker_id = 0
        self._caps = {PREFILL: system.gpu.max_cap_w, DECODE: system.gpu.max_cap_w}
        self._rr_counter = 0  # round_robin counter of the prefill role
        self._cache_capacity = system.kv.capacity_tokens // block_size

        # trace, pulled lazily: the heap holds at most one pending arrival
        self._trace = iter(requests)
        self._trace_exhausted = False
        self._next_index = 0
        self._last_timestamp = -math.inf

        self._live: dict[int, _Req] = {}  # arrived and not finished, by index
        self.arrived = 0
        self.completed = 0
        self.dropped_by_reason = {r: 0 for r in DROP_REASONS}
        self.preemptions = 0
        self.ttft_count = 0
        self.ttft_sum_ms = 0.0
        self.itl_count = 0
        self.itl_sum_ms = 0.0
        self.hit_tokens = 0
        self.lookup_tokens = 0
        #: ``(time, request index, role, worker id)`` for every routing decision (for tests).
        self.routing_log: list[tuple[float, int, str, int]] = []

        for _ in range(fleet_config.prefill_workers):
            self._new_worker(PREFILL, ACTIVE, 0.0)
        for _ in range(fleet_config.decode_workers):
            self._new_worker(DECODE, ACTIVE, 0.0)
        self.closed_loop = closed_loop
        self.turns_abandoned = 0
        if closed_loop is None:
            self._pull_next_arrival()
        else:
            self._load_sessions(closed_loop)

    # ------------------------------------------------------------------ public API

    def advance_to(self, t_ms: float) -> RefSnapshot:
        t = float(t_ms)
        # SPEC: the fleet's clock starts at 0, so a first advance_to(0) processes nothing;
        # events at exactly 0 (arrivals with timestamp 0) are processed by the first call
        # with t > 0 (literal "If t <= the current time, nothing is processed").
        if t <= self.now:
            return self.snapshot()
        self._run_events_until(t)
        # A forward pass is atomic: passes/steps that started before t and end after t
        # are waited for, together with everything else that happens until they end.
        straddling = [
            w.work.end for w in self._workers.values() if w.work is not None and w.work.start < t < w.work.end
        ]
        now = t
        if straddling:
            now = max(straddling)
            self._run_events_until(now)
        self.now = now
        self._t = now
        return self.snapshot()

    def apply_scaling(self, n_prefill: int, n_decode: int) -> dict[str, dict[str, list[int]]]:
        """Set the number of accepting workers per role; returns the ids created / set draining."""
        for name, n in (("n_prefill", n_prefill), ("n_decode", n_decode)):
            if n < 1:
                raise ValueError(f"{name} must be >= 1, got {n}")
        changes: dict[str, dict[str, list[int]]] = {}
        # SPEC: when both roles grow, the new prefill workers get their ids before the new
        # decode workers (argument order); the spec only says ids increase in creation order.
        for role, target in ((PREFILL, n_prefill), (DECODE, n_decode)):
            accepting = self._accepting(role)
            created: list[int] = []
            draining: list[int] = []
            if target > len(accepting):
                for _ in range(target - len(accepting)):
                    ready_at = self.now + self.system.startup_delay_ms
                    # SPEC: with startup_delay_ms == 0 the worker is ready at once (ready_at == now
                    # and the events at `now` have already been processed).
                    state = ACTIVE if ready_at <= self.now else STARTING
                    w = self._new_worker(role, state, ready_at)
                    created.append(w.id)
            elif target < len(accepting):
                for w in sorted(accepting, key=lambda w: w.id, reverse=True)[: len(accepting) - target]:
                    w.state = DRAINING
                    draining.append(w.id)
            changes[role] = {"created": created, "draining": draining}
        self._scheduling_phase(self.now)
        return changes

    def apply_caps(self, cap_prefill_w: float, cap_decode_w: float) -> dict[str, tuple[float, bool]]:
        """Clamp and apply per-role caps; returns ``{role: (applied_w, was_clamped)}``."""
        result = {}
        for role, cap in ((PREFILL, cap_prefill_w), (DECODE, cap_decode_w)):
            applied = self.system.clamp_cap(cap)
            self._caps[role] = applied
            result[role] = (applied, applied != cap)
        self._scheduling_phase(self.now)
        return result

    def fail_workers(self, role: str, n: int) -> int:
        """The ``n`` highest-id non-gone workers of ``role`` are gone; their work is re-routed."""
        if role not in ROLES:
            raise ValueError(f"role must be 'prefill' or 'decode', got {role!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        victims = sorted((w for w in self._workers.values() if w.role == role), key=lambda w: w.id)
        victims = victims[max(0, len(victims) - n) :] if n > 0 else []
        for w in victims:
            self._remove_worker(w)  # its pass/step in flight is discarded with it
        # SPEC: with several failed workers, their work is re-routed worker by worker in id order.
        for w in victims:
            if role == PREFILL:
                for r in w.queue:  # in queue order, as fresh arrivals at now
                    r.scheduled = False
                    r.done = 0
                    # SPEC: "cache lookup discarded" -> cached_tokens goes back to 0 until the
                    # next lookup (the prefix-cache statistics already counted are kept).
                    r.cached_tokens = 0
                    self._route_prefill(r, self.now)
            else:
                for r in list(w.running) + list(w.waiting):  # admission order, then queue order
                    self._place_decode(r, self.now)
        self._scheduling_phase(self.now)
        return len(victims)

    def outcomes_in_flight(self) -> list[RefOutcome]:
        return [self._live[i].outcome() for i in sorted(self._live)]

    def snapshot(self) -> RefSnapshot:
        workers = []
        for w in sorted(self._workers.values(), key=lambda w: w.id):
            if w.role == PREFILL:
                workers.append((w.id, w.role, w.state, len(w.queue), 0, 0))
            else:
                workers.append((w.id, w.role, w.state, len(w.waiting), len(w.running), w.used))
        dropped = sum(self.dropped_by_reason.values())
        return RefSnapshot(
            now_ms=self.now,
            done=self._trace_exhausted and not self._live and not self._unsettled(),
            arrived=self.arrived,
            completed=self.completed,
            dropped=dropped,
            dropped_by_reason=dict(self.dropped_by_reason),
            in_flight=len(self._live),
            preemptions=self.preemptions,
            ttft_count=self.ttft_count,
            ttft_sum_ms=self.ttft_sum_ms,
            itl_count=self.itl_count,
            itl_sum_ms=self.itl_sum_ms,
            hit_tokens=self.hit_tokens,
            lookup_tokens=self.lookup_tokens,
            turns_held=self._turns_held(),
            turns_abandoned=self.turns_abandoned,
            workers=workers,
        )

    def prefix_cache_blocks(self, worker_id: int) -> list[int]:
        """A prefill worker's cached block ids, least recently used first (for tests)."""
        return list(self._workers[worker_id].cache)

    # ------------------------------------------------------------------ event loop

    def _push(self, time: float, kind: int, tie_breaker: tuple, payload: Any) -> None:
        heapq.heappush(self._events, (time, kind, tie_breaker, next(self._seq), payload))

    def _run_events_until(self, limit: float) -> None:
        """Process every event at time <= limit, one timestamp at a time."""
        while self._events and self._events[0][0] <= limit:
            t = self._events[0][0]
            self._t = t
            # All events at t first, in (kind, tie-breaker) order ...
            while self._events and self._events[0][0] == t:
                _, kind, _, _, payload = heapq.heappop(self._events)
                self._apply_event(t, kind, payload)
            # ... then the scheduling phase at t.  (If it starts zero-length work, the
            # outer loop comes back to t for another round.)
            self._scheduling_phase(t)

    def _apply_event(self, t: float, kind: int, payload: Any) -> None:
        if kind == EV_READY:
            w = payload
            w.started_up = True
            if w.state == STARTING:
                w.state = ACTIVE
        elif kind == EV_PASS_END:
            w, work = payload
            if w.state != GONE and w.work is work:  # else: the worker failed meanwhile
                self._end_pass(w, t)
        elif kind == EV_STEP_END:
            w, work = payload
            if w.state != GONE and w.work is work:
                self._end_step(w, t)
        elif kind == EV_HANDOFF:
            self._place_decode(payload, t)
        elif kind == EV_ARRIVAL:
            r = payload
            r.arrival_ms = t  # closed loop: the time it is issued, not necessarily its timestamp
            self.arrived += 1
            self._live[r.index] = r
            if self.closed_loop is None:
                self._pull_next_arrival()
            else:
                self._issued[r.index] = True
            self._route_prefill(r, t)
        elif kind == EV_ABANDON:
            self._abandon(payload, t)
        else:  # pragma: no cover
            raise AssertionError(kind)

    def _scheduling_phase(self, t: float) -> None:
        workers = sorted(self._workers.values(), key=lambda w: w.id)
        for w in workers:
            if w.role == PREFILL and w.is_ready() and w.work is None and w.queue:
                self._start_pass(w, t)
        # SPEC: every ready decode worker without a step in flight runs admission/preemption
        # in every scheduling phase (the literal "decode workers in id order run admission/
        # preemption and start steps"), not only those that just ended a step or got work.
        for w in workers:
            if w.role == DECODE and w.is_ready() and w.work is None:
                self._admit_preempt_and_step(w, t)
        for w in workers:
            if w.state == DRAINING and w.holds_nothing():
                self._remove_worker(w)

    # ------------------------------------------------------------------ trace

    def _pull_next_arrival(self) -> None:
        try:
            row = next(self._trace)
        except StopIteration:
            self._trace_exhausted = True
            return
        ts = float(row.timestamp)
        if ts < self._last_timestamp:
            raise ValueError(f"request {self._next_index}: timestamp {ts} < previous {self._last_timestamp}")
        self._last_timestamp = ts
        r = _Req(
            index=self._next_index,
            arrival_ms=ts,
            isl=row.input_length,
            osl=row.output_length,
            hash_ids=list(row.hash_ids),
        )
        self._next_index += 1
        self._push(ts, EV_ARRIVAL, (r.index,), r)

    # ------------------------------------------------------------------ closed-loop sessions

    def _load_sessions(self, cl: ClosedLoop) -> None:
        """Read the whole trace; link each session row to the next row of its session."""
        self._rows: list[Request] = []
        last_of: dict[Any, int] = {}
        self._next_in_session: dict[int, int] = {}
        for i, row in enumerate(self._trace):
            ts = float(row.timestamp)
            if ts < self._last_timestamp:
                raise ValueError(f"request {i}: timestamp {ts} < previous {self._last_timestamp}")
            self._last_timestamp = ts
            self._rows.append(row)
            first = True
            if row.session_id is not None:
                if row.session_id in last_of:
                    self._next_in_session[last_of[row.session_id]] = i
                    first = False
                last_of[row.session_id] = i
            if first:  # no session, or the session's first turn: arrives at its timestamp
                self._push(ts, EV_ARRIVAL, (i,), self._new_req(i, row))
        self._trace_exhausted = True
        self._issued = [False] * len(self._rows)
        self._abandoned_rows = [False] * len(self._rows)

    def _new_req(self, i: int, row: Request) -> _Req:
        return _Req(index=i, arrival_ms=float(row.timestamp), isl=row.input_length, osl=row.output_length, hash_ids=list(row.hash_ids))

    def _session_turn_finished(self, j: int, f: float, ok: bool) -> None:
        """Row j finished at f (completed: ok; dropped or abandoned: not ok): release the next turn."""
        k = self._next_in_session.get(j)
        if k is None:
            return
        cl = self.closed_loop
        row = self._rows[k]
        ts = float(row.timestamp)
        if ts - f > cl.session_timeout_ms:  # the session timed out: k starts a new one
            self._push(ts, EV_ARRIVAL, (k,), self._new_req(k, row))
        elif ok:
            if row.delay is None:
                at = max(f, ts)
            else:
                at = max(f + float(row.delay), ts - cl.lookahead_ms)
            self._push(at, EV_ARRIVAL, (k,), self._new_req(k, row))
        else:
            at = max(f, ts - cl.lookahead_ms)
            if at <= self._t:
                self._abandon(k, self._t)
            else:
                self._push(at, EV_ABANDON, (k,), k)

    def _abandon(self, k: int, t: float) -> None:
        self._abandoned_rows[k] = True
        self.turns_abandoned += 1
        if self.on_finish is not None:
            r = self._new_req(k, self._rows[k])
            r.arrival_ms = t
            r.status = "abandoned"
            self.on_finish(r.outcome())
        self._session_turn_finished(k, t, False)

    def _unsettled(self) -> bool:
        if self.closed_loop is None:
            return False
        return not all(a or b for a, b in zip(self._issued, self._abandoned_rows))

    def _turns_held(self) -> int:
        """Rows whose recorded time has come that are neither issued nor abandoned."""
        if self.closed_loop is None:
            return 0
        return sum(
            1
            for row, issued, gone in zip(self._rows, self._issued, self._abandoned_rows)
            if float(row.timestamp) <= self.now and not issued and not gone
        )

    # ------------------------------------------------------------------ workers and routing

    def _new_worker(self, role: str, state: str, ready_at: float) -> _Worker:
        w = _Worker(id=self._next_worker_id, role=role, state=state, ready_at=ready_at, started_up=state == ACTIVE)
        self._next_worker_id += 1
        self._workers[w.id] = w
        if state == STARTING:
            self._push(ready_at, EV_READY, (w.id,), w)
        return w

    def _remove_worker(self, w: _Worker) -> None:
        w.state = GONE
        w.work = None
        del self._workers[w.id]

    def _accepting(self, role: str) -> list[_Worker]:
        return sorted((w for w in self._workers.values() if w.role == role and w.is_accepting()), key=lambda w: w.id)

    def _candidates(self, role: str) -> list[_Worker]:
        accepting = self._accepting(role)
        active = [w for w in accepting if w.state == ACTIVE]
        return active if active else accepting

    def _queued_tokens(self, w: _Worker) -> int:
        return sum(r.isl - (r.done if r.scheduled else 0) for r in w.queue)

    def _leading_hits(self, w: _Worker, hash_ids: list[int]) -> int:
        hits = 0
        for h in hash_ids:
            if h not in w.cache:
                break
            hits += 1
        return hits

    def _route_prefill(self, r: _Req, t: float) -> None:
        candidates = self._candidates(PREFILL)
        if not candidates:
            self._drop(r, NO_PREFILL_WORKER)
            return
        router = self.cfg.router
        if router == "round_robin":
            w = candidates[self._rr_counter % len(candidates)]
            self._rr_counter += 1
        elif router == "least_loaded":
            w = min(candidates, key=lambda w: (self._queued_tokens(w), w.id))
        elif router == "kv_aware":
            # With fleet.prefix_cache false there is no cache: the overlap is 0.
            def estimate(w: _Worker) -> int:
                hits = self._leading_hits(w, r.hash_ids) if self.cfg.prefix_cache else 0
                overlap = min(hits * self.block_size, r.isl)
                return self._queued_tokens(w) + (r.isl - overlap)

            w = min(candidates, key=lambda w: (estimate(w), w.id))
        else:  # pragma: no cover
            raise ValueError(f"unknown router {router!r}")
        r.scheduled = False
        r.done = 0
        w.queue.append(r)
        self.routing_log.append((t, r.index, PREFILL, w.id))

    def _free_kv(self, w: _Worker) -> int:
        return self.system.kv.capacity_tokens - w.used - sum(r.ctx() for r in w.waiting)

    def _place_decode(self, r: _Req, t: float) -> None:
        candidates = self._candidates(DECODE)
        if not candidates:
            self._drop(r, NO_DECODE_WORKER)
            return
        w = min(candidates, key=lambda w: (-self._free_kv(w), w.id))
        w.waiting.append(r)
        self.routing_log.append((t, r.index, DECODE, w.id))

    # ------------------------------------------------------------------ prefill

    def _touch(self, w: _Worker, ids: list[int]) -> None:
        for h in reversed(ids):  # last to first: the leading blocks end up freshest
            w.cache.move_to_end(h)

    def _insert(self, w: _Worker, ids: list[int]) -> None:
        for h in reversed(ids):
            w.cache[h] = None
            w.cache.move_to_end(h)
        while len(w.cache) > self._cache_capacity:
            w.cache.popitem(last=False)  # least recently used first

    def _lookup(self, w: _Worker, r: _Req) -> None:
        # With fleet.prefix_cache false there is no cache (nothing touched or inserted);
        # the lookup statistics still count the request with cached = 0.
        hits = self._leading_hits(w, r.hash_ids) if self.cfg.prefix_cache else 0
        cached = min(hits * self.block_size, r.isl - 1) if self.cfg.prefix_cache else 0
        r.scheduled = True
        r.done = cached
        r.cached_tokens = cached
        self._touch(w, r.hash_ids[:hits])
        self.hit_tokens += cached
        self.lookup_tokens += r.isl

    def _start_pass(self, w: _Worker, t: float) -> None:
        budget = self.cfg.max_num_batched_tokens
        chunks: list[tuple[_Req, int, int]] = []
        for r in w.queue:
            if budget == 0:
                break
            if not r.scheduled:
                self._lookup(w, r)
            n = min(r.isl - r.done, budget)
            chunks.append((r, n, r.done))
            budget -= n
        speed = self.power.speed(PREFILL, self._caps[PREFILL])
        duration = self.timing.prefill_pass_ms([(n, ctx) for _, n, ctx in chunks], speed)
        w.work = _Work(start=t, duration=duration, end=t + duration, items=chunks)
        self._push(w.work.end, EV_PASS_END, (w.id,), (w, w.work))

    def _end_pass(self, w: _Worker, t: float) -> None:
        work = w.work
        w.work = None
        for r, n, _ in work.items:
            r.done += n
        finished = [r for r in w.queue if r.scheduled and r.done == r.isl]
        w.queue = [r for r in w.queue if not (r.scheduled and r.done == r.isl)]
        for r in finished:  # queue order
            if self.cfg.prefix_cache:
                self._insert(w, r.hash_ids)
            r.first_token_ms = t
            r.generated = 1
            self.ttft_count += 1
            self.ttft_sum_ms += t - r.arrival_ms
            if r.osl == 1:
                self._complete(r, t)
            else:
                arrive = self.timing.kv_transfer_end_ms(t, r.isl)
                # hand-offs at the same time: in the order their prefills finished, then by index
                self._push(arrive, EV_HANDOFF, (t, r.index), r)

    # ------------------------------------------------------------------ decode

    def _admission(self, w: _Worker) -> None:
        """FIFO admission while the batch and its next step fit; a head that cannot fit
        even alone (empty batch) is dropped as kv_too_large."""
        capacity = self.system.kv.capacity_tokens
        while w.waiting and len(w.running) < self.cfg.max_num_seqs:
            r = w.waiting[0]
            if w.used + r.ctx() + len(w.running) + 1 <= capacity:
                w.waiting.popleft()
                w.running.append(r)
                w.used += r.ctx()
            elif not w.running:
                assert r.ctx() + 1 > capacity
                w.waiting.popleft()
                self._drop(r, KV_TOO_LARGE)
            else:
                break

    def _admit_preempt_and_step(self, w: _Worker, t: float) -> None:
        capacity = self.system.kv.capacity_tokens
        # 1. admission
        self._admission(w)
        # 2. preemption of the most recently admitted
        while w.used + len(w.running) > capacity:
            r = w.running.pop()
            w.used -= r.ctx()
            w.waiting.appendleft(r)
            r.preemptions += 1
            self.preemptions += 1
        # 2b. a batch emptied by preemption runs admission once more (a request that no
        #     longer fits even alone is dropped as kv_too_large there)
        if not w.running:
            self._admission(w)
        # 3. a step
        if w.running:
            speed = self.power.speed(DECODE, self._caps[DECODE])
            duration = self.timing.decode_step_ms(len(w.running), w.used, speed)
            w.work = _Work(start=t, duration=duration, end=t + duration, items=list(w.running))
            self._push(w.work.end, EV_STEP_END, (w.id,), (w, w.work))

    def _end_step(self, w: _Worker, t: float) -> None:
        work = w.work
        w.work = None
        b = len(work.items)
        self.itl_count += b
        self.itl_sum_ms += b * work.duration
        for r in work.items:
            r.generated += 1
        w.used += b
        for r in [r for r in w.running if r.generated == r.osl]:
            w.running.remove(r)
            w.used -= r.ctx()
            self._complete(r, t)
        assert w.used == sum(r.ctx() for r in w.running)

    # ------------------------------------------------------------------ finishing

    def _complete(self, r: _Req, t: float) -> None:
        r.status = "completed"
        r.completion_ms = t
        self.completed += 1
        self._finish(r)

    def _drop(self, r: _Req, reason: str) -> None:
        r.status = "dropped"
        r.drop_reason = reason
        self.dropped_by_reason[reason] += 1
        self._finish(r)

    def _finish(self, r: _Req) -> None:
        del self._live[r.index]
        if self.on_finish is not None:
            self.on_finish(r.outcome())
        if self.closed_loop is not None:
            t = r.completion_ms if r.status == "completed" else self._t
            self._session_turn_finished(r.index, t, r.status == "completed")
