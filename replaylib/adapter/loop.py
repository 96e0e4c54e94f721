"""The power-aware replay adapter: the tick loop that wires fleet, power, faults, planner, recorder.

For every tick (``docs`` in ../shared/DESIGN.md, "The tick loop"):

1. ``snap = fleet.advance_to(t_sched)``; ``now = max(t_sched, snap.now_ms)``.
   The planner's clock never lags the fleet, and the next tick is scheduled
   from ``now``, so a sparse trace or a long forward pass can neither make
   ticks stale nor make them go backwards or loop.
2. The overlay turns the snapshot into power and latency readings (with bias
   and noise); the metrics source stores them.
3. Scenario events due by ``now`` fire (bias, budget changes, actuation
   faults, node loss/recovery, metrics outage/staleness/window crossing,
   optimiser failures, model-card outages, frontend faults); each firing is
   recorded.  A frontend fault acts on the requests that arrive inside its
   window, as they arrive (``replaylib.sim.frontend``); its row is recorded at
   the first tick at or after its start.
4. The planner gets an :class:`Observation` (through the metrics source: a
   signal may be missing or stale) and returns a :class:`Decision`.
5. The budget clamp: if the decision's provisioned power (replicas x GPUs x
   caps) exceeds the budget, the caps are lowered uniformly until it fits (a
   facility-level guard, not planning; ``budget_clamped`` records it).
6. The actuator applies replicas and caps, or fails to under an injected fault;
   the frontend takes the decision's admission limit (``admission_control: auto``).
7. The recorder appends the tick (and scale/cap/fault/sweep rows).

The loop ends when the trace is drained and the fleet is idle, or after the
scenario's ``ticks`` limit; then the assertions' verdicts are recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from replaylib import __version__
from replaylib.errors import ReplaylibError
from replaylib.limits import MAX_TICKS, LimitError
from replaylib.planner.answers import check_decision, check_first_tick
from replaylib.planner.protocol import Decision, ModelCard, Observation, Planner, PlannerContext, PlannerError, RoleObs
from replaylib.power import MetricsSource, Overlay, Readings
from replaylib.power.signals import Noise, signal_rng
from replaylib.record import EventRow, RecordingWriter
from replaylib.record.kpis import KpiAccumulator, Kpis
from replaylib.record.meta import RecordingMeta, encode_overrides, parse_metadata
from replaylib.record.reversals import ReversalCounter
from replaylib.record.schema import PLANNER_METADATA_KEY, PLANNER_METADATA_PREFIX, SCHEMA_VERSION
from replaylib.scenario import LoadedScenario
from replaylib.scenario.assertions import AssertionCheck, describe, resolve_ref
from replaylib.scenario.model import (
    TRACE_MODES,
    ActuationFault,
    BiasRamp,
    BiasSine,
    BiasStep,
    BudgetChange,
    FrontendFault,
    MdcUnavailable,
    NodeDown,
    NodeUp,
    NoiseSpec,
    OptimizerFailure,
    PromOutage,
    PromStale,
    PromWindowCross,
    Scenario,
)
from replaylib.scenario.system import System, system_file_hash
from replaylib.sim import ClosedLoop, FaultWindow, Fleet, Frontend, Snapshot
from replaylib.sim.metrics import LatencyStats, RoleCounts
from replaylib.timing import PowerModel, RangeReport, TimingModel, power_model
from replaylib.trace import Request, read_trace

_INF = float("inf")

#: ``progress(tick, now_ms, snapshot)`` is called after every tick.
Progress = Callable[[int, float, Snapshot], None]


class AssertionResult(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    description: str
    passed: bool
    evidence: str


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    path: str  #: the recording
    planner: str  #: name@version
    ticks: int
    rows: int
    finished: bool  #: trace drained and fleet idle (False: stopped at the tick limit)
    assertions: tuple[AssertionResult, ...]
    meta: RecordingMeta  #: the recording's metadata
    kpis: Kpis  #: computed from the rows as they were recorded (no read-back)
    #: the fleet's timing lookups outside a table's measured range (all zero for a formula)
    timing_range: RangeReport = RangeReport()
    #: closed loop, at the last tick: session turns held back and abandoned (None open loop)
    turns_held: int | None = None
    turns_abandoned: int | None = None

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.assertions)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def replay(
    loaded: LoadedScenario,
    *,
    out: str | os.PathLike[str],
    planner: str | Planner | None = None,
    trace: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    timing: TimingModel | None = None,
    power: PowerModel | None = None,
    trace_mode: str | None = None,
) -> ReplayResult:
    """Replay ``loaded`` and write its recording to ``out`` (atomically).

    ``planner`` (a spec such as ``aic@1`` / ``pkg.mod:Class``, or a planner
    object), ``trace``, ``seed`` and ``trace_mode`` (``open_loop`` /
    ``closed_loop``) override the scenario's own.  ``timing`` /
    ``power`` replace the models the system's YAML names, for the fleet, the
    power overlay, the budget guard and a planner built here alike (a given
    timing object is shared, so its range report counts every caller).  An
    ``out`` is never damaged: bad input (a :class:`ReplaylibError`: a trace
    row, a planner's answer, a limit) stops the replay and leaves no
    ``out.partial``; an interrupt or a crash leaves the events recorded so
    far in ``out.partial`` (an Arrow IPC stream) and says so in a note on the
    exception (``partial_path`` on a :class:`ReplayInterrupted`).
    """
    run = _Replay(loaded, planner=planner, trace=trace, seed=seed, timing=timing, power=power, trace_mode=trace_mode)
    try:
        metadata = run.metadata()
        writer = RecordingWriter(out, metadata)
        try:
            result = run.execute(writer, progress, parse_metadata(metadata, writer.path))
        except ReplaylibError:
            writer.discard()
            raise
        except KeyboardInterrupt as exc:
            raise ReplayInterrupted(writer.abort(), writer.path) from exc
        except BaseException as exc:
            exc.add_note(f"the events recorded so far are in {writer.abort()} (an Arrow IPC stream)")
            raise
        writer.close()
    finally:
        run.close_planner()
    return result


class ReplayInterrupted(KeyboardInterrupt):
    """A replay stopped by Ctrl-C or SIGTERM: where its partial recording is, and the untouched output."""

    def __init__(self, partial_path: str, out: str) -> None:
        super().__init__(partial_path)
        self.partial_path = partial_path
        self.out = out

    def __str__(self) -> str:
        return (f"the events recorded so far are in {self.partial_path} (an Arrow IPC stream: "
                f"pyarrow.ipc.open_stream, polars.read_ipc_stream); {self.out} is as it was")


def planner_context(loaded: LoadedScenario, seed: int | None = None, *, timing: TimingModel | None = None,
                    power: PowerModel | None = None) -> PlannerContext:
    """What the scenario's planner is constructed with (seed: the replay's, None: the scenario's;
    ``timing`` / ``power``: the models to plan with, None: the system's own)."""
    sc = loaded.scenario
    return PlannerContext(
        config=sc.planner,
        system=loaded.system,
        initial_prefill=sc.fleet.prefill_workers,
        initial_decode=sc.fleet.decode_workers,
        fleet=sc.fleet,
        seed=sc.seed if seed is None else seed,
        timing=timing,
        power=power,
    )


class _Replay:
    def __init__(self, loaded: LoadedScenario, *, planner: str | Planner | None, trace: Any, seed: int | None,
                 timing: TimingModel | None = None, power: PowerModel | None = None,
                 trace_mode: str | None = None) -> None:
        sc = loaded.scenario
        self.loaded = loaded
        self.scenario = sc
        self.system: System = loaded.system
        self.seed = sc.seed if seed is None else seed
        self.trace_path = os.fspath(trace) if trace is not None else loaded.trace_path
        self.gpus_per_worker = self.system.model.gpus_per_worker
        self.interval_ms = sc.planner.adjustment_interval_s * 1000.0
        self.power: PowerModel = power if power is not None else power_model(self.system)
        self.trace_mode = sc.trace.mode if trace_mode is None else trace_mode
        if self.trace_mode not in TRACE_MODES:
            raise ReplaylibError(f"trace mode must be one of {', '.join(TRACE_MODES)}, got {self.trace_mode!r}")
        closed = None
        if self.trace_mode == "closed_loop":
            closed = ClosedLoop(lookahead_ms=sc.trace.session_lookahead_s * 1000.0, session_timeout_ms=sc.trace.session_timeout_s * 1000.0)
        faults = [e for e in sc.events if isinstance(e, FrontendFault)]
        self.frontend = Frontend(
            [FaultWindow(e.at_s * 1000.0, _INF if e.duration_s is None else (e.at_s + e.duration_s) * 1000.0, e.fraction) for e in faults],
            signal_rng(self.seed, "frontend"),
        )
        #: the frontend's counters are recorded (else null) when a fault or admission control can touch it;
        #: otherwise it gates nothing and the fleet reads its arrivals directly (no wrapper per arrival)
        self.has_frontend = bool(faults) or sc.planner.admission_control == "auto"
        self.fleet = Fleet(self.system, sc.fleet, self._rows(), block_size=sc.trace.block_size, timing=timing, power=self.power,
                           closed_loop=closed, frontend=self.frontend if self.has_frontend else None)
        ctx = planner_context(loaded, self.seed, timing=timing, power=power)
        #: a planner loaded from a spec belongs to this replay, which closes it at the end
        self.owns_planner = planner is None or isinstance(planner, str)
        if planner is None or isinstance(planner, str):
            from replaylib.planner.registry import load_planner

            self.planner: Planner = load_planner(planner or sc.planner.name, ctx)
        else:
            self.planner = planner
        try:
            self._set_up(sc)
        except BaseException:
            self.close_planner()
            raise

    def _set_up(self, sc: Scenario) -> None:
        self.first_tick_ms = self._first_tick_ms()
        bias_events = [e for e in sc.events if isinstance(e, (BiasStep, BiasRamp, BiasSine))]
        self.overlay = Overlay(self.system, sc.power, bias_events, self.seed, power=self.power)
        self.source = MetricsSource()
        self.budget = sc.power.total_gpu_power_limit_w
        # events fire in time order; ties keep their order in the scenario
        self.pending = sorted(enumerate(sc.events), key=lambda ie: (ie[1].at_s, ie[0]))
        self.actuation_fault: tuple[str, float] | None = None  # (mode, until ms)
        self.optimizer_fault: tuple[str, int] | None = None  # (mode, ticks left)
        self.mdc_until = -_INF  # the model card is unavailable while now < this (ms)
        #: the relative error of the KV capacity the model card reports (one draw per tick, outage or not)
        self.capacity_noise = Noise(sc.power.noise.get("capacity", NoiseSpec()), signal_rng(self.seed, "capacity"))
        self.card: ModelCard | None = None
        self.last_actuation = "ok"
        self.reversals = ReversalCounter()
        #: the caps the planner last asked for (a decision without caps keeps them); re-applied
        #: once an actuation fault that forced or blocked the caps is over
        self.intended_caps = self.fleet.caps
        self.checks = [
            AssertionCheck(a, a.value if a.ref is None else resolve_ref(a.ref, sc.planner, self.system))  # type: ignore[arg-type]
            for a in sc.assertions
        ]

    # -- set-up ---------------------------------------------------------------------------

    def _rows(self) -> Iterator[Request]:
        t = self.scenario.trace
        rows: Iterator[Request] = read_trace(self.trace_path, sort=t.sort)
        if t.limit is not None:
            rows = itertools.islice(rows, t.limit)
        if t.speedup != 1.0:  # time runs faster: timestamps and session delays shrink alike
            rows = (
                msgspec.structs.replace(r, timestamp=r.timestamp / t.speedup, delay=None if r.delay is None else r.delay / t.speedup)
                for r in rows
            )
        return rows

    def _first_tick_ms(self) -> float:
        """The planner's own first tick (optional ``initial_tick_s``), else one adjustment interval."""
        first = check_first_tick(getattr(self.planner, "initial_tick_s", None), planner=f"{self.planner.name}@{self.planner.version}")
        return self.interval_ms if first is None else first

    def close_planner(self) -> None:
        """Release a planner this replay loaded (its optional ``close()``)."""
        close = getattr(self.planner, "close", None) if self.owns_planner else None
        if callable(close):
            close()

    def _planner_metadata(self) -> dict[str, str]:
        """The planner's optional ``metadata()``, as recording keys ``planner.<key>``."""
        hook = getattr(self.planner, "metadata", None)
        if not callable(hook):
            return {}
        name = f"{self.planner.name}@{self.planner.version}"
        try:
            extra = hook()
        except Exception as exc:
            raise PlannerError(f"planner {name}: metadata() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(extra, dict):
            raise PlannerError(f"planner {name}: metadata() returned {type(extra).__name__}, expected a dict[str, str]")
        out: dict[str, str] = {}
        for key in sorted(extra):
            value = extra[key]
            if not (isinstance(key, str) and PLANNER_METADATA_KEY.fullmatch(key)):
                raise PlannerError(f"planner {name}: metadata() key {key!r}: expected lower-case letters, digits and '_'")
            if not isinstance(value, str):
                raise PlannerError(f"planner {name}: metadata() key {key!r} has a {type(value).__name__} value; expected a str")
            out[PLANNER_METADATA_PREFIX + key] = value
        return out

    def metadata(self) -> dict[str, str]:
        sc = self.scenario
        return self._planner_metadata() | {
            "replaylib_version": __version__,
            "schema_version": str(SCHEMA_VERSION),
            "planner_name": str(self.planner.name),
            "planner_version": str(self.planner.version),
            "scenario_name": sc.name,
            "scenario_hash": self.loaded.content_hash,
            "trace_path": _portable(self.trace_path, self.loaded.directory),
            "trace_sha256": sha256_file(self.trace_path),
            "systems_sha256": system_file_hash(self.loaded.system_path),
            "system_name": self.system.name,
            "seed": str(self.seed),
            "ttft_target_ms": repr(sc.planner.ttft_ms),
            "itl_target_ms": repr(sc.planner.itl_ms),
            "gpus_per_worker": str(self.gpus_per_worker),
            "overrides": encode_overrides(self.loaded.overrides),
            "trace_mode": self.trace_mode,
        }

    # -- the loop -------------------------------------------------------------------------

    def execute(self, writer: RecordingWriter, progress: Progress | None, meta: RecordingMeta) -> ReplayResult:
        kpis = KpiAccumulator()

        def record(row: EventRow) -> None:
            row = msgspec.structs.replace(row, seq=writer.next_seq())
            writer.append(row)
            kpis.add_event(row)

        limit = self.scenario.ticks
        tick = 0
        t_sched = self.first_tick_ms
        finished = False
        while True:
            snap = self.fleet.advance_to(t_sched)
            now = max(t_sched, snap.now_ms)
            readings = self.overlay.read(snap)
            self.source.push(now, {"power_prefill": readings.power_prefill_w, "power_decode": readings.power_decode_w, "ttft": readings.ttft, "itl": readings.itl})
            for row in self._fire_events(tick, now):
                record(row)
            counts = self.fleet.worker_counts()  # after node loss/recovery events: what the planner sees
            obs = self._observe(tick, now, snap, counts)
            decision = self._decide(obs, tick)
            rows = self._actuate(tick, now, t_sched, snap, counts, readings, decision)
            for row in rows:
                record(row)
            tick_row = rows[0]
            fields = msgspec.structs.asdict(tick_row)
            for check in self.checks:
                check.feed(tick, fields)
            if progress is not None:
                progress(tick, now, snap)
            tick += 1
            if snap.done:
                finished = True
                break
            if limit is not None and tick >= limit:
                break
            step_s = decision.next_tick_s if decision.next_tick_s is not None else self.scenario.planner.adjustment_interval_s
            t_sched = now + step_s * 1000.0
            if limit is None:
                self._check_tick_budget(tick, t_sched, step_s)
        results = []
        for i, check in enumerate(self.checks):
            ok, evidence = check.verdict()
            desc = describe(check.assertion)
            results.append(AssertionResult(index=i, description=desc, passed=ok, evidence=evidence))
            record(
                EventRow(kind="assertion", seq=0, tick=tick - 1, now_ms=now, event=check.assertion.field, detail=f"{desc} -- {evidence}", passed=ok)
            )
        return ReplayResult(
            path=writer.path,
            planner=f"{self.planner.name}@{self.planner.version}",
            ticks=tick,
            rows=writer.next_seq(),
            finished=finished,
            assertions=tuple(results),
            meta=meta,
            kpis=kpis.result(ttft_target_ms=meta.ttft_target_ms, itl_target_ms=meta.itl_target_ms),
            timing_range=self.fleet.timing.range_report(),
            turns_held=tick_row.turns_held,
            turns_abandoned=tick_row.turns_abandoned,
        )

    def _check_tick_budget(self, ticks: int, t_sched: float, step_s: float) -> None:
        """Refuse a replay that would run past MAX_TICKS: at once when the next request is that far away
        (a huge timestamp gap), else when the count is reached.  A scenario's ``ticks:`` replaces this bound."""
        at = self.fleet.next_arrival_ms  # inf once the trace is exhausted: nothing more to wait for
        ahead = max(0.0, (at - t_sched) / (step_s * 1000.0)) if at < _INF else 0.0
        if ticks >= MAX_TICKS or ticks + ahead > MAX_TICKS:
            at_s = f"{at / 1000.0:,.0f}" if at < 1e18 else f"{at / 1000.0:.3g}"
            when = f"the next request arrives at {at_s} s of simulated time, " if ahead >= 1 else ""
            raise LimitError(
                f"{self.trace_path}: the replay would take more than {MAX_TICKS:,} planner ticks (replaylib.limits.MAX_TICKS): "
                f"{when}{ticks:,} ticks done at {step_s:g} s each; shorten the trace (trace.limit, trace.speedup), "
                "lengthen planner.adjustment_interval_s, or stop at a tick count with `ticks:`"
            )

    # -- events ---------------------------------------------------------------------------

    def _fire_events(self, tick: int, now: float) -> list[EventRow]:
        rows: list[EventRow] = []
        while self.pending and self.pending[0][1].at_s * 1000.0 <= now:
            index, ev = self.pending.pop(0)
            until = _INF if getattr(ev, "duration_s", None) is None else ev.at_s * 1000.0 + ev.duration_s * 1000.0  # type: ignore[attr-defined]
            detail = msgspec.json.encode(ev).decode()
            if isinstance(ev, BudgetChange):
                self.budget = ev.total_gpu_power_limit_w
            elif isinstance(ev, ActuationFault):
                self.actuation_fault = (ev.mode, until)
            elif isinstance(ev, NodeDown):
                lost = self.fleet.fail_workers(ev.role, ev.count)
                detail += f" (lost {lost})"
            elif isinstance(ev, NodeUp):
                p, d = self.fleet.worker_counts()
                if ev.role == "prefill":
                    self.fleet.apply_scaling(p.accepting + ev.count, max(d.accepting, 1))
                else:
                    self.fleet.apply_scaling(max(p.accepting, 1), d.accepting + ev.count)
            elif isinstance(ev, PromOutage):
                self.source.start_outage(list(ev.signals), until)
            elif isinstance(ev, PromStale):
                self.source.start_stale(list(ev.signals), ev.lag_ticks, until)
            elif isinstance(ev, OptimizerFailure):
                self.optimizer_fault = (ev.mode, ev.ticks)
            elif isinstance(ev, MdcUnavailable):
                self.mdc_until = until
            elif isinstance(ev, PromWindowCross):
                self.source.start_window_cross(list(ev.signals), ev.weight_old, ev.ticks)
            # a frontend fault needs no state here: the frontend reads its window by arrival time
            # bias events need no state here: the overlay reads them by time
            rows.append(EventRow(kind="fault", seq=0, tick=tick, now_ms=now, event=ev.__struct_config__.tag, detail=f"events[{index}] {detail}"))  # type: ignore[arg-type]
        return rows

    # -- observation and decision -----------------------------------------------------------

    def _model_card(self, now: float) -> ModelCard | None:
        """The model deployment card as the planner reads it: its KV capacity with the capacity noise
        (relative), None while an ``mdc_unavailable`` fault lasts."""
        error = self.capacity_noise.draw()
        if now < self.mdc_until:
            return None
        return ModelCard(
            context_length=self.system.model.context_length,
            kv_capacity_tokens=max(1, round(self.system.kv.capacity_tokens * (1.0 + error))),
            max_num_batched_tokens=self.scenario.fleet.max_num_batched_tokens,
        )

    def _observe(self, tick: int, now: float, snap: Snapshot, counts: tuple[RoleCounts, RoleCounts]) -> Observation:
        w = snap.window
        self.card = self._model_card(now)
        rejected, shed = self.frontend.take_window()
        fault = None
        if self.optimizer_fault is not None:
            mode, left = self.optimizer_fault
            fault = mode
            self.optimizer_fault = (mode, left - 1) if left > 1 else None
        return Observation(
            tick=tick,
            now_ms=now,
            window_s=w.duration_ms / 1000.0,
            arrivals=w.arrivals,
            request_rate=w.request_rate_per_s,
            mean_isl=w.mean_isl,
            mean_osl=w.mean_osl,
            prefix_hit_rate=w.prefix_hit_rate,
            ttft=self.source.observe("ttft"),
            itl=self.source.observe("itl"),
            prefill=self._role_obs(snap, "prefill", counts[0], snap.cap_prefill_w),
            decode=self._role_obs(snap, "decode", counts[1], snap.cap_decode_w),
            budget_w=self.budget,
            last_actuation=self.last_actuation,  # type: ignore[arg-type]
            optimizer_fault=fault,  # type: ignore[arg-type]
            workers=snap.workers,
            rejected=rejected,
            shed=shed,
            admission_rps=self.frontend.admission_rps,
            model=self.card,
        )

    def _role_obs(self, snap: Snapshot, role: str, counts: RoleCounts, cap: float) -> RoleObs:
        workers = [m for m in snap.workers if m.role == role]
        ready = [m for m in workers if m.state != "starting"]
        window = snap.window.duration_ms
        busy = sum(min(1.0, m.busy_ms / window) for m in ready) / len(ready) if ready and window > 0 else 0.0
        return RoleObs(
            active=counts.active,
            starting=counts.starting,
            draining=counts.draining,
            cap_w=cap,
            power_w=self.source.observe(f"power_{role}"),
            busy_fraction=busy,
            queued_requests=sum(m.queued_requests for m in workers),
            queued_tokens=sum(m.queued_tokens for m in workers),
            running_requests=sum(m.prefill_requests + m.decode_requests for m in workers),
            kv_tokens_used=sum(m.kv_tokens_used for m in workers),
            kv_capacity_tokens=sum(m.kv_capacity_tokens for m in workers),
        )

    def _decide(self, obs: Observation, tick: int) -> Decision:
        name = f"{self.planner.name}@{self.planner.version}"
        try:
            decision = self.planner.on_tick(obs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a planner cannot end the replay as if it had succeeded
            raise PlannerError(f"planner {name} raised at tick {tick}: {type(exc).__name__}: {exc}") from exc
        return check_decision(decision, planner=name, tick=tick)

    # -- budget clamp and actuation ---------------------------------------------------------

    def _budget_clamp(self, n_p: int, n_d: int, cap_p: float, cap_d: float) -> tuple[float, float, bool]:
        """Lower both caps by one factor until the provisioned power fits the budget."""
        s, power, budget = self.system, self.power, self.budget

        def provisioned(f: float) -> float:
            return power.provisioned_w(n_p, n_d, s.clamp_cap(cap_p * f), s.clamp_cap(cap_d * f))

        if budget is None or provisioned(1.0) <= budget:
            return cap_p, cap_d, False
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if provisioned(mid) <= budget:
                lo = mid
            else:
                hi = mid
        return s.clamp_cap(cap_p * lo), s.clamp_cap(cap_d * lo), True

    def _actuate(self, tick: int, now: float, t_sched: float, snap: Snapshot, counts: tuple[RoleCounts, RoleCounts],
                 readings: Readings, d: Decision) -> list[EventRow]:
        fleet, system = self.fleet, self.system
        cur_p, cur_d = fleet.caps
        want_p = system.clamp_cap(d.cap_prefill_w) if d.cap_prefill_w is not None else self.intended_caps[0]
        want_d = system.clamp_cap(d.cap_decode_w) if d.cap_decode_w is not None else self.intended_caps[1]
        self.intended_caps = (want_p, want_d)
        cap_p, cap_d, clamped = self._budget_clamp(d.n_prefill, d.n_decode, want_p, want_d)

        mode = None
        if self.actuation_fault is not None:
            mode, until = self.actuation_fault
            if now >= until:
                self.actuation_fault, mode = None, None
        extra: list[EventRow] = []
        actuation = "ok"

        before_p, before_d = counts
        if (d.n_prefill, d.n_decode) != (before_p.accepting, before_d.accepting):
            if mode == "rbac_denied":
                actuation = "scaling_denied"
                extra.append(EventRow(kind="fault", seq=0, tick=tick, now_ms=now, event="rbac_denied",
                                      detail=f"scaling to prefill {d.n_prefill}, decode {d.n_decode} denied"))
            else:
                result = fleet.apply_scaling(d.n_prefill, d.n_decode)
                grow = d.n_prefill + d.n_decode - before_p.accepting - before_d.accepting
                extra.append(EventRow(
                    kind="scale", seq=0, tick=tick, now_ms=now,
                    event="scale_out" if grow > 0 else "scale_in" if grow < 0 else "rebalance",
                    target_prefill=d.n_prefill, target_decode=d.n_decode,
                    detail=f"prefill {before_p.accepting}->{d.n_prefill}, decode {before_d.accepting}->{d.n_decode}; "
                           f"started {list(result.started)}, draining {list(result.draining)}",
                ))

        if mode == "nvml_low":
            cap_p = cap_d = system.gpu.min_cap_w
            actuation = "caps_forced_low" if actuation == "ok" else actuation
        elif mode == "nvml_high":
            cap_p = cap_d = system.gpu.max_cap_w
            actuation = "caps_forced_high" if actuation == "ok" else actuation
        if mode == "daemonset_absent":
            if (cap_p, cap_d) != (cur_p, cur_d):
                actuation = "caps_not_applied" if actuation == "ok" else actuation
                extra.append(EventRow(kind="fault", seq=0, tick=tick, now_ms=now, event="daemonset_absent",
                                      detail=f"caps prefill {cap_p:g} W, decode {cap_d:g} W not applied"))
        elif (cap_p, cap_d) != (cur_p, cur_d):
            applied = fleet.apply_caps(cap_p, cap_d)
            extra.append(EventRow(
                kind="cap", seq=0, tick=tick, now_ms=now, event="cap",
                cap_prefill_w=applied.applied_prefill_w, cap_decode_w=applied.applied_decode_w,
                target_cap_prefill_w=d.cap_prefill_w, target_cap_decode_w=d.cap_decode_w,
                detail=f"prefill {cur_p:g}->{applied.applied_prefill_w:g} W, decode {cur_d:g}->{applied.applied_decode_w:g} W",
            ))
        if d.sweep:
            extra.append(EventRow(kind="sweep", seq=0, tick=tick, now_ms=now, event="sweep", reason=d.reason,
                                  target_prefill=d.n_prefill, target_decode=d.n_decode,
                                  target_cap_prefill_w=d.cap_prefill_w, target_cap_decode_w=d.cap_decode_w,
                                  projected_w=d.projected_w))
        self.last_actuation = actuation
        if self.scenario.planner.admission_control == "auto":
            self.frontend.set_admission(d.admission_rps, now)
        if d.projected_w is None:  # optional for a planner: the adapter fills it from the decision, and says so
            d = msgspec.structs.replace(d, projected_w=self.power.provisioned_w(d.n_prefill, d.n_decode, want_p, want_d))
            filled = True
        else:
            filled = False
        row = self._tick_row(tick, now, t_sched, snap, counts, readings, d, clamped, actuation, filled)
        return [row, *extra]

    def _tick_row(self, tick: int, now: float, t_sched: float, snap: Snapshot, counts: tuple[RoleCounts, RoleCounts],
                  r: Readings, d: Decision, clamped: bool, actuation: str, filled: bool) -> EventRow:
        """The tick as recorded: fleet state as the planner saw it, its decision, the caps applied."""
        w = snap.window
        cap_p, cap_d = self.fleet.caps
        held_p, held_d = self.fleet.worker_counts()
        provisioned = self.power.provisioned_w(_held(held_p), _held(held_d), cap_p, cap_d)
        sla = self.scenario.planner
        ttft, itl = w.ttft, w.itl
        obs_ttft = self.source.observe("ttft")
        obs_itl = self.source.observe("itl")
        return EventRow(
            kind="tick", seq=0, tick=tick, now_ms=now, t_sched_ms=t_sched, fleet_ms=snap.now_ms,
            prefill_active=counts[0].active, prefill_starting=counts[0].starting, prefill_draining=counts[0].draining,
            decode_active=counts[1].active, decode_starting=counts[1].starting, decode_draining=counts[1].draining,
            target_prefill=d.n_prefill, target_decode=d.n_decode,
            cap_prefill_w=cap_p, cap_decode_w=cap_d,
            target_cap_prefill_w=d.cap_prefill_w, target_cap_decode_w=d.cap_decode_w,
            power_prefill_w=r.power_prefill_w, power_decode_w=r.power_decode_w,
            obs_power_prefill_w=self.source.observe("power_prefill"), obs_power_decode_w=self.source.observe("power_decode"),
            power_total_w=r.power_total_w, projected_w=d.projected_w, projected_w_filled=filled,
            budget_w=self.budget, budget_clamped=clamped,
            provisioned_w=provisioned, budget_headroom_w=None if self.budget is None else self.budget - provisioned,
            gpus=r.gpus,
            arrivals=w.arrivals, request_rate=w.request_rate_per_s, mean_isl=w.mean_isl, mean_osl=w.mean_osl,
            predicted_rate=d.predicted_rate, predicted_isl=d.predicted_isl, predicted_osl=d.predicted_osl,
            prefix_hit_rate=w.prefix_hit_rate,
            c_ttft=d.c_ttft, c_itl=d.c_itl, c_power_p=d.c_power_p, c_power_d=d.c_power_d,
            ttft_mean_ms=ttft.mean, ttft_p50_ms=ttft.p50, ttft_p99_ms=ttft.p99, ttft_count=ttft.count,
            ttft_within_sla=ttft.count_le(sla.ttft_ms),
            itl_mean_ms=itl.mean, itl_p50_ms=itl.p50, itl_p99_ms=itl.p99, itl_count=itl.count,
            itl_within_sla=itl.count_le(sla.itl_ms),
            ttft_hist=ttft.flat(), itl_hist=itl.flat(),
            obs_ttft_ms=obs_ttft.mean_ms if obs_ttft is not None else None,
            obs_itl_ms=obs_itl.mean_ms if obs_itl is not None else None,
            ttft_violation=_above(ttft, sla.ttft_ms), itl_violation=_above(itl, sla.itl_ms),
            obs_kv_capacity_tokens=self.card.kv_capacity_tokens if self.card is not None else None,
            reason=d.reason, actuation=actuation, admission_rps=d.admission_rps,
            oscillations=self.reversals.update({"prefill": d.n_prefill, "decode": d.n_decode}),
            arrived=snap.arrived + self.frontend.rejected, completed=snap.completed, dropped=snap.dropped, in_flight=snap.in_flight,
            preemptions=snap.preemptions,
            rejected=self.frontend.rejected if self.has_frontend else None,
            shed=self.frontend.shed if self.has_frontend else None,
            turns_held=snap.turns_held if self.trace_mode == "closed_loop" else None,
            turns_abandoned=snap.turns_abandoned if self.trace_mode == "closed_loop" else None,
        )


def _held(counts: RoleCounts) -> int:
    return counts.active + counts.starting + counts.draining


def _above(stats: LatencyStats, target: float) -> bool | None:
    mean = stats.mean
    return None if mean is None else mean > target


def _portable(path: str, base: str) -> str:
    """A path as recorded: relative to the scenario's folder when possible (machine-independent)."""
    try:
        return os.path.relpath(path, base).replace(os.sep, "/")
    except ValueError:
        return path


__all__ = ["AssertionResult", "ReplayResult", "planner_context", "replay", "sha256_file"]
