"""The event-driven simulated disaggregated fleet.

Semantics are specified in ``docs/fleet_model.md``; this module implements them
fast.  The fleet jumps from event to event (arrival, prefill pass end, decode
segment boundary, hand-off, worker ready).  Between two events a decode
worker's batch is fixed, so its ``k`` next steps take a closed-form time
(the timing model gives each run's step time as linear in the step number,
``replaylib.timing``) and the next completion is the top of a heap of
per-request finishing step numbers: the cost grows with requests and events,
never with tokens.  A decode *segment* is such a run of steps; it is cut short
when something could change the batch (a completion, KV exhaustion, an
admissible hand-off, a cap change, a failure) or where the timing model's
linear form ends (a table's grid point).  Every pass time, step time, hand-off
time and cap speed comes from the fleet's timing and power models; nothing
here computes one.

A big fleet (``RANKED_FROM_WORKERS`` workers or more) does not scan its workers
either: it keeps them ranked by load per role and state, and kv_aware keeps a
holders index of the prefill caches (block id -> bit mask of the workers
holding it), so routing and decode placement look at a few workers whatever
the fleet's size, and choose the worker the scans would.

This module is also compiled with mypyc by the install, where the machine can
(``replaylib.native``): it stays plain typed Python, imports compiled
neighbours (prefix cache, histogram, decode runs) directly, and is the
reference a compiled build is checked against.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast
from heapq import heappop as _heappop  # the workers' own heaps (the event heap: _push_event, _pop_event)
from heapq import heappush as _heappush

from replaylib.scenario.model import FleetConfig
from replaylib.scenario.system import System
from replaylib.sim.arrivals import ClosedLoop, ClosedLoopArrivals, OpenLoopArrivals
from replaylib.sim.frontend import Frontend
from replaylib.sim.histogram import Histogram
from replaylib.sim.metrics import (
    CapResult,
    LatencyStats,
    RequestOutcome,
    RoleCounts,
    ScalingResult,
    Snapshot,
    WINDOW_COUNTERS,
    TrafficWindow,
    WorkerMetrics,
)
from replaylib.sim.prefix_cache import PrefixCache
from replaylib.timing import PowerModel, TimingModel, power_model, timing_model
from replaylib.timing.runs import run_end, run_step, run_steps_by  # compiled with the fleet (replaylib.native)
from replaylib.trace.model import Request

if TYPE_CHECKING:  # mypyc's native int type, for annotations only (a pure-Python run never imports it)
    from mypy_extensions import i64

# Final: constants a compiled build (replaylib.native) inlines instead of looking up.
PREFILL: Final = "prefill"
DECODE: Final = "decode"
ROLES = (PREFILL, DECODE)

STARTING: Final = "starting"
ACTIVE: Final = "active"
DRAINING: Final = "draining"
GONE: Final = "gone"

# Event kinds, in the order simultaneous events are applied (arrivals come last
# and live outside the heap: they are pulled lazily from the trace).
_READY: Final = 0
_PASS_END: Final = 1
_STEP_END: Final = 2
_HANDOFF: Final = 3

DROP_REASONS = ("no_prefill_worker", "no_decode_worker", "kv_too_large")

#: From this many workers (both roles, gone ones not counted) on, a fleet keeps its workers ranked by load
#: and, kv_aware with a prefix cache, a holders index of the prefill workers' cached blocks, so that routing
#: and decode placement look at a few workers instead of scanning all of them.  Below it the scans are
#: cheaper than the upkeep.  Either way the same worker is chosen (tests/test_sim_ranked.py).
RANKED_FROM_WORKERS = 32
#: kv_aware in ranked mode: a group of candidates with as many leading hits is looked at member by member
#: up to this size, and found by a walk of the load ranking above it; once at most this many candidates hold
#: a request's first blocks, their own caches give the rest of their hits.
SMALL_GROUP = 8
# A ranking entry is one int, ``load << _ID_BITS | id``: ordered as (load, id), compared fast.
_ID_BITS: Final = 40
_ID_MASK: Final = (1 << _ID_BITS) - 1
# Whether this module runs compiled (replaylib.native): an extension module's file is not its .py source.
_COMPILED: Final = not __file__.endswith(".py")


class _Req:
    """Mutable per-request state while the request is in the fleet."""

    __slots__ = (
        "index", "arrival", "isl", "osl", "hash_ids", "done", "cached", "scheduled",
        "generated", "preemptions", "first_token", "admit_seq", "gen0", "step0", "in_batch", "hits", "hits_at",
    )

    def __init__(self, index: int, row: Request, arrival: float) -> None:
        self.index = index
        self.arrival = arrival
        self.isl = row.input_length
        self.osl = row.output_length
        # Block ids typed Any: a compiled build (replaylib.native) then keeps them the Python ints they are
        # instead of unboxing each one and boxing it again for every dict lookup.
        self.hash_ids: list[Any] | None = row.hash_ids
        self.done = 0  # prefill tokens in KV (cached + computed)
        self.cached = 0
        self.scheduled = False
        self.generated = 0
        self.preemptions = 0
        self.first_token: float | None = None
        self.admit_seq = -1
        self.gen0 = 0  # generated at admission
        self.step0 = 0  # worker step count at admission
        self.in_batch = False
        # The leading hits that kv_aware routing found in its worker's cache, and that cache's ``inserts`` then
        # (-1: none found): while the cache has had no insert since, its first pass need not look again.
        self.hits = 0
        self.hits_at = -1


class _Ranking:
    """The accepting workers of one role and state in the order the routers read them: by ranking entry
    ``load << _ID_BITS | id``, least first.

    Held as two lists: the idle workers' entries (load 0, so the entry is the id), negated and sorted, then
    the loaded workers' entries least first (every one greater than any idle one).  Most of a big fleet idles:
    the least idle worker, which least_loaded routing and decode placement take, is the idle list's last
    entry; the loaded list, where most load changes move an entry, stays short; the idle list's entries are
    small ints, which a compiled build compares without unpacking a multi-digit int; and both lists are
    ascending, so one search (:func:`_rank_index`) serves them.  Entry ``i``, least first, is
    ``-idle[len(idle) - 1 - i]`` below ``len(idle)`` and ``loaded[i - len(idle)]`` from there.
    """

    __slots__ = ("idle", "loaded")

    def __init__(self) -> None:
        self.idle: list[int] = []  # the idle entries negated, ascending: the least idle entry is -idle[-1]
        self.loaded: list[int] = []  # least first

    def __len__(self) -> int:
        return len(self.idle) + len(self.loaded)

    def first(self) -> int:
        """The least entry (of a ranking that is not empty)."""
        idle = self.idle
        return -idle[-1] if idle else self.loaded[0]

    def entries(self) -> list[int]:
        """Every entry, least first."""
        return [-key for key in reversed(self.idle)] + self.loaded

    def add(self, key: int) -> None:
        if key <= _ID_MASK:
            idle = self.idle
            if not idle or key < -idle[-1]:
                idle.append(-key)
            else:
                idle.insert(_rank_index(idle, -key), -key)
        else:
            loaded = self.loaded
            loaded.insert(0 if not loaded or key < loaded[0] else _rank_index(loaded, key), key)

    def remove(self, key: int) -> None:
        if key <= _ID_MASK:
            idle = self.idle
            if idle[-1] == -key:
                idle.pop()
            else:
                idle.pop(_rank_index(idle, -key))
        else:
            loaded = self.loaded
            loaded.pop(0 if loaded[0] == key else _rank_index(loaded, key))


class _Window:
    """The traffic since the last snapshot, counted as it happens (the snapshot reports it as a TrafficWindow).

    Its counters are ``metrics.WINDOW_COUNTERS``, spelled out as attributes so that a compiled build
    stores them natively; :meth:`report` reads them by those names, so a counter missing here fails at
    the first snapshot."""

    __slots__ = (
        "start", "arrivals", "isl_sum", "osl_sum", "completions", "dropped", "preemptions", "first_tokens",
        "hit_tokens", "lookup_tokens", "prefill_tokens", "decode_tokens", "ttft", "itl",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.arrivals = 0
        self.isl_sum = 0
        self.osl_sum = 0
        self.completions = 0
        self.dropped = 0
        self.preemptions = 0
        self.first_tokens = 0
        self.hit_tokens = 0
        self.lookup_tokens = 0
        self.prefill_tokens = 0
        self.decode_tokens = 0
        self.ttft = Histogram()
        self.itl = Histogram()

    def report(self, end: float) -> TrafficWindow:
        counts = {name: getattr(self, name) for name in WINDOW_COUNTERS}
        return TrafficWindow(start_ms=self.start, end_ms=end, ttft=LatencyStats.of(self.ttft), itl=LatencyStats.of(self.itl),
                             **counts)


class _Worker:
    __slots__ = ("id", "role", "schedule_order", "state", "ready", "ready_at", "busy_mark", "busy_acc", "passes", "tokens",
                 "rank", "ranking", "stale", "quiet", "quiet_state", "quiet_cap", "quiet_kv", "quiet_queued")

    def __init__(self, wid: int, role: str, ready_at: float, ready: bool) -> None:
        self.id = wid
        self.role = role
        # Where the scheduling phase takes this worker among those touched at one time: the prefill workers
        # first, each role in id order.  One int, (role, id) as the ints sort, made once (``Any``: a compiled
        # build keeps the object, which the sort compares, instead of boxing it again for each sort).
        self.schedule_order: Any = (0 if role == PREFILL else 1) << _ID_BITS | wid
        self.state = ACTIVE if ready else STARTING
        self.ready = ready
        self.ready_at = ready_at
        self.busy_mark: float | None = None  # start of the busy time not yet accounted
        self.busy_acc = 0.0  # busy time accounted in the current window
        self.passes = 0
        self.tokens = 0
        # Where the routers see this worker: its entry ``load << _ID_BITS | id`` in the fleet's ranking of
        # the accepting workers of its role and state, and that ranking (both None once draining or gone).
        self.rank: int | None = None
        self.ranking: _Ranking | None = None
        self.stale = False  # listed in the fleet's workers to re-rank (Fleet._mark_prefill / _mark_decode)
        # The metrics of the last snapshot that found this worker quiet (nothing in flight, queued or done in
        # its window), and what they depend on besides: a quiet worker's next snapshot reuses them while those
        # are unchanged (most of a big fleet is quiet at any snapshot).
        self.quiet: WorkerMetrics | None = None
        self.quiet_state = ""
        self.quiet_cap = 0.0
        self.quiet_kv = 0
        self.quiet_queued = 0

    def quiet_metrics(self, cap: float, kv: int, queued: int) -> WorkerMetrics | None:
        """The last quiet snapshot's metrics if they still hold for this state, ``cap``, ``kv`` and ``queued``."""
        m = self.quiet
        if m is not None and self.quiet_state == self.state and self.quiet_cap == cap and self.quiet_kv == kv \
                and self.quiet_queued == queued:
            return m
        return None

    def keep_quiet(self, m: WorkerMetrics, cap: float, kv: int, queued: int) -> WorkerMetrics:
        """Remember ``m``, the metrics of this worker found quiet, for the next snapshots (``quiet_metrics``)."""
        self.quiet = m
        self.quiet_state = self.state
        self.quiet_cap = cap
        self.quiet_kv = kv
        self.quiet_queued = queued
        return m

    def busy_start(self, t: float) -> None:
        if self.busy_mark is None:
            self.busy_mark = t

    def busy_stop(self, t: float) -> None:
        if self.busy_mark is not None:
            self.busy_acc += t - self.busy_mark
            self.busy_mark = None

    def holds_work(self) -> bool:
        raise NotImplementedError


class _PrefillWorker(_Worker):
    __slots__ = ("queue", "queued_tokens", "cache", "chunks", "pass_start", "pass_end", "pass_tokens", "version", "slot", "bit")

    def __init__(self, wid: int, ready_at: float, ready: bool, cache_blocks: int, index: dict[Any, int] | None,
                 slot: int) -> None:
        super().__init__(wid, PREFILL, ready_at, ready)
        self.queue: deque[_Req] = deque()
        self.queued_tokens = 0
        self.slot = slot
        self.bit = 1 << slot  # this worker's bit in the fleet's holders index and candidate masks
        self.cache = PrefixCache(cache_blocks, index, self.bit)
        self.chunks: list[tuple[_Req, int]] | None = None  # the pass in flight
        self.pass_start = 0.0
        self.pass_end = 0.0
        self.pass_tokens = 0
        self.version = 0

    def holds_work(self) -> bool:
        return bool(self.queue)


class _DecodeWorker(_Worker):
    __slots__ = (
        "waiting", "waiting_ctx", "running", "heap", "steps", "used",
        "seg", "seg_start", "seg_b", "seg_alpha", "seg_beta", "seg_k", "seg_acc", "version",
    )

    def __init__(self, wid: int, ready_at: float, ready: bool) -> None:
        super().__init__(wid, DECODE, ready_at, ready)
        self.waiting: deque[_Req] = deque()
        self.waiting_ctx = 0
        self.running: dict[_Req, None] = {}  # insertion order = admission order
        self.heap: list[tuple[int, int, _Req]] = []  # (finishing step, admit seq, request)
        self.steps = 0  # steps completed at the start of the current segment
        self.used = 0  # KV tokens in use at the start of the current segment
        self.seg = False  # a segment (run of steps) is in flight
        self.seg_start = 0.0
        self.seg_b = 0
        self.seg_alpha = 0.0  # duration of the segment's first step (from the timing model's run)
        self.seg_beta = 0.0  # growth of the step duration per step
        self.seg_k = 0  # steps until the segment's boundary event
        self.seg_acc = 0  # steps already accounted in window statistics
        self.version = 0

    def holds_work(self) -> bool:
        return bool(self.running) or bool(self.waiting)

    def seg_time(self, k: int) -> float:
        """End time of the segment's k-th step (k = 0 is the segment start)."""
        return run_end(self.seg_start, self.seg_alpha, self.seg_beta, k)

    def steps_by(self, t: float) -> int:
        """Steps of the current segment completed by time ``t`` (0..seg_k)."""
        return run_steps_by(self.seg_start, self.seg_alpha, self.seg_beta, self.seg_k, t)


_W = TypeVar("_W", bound=_Worker)


class Fleet:
    """A disaggregated prefill/decode fleet replaying ``requests``.

    See ``docs/fleet_model.md`` for the exact semantics and the module
    docstring for how it stays fast.  ``on_finish`` receives a
    :class:`RequestOutcome` for every request that completes or is dropped
    (and, closed loop, for every session turn that is abandoned).
    ``closed_loop`` replays the trace's sessions closed loop
    (:mod:`replaylib.sim.arrivals`); ``None`` is open loop.
    ``timing`` / ``power`` replace the models the system's YAML names
    (``replaylib.timing``).  ``frontend`` gates the arrivals
    (:mod:`replaylib.sim.frontend`: injected rejections, admission control).
    """

    def __init__(
        self,
        system: System,
        config: FleetConfig,
        requests: Iterable[Request],
        *,
        block_size: int = 512,
        on_finish: Callable[[RequestOutcome], None] | None = None,
        closed_loop: ClosedLoop | None = None,
        timing: TimingModel | None = None,
        power: PowerModel | None = None,
        frontend: Frontend | None = None,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.system = system
        self.config = config
        self.block_size = block_size
        self._on_finish = on_finish
        self.timing: TimingModel = timing if timing is not None else timing_model(system)
        self.power: PowerModel = power if power is not None else power_model(system)
        self._kv_cap = system.kv.capacity_tokens
        self._cache_blocks = system.kv.capacity_tokens // block_size
        self._max_batched = config.max_num_batched_tokens
        self._max_seqs = config.max_num_seqs
        self._prefix_cache = config.prefix_cache
        self._router = config.router

        self._caps = {PREFILL: system.gpu.max_cap_w, DECODE: system.gpu.max_cap_w}
        self._speed = {role: self.power.speed(role, self._caps[role]) for role in ROLES}  # type: ignore[arg-type]

        self._now = 0.0
        self._events: list[tuple] = []
        self._arrivals: Any = OpenLoopArrivals(requests) if closed_loop is None else ClosedLoopArrivals(requests, closed_loop, self._abandoned)
        if frontend is not None:  # requests it rejects never arrive here (replaylib.sim.frontend)
            self._arrivals = frontend.wrap(self._arrivals)
        self._closed = self._arrivals.closed
        self._next_time = self._arrivals.next_time

        self._next_id = 0
        self._prefill: list[_PrefillWorker] = []  # not gone, id order
        self._decode: list[_DecodeWorker] = []
        self._rr = {PREFILL: 0, DECODE: 0}
        # Ranked mode (from RANKED_FROM_WORKERS workers on, then for good): per role, the active and the
        # starting workers ranked by (load, id), where the load is a prefill worker's queued tokens and a
        # decode worker's used + waiting KV at the start of its segment (its KV now is never less), and the
        # active and the starting prefill workers as bit masks (by slot); see _route_prefill, _place_decode.
        self._ranked_mode = False
        # The routing candidates of each role (_candidates), kept until a worker of the fleet changes state.
        self._cands_p: list[_PrefillWorker] | None = None
        self._cands_d: list[_DecodeWorker] | None = None
        self._by_id: list[_Worker | None] = []  # every worker by id, None once gone (ranking entry -> worker)
        self._small_group = SMALL_GROUP  # read once: tests change the module's value before building a fleet
        self._ranked: dict[tuple[str, str], _Ranking] = {(role, st): _Ranking() for role in ROLES for st in (ACTIVE, STARTING)}
        # The same rankings, as routing (prefill) and placement (decode) read them: the active, then the starting.
        self._ranked_p = (self._ranked[PREFILL, ACTIVE], self._ranked[PREFILL, STARTING])
        self._ranked_d = (self._ranked[DECODE, ACTIVE], self._ranked[DECODE, STARTING])
        self._prefill_bits = {ACTIVE: 0, STARTING: 0}
        # Ranked workers whose load may have changed since they were ranked: re-ranked just before a
        # routing (prefill) or a placement (decode) reads the rankings, once however often they changed
        # (listed once: a listed worker's ``stale`` is set; see _rerank_prefill, _rerank_decode).
        self._stale_p: list[_PrefillWorker] = []
        self._stale_d: list[_DecodeWorker] = []
        # Ranked mode, kv_aware with a prefix cache: block id -> bit mask of the prefill workers holding it.
        self._holders: dict[Any, int] | None = None
        self._slots: list[_PrefillWorker | None] = []  # slot -> prefill worker (None: free)
        self._free_slots: list[int] = []  # the free slots (None above), a heap: a new prefill worker takes the lowest
        self._touched: dict[_Worker, None] = {}
        self._admit_counter = 0
        for _ in range(config.prefill_workers):
            self._add_worker(PREFILL, ready=True)
        for _ in range(config.decode_workers):
            self._add_worker(DECODE, ready=True)

        self._arrived = 0
        self._completed = 0
        self._dropped = 0
        self._preemptions = 0
        self._dropped_by = dict.fromkeys(DROP_REASONS, 0)
        self._window = _Window(0.0)

    # -- public API -------------------------------------------------------------------

    @property
    def now_ms(self) -> float:
        return self._now

    @property
    def next_arrival_ms(self) -> float:
        """When the next request enters the fleet (inf when the trace is exhausted)."""
        return self._next_time

    @property
    def caps(self) -> tuple[float, float]:
        return self._caps[PREFILL], self._caps[DECODE]

    def worker_counts(self) -> tuple[RoleCounts, RoleCounts]:
        """Live (prefill, decode) worker counts, including changes since the last snapshot."""
        return _counts(self._prefill), _counts(self._decode)

    def advance_to(self, t_ms: float) -> Snapshot:
        """Process every event up to ``t_ms`` (finishing passes in flight) and snapshot."""
        steps: dict[_DecodeWorker, int] | None = None  # each segment's steps by the snapshot time, when known
        if t_ms > self._now:
            self._run_until(t_ms)
            end = t_ms
            for w in self._prefill:
                if w.chunks is not None and w.pass_start < t_ms < w.pass_end:
                    end = max(end, w.pass_end)
            steps = {}
            for d in self._decode:
                if d.seg:
                    steps[d] = k = run_steps_by(d.seg_start, d.seg_alpha, d.seg_beta, d.seg_k, t_ms)
                    if k < d.seg_k and d.seg_time(k) < t_ms:
                        end = max(end, d.seg_time(k + 1))
            if end > t_ms:
                self._run_until(end)
                steps = None  # events ran on to ``end``
            self._now = end
        return self._snapshot(steps)

    def apply_scaling(self, n_prefill: object, n_decode: object) -> ScalingResult:
        """Target ``n`` accepting workers per role (ints >= 1, else ValueError): start new ones or drain the newest.

        The counts are typed ``object`` because they are checked here: a compiled build would otherwise
        refuse a non-int with its own TypeError before this check."""
        targets: list[tuple[str, int]] = []
        for role, n in ((PREFILL, n_prefill), (DECODE, n_decode)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"a fleet needs at least 1 {role} worker, got {n!r}")
            targets.append((role, n))
        started: list[int] = []
        draining: list[int] = []
        removed: list[int] = []
        for role, n in targets:
            pool = self._pool(role)
            accepting = [w for w in pool if w.state in (ACTIVE, STARTING)]
            for _ in range(n - len(accepting)):
                started.append(self._add_worker(role, ready=False).id)
            for w in sorted(accepting, key=lambda w: w.id, reverse=True)[: max(0, len(accepting) - n)]:
                self._set_state(w, DRAINING)
                draining.append(w.id)
                if not w.holds_work():
                    self._remove(w)
                    removed.append(w.id)
        self._schedule(self._now)
        return ScalingResult(started=tuple(started), draining=tuple(draining), removed=tuple(removed))

    def apply_caps(self, cap_prefill_w: float, cap_decode_w: float) -> CapResult:
        """Set per-GPU power caps (clamped to the settable range); slows the next passes."""
        applied = {PREFILL: self.system.clamp_cap(cap_prefill_w), DECODE: self.system.clamp_cap(cap_decode_w)}
        for role in ROLES:
            if applied[role] != self._caps[role]:
                self._caps[role] = applied[role]
                speed = self.power.speed(role, applied[role])  # type: ignore[arg-type]
                if speed != self._speed[role]:
                    self._speed[role] = speed
                    if role == DECODE:
                        for d in self._decode:
                            self._cut_after(d, self._now)
        return CapResult(
            requested_prefill_w=float(cap_prefill_w),
            requested_decode_w=float(cap_decode_w),
            applied_prefill_w=applied[PREFILL],
            applied_decode_w=applied[DECODE],
        )

    def fail_workers(self, role: str, n: int) -> int:
        """Node loss: the ``n`` newest workers of ``role`` vanish; their work is re-routed."""
        if role not in ROLES:
            raise ValueError(f"role must be 'prefill' or 'decode', got {role!r}")
        if n < 0:
            raise ValueError(f"cannot fail a negative number of workers: {n}")
        victims = sorted(self._pool(role), key=lambda w: w.id, reverse=True)[:n]
        orphans: list[_Req] = []
        for w in sorted(victims, key=lambda w: w.id):  # work is re-routed worker by worker, in id order
            if isinstance(w, _PrefillWorker):
                w.busy_stop(self._now)
                for r in w.queue:
                    r.done = 0
                    r.cached = 0
                    r.scheduled = False
                    orphans.append(r)
                w.queue.clear()
                w.chunks = None
            else:
                assert isinstance(w, _DecodeWorker)
                if w.seg:
                    k = w.steps_by(self._now)
                    self._sync(w, k)
                    w.steps += k
                    w.seg = False
                w.busy_stop(self._now)
                for r in w.running:
                    r.generated = r.gen0 + w.steps - r.step0
                    r.in_batch = False
                    orphans.append(r)
                orphans.extend(w.waiting)
                w.running.clear()
                w.waiting.clear()
                w.heap.clear()
            self._remove(w)
        for r in orphans:
            if role == PREFILL:
                self._route_prefill(r)
            else:
                self._place_decode(r, self._now, after_schedule=True)
        self._schedule(self._now)
        return len(victims)

    def outcomes_in_flight(self) -> list[RequestOutcome]:
        """Outcomes (status ``in_flight``) of every request still in the fleet, by index."""
        reqs: list[_Req] = []
        for w in self._prefill:
            reqs.extend(w.queue)
        for d in self._decode:
            k = d.steps_by(self._now) if d.seg else 0
            for r in d.running:
                r.generated = r.gen0 + d.steps + k - r.step0
                reqs.append(r)
            reqs.extend(d.waiting)
        reqs.extend(ev[4] for ev in self._events if ev[1] == _HANDOFF)
        reqs.sort(key=lambda r: r.index)
        return [self._outcome(r, "in_flight", None, None) for r in reqs]

    # -- event loop ---------------------------------------------------------------------

    def _run_until(self, limit: float) -> None:
        events = self._events
        # The methods are called as self._x(...) and the workers cast to their class: a compiled build
        # (replaylib.native) then calls and reads them natively.
        while True:
            t = self._next_time
            if events and events[0][0] < t:
                t = events[0][0]
            if t > limit:
                return
            self._now = t
            while events and events[0][0] == t:
                ev = _pop_event(events)
                kind = ev[1]
                if kind == _STEP_END:
                    d = cast(_DecodeWorker, ev[4])
                    if d.version == ev[3] and d.seg:
                        self._boundary(d, t)
                elif kind == _PASS_END:
                    p = cast(_PrefillWorker, ev[4])
                    if p.version == ev[3] and p.chunks is not None:
                        self._pass_end(p, t)
                elif kind == _HANDOFF:
                    self._place_decode(ev[4], t)
                else:  # _READY
                    w = cast(_Worker, ev[4])
                    if w.state != GONE:
                        w.ready = True
                        if w.state == STARTING:
                            self._set_state(w, ACTIVE)
                        self._touched[w] = None
            if self._next_time == t:
                arrive = self._arrive
                while self._next_time == t:
                    arrive(t)
            if self._touched:
                self._schedule(t)

    def _arrive(self, t: float) -> None:
        src = self._arrivals
        item = src.pop(t)
        self._next_time = src.next_time
        if item is None:
            return  # closed loop: rows entered the look-ahead window, none is due yet
        r = _Req(item[0], item[1], t)
        self._arrived += 1
        win = self._window
        win.arrivals += 1
        win.isl_sum += r.isl
        win.osl_sum += r.osl
        self._route_prefill(r)

    def _schedule(self, t: float) -> None:
        """The scheduling phase at ``t``: idle ready workers start work; empty drainers go."""
        touched = self._touched
        if not touched:
            return
        self._touched = {}
        for w in touched if len(touched) == 1 else sorted(touched, key=_schedule_key):
            if w.state == GONE:
                continue
            if isinstance(w, _PrefillWorker):
                if w.ready and w.chunks is None and w.queue:
                    self._start_pass(w, t)
            else:
                d = cast(_DecodeWorker, w)
                if d.ready and not d.seg and (d.waiting or d.running):
                    self._start_segment(d, t)
            if w.state == DRAINING and not w.holds_work():
                self._remove(w)

    # -- routing ------------------------------------------------------------------------

    def _prefill_candidates(self) -> list[_PrefillWorker]:
        cands = self._cands_p
        if cands is None:
            cands = self._cands_p = _candidates(self._prefill)
        return cands

    def _decode_candidates(self) -> list[_DecodeWorker]:
        cands = self._cands_d
        if cands is None:
            cands = self._cands_d = _candidates(self._decode)
        return cands

    def _route_prefill(self, r: _Req) -> None:
        r.hits_at = -1  # kv_aware sets it where it finds the chosen worker's hits (a re-routing too)
        if self._ranked_mode:
            self._route_ranked(r)
            return
        cands = self._prefill_candidates()
        if not cands:
            self._drop(r, "no_prefill_worker")
            return
        if self._router == "round_robin":
            w = cands[self._rr[PREFILL] % len(cands)]
            self._rr[PREFILL] += 1
        elif len(cands) == 1:
            w = cands[0]
        elif self._router == "least_loaded":
            w = min(cands, key=lambda c: (c.queued_tokens, c.id))
        else:  # kv_aware
            ids = r.hash_ids
            isl = r.isl
            w = cands[0]
            if ids and self._prefix_cache:
                bs, first = self.block_size, ids[0]
                most = min(len(ids) * bs, isl)  # the largest overlap there can be
                best: int | None = None  # the least cost so far
                best_hits = 0
                for c in cands:
                    cost = c.queued_tokens + isl
                    if best is not None and cost - most >= best:
                        continue  # even a full overlap would not make it strictly cheaper
                    lru = c.cache.lru
                    hits = 0
                    if first in lru:  # else no leading hit: overlap 0
                        for h in ids:
                            if h not in lru:
                                break
                            hits += 1
                        cost -= min(hits * bs, isl)
                    if best is None or cost < best:
                        best, w, best_hits = cost, c, hits
                r.hits = best_hits
                r.hits_at = w.cache.inserts
            else:  # every overlap is 0: the least queued, ties to the lowest id
                w = min(cands, key=lambda c: (c.queued_tokens, c.id))
        w.queue.append(r)
        w.queued_tokens += r.isl
        if w.ready and w.chunks is None:  # else nothing can start before its pass ends or it is ready
            self._touched[w] = None

    def _route_ranked(self, r: _Req) -> None:
        """``_route_prefill`` in ranked mode: the same choice without a scan of every candidate."""
        if self._stale_p:
            self._rerank_prefill()
        ranked = _accepting(self._ranked_p)
        if ranked is None:
            self._drop(r, "no_prefill_worker")
            return
        if self._router == "round_robin":
            cands = self._prefill_candidates()
            w = cands[self._rr[PREFILL] % len(cands)]
            self._rr[PREFILL] += 1
        else:
            # The least loaded candidate, ties to the lowest id: least_loaded's pick, and kv_aware's when no
            # candidate holds the request's first block (every overlap is 0, every cost load + isl).
            ids = r.hash_ids
            if ids and len(ranked.idle) + len(ranked.loaded) > 1 and self._holders is not None:
                w = self._kv_aware_pick(r, ids, ranked)
            else:
                w = self._by_id[ranked.first() & _ID_MASK]  # type: ignore[assignment]
        w.queue.append(r)
        w.queued_tokens += r.isl
        self._mark_prefill(w)
        if w.ready and w.chunks is None:  # else nothing can start before its pass ends or it is ready
            self._touched[w] = None

    def _kv_aware_pick(self, r: _Req, ids: list[Any], ranked: _Ranking) -> _PrefillWorker:
        """kv_aware over ``ranked``: minimum ``queued_tokens + isl - overlap``, ties to the lowest id.

        The holders index gives, depth by depth, the bit mask of the candidates holding the first ``h``
        ids; the candidates with exactly ``h`` leading hits share one overlap, so only the least loaded
        (lowest id among equals) of each such group can be chosen: compare those.  A small group is
        looked at member by member, and once few candidates hold the first ``h`` ids, each one's own cache
        gives its leading hits beyond them (cheaper than more depths of the index); the big groups are found
        together, by one walk of the ranking that stops once no group's first member could still beat the best.
        """
        bs, isl, n = self.block_size, r.isl, len(ids)
        holders = cast("dict[Any, int]", self._holders)
        by_id = self._by_id
        w = cast(_PrefillWorker, by_id[ranked.first() & _ID_MASK])
        at_least = self._prefill_bits[w.state]  # candidates with >= h leading hits
        count = len(ranked.idle) + len(ranked.loaded)  # at_least's bits: every ranked candidate has its bit
        small = self._small_group
        best: int | None = None  # as a ranking entry: cost << _ID_BITS | id
        best_hits = 0  # the chosen one's leading hits
        slots = self._slots
        big: list[tuple[int, int, int]] = []  # (isl - overlap, members, leading hits) of the big groups
        h = 0
        while at_least:
            if count <= small:  # few candidates hold ids[:h]: walk each one's own cache from there
                while at_least:
                    low = at_least & -at_least
                    at_least ^= low
                    c = cast(_PrefillWorker, slots[low.bit_length() - 1])
                    lru = c.cache.lru
                    hits = h
                    while hits < n and ids[hits] in lru:
                        hits += 1
                    key = (c.queued_tokens + isl - min(hits * bs, isl)) << _ID_BITS | c.id
                    if best is None or key < best:
                        best, w, best_hits = key, c, hits
                break
            more = at_least & holders.get(ids[h], 0) if h < n else 0
            more_count = more.bit_count() if more else 0
            exact = at_least ^ more  # exactly h leading hits (more is a subset of at_least)
            if exact:
                cost = isl - min(h * bs, isl)
                if count - more_count <= small:
                    while exact:
                        low = exact & -exact
                        exact ^= low
                        c = cast(_PrefillWorker, slots[low.bit_length() - 1])
                        key = (c.queued_tokens + cost) << _ID_BITS | c.id
                        if best is None or key < best:
                            best, w, best_hits = key, c, h
                else:
                    big.append((cost, exact, h))
            at_least, count = more, more_count
            h += 1
        if big:
            # The walk, in rank order: the idle entries least first (the last of their negated list first), then the loaded.
            # The smallest isl - overlap among the groups still looked for: the last group's, as the groups went
            # in deeper and deeper (h grows, so isl - min(h * bs, isl) never does).
            least = big[-1][0] << _ID_BITS
            idle = ranked.idle
            n_idle = len(idle)
            loaded = ranked.loaded
            for i in range(n_idle + len(loaded)):
                key = -idle[n_idle - 1 - i] if i < n_idle else loaded[i - n_idle]
                if best is not None and key + least > best:
                    break  # every later entry, in every group left, costs more than the best
                c = cast(_PrefillWorker, by_id[key & _ID_MASK])
                bit = c.bit
                for g, (cost, members, hits) in enumerate(big):
                    if members & bit:  # the first (least loaded) member of its group
                        key += cost << _ID_BITS
                        if best is None or key < best:
                            best, w, best_hits = key, c, hits
                        big.pop(g)
                        break
                else:
                    continue
                if not big:
                    break
                least = big[-1][0] << _ID_BITS
        r.hits = best_hits
        r.hits_at = w.cache.inserts
        return w

    def _place_decode(self, r: _Req, t: float, *, after_schedule: bool = False) -> None:
        """Place a request on a decode worker at ``t``.

        A hand-off during the events at ``t`` is admissible at a step boundary exactly
        at ``t`` (the scheduling phase at ``t`` is still to come); a re-placement after
        that phase (``after_schedule``, from ``fail_workers``) is not: the step starting
        at ``t`` has already begun.
        """
        steps_now = -1  # the chosen worker's steps_by(t), when the choice needed it
        if self._ranked_mode:
            if self._stale_d:
                self._rerank_decode()
            ranked = _accepting(self._ranked_d)
            if ranked is None:
                self._drop(r, "no_decode_worker")
                return
            by_id = self._by_id
            w = cast(_DecodeWorker, by_id[ranked.first() & _ID_MASK])
            idle = ranked.idle
            n_idle = len(idle)
            loaded = ranked.loaded
            if n_idle + len(loaded) > 1:
                # Most free KV, ties to the lowest id: the least (used now + waiting, id).  A worker's rank
                # load is that at the start of its segment, never more than its load now (steps only add
                # KV), so the walk in rank order (the idle least first, then the loaded) stops at the first
                # worker whose load cannot beat the best.
                best: int | None = None
                for i in range(n_idle + len(loaded)):
                    key = -idle[n_idle - 1 - i] if i < n_idle else loaded[i - n_idle]
                    if best is not None and key > best:
                        break
                    c = cast(_DecodeWorker, by_id[key & _ID_MASK])
                    k = -1
                    if c.seg:
                        k = run_steps_by(c.seg_start, c.seg_alpha, c.seg_beta, c.seg_k, t)
                        key += k * c.seg_b << _ID_BITS
                    if best is None or key < best:
                        best, w, steps_now = key, c, k
        else:
            cands = self._decode_candidates()
            if not cands:
                self._drop(r, "no_decode_worker")
                return
            w = cands[0]
            if len(cands) > 1:
                # Most free KV now, ties to the lowest id.  A worker's free KV at the start of its segment
                # bounds it from above (steps only take more): the worker with the most of that is
                # counted first, the others' steps only where they could still beat the best.
                cap = self._kv_cap
                best_free = cap - w.used - w.waiting_ctx
                for c in cands:
                    free = cap - c.used - c.waiting_ctx
                    if free > best_free:
                        best_free, w = free, c
                if w.seg:
                    steps_now = run_steps_by(w.seg_start, w.seg_alpha, w.seg_beta, w.seg_k, t)
                    best_free -= steps_now * w.seg_b
                lead = w
                for c in cands:
                    if c is lead:
                        continue
                    free = cap - c.used - c.waiting_ctx
                    if free < best_free or (free == best_free and c.id > w.id):
                        continue  # it cannot beat the best
                    k = -1
                    if c.seg:
                        k = run_steps_by(c.seg_start, c.seg_alpha, c.seg_beta, c.seg_k, t)
                        free -= k * c.seg_b
                    if free > best_free or (free == best_free and c.id < w.id):
                        best_free, w, steps_now = free, c, k
        ctx = r.isl + r.generated
        was_empty = not w.waiting
        w.waiting.append(r)
        w.waiting_ctx += ctx
        if w.rank is not None:
            self._mark_decode(w)
        if not w.seg:
            self._touched[w] = None
        elif was_empty and len(w.running) < self._max_seqs:
            # Admissible at the next step boundary?  Only then cut the segment there.
            k = steps_now if steps_now >= 0 else run_steps_by(w.seg_start, w.seg_alpha, w.seg_beta, w.seg_k, t)
            boundary = run_end(w.seg_start, w.seg_alpha, w.seg_beta, k)
            end: float | None = boundary
            if boundary < t or (after_schedule and boundary <= t):
                k += 1
                end = None
            if k < w.seg_k and w.used + k * w.seg_b + ctx + w.seg_b + 1 <= self._kv_cap:
                self._cut_at(w, k, end)

    # -- prefill ------------------------------------------------------------------------

    def _start_pass(self, w: _PrefillWorker, t: float) -> None:
        budget = self._max_batched
        chunks: list[tuple[_Req, int]] = []
        spans: list[tuple[int, int]] = []  # (new tokens, context) per chunk, for the timing model
        total = 0
        win = self._window
        use_cache = self._prefix_cache
        for r in w.queue:
            if not r.scheduled:
                r.scheduled = True
                cached = 0
                ids = r.hash_ids
                if use_cache and ids:
                    cache = w.cache
                    hits = r.hits if r.hits_at == cache.inserts else cache.leading_hits(ids)
                    if hits:
                        cache.touch(ids, hits)
                        cached = min(hits * self.block_size, r.isl - 1)
                r.cached = r.done = cached
                w.queued_tokens -= cached
                win.hit_tokens += cached
                win.lookup_tokens += r.isl
            n = r.isl - r.done
            if n > budget:
                n = budget
            chunks.append((r, n))
            spans.append((n, r.done))
            total += n
            budget -= n
            if budget == 0:
                break
        if w.rank is not None:
            self._mark_prefill(w)
        duration = self.timing.prefill_pass_ms(spans, self._speed[PREFILL])
        w.chunks = chunks
        w.pass_start = t
        w.pass_end = t + duration
        w.pass_tokens = total
        w.version += 1
        if w.busy_mark is None:
            w.busy_mark = t
        _push_event(self._events, (w.pass_end, _PASS_END, w.id, w.version, w))

    def _pass_end(self, w: _PrefillWorker, t: float) -> None:
        chunks = w.chunks
        assert chunks is not None
        w.chunks = None
        if w.busy_mark is not None:  # busy_stop
            w.busy_acc += t - w.busy_mark
            w.busy_mark = None
        w.passes += 1
        tokens = w.pass_tokens
        w.tokens += tokens
        w.queued_tokens -= tokens
        if w.rank is not None:
            self._mark_prefill(w)
        win = self._window
        win.prefill_tokens += tokens
        queue = w.queue
        use_cache = self._prefix_cache
        for r, n in chunks:
            r.done += n
            if r.done < r.isl:
                break  # only the last chunk can be partial
            queue.popleft()
            r.first_token = t
            r.generated = 1
            if use_cache and r.hash_ids:
                w.cache.insert(r.hash_ids)
            r.hash_ids = None
            win.first_tokens += 1
            win.ttft.add(t - r.arrival)
            if r.osl == 1:
                self._complete(r, t)
            else:
                _push_event(self._events, (self.timing.kv_transfer_end_ms(t, r.isl), _HANDOFF, t, r.index, r))
        self._touched[w] = None

    # -- decode -------------------------------------------------------------------------

    def _start_segment(self, d: _DecodeWorker, t: float) -> None:
        """At a step boundary of an idle-or-just-synced worker: admit, preempt, run."""
        cap = self._kv_cap
        running = d.running
        waiting = d.waiting
        if waiting:
            self._admit(d)
        while running and d.used + len(running) > cap:
            r, _ = running.popitem()
            r.in_batch = False
            r.generated = r.gen0 + d.steps - r.step0
            ctx = r.isl + r.generated
            d.used -= ctx
            waiting.appendleft(r)
            d.waiting_ctx += ctx
            r.preemptions += 1
            self._preemptions += 1
            self._window.preemptions += 1
            if not running:
                self._admit(d)  # once more: a request that no longer fits even alone is dropped
        if d.rank is not None:
            self._mark_decode(d)  # admission drops (admitting and preempting move KV between the two)
        if not running:
            d.busy_stop(t)
            return
        heap = d.heap
        top = heap[0]
        while not (top[2].in_batch and top[2].admit_seq == top[1]):
            _heappop(heap)
            top = heap[0]
        b = len(running)
        d.seg = True
        d.seg_start = t
        d.seg_b = b
        alpha, beta, linear_steps = self.timing.decode_run(b, d.used, self._speed[DECODE])
        d.seg_alpha = alpha
        d.seg_beta = beta
        d.seg_acc = 0
        k = top[0] - d.steps  # min(next completion, KV room, the run's linear steps)
        room = (cap - d.used) // b
        if room < k:
            k = room
        if linear_steps < k:
            k = linear_steps
        d.seg_k = k
        d.version += 1
        if d.busy_mark is None:
            d.busy_mark = t
        _push_event(self._events, (run_end(t, alpha, beta, k), _STEP_END, d.id, d.version, d))

    def _admit(self, d: _DecodeWorker) -> None:
        """Admission at a step boundary: FIFO while the batch and its next step fit."""
        cap = self._kv_cap
        running, waiting = d.running, d.waiting
        while waiting and len(running) < self._max_seqs:
            r = waiting[0]
            ctx = r.isl + r.generated
            if d.used + ctx + len(running) + 1 <= cap:
                waiting.popleft()
                d.waiting_ctx -= ctx
                self._admit_counter += 1
                r.admit_seq = self._admit_counter
                r.gen0 = r.generated
                r.step0 = d.steps
                r.in_batch = True
                running[r] = None
                d.used += ctx
                _heappush(d.heap, (d.steps + r.osl - r.generated, r.admit_seq, r))
            elif not running:
                waiting.popleft()
                d.waiting_ctx -= ctx
                self._drop(r, "kv_too_large")
            else:
                break

    def _cut_at(self, d: _DecodeWorker, k: int, end: float | None = None) -> None:
        """End the current segment after its k-th step (ending at ``end``, if known) instead of as planned."""
        d.seg_k = k
        d.version += 1
        if end is None:
            end = run_end(d.seg_start, d.seg_alpha, d.seg_beta, k)
        _push_event(self._events, (end, _STEP_END, d.id, d.version, d))

    def _cut_after(self, d: _DecodeWorker, t: float) -> None:
        """End the segment at the first step boundary strictly after ``t`` (cap change)."""
        if d.seg:
            k = d.steps_by(t) + 1
            if k < d.seg_k:
                self._cut_at(d, k)

    def _sync(self, d: _DecodeWorker, k: int) -> None:
        """Account the segment's steps up to k into the window statistics."""
        acc = d.seg_acc
        n = k - acc
        if n > 0:
            b = d.seg_b
            win = self._window
            win.itl.add_linear(run_step(d.seg_alpha, d.seg_beta, acc), d.seg_beta, n, b)
            win.decode_tokens += n * b
            d.passes += n
            d.tokens += n * b
            d.seg_acc = k

    def _boundary(self, d: _DecodeWorker, t: float) -> None:
        """A planned segment boundary: apply its steps, complete finished requests."""
        k = d.seg_k
        if k > d.seg_acc:
            self._sync(d, k)
        d.seg = False
        if d.busy_mark is not None:  # busy_stop
            d.busy_acc += t - d.busy_mark
            d.busy_mark = None
        d.steps = steps = d.steps + k
        d.used += k * d.seg_b
        heap = d.heap
        while heap and heap[0][0] <= steps:
            _, seq, r = _heappop(heap)
            if r.in_batch and r.admit_seq == seq:
                r.in_batch = False
                del d.running[r]
                d.used -= r.isl + r.osl
                r.generated = r.osl
                self._complete(r, t)
        if d.rank is not None:
            self._mark_decode(d)
        self._touched[d] = None

    # -- rankings -----------------------------------------------------------------------

    def _mark_prefill(self, w: _PrefillWorker) -> None:
        """Ranked ``w``'s load may have changed: re-rank it before the next routing."""
        if not w.stale:
            w.stale = True
            self._stale_p.append(w)

    def _mark_decode(self, d: _DecodeWorker) -> None:
        """Ranked ``d``'s load may have changed: re-rank it before the next placement."""
        if not d.stale:
            d.stale = True
            self._stale_d.append(d)

    def _rerank_prefill(self) -> None:
        """Re-rank the prefill workers marked since the last routing (by queued tokens)."""
        for c in self._stale_p:
            c.stale = False
            if c.rank is not None:
                _rerank(c, c.queued_tokens)
        self._stale_p.clear()

    def _rerank_decode(self) -> None:
        """Re-rank the decode workers marked since the last placement (by used + waiting KV)."""
        for d in self._stale_d:
            d.stale = False
            if d.rank is not None:
                _rerank(d, d.used + d.waiting_ctx)
        self._stale_d.clear()

    # -- workers ------------------------------------------------------------------------

    def _pool(self, role: str) -> list:
        return self._prefill if role == PREFILL else self._decode

    def _add_worker(self, role: str, *, ready: bool) -> _Worker:
        wid = self._next_id
        self._next_id += 1
        ready_at = self._now if ready else self._now + self.system.startup_delay_ms
        w: _Worker
        if role == PREFILL:
            slots = self._slots
            slot = _heappop(self._free_slots) if self._free_slots else len(slots)
            w = _PrefillWorker(wid, ready_at, ready, self._cache_blocks, self._holders, slot)
            if slot == len(slots):
                slots.append(w)
            else:
                slots[slot] = w
            self._prefill.append(w)
        else:
            w = _DecodeWorker(wid, ready_at, ready)
            self._decode.append(w)
        if wid > _ID_MASK:
            raise OverflowError(f"worker id {wid} does not fit a ranking entry")
        self._by_id.append(w)  # at index wid: ids are handed out in order
        self._cands_p = self._cands_d = None
        if self._ranked_mode:
            self._set_state(w, w.state)
        elif len(self._prefill) + len(self._decode) >= RANKED_FROM_WORKERS:
            self._enter_ranked_mode()
        if not ready:
            _push_event(self._events, (ready_at, _READY, wid, 0, w))
        return w

    def _remove(self, w: _Worker) -> None:
        self._set_state(w, GONE)
        pool = self._pool(w.role)
        pool.remove(w)
        self._by_id[w.id] = None
        if isinstance(w, _PrefillWorker):
            w.cache.detach()
            self._slots[w.slot] = None
            _heappush(self._free_slots, w.slot)

    def _enter_ranked_mode(self) -> None:
        """Rank every worker and (kv_aware with a prefix cache) index every prefill worker's cache."""
        self._ranked_mode = True
        if self._router == "kv_aware" and self._prefix_cache:
            self._holders = {}
            for w in self._prefill:
                w.cache.attach(self._holders)
        for worker in (*self._prefill, *self._decode):
            self._set_state(worker, worker.state)

    def _set_state(self, w: _Worker, state: str) -> None:
        """Change ``w``'s state; in ranked mode, move it to the ranking of its new state (none once draining)."""
        self._cands_p = self._cands_d = None
        if not self._ranked_mode:
            w.state = state
            return
        if w.ranking is not None:
            w.ranking.remove(cast(int, w.rank))
            if isinstance(w, _PrefillWorker):
                self._prefill_bits[w.state] &= ~w.bit
        w.state = state
        ranking = self._ranked.get((w.role, state))
        if ranking is None:
            w.rank = w.ranking = None
            return
        if isinstance(w, _PrefillWorker):
            self._prefill_bits[state] |= w.bit
            load = w.queued_tokens
        else:
            assert isinstance(w, _DecodeWorker)
            load = w.used + w.waiting_ctx
        w.rank = load << _ID_BITS | w.id
        w.ranking = ranking
        ranking.add(w.rank)

    # -- request ends -------------------------------------------------------------------

    def _outcome(self, r: _Req, status: str, reason: str | None, completion: float | None) -> RequestOutcome:
        return RequestOutcome(
            index=r.index,
            arrival_ms=r.arrival,
            status=status,
            drop_reason=reason,
            first_token_ms=r.first_token,
            completion_ms=completion,
            generated=r.generated,
            preemptions=r.preemptions,
            cached_tokens=r.cached,
        )

    def _complete(self, r: _Req, t: float) -> None:
        self._completed += 1
        self._window.completions += 1
        if self._on_finish is not None:
            self._on_finish(self._outcome(r, "completed", None, t))
        if self._closed:
            self._arrivals.finished(r.index, t, True)
            self._next_time = self._arrivals.next_time

    def _drop(self, r: _Req, reason: str) -> None:
        self._dropped += 1
        self._dropped_by[reason] += 1
        self._window.dropped += 1
        r.hash_ids = None
        if self._on_finish is not None:
            self._on_finish(self._outcome(r, "dropped", reason, None))
        if self._closed:
            self._arrivals.finished(r.index, self._now, False)
            self._next_time = self._arrivals.next_time

    def _abandoned(self, index: int, row: Request, t: float) -> None:
        """Closed loop: a session turn that will never be issued (an earlier turn was dropped)."""
        if self._on_finish is not None:
            r = _Req(index, row, t)
            self._on_finish(self._outcome(r, "abandoned", None, None))

    # -- snapshot -----------------------------------------------------------------------

    def _prefill_metrics(self, w: _PrefillWorker, kv: int, cap: float) -> WorkerMetrics:
        """``w``'s metrics at the snapshot (``kv``: its cache occupancy in tokens; its busy time accounted)."""
        chunks = w.chunks
        in_pass = len(chunks) if chunks else 0
        return WorkerMetrics(
            worker_id=w.id, role=PREFILL, state=w.state, ready_at_ms=w.ready_at, cap_w=cap,
            batched_prefill_tokens=w.pass_tokens if chunks is not None else 0,
            prefill_requests=in_pass,
            decode_requests=0,
            kv_tokens_used=kv,
            kv_capacity_tokens=self._kv_cap,
            queued_requests=len(w.queue) - in_pass,
            queued_tokens=w.queued_tokens,
            busy_ms=w.busy_acc, passes=w.passes, tokens=w.tokens,
        )

    def _decode_metrics(self, d: _DecodeWorker, used: int, cap: float) -> WorkerMetrics:
        """``d``'s metrics at the snapshot (``used``: its KV now; its steps and busy time accounted)."""
        return WorkerMetrics(
            worker_id=d.id, role=DECODE, state=d.state, ready_at_ms=d.ready_at, cap_w=cap,
            batched_prefill_tokens=0, prefill_requests=0,
            decode_requests=len(d.running),
            kv_tokens_used=used,
            kv_capacity_tokens=self._kv_cap,
            queued_requests=len(d.waiting),
            queued_tokens=d.waiting_ctx,
            busy_ms=d.busy_acc, passes=d.passes, tokens=d.tokens,
        )

    def _snapshot(self, steps: dict[_DecodeWorker, int] | None = None) -> Snapshot:
        """The snapshot at ``now``; ``steps``: each decode segment's ``steps_by(now)``, if already counted."""
        now = self._now
        metrics: list[WorkerMetrics] = []
        append = metrics.append
        kv_cap, bs = self._kv_cap, self.block_size
        cap_p, cap_d = self._caps[PREFILL], self._caps[DECODE]
        for w in self._prefill:
            if w.busy_mark is not None:  # busy_stop, and busy_start again while a pass is in flight
                w.busy_acc += now - w.busy_mark
                w.busy_mark = None
            chunks = w.chunks
            kv = min(len(w.cache.lru) * bs, kv_cap)
            if chunks is None and not w.queue and w.passes == 0 and w.busy_acc == 0.0:  # quiet
                m = w.quiet_metrics(cap_p, kv, w.queued_tokens)
                append(m if m is not None else w.keep_quiet(self._prefill_metrics(w, kv, cap_p), cap_p, kv, w.queued_tokens))
                continue
            w.quiet = None
            if chunks is not None:
                w.busy_mark = now
            append(self._prefill_metrics(w, kv, cap_p))
            w.busy_acc = 0.0
            w.passes = 0
            w.tokens = 0
        for d in self._decode:
            used = d.used
            if d.seg:
                k = d.steps_by(now) if steps is None else steps[d]
                self._sync(d, k)
                used += k * d.seg_b
                if d.busy_mark is not None:  # busy_stop, busy_start
                    d.busy_acc += now - d.busy_mark
                d.busy_mark = now
            elif not d.running and not d.waiting and d.passes == 0 and d.busy_acc == 0.0:  # quiet
                m = d.quiet_metrics(cap_d, used, d.waiting_ctx)
                append(m if m is not None else d.keep_quiet(self._decode_metrics(d, used, cap_d), cap_d, used, d.waiting_ctx))
                continue
            d.quiet = None
            append(self._decode_metrics(d, used, cap_d))
            d.busy_acc = 0.0
            d.passes = 0
            d.tokens = 0
        if self._prefill and self._decode and self._prefill[-1].id > self._decode[0].id:
            metrics.sort(key=lambda m: m.worker_id)  # else the two pools, each in id order, are in order
        window = self._window.report(now)
        self._window = _Window(now)
        in_flight = self._arrived - self._completed - self._dropped
        return Snapshot(
            now_ms=now,
            done=self._arrivals.exhausted and in_flight == 0,
            prefill=_counts(self._prefill),
            decode=_counts(self._decode),
            cap_prefill_w=self._caps[PREFILL],
            cap_decode_w=self._caps[DECODE],
            workers=tuple(metrics),
            window=window,
            arrived=self._arrived,
            completed=self._completed,
            dropped=self._dropped,
            in_flight=in_flight,
            dropped_by_reason=dict(self._dropped_by),
            preemptions=self._preemptions,
            turns_held=self._arrivals.held(now),
            turns_abandoned=self._arrivals.abandoned,
        )


def _rerank(w: _Worker, load: int) -> None:
    """``w``'s load changed (or not): move its entry in its ranking (``w.rank`` is not None)."""
    new = load << _ID_BITS | w.id
    old = cast(int, w.rank)
    if new != old:
        ranking = cast(_Ranking, w.ranking)
        ranking.remove(old)
        ranking.add(new)
        w.rank = new


def _accepting(rankings: tuple[_Ranking, _Ranking]) -> _Ranking | None:
    """The ranking routing or placement reads from a role's (active, starting) pair: the active workers
    if there is one, else the starting ones; None when neither has a worker."""
    active, starting = rankings
    if active.idle or active.loaded:
        return active
    return starting if starting.idle or starting.loaded else None


def _rank_index(ranking: list[int], key: int) -> int:
    """Where ``key`` is, or would go, in the sorted ``ranking``: ``bisect_left``.

    Pure Python calls the C ``bisect_left``; a compiled build searches the typed ints itself, which compares
    them natively (bisect's generic comparisons cost it about twice the whole search).  tests/test_sim_ranked.py
    checks the two agree."""
    if not _COMPILED:
        return bisect_left(ranking, key)
    lo: i64 = 0
    hi: i64 = len(ranking)
    while lo < hi:
        mid = (lo + hi) >> 1
        if ranking[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _event_lt(a: tuple, b: tuple) -> bool:
    """``a < b`` for two event tuples ``(time, kind, x, y, payload)``: as tuples compare (the first four
    fields tell any two events apart), the times compared as floats first."""
    ta: float = a[0]
    tb: float = b[0]
    if ta != tb:
        return ta < tb
    ka: int = a[1]
    kb: int = b[1]
    if ka != kb:
        return ka < kb
    xa = a[2]
    xb = b[2]
    if xa != xb:
        return bool(xa < xb)
    ya: int = a[3]
    yb: int = b[3]
    return ya < yb


def _push_event(heap: list[tuple], item: tuple) -> None:
    """``heapq.heappush`` onto the event heap.  A compiled build sifts the item itself (heapq's own steps, so
    the heap is laid out alike), comparing with :func:`_event_lt`: natively, where heapq's generic tuple
    comparisons cost it several times the sift."""
    if not _COMPILED:
        heapq.heappush(heap, item)
        return
    heap.append(item)
    _settle(heap, len(heap) - 1, item)


def _settle(heap: list[tuple], pos: int, item: tuple) -> None:
    """Put ``item`` in the event heap at ``pos``, or above it while it is less than the parent (heapq's
    ``_siftdown``)."""
    while pos > 0:
        up = (pos - 1) >> 1
        parent = heap[up]
        if not _event_lt(item, parent):
            break
        heap[pos] = parent
        pos = up
    heap[pos] = item


def _pop_event(heap: list[tuple]) -> tuple:
    """``heapq.heappop`` from the (non-empty) event heap, compiled as :func:`_push_event` is; pure Python
    calls heapq (through the module, where tools/bench_fleet.py counts the pops)."""
    if not _COMPILED:
        return heapq.heappop(heap)
    last = heap.pop()
    n = len(heap)
    if not n:
        return last
    top = heap[0]
    # heapq's siftup: the smaller child moves up to the leaf, then ``last`` sifts down from there
    pos = 0
    child = 1
    while child < n:
        right = child + 1
        if right < n and not _event_lt(heap[child], heap[right]):
            child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    _settle(heap, pos, last)
    return top


def _candidates(pool: list[_W]) -> list[_W]:
    """The routing candidates of ``pool``: its active workers, else its starting ones; id order."""
    return [w for w in pool if w.state == ACTIVE] or [w for w in pool if w.state == STARTING]


def _schedule_key(w: _Worker) -> Any:
    """Where the scheduling phase takes ``w`` among the workers touched at one time (``_Worker.schedule_order``)."""
    return w.schedule_order


def _counts(pool: list[_W]) -> RoleCounts:
    active = starting = draining = 0
    for w in pool:
        state = w.state
        if state == ACTIVE:
            active += 1
        elif state == STARTING:
            starting += 1
        elif state == DRAINING:
            draining += 1
    return RoleCounts(active=active, starting=starting, draining=draining)
