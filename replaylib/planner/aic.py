"""``aic@1`` and ``aic@2``: ``power@1`` plus power-cap optimisation.

Performance-vs-cap table
    Built from the :class:`~replaylib.scenario.system.System` at construction:
    caps from ``gpu.min_cap_w`` to ``gpu.max_cap_w`` in 25 W steps (plus the max),
    each row with the prefill and decode speed and the expected per-GPU power
    of a loaded worker, from the power model (``power.speed``, ``power.saturated_w``).
    Capacities depend on the workload, so at each sweep every row is evaluated
    at the predicted workload with the same sizing the replica logic uses
    (:meth:`SlaPlanner.prefill_sizing` / :meth:`~SlaPlanner.decode_sizing`:
    prefill tokens/s at the ISL, decode tokens/s at the corrected ITL target).

Sweep (the optimiser)
    Candidate prefill caps are those whose unloaded prefill time meets the TTFT
    target, ``c_ttft · prefill_request_ms(isl, cap) ≤ ttft_ms`` (none: the max cap
    only); candidate decode caps those where at least one sequence meets
    ``itl_ms / c_itl`` (none: the max cap only).  For every pair ``(cap_p, cap_d)``
    the replicas are what the per-tick logic would choose at those caps
    (``ceil(need)``, ``min_endpoint``, the GPU limit, then the power-budget cut
    on provisioned watts ``(n_p · cap_p + n_d · cap_d) · gpus``; a pair whose
    ``min_endpoint`` replicas exceed the budget is infeasible).  The best pair
    minimises, in order:

    1. ``−goodput`` — the served share of the predicted load,
       ``min(1, n_p / need_p, n_d / need_d)``;
    2. expected watts at the predicted load,
       ``gpus · Σ_role n · (idle + u · (draw − idle))`` with
       ``draw = max(idle, min(cap, table power(cap) · c_power_role))`` and
       utilisation ``u = min(1, need / n)``;
    3. provisioned watts; 4. fewer workers; 5. higher caps (a fixed tie-break).

    The caps in force are kept when, at the new prediction, they give the same
    goodput and at most ``CAP_SWITCH_MIN_GAIN`` (2 %) more expected watts than
    the best pair — so a near-flat objective cannot make the caps thrash.

    No feasible pair (or ``obs.optimizer_fault == "empty"``) is a failure, as is
    the optimiser raising (``obs.optimizer_fault == "raise"``): the planner keeps
    its caps and says ``optimizer_empty`` / ``optimizer_raise``.  A failed sweep
    is retried on the next tick; after ``max_optimizer_failures`` consecutive
    failures the planner falls back to ``default_cap_*_w`` (else the SKU max),
    ``reason="fallback_default_caps"``; a successful sweep resets the count.
    A successful sweep sets ``Decision.sweep`` and ``reason="sweep_<trigger>"``
    (unless a budget cut outranks it: see :meth:`SlaPlanner.plan`).

When it sweeps
    On the first tick with a prediction (``sweep_initial``); after a failure
    (``sweep_retry``); when ``obs.budget_w`` differs from the one the last sweep
    assumed (``sweep_budget``); when the relative drift
    ``|x − x_assumed| / |x_assumed|`` of any of the predicted rate, ISL, OSL,
    ``c_ttft``, ``c_itl``, ``c_power_p``, ``c_power_d`` exceeded
    ``drift_threshold`` for ``drift_ticks`` consecutive ticks (``sweep_drift``);
    and ``reoptimize_every_ticks`` ticks after the last sweep
    (``sweep_periodic``).  Between sweeps the caps stay; replicas follow the
    load every tick exactly as in ``power@1``, at the chosen caps.

Corrections (``config.correction``; otherwise all stay 1)
    EMAs with ``ema_alpha`` of observed / predicted, each ratio and each factor
    clamped to ``[correction_min, correction_max]``; a missing reading leaves
    the factor unchanged:  ``c ← (1 − α) · c + α · clamp(observed / predicted)``.
    ``c_ttft``, ``c_itl`` as in ``sla@1``; ``c_power_role`` = observed role power
    / the power model's draw for the caps in force and the current load (starting
    workers at idle; ready ones at the role's busy fraction, decode load from the
    KV in use per ready worker, prefill load from ``min(max_num_batched_tokens,
    max(isl · (1 − hit), queued tokens per ready worker))`` tokens per pass).

``aic@2`` — the one deliberate change
    ``aic@1`` sizes prefill for throughput: it lets a prefill worker run at 100 %
    utilisation, where queueing alone breaks the TTFT target.  ``aic@2`` sizes
    prefill for latency: a worker may only be loaded up to the utilisation at
    which the M/D/1 expected TTFT, ``c_ttft · (unloaded + ρ·S / (2(1 − ρ)))``,
    still meets ``ttft_ms`` (:func:`~replaylib.planner.capacity.utilization_ceiling`),
    and never below ``AIC2_MIN_UTILIZATION`` = 0.5 (so a target no cap can meet
    does not ask for unbounded replicas).  This applies both in sweeps and in
    the per-tick replica logic, so ``aic@2`` runs more prefill replicas (or
    faster prefill caps) than ``aic@1`` whenever prefill is loaded.
"""

from __future__ import annotations

import math

import msgspec

from replaylib.planner.capacity import (
    Role,
    decode_point,
    loaded_power_w,
    prefill_request_ms,
    prefill_service_ms,
    utilization_ceiling,
    worker_power_w,
)
from replaylib.planner.common import RoleSizing, Sizing, Workload, ceil_need, clamp, cut_to_fit
from replaylib.planner.power import PowerPlanner
from replaylib.planner.protocol import Decision, Observation, PlannerContext, RoleObs
from replaylib.scenario.system import System
from replaylib.timing import Models, PowerModel, as_models

#: Cap grid step of the performance table (W).
CAP_STEP_W = 25.0
#: A sweep keeps the caps in force unless the best pair saves more than this share of expected watts.
CAP_SWITCH_MIN_GAIN = 0.02
#: aic@2: the lowest prefill utilisation its latency sizing will plan for.
AIC2_MIN_UTILIZATION = 0.5
#: The lowest admission limit aic sets (requests/s): admission control never shuts the frontend.
ADMISSION_MIN_RPS = 0.01


class OptimizerError(Exception):
    """The cap optimiser failed (raised) — counted as an optimiser failure, never propagated."""


# -- the performance table ------------------------------------------------------------------------


class CapRow(msgspec.Struct, frozen=True, kw_only=True):
    """One cap of the performance table."""

    cap_w: float
    prefill_speed: float
    decode_speed: float
    prefill_power_w: float  #: per-GPU draw of a loaded prefill worker at this cap
    decode_power_w: float  #: per-GPU draw of a loaded decode worker at this cap


class PerfTable(msgspec.Struct, frozen=True, kw_only=True):
    rows: tuple[CapRow, ...]

    def row(self, cap_w: float) -> CapRow:
        """The row for ``cap_w`` (exact match; ``KeyError`` otherwise)."""
        for r in self.rows:
            if r.cap_w == cap_w:
                return r
        raise KeyError(cap_w)


def build_perf_table(system: System | Models, step_w: float = CAP_STEP_W) -> PerfTable:
    """Caps ``min_cap_w, min_cap_w + step, …`` up to and including ``max_cap_w``."""
    models = as_models(system)
    g = models.system.gpu
    power = models.power
    caps: list[float] = []
    k = 0
    while g.min_cap_w + k * step_w < g.max_cap_w - 1e-9:
        caps.append(g.min_cap_w + k * step_w)
        k += 1
    caps.append(g.max_cap_w)
    rows = tuple(
        CapRow(
            cap_w=c,
            prefill_speed=power.speed("prefill", c),
            decode_speed=power.speed("decode", c),
            prefill_power_w=loaded_power_w(models, "prefill", c),
            decode_power_w=loaded_power_w(models, "decode", c),
        )
        for c in caps
    )
    return PerfTable(rows=rows)


# -- the optimiser --------------------------------------------------------------------------------


class RoleOption(msgspec.Struct, frozen=True, kw_only=True):
    """One role at one cap: its sizing and the power the (corrected) table expects per GPU."""

    sizing: RoleSizing
    draw_w: float  #: max(idle, min(cap, table power · c_power))


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """An operating point the optimiser evaluated."""

    cap_p: float
    cap_d: float
    n_p: int
    n_d: int
    goodput: float
    expected_w: float
    provisioned_w: float


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    gpus: int
    max_workers: int
    floor: int
    budget_w: float | None
    power: PowerModel  #: provisioned and expected watts


def _role_expected_w(n: int, opt: RoleOption, power: PowerModel) -> float:
    need = opt.sizing.need
    u = 1.0 if math.isinf(need) else min(1.0, need / n)
    return n * power.busy_mix_w(opt.draw_w, u)


class _RoleFacts(msgspec.Struct, frozen=True):
    """What :func:`evaluate` derives from one role's option alone (the same for every partner option)."""

    option: RoleOption
    need: float
    n: int  #: replicas before any cut: the need, clamped to the limits
    worker_w: float  #: one worker's provisioned watts (read only with a budget)


def _facts(opt: RoleOption, lim: Limits) -> _RoleFacts:
    need = opt.sizing.need
    n = ceil_need(need, lim.floor, lim.max_workers - lim.floor)
    worker_w = lim.power.worker_provisioned_w(opt.sizing.cap_w) if lim.budget_w is not None else 0.0
    return _RoleFacts(opt, need, n, worker_w)


def evaluate(p: RoleOption, d: RoleOption, lim: Limits) -> Candidate | None:
    """The replicas the per-tick logic would pick at this cap pair, and their score inputs."""
    return _evaluate(_facts(p, lim), _facts(d, lim), lim)


def _evaluate(fp: _RoleFacts, fd: _RoleFacts, lim: Limits) -> Candidate | None:
    p, d = fp.option, fd.option
    need_p, need_d = fp.need, fd.need
    fit = cut_to_fit(fp.n, fd.n, cost_prefill=1.0, cost_decode=1.0, limit=float(lim.max_workers),
                     need_prefill=need_p, need_decode=need_d, floor=lim.floor)
    n_p, n_d = fit.n_prefill, fit.n_decode
    cap_p, cap_d = p.sizing.cap_w, d.sizing.cap_w
    if lim.budget_w is not None:
        fit = cut_to_fit(n_p, n_d, cost_prefill=fp.worker_w, cost_decode=fd.worker_w, limit=lim.budget_w,
                         need_prefill=need_p, need_decode=need_d, floor=lim.floor)
        if not fit.feasible:
            return None
        n_p, n_d = fit.n_prefill, fit.n_decode
    goodput = min(p.sizing.served(n_p), d.sizing.served(n_d))
    expected = lim.gpus * (_role_expected_w(n_p, p, lim.power) + _role_expected_w(n_d, d, lim.power))
    return Candidate(cap_p=cap_p, cap_d=cap_d, n_p=n_p, n_d=n_d, goodput=goodput, expected_w=expected,
                     provisioned_w=lim.power.provisioned_w(n_p, n_d, cap_p, cap_d))


def _score(c: Candidate) -> tuple[float, float, float, int, float, float]:
    return (-round(c.goodput, 9), round(c.expected_w, 6), c.provisioned_w, c.n_p + c.n_d, -c.cap_p, -c.cap_d)


def optimize(prefill: list[RoleOption], decode: list[RoleOption], lim: Limits) -> Candidate | None:
    """The best feasible cap pair (see the module docstring), or ``None`` when there is none.

    What a pair's evaluation takes from one option alone is derived once per option, not once per pair."""
    best: Candidate | None = None
    best_score: tuple[float, float, float, int, float, float] | None = None
    decode_facts = [_facts(d, lim) for d in decode]
    for p in prefill:
        fp = _facts(p, lim)
        for fd in decode_facts:
            cand = _evaluate(fp, fd, lim)
            if cand is not None:
                score = _score(cand)
                if best_score is None or score < best_score:
                    best, best_score = cand, score
    return best


# -- the planner ----------------------------------------------------------------------------------


class Assumed(msgspec.Struct, frozen=True, kw_only=True):
    """What the last successful sweep assumed (drift is measured against it)."""

    rate: float
    isl: float
    osl: float
    c_ttft: float
    c_itl: float
    c_power_p: float
    c_power_d: float
    budget_w: float | None

    def values(self) -> tuple[float, ...]:
        return (self.rate, self.isl, self.osl, self.c_ttft, self.c_itl, self.c_power_p, self.c_power_d)


def relative_drift(now: tuple[float, ...], then: tuple[float, ...]) -> float:
    """``max |x − a| / |a|`` over paired values (a change from 0 is infinite drift)."""
    worst = 0.0
    for x, a in zip(now, then, strict=True):
        if a == 0.0:
            d = 0.0 if x == 0.0 else math.inf
        else:
            d = abs(x - a) / abs(a)
        worst = max(worst, d)
    return worst


class AicPlanner(PowerPlanner):
    """power@1 plus power-cap optimisation: sweeps cap pairs for goodput, then expected watts.

    ``aic@1`` — see the module docstring.
    """

    name: str = "aic"
    version: int = 1

    def __init__(self, ctx: PlannerContext) -> None:
        super().__init__(ctx)
        self.table = build_perf_table(self.models)
        self._caps = self.default_caps()
        self.c_power_p = 1.0
        self.c_power_d = 1.0
        self.assumed: Assumed | None = None
        self.last_point: Candidate | None = None
        self.failures = 0
        self._retry = False
        self._since_sweep = 0
        self._drift_streak = 0

    # -- caps and corrections ---------------------------------------------------------------

    def assumed_caps(self, obs: Observation) -> tuple[float, float]:
        return self._caps

    def c_power(self) -> tuple[float | None, float | None]:
        return self.c_power_p, self.c_power_d

    def _ema(self, current: float, ratio: float | None) -> float:
        if ratio is None:
            return current
        cfg = self.config
        value = (1.0 - cfg.ema_alpha) * current + cfg.ema_alpha * ratio
        return clamp(value, cfg.correction_min, cfg.correction_max)

    def expected_role_power_w(self, obs: Observation, role: Role) -> float | None:
        """Mean per-GPU draw the power model predicts for ``role`` at the caps in force and the current load."""
        r: RoleObs = obs.prefill if role == "prefill" else obs.decode
        total = r.active + r.starting + r.draining
        if total < 1:
            return None
        ready = r.active + r.draining
        ready_w = 0.0
        if ready:
            if role == "decode":
                load = r.kv_tokens_used / ready
            else:
                isl = obs.mean_isl if obs.mean_isl is not None else (self._isl.predict() or 0.0)
                hit = obs.prefix_hit_rate if obs.prefix_hit_rate is not None else (self._hit or 0.0)
                load = min(float(self.settings.max_num_batched_tokens), max(isl * (1.0 - hit), r.queued_tokens / ready))
            ready_w = worker_power_w(self.models, role, r.cap_w, load=load, busy=r.busy_fraction)
        return (r.starting * self.models.power.idle_w + ready * ready_w) / total

    def update_corrections(self, obs: Observation) -> None:
        """EMAs of the clamped observed/predicted ratios (TTFT, ITL, power per role)."""
        if not self.config.correction:
            return
        r_ttft, r_itl = self.latency_ratios(obs)
        self.c_ttft = self._ema(self.c_ttft, r_ttft)
        self.c_itl = self._ema(self.c_itl, r_itl)
        self.c_power_p = self._ema(self.c_power_p, self._ratio(obs.prefill.power_w, self.expected_role_power_w(obs, "prefill")))
        self.c_power_d = self._ema(self.c_power_d, self._ratio(obs.decode.power_w, self.expected_role_power_w(obs, "decode")))

    # -- the tick ---------------------------------------------------------------------------

    def on_tick(self, obs: Observation) -> Decision:
        self.observe(obs)
        self.update_corrections(obs)
        wl = self.workload()
        self._since_sweep += 1
        if wl is None:
            return self.plan(obs, None)
        trigger = self._trigger(obs, wl)
        if trigger is None:
            return self.plan(obs, wl)
        return self._sweep(obs, wl, trigger)

    def _assumption(self, wl: Workload, budget_w: float | None) -> Assumed:
        return Assumed(rate=wl.rate, isl=wl.isl, osl=wl.osl, c_ttft=self.c_ttft, c_itl=self.c_itl,
                       c_power_p=self.c_power_p, c_power_d=self.c_power_d, budget_w=budget_w)

    def drifted(self, wl: Workload) -> bool:
        """Whether this tick's prediction/corrections drifted past ``drift_threshold``."""
        if self.assumed is None:
            return False
        now = self._assumption(wl, None).values()
        return relative_drift(now, self.assumed.values()) > self.config.drift_threshold

    def _trigger(self, obs: Observation, wl: Workload) -> str | None:
        self._drift_streak = self._drift_streak + 1 if self.drifted(wl) else 0
        if self.assumed is None:
            return "initial"
        if self._retry:
            return "retry"
        if obs.budget_w != self.assumed.budget_w:
            return "budget"
        if self._drift_streak >= self.config.drift_ticks:
            return "drift"
        if self._since_sweep >= self.config.reoptimize_every_ticks:
            return "periodic"
        return None

    def _sweep(self, obs: Observation, wl: Workload, trigger: str) -> Decision:
        try:
            point = self.optimize(obs, wl)
            failure = None if point is not None else "empty"
        except OptimizerError:
            point, failure = None, "raise"
        if point is not None:
            self._caps = (point.cap_p, point.cap_d)
            self.last_point = point
            self.assumed = self._assumption(wl, obs.budget_w)
            self.failures = 0
            self._retry = False
            self._since_sweep = 0
            self._drift_streak = 0
            return self.plan(obs, wl, note=f"sweep_{trigger}", sweep=True)
        self.failures += 1
        self._retry = True
        if self.failures >= self.config.max_optimizer_failures:
            self._caps = self.default_caps()
            return self.plan(obs, wl, note="fallback_default_caps", note_first=True)
        return self.plan(obs, wl, note=f"optimizer_{failure}", note_first=True)

    # -- the optimiser ----------------------------------------------------------------------

    def prefill_options(self, wl: Workload) -> list[RoleOption]:
        """Every table cap whose unloaded TTFT meets the target (none: the max cap)."""
        b, cached = self.settings.max_num_batched_tokens, wl.isl * wl.hit
        ok = [r for r in self.table.rows
              if self.c_ttft * prefill_request_ms(self.models, wl.isl, r.cap_w, b, cached) <= self.config.ttft_ms]
        rows = ok or [self.table.rows[-1]]
        return [self._option(self.prefill_sizing(wl, r.cap_w), r.prefill_power_w, self.c_power_p) for r in rows]

    def decode_options(self, wl: Workload) -> list[RoleOption]:
        """Every table cap where a batch of one meets ``itl_ms / c_itl`` (none: the max cap)."""
        target = self.config.itl_ms / self.c_itl
        ok = [r for r in self.table.rows
              if decode_point(self.models, wl.isl, wl.osl, r.cap_w, target, self.settings.max_num_seqs, self.kv_capacity()).batch >= 1]
        rows = ok or [self.table.rows[-1]]
        return [self._option(self.decode_sizing(wl, r.cap_w), r.decode_power_w, self.c_power_d) for r in rows]

    def _option(self, sizing: RoleSizing, table_w: float, c_power: float) -> RoleOption:
        return RoleOption(sizing=sizing, draw_w=self.models.power.clamp_w(table_w * c_power, sizing.cap_w))

    def optimize(self, obs: Observation, wl: Workload) -> Candidate | None:
        """One sweep over the cap grid; honours ``obs.optimizer_fault``."""
        if obs.optimizer_fault == "raise":
            raise OptimizerError("injected optimizer fault")
        prefill = [] if obs.optimizer_fault == "empty" else self.prefill_options(wl)
        decode = self.decode_options(wl)
        lim = Limits(gpus=self.gpus, max_workers=self.max_workers, floor=self.config.min_endpoint,
                     budget_w=obs.budget_w, power=self.models.power)
        best = optimize(prefill, decode, lim)
        if best is None:
            return None
        return self._keep_current(prefill, decode, lim, best)

    # -- admission control --------------------------------------------------------------------

    def admission_limit(self, wl: Workload | None, sizing: Sizing | None, n_p: int, n_d: int) -> float | None:
        """With ``admission_control: auto``: when the plan cannot serve the predicted offered load
        (the budget or the GPU limit cut it), admit only the share it serves,
        ``served · rate`` with ``served = min(1, n_p / need_p, n_d / need_d)``, so the excess is shed
        at the frontend instead of queueing until every request misses its SLA; otherwise no limit.
        The limit follows the fleet's capacity, never the admitted rate (that would lock a fault's
        losses in: a planner only sees what it admitted)."""
        if self.config.admission_control != "auto" or wl is None or sizing is None or wl.rate <= 0.0:
            return None
        served = min(1.0, sizing.prefill.served(n_p), sizing.decode.served(n_d))
        if served >= 1.0 - 1e-9:
            return None
        return max(served * wl.rate, ADMISSION_MIN_RPS)

    def _keep_current(self, prefill: list[RoleOption], decode: list[RoleOption], lim: Limits, best: Candidate) -> Candidate:
        """The caps in force instead of ``best`` when they are as good (see ``CAP_SWITCH_MIN_GAIN``)."""
        p = next((o for o in prefill if o.sizing.cap_w == self._caps[0]), None)
        d = next((o for o in decode if o.sizing.cap_w == self._caps[1]), None)
        if p is None or d is None:
            return best
        current = evaluate(p, d, lim)
        if (
            current is not None
            and round(current.goodput, 9) >= round(best.goodput, 9)
            and current.expected_w <= best.expected_w * (1.0 + CAP_SWITCH_MIN_GAIN)
        ):
            return current
        return best


class AicPlannerV2(AicPlanner):
    """aic@1 with prefill sized for TTFT under queueing, not just throughput (see the module docstring)."""

    version: int = 2

    def prefill_utilization(self, wl: Workload, cap_w: float) -> float:
        b, cached = self.settings.max_num_batched_tokens, wl.isl * wl.hit
        unloaded = self.c_ttft * prefill_request_ms(self.models, wl.isl, cap_w, b, cached)
        service = self.c_ttft * prefill_service_ms(self.models, wl.isl, cap_w, b, cached)
        return max(utilization_ceiling(unloaded, service, self.config.ttft_ms), AIC2_MIN_UTILIZATION)


__all__ = [
    "AIC2_MIN_UTILIZATION",
    "CAP_STEP_W",
    "CAP_SWITCH_MIN_GAIN",
    "AicPlanner",
    "AicPlannerV2",
    "Candidate",
    "CapRow",
    "OptimizerError",
    "PerfTable",
    "build_perf_table",
    "optimize",
    "relative_drift",
]
