"""``sla@1``: the throughput-based SLA planner (and the base the other built-ins extend).

Every tick:

1. **Predict.**  The observed request rate, mean ISL and mean OSL feed one
   predictor each (``PlannerConfig.predictor`` / ``predictor_window``, see
   :mod:`replaylib.planner.predictors`); ``None`` readings don't update them.
   The prefix-cache hit rate ``hit`` is the last one observed (0 before any).
   While any prediction is missing (first ticks, no traffic yet) the planner
   holds its replicas: ``reason="no_data"``.

2. **Correct** (``config.correction``; otherwise both factors are 1).  The
   capacity model's expectation *at the current load* is compared with what
   was observed, each ratio clamped to ``[correction_min, correction_max]``;
   a missing reading keeps the previous factor:

   * ``c_ttft = observed mean TTFT / expected TTFT``, expected from the M/D/1
     model of :mod:`~replaylib.planner.capacity`: unloaded prefill time of a
     request of the observed ISL (``isl · hit`` tokens cached) plus queueing at
     utilisation ``ρ = observed rate · S / active prefill workers``, at the
     prefill cap in force;
   * ``c_itl = observed mean ITL / expected step time`` of the current decode
     batch: ``step_ms(running / ready, kv_used / ready)`` at the decode cap in
     force (``ready`` = active + draining decode workers).

3. **Size** at the caps the planner assumes (``default_cap_*_w`` if set, else
   the cap in force)::

       n_prefill = ceil(rate · isl · (1 − hit) · c_ttft / prefill_tokens_per_s(isl, cap_p))
       n_decode  = ceil(rate · osl / decode_tokens_per_s(isl, osl, cap_d, itl_ms / c_itl))

   (when not even a batch of one meets ``itl_ms / c_itl``, decode is sized at
   batch 1, the best ITL a worker can give), each at least ``min_endpoint``.

4. **Damp.**  A role scales out at once.  It scales in only after a lower
   target persisted for ``scale_in_ticks`` consecutive ticks (``params``,
   default 3) *while the role's predicted demand (tokens/s) did not rise*:
   a tick whose demand is above the demand at the start of the streak starts
   the streak again.  It then scales in to the highest of the streak's lower
   targets.  On a rising load (even with noisy latency corrections) the
   replicas therefore only grow, and a noisy flat load cannot make them flap.

5. **Limit.**  ``(n_p + n_d) · gpus_per_worker ≤ max_gpu_budget``: replicas are
   removed by :func:`~replaylib.planner.common.cut_to_fit` (the role with more
   headroom first).  ``power@1`` adds the power-budget cut here.

Caps: unchanged (``None``) unless ``default_cap_*_w`` is configured.
``projected_w = (n_p · cap_p + n_d · cap_d) · gpus_per_worker`` with the caps
it assumes.  Reasons: ``no_data``, ``scale_out``, ``scale_in``, ``rebalance``
(one role up, one down), ``gpu_limit`` (the GPU limit kept a role from
growing), ``scale_in_pending`` (a lower target waits for persistence),
``hold``.  Engine knobs (``max_num_batched_tokens``, ``max_num_seqs``) come
from ``params`` (see :mod:`replaylib.planner.common`).
"""

from __future__ import annotations

import msgspec

from replaylib.planner.capacity import (
    decode_point,
    decode_point_at_batch,
    decode_step_ms,
    prefill_request_ms,
    prefill_service_ms,
    prefill_tokens_per_s,
    queued_ttft_ms,
)
from replaylib.planner.common import RoleSizing, Sizing, Workload, ceil_need, clamp, cut_to_fit, resolve_settings
from replaylib.planner.predictors import make_predictor
from replaylib.planner.protocol import Decision, Observation, PlannerContext, PlannerError
from replaylib.timing import models_for


class _ScaleIn(msgspec.Struct):
    """A role's pending scale-in: consecutive lower ticks, the highest lower target seen,
    and the role's demand when the streak began."""

    streak: int = 0
    best: int = 0
    ref_demand: float = 0.0


class SlaPlanner:
    """Throughput-based SLA planner: replicas from predicted load and TTFT/ITL corrections, caps left alone.

    ``sla@1`` — see the module docstring for the exact rules.
    """

    name: str = "sla"
    version: int = 1

    def __init__(self, ctx: PlannerContext) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.config = cfg
        self.system = ctx.system
        #: the system with the timing and power models this planner plans with (the fleet's, by default)
        self.models = models_for(ctx.system, ctx.timing, ctx.power)
        self.gpus = ctx.system.model.gpus_per_worker
        self.settings = resolve_settings(ctx)
        self.max_workers = cfg.max_gpu_budget // self.gpus
        if self.max_workers < 2 * cfg.min_endpoint:
            raise PlannerError(
                f"max_gpu_budget {cfg.max_gpu_budget} allows {self.max_workers} workers of {self.gpus} GPUs, "
                f"fewer than min_endpoint {cfg.min_endpoint} per role needs ({2 * cfg.min_endpoint})"
            )
        try:
            self._rate = make_predictor(cfg.predictor, cfg.predictor_window)
            self._isl = make_predictor(cfg.predictor, cfg.predictor_window)
            self._osl = make_predictor(cfg.predictor, cfg.predictor_window)
        except ValueError as exc:
            raise PlannerError(str(exc)) from exc
        self._hit: float | None = None
        floor = cfg.min_endpoint
        self._want = [max(ctx.initial_prefill, floor), max(ctx.initial_decode, floor)]
        self._scale_in = [_ScaleIn(), _ScaleIn()]
        self._last_n = (self._want[0], self._want[1])
        self._last_sizing: Sizing | None = None
        self.c_ttft = 1.0
        self.c_itl = 1.0
        #: the model card's KV capacity per worker, last known (None: never seen; the system's is used)
        self.known_kv_capacity: int | None = None

    # -- the tick -------------------------------------------------------------------------

    def on_tick(self, obs: Observation) -> Decision:
        self.observe(obs)
        self.update_corrections(obs)
        return self.plan(obs, self.workload())

    # -- prediction -----------------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        """Feed the predictors (``None`` readings are skipped by the predictors).

        The rate is the *offered* one: requests the frontend refused (``obs.rejected``) count, so a
        frontend fault or admission control is not mistaken for a drop in load.  The model card's KV
        capacity is remembered; while the card is unavailable the last known one stays in use."""
        self._rate.observe(offered_rate(obs))
        if obs.model is not None:
            self.known_kv_capacity = obs.model.kv_capacity_tokens
        self._isl.observe(obs.mean_isl)
        self._osl.observe(obs.mean_osl)
        if obs.prefix_hit_rate is not None:
            self._hit = clamp(obs.prefix_hit_rate, 0.0, 1.0)

    def workload(self) -> Workload | None:
        """The predicted next-interval load, or ``None`` while any prediction is missing."""
        rate, isl, osl = self._rate.predict(), self._isl.predict(), self._osl.predict()
        if rate is None or isl is None or osl is None:
            return None
        return Workload(rate=max(rate, 0.0), isl=max(isl, 1.0), osl=max(osl, 1.0), hit=self._hit or 0.0)

    # -- corrections ----------------------------------------------------------------------

    def expected_ttft_ms(self, obs: Observation) -> float | None:
        """Model TTFT at the observed load and the prefill cap in force (None: not computable)."""
        if obs.request_rate is None or obs.mean_isl is None or obs.prefill.active < 1:
            return None
        isl = max(obs.mean_isl, 1.0)
        hit = obs.prefix_hit_rate if obs.prefix_hit_rate is not None else (self._hit or 0.0)
        cached = isl * clamp(hit, 0.0, 1.0)
        b, cap = self.settings.max_num_batched_tokens, obs.prefill.cap_w
        unloaded = prefill_request_ms(self.models, isl, cap, b, cached)
        service = prefill_service_ms(self.models, isl, cap, b, cached)
        rho = obs.request_rate * service / 1000.0 / obs.prefill.active
        return queued_ttft_ms(unloaded, service, rho)

    def expected_itl_ms(self, obs: Observation) -> float | None:
        """Model decode step time of the current batch at the decode cap in force (None: idle)."""
        d = obs.decode
        ready = d.active + d.draining
        if ready < 1 or d.running_requests < 1:
            return None
        return decode_step_ms(self.models, d.running_requests / ready, d.kv_tokens_used / ready, d.cap_w)

    def _ratio(self, observed: float | None, expected: float | None) -> float | None:
        if observed is None or expected is None or expected <= 0.0:
            return None
        return clamp(observed / expected, self.config.correction_min, self.config.correction_max)

    def latency_ratios(self, obs: Observation) -> tuple[float | None, float | None]:
        """Clamped ``observed / expected`` for TTFT and ITL (None where a reading is missing)."""
        ttft = obs.ttft.mean_ms if obs.ttft is not None and obs.ttft.count > 0 else None
        itl = obs.itl.mean_ms if obs.itl is not None and obs.itl.count > 0 else None
        return self._ratio(ttft, self.expected_ttft_ms(obs)), self._ratio(itl, self.expected_itl_ms(obs))

    def update_corrections(self, obs: Observation) -> None:
        """``sla@1``: the latest clamped ratio; a missing reading keeps the previous factor."""
        if not self.config.correction:
            return
        r_ttft, r_itl = self.latency_ratios(obs)
        if r_ttft is not None:
            self.c_ttft = r_ttft
        if r_itl is not None:
            self.c_itl = r_itl

    # -- caps -----------------------------------------------------------------------------

    def configured_caps(self) -> tuple[float | None, float | None]:
        """``default_cap_*_w`` clamped to the settable range (None where not configured)."""
        cfg, s = self.config, self.system
        p = s.clamp_cap(cfg.default_cap_prefill_w) if cfg.default_cap_prefill_w is not None else None
        d = s.clamp_cap(cfg.default_cap_decode_w) if cfg.default_cap_decode_w is not None else None
        return p, d

    def assumed_caps(self, obs: Observation) -> tuple[float, float]:
        """The caps the sizing assumes: the configured defaults, else the caps in force."""
        p, d = self.configured_caps()
        return (p if p is not None else obs.prefill.cap_w, d if d is not None else obs.decode.cap_w)

    def decision_caps(self, obs: Observation) -> tuple[float | None, float | None]:
        """The caps to ask for: the configured defaults, else ``None`` (unchanged)."""
        return self.configured_caps()

    # -- sizing ---------------------------------------------------------------------------

    def prefill_utilization(self, wl: Workload, cap_w: float) -> float:
        """Share of a prefill worker's throughput the sizing may use (``sla@1``: all of it)."""
        return 1.0

    def prefill_sizing(self, wl: Workload, cap_w: float) -> RoleSizing:
        per_worker = prefill_tokens_per_s(self.models, wl.isl, cap_w, self.settings.max_num_batched_tokens)
        per_worker *= self.prefill_utilization(wl, cap_w) / self.c_ttft
        return RoleSizing(cap_w=cap_w, demand=wl.prefill_demand, per_worker=per_worker)

    def decode_sizing(self, wl: Workload, cap_w: float) -> RoleSizing:
        itl_target = self.config.itl_ms / self.c_itl
        point = decode_point(self.models, wl.isl, wl.osl, cap_w, itl_target, self.settings.max_num_seqs, self.kv_capacity())
        if point.batch == 0:
            point = decode_point_at_batch(self.models, wl.isl, wl.osl, cap_w, 1)
        return RoleSizing(cap_w=cap_w, demand=wl.decode_demand, per_worker=point.tokens_per_s)

    def kv_capacity(self) -> float:
        """A decode worker's KV capacity to size with: the model card's, last known; before any card,
        the system's (what the deployment was configured with)."""
        return float(self.known_kv_capacity) if self.known_kv_capacity is not None else float(self.system.kv.capacity_tokens)

    def size(self, wl: Workload, cap_p: float, cap_d: float) -> Sizing:
        return Sizing(prefill=self.prefill_sizing(wl, cap_p), decode=self.decode_sizing(wl, cap_d))

    # -- damping and limits -----------------------------------------------------------------

    def _damp(self, want: tuple[int, int], demand: tuple[float, float]) -> tuple[tuple[int, int], bool]:
        """Scale out at once; scale in after ``scale_in_ticks`` lower ticks without rising demand.

        Returns the damped targets and whether a scale-in is pending."""
        pending = False
        for i, w in enumerate(want):
            state = self._scale_in[i]
            if w >= self._want[i]:
                self._want[i] = w
                state.streak, state.best = 0, 0
                continue
            if state.streak == 0 or demand[i] > state.ref_demand:
                state.streak, state.best, state.ref_demand = 1, w, demand[i]
            else:
                state.streak, state.best = state.streak + 1, max(state.best, w)
            if state.streak >= self.settings.scale_in_ticks:
                self._want[i] = state.best
                state.streak, state.best = 0, 0
            else:
                pending = True
        return (self._want[0], self._want[1]), pending

    def fit_budget(
        self, n_p: int, n_d: int, caps: tuple[float, float], needs: tuple[float, float], budget_w: float | None
    ) -> tuple[int, int, str | None]:
        """The power-budget cut (``sla@1``: none)."""
        return n_p, n_d, None

    def projected_w(self, n_p: int, n_d: int, caps: tuple[float, float]) -> float:
        """Provisioned watts: ``(n_p · cap_p + n_d · cap_d) · gpus_per_worker`` (the power model's)."""
        return self.models.power.provisioned_w(n_p, n_d, caps[0], caps[1])

    # -- the decision ---------------------------------------------------------------------

    def plan(
        self,
        obs: Observation,
        wl: Workload | None,
        *,
        note: str | None = None,
        note_first: bool = False,
        sweep: bool = False,
    ) -> Decision:
        """Size, damp, limit and explain (``wl`` of ``None``: hold the damped targets).

        Reason precedence: ``note`` with ``note_first`` (an optimiser failure or
        fallback) > the budget cut > ``note`` (a sweep) > ``no_data`` > the scaling
        direction versus the previous decision > ``gpu_limit`` > ``scale_in_pending`` > ``hold``.
        """
        floor = self.config.min_endpoint
        top = self.max_workers - floor
        caps = self.assumed_caps(obs)
        pending = False
        if wl is None:
            sizing = self._last_sizing
            targets = (self._want[0], self._want[1])
        else:
            sizing = self.size(wl, caps[0], caps[1])
            self._last_sizing = sizing
            want = (ceil_need(sizing.prefill.need, floor, top), ceil_need(sizing.decode.need, floor, top))
            targets, pending = self._damp(want, (sizing.prefill.demand, sizing.decode.demand))
        needs = (sizing.prefill.need, sizing.decode.need) if sizing is not None else (1.0, 1.0)
        gpu_fit = cut_to_fit(
            min(targets[0], top), min(targets[1], top),
            cost_prefill=1.0, cost_decode=1.0, limit=float(self.max_workers),
            need_prefill=needs[0], need_decode=needs[1], floor=floor,
        )
        gpu_limited = gpu_fit.cut_prefill + gpu_fit.cut_decode > 0 or targets[0] > top or targets[1] > top
        n_p, n_d, budget_reason = self.fit_budget(gpu_fit.n_prefill, gpu_fit.n_decode, caps, needs, obs.budget_w)
        reason = self._reason(n_p, n_d, wl is None, gpu_limited, pending, budget_reason, note, note_first)
        self._last_n = (n_p, n_d)
        cap_p, cap_d = self.decision_caps(obs)
        c_power_p, c_power_d = self.c_power()
        return Decision(
            n_prefill=n_p,
            n_decode=n_d,
            cap_prefill_w=cap_p,
            cap_decode_w=cap_d,
            reason=reason,
            predicted_rate=self._rate.predict(),
            predicted_isl=self._isl.predict(),
            predicted_osl=self._osl.predict(),
            c_ttft=self.c_ttft,
            c_itl=self.c_itl,
            c_power_p=c_power_p,
            c_power_d=c_power_d,
            projected_w=self.projected_w(n_p, n_d, caps),
            sweep=sweep,
            admission_rps=self.admission_limit(wl, sizing, n_p, n_d),
        )

    def admission_limit(self, wl: Workload | None, sizing: Sizing | None, n_p: int, n_d: int) -> float | None:
        """The frontend admission limit to ask for (``sla@1``/``power@1``: none)."""
        return None

    def c_power(self) -> tuple[float | None, float | None]:
        """Power correction factors to report (``sla@1``: none)."""
        return None, None

    def _reason(
        self,
        n_p: int,
        n_d: int,
        no_data: bool,
        gpu_limited: bool,
        pending: bool,
        budget_reason: str | None,
        note: str | None,
        note_first: bool,
    ) -> str:
        if note is not None and note_first:
            return note
        if budget_reason is not None:
            return budget_reason
        if note is not None:
            return note
        if no_data:
            return "no_data"
        dp, dd = n_p - self._last_n[0], n_d - self._last_n[1]
        if dp >= 0 and dd >= 0 and dp + dd > 0:
            return "scale_out"
        if dp <= 0 and dd <= 0 and dp + dd < 0:
            return "scale_in"
        if dp or dd:
            return "rebalance"
        if gpu_limited:
            return "gpu_limit"
        return "scale_in_pending" if pending else "hold"


__all__ = ["SlaPlanner"]


def offered_rate(obs: Observation) -> float | None:
    """Requests per second that reached the frontend in the window: the fleet's arrivals plus those the
    frontend refused (``obs.request_rate`` itself when it refused none)."""
    if not obs.rejected or obs.window_s <= 0:
        return obs.request_rate
    return (obs.arrivals + obs.rejected) / obs.window_s
