"""Scenario YAML as typed objects.

A scenario says which trace to replay, on which system and fleet, under which
planner, power budget, signal bias and noise, which events happen when, and
what must hold afterwards.  Every time in a scenario is in seconds of simulated
time (``*_s``); every power is per GPU in watts (``*_w``) unless it says total.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sys

import msgspec
from msgspec import Meta

from replaylib.limits import MAX_REQUESTS, MAX_SCENARIO_EVENTS, MAX_TICKS, MAX_WORKERS_PER_ROLE, MIN_TICK_INTERVAL_S

#: Every number of a scenario is finite (``le`` the largest float refuses .inf; NaN fails every bound).
_FINITE = sys.float_info.max
PosF = Annotated[float, Meta(gt=0, le=_FINITE)]
NonNegF = Annotated[float, Meta(ge=0, le=_FINITE)]
FiniteF = Annotated[float, Meta(ge=-_FINITE, le=_FINITE)]
PosI = Annotated[int, Meta(ge=1)]
NonNegI = Annotated[int, Meta(ge=0)]
#: Workers of one role (replaylib.limits.MAX_WORKERS_PER_ROLE at most).
Workers = Annotated[int, Meta(ge=1, le=MAX_WORKERS_PER_ROLE)]
#: A planner's adjustment interval (s): at least MIN_TICK_INTERVAL_S, so a replay cannot tick forever.
IntervalS = Annotated[float, Meta(ge=MIN_TICK_INTERVAL_S, le=_FINITE)]

Role = Literal["prefill", "decode"]
#: Signals that carry a bias (scenario constant plus bias events), in the signal's unit.
BiasSignal = Literal["power_bias_prefill", "power_bias_decode", "ttft_bias", "itl_bias"]
#: Observed signals that can carry noise, be in outage or be stale.
Signal = Literal["power_prefill", "power_decode", "ttft", "itl"]
SIGNALS: tuple[str, ...] = ("power_prefill", "power_decode", "ttft", "itl")
#: Signals that can carry noise: the observed ones, and ``capacity`` (the model's KV capacity the
#: planner reads from the model card; its sigma is relative, a fraction of the capacity).
NoiseSignal = Literal["power_prefill", "power_decode", "ttft", "itl", "capacity"]
#: A share in [0, 1].
Fraction = Annotated[float, Meta(ge=0, le=1)]
BIAS_SIGNALS: tuple[str, ...] = ("power_bias_prefill", "power_bias_decode", "ttft_bias", "itl_bias")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


TraceMode = Literal["open_loop", "closed_loop"]
TRACE_MODES: tuple[str, ...] = ("open_loop", "closed_loop")


class TraceConfig(_Strict):
    """The request trace to replay (path relative to the scenario file).

    ``mode: closed_loop`` replays rows with a ``session_id`` as sessions: a
    later turn is issued ``delay`` ms after the previous turn of its session
    completed (``docs/fleet_model.md``, "Closed-loop sessions");
    ``session_lookahead_s`` bounds how early that can be against the recorded
    timestamp (and how far ahead the trace is read), ``session_timeout_s`` is
    how long after its last turn finished a session can still be continued.
    """

    path: str
    block_size: PosI = 512
    sort: bool = False
    limit: Annotated[int, Meta(ge=1, le=MAX_REQUESTS)] | None = None
    speedup: PosF = 1.0
    mode: TraceMode = "open_loop"
    session_lookahead_s: NonNegF = 600.0
    session_timeout_s: PosF = 3600.0


class FleetConfig(_Strict):
    """The initial fleet and its serving engine knobs."""

    prefill_workers: Workers = 2
    decode_workers: Workers = 2
    router: Literal["round_robin", "least_loaded", "kv_aware"] = "kv_aware"
    max_num_batched_tokens: PosI = 8192
    max_num_seqs: PosI = 256
    prefix_cache: bool = True


class PlannerConfig(_Strict):
    """Which planner runs, its SLA targets and its knobs (shared by the built-ins)."""

    name: str = "sla@1"
    adjustment_interval_s: IntervalS = 60.0
    ttft_ms: PosF = 2000.0
    itl_ms: PosF = 50.0
    predictor: Literal["constant", "moving_average", "kalman"] = "moving_average"
    predictor_window: PosI = 5
    min_endpoint: PosI = 1
    max_gpu_budget: PosI = 32
    correction: bool = True
    # power@ / aic@
    default_cap_prefill_w: PosF | None = None
    default_cap_decode_w: PosF | None = None
    # aic@
    ema_alpha: Annotated[float, Meta(gt=0, le=1)] = 0.3
    correction_min: PosF = 0.5
    correction_max: PosF = 2.0
    reoptimize_every_ticks: PosI = 10
    drift_threshold: PosF = 0.15
    drift_ticks: PosI = 3
    max_optimizer_failures: PosI = 3
    #: the frontend's admission control: ``off`` (none; a decision's ``admission_rps`` is ignored) or
    #: ``auto`` (the planner sets the admitted rate each tick: ``Decision.admission_rps``; aic@ does)
    admission_control: Literal["off", "auto"] = "off"
    #: Free-form knobs: for user planners (``pkg.mod:Class``), and ``scale_in_ticks`` for the built-ins.
    params: dict[str, Any] = {}
    #: NVIDIA Dynamo's planner (``dynamo``): fields of Dynamo's own ``PlannerConfig``, passed through
    #: unchanged and validated by Dynamo's model when the planner loads (replaylib/planner/dynamo/).
    dynamo: dict[str, Any] = {}


class NoiseSpec(_Strict):
    kind: Literal["none", "gaussian", "ar1"] = "none"
    sigma: NonNegF = 0.0
    phi: Annotated[float, Meta(ge=-1, le=1)] = 0.0


class PowerConfig(_Strict):
    """The power budget and how the synthetic readings are biased and noised."""

    total_gpu_power_limit_w: PosF | None = None
    bias: dict[BiasSignal, FiniteF] = {}
    noise: dict[NoiseSignal, NoiseSpec] = {}


# -- events ---------------------------------------------------------------------------


class _Event(_Strict, tag_field="type"):
    at_s: NonNegF


class BiasStep(_Event, tag="bias_step"):
    signal: BiasSignal
    delta: FiniteF


class BiasRamp(_Event, tag="bias_ramp"):
    signal: BiasSignal
    delta: FiniteF
    duration_s: PosF


class BiasSine(_Event, tag="bias_sine"):
    signal: BiasSignal
    amplitude: FiniteF
    period_s: PosF
    duration_s: PosF | None = None


class BudgetChange(_Event, tag="budget_change"):
    total_gpu_power_limit_w: PosF | None


class ActuationFault(_Event, tag="actuation_fault"):
    mode: Literal["rbac_denied", "nvml_low", "nvml_high", "daemonset_absent"]
    duration_s: PosF | None = None


class NodeDown(_Event, tag="node_down"):
    role: Role
    count: PosI = 1


class NodeUp(_Event, tag="node_up"):
    role: Role
    count: PosI = 1


class PromOutage(_Event, tag="prom_outage"):
    signals: list[Signal]
    duration_s: PosF | None = None


class PromStale(_Event, tag="prom_stale"):
    signals: list[Signal]
    lag_ticks: PosI
    duration_s: PosF | None = None


class OptimizerFailure(_Event, tag="optimizer_failure"):
    mode: Literal["raise", "empty"] = "raise"
    ticks: PosI = 1


class FrontendFault(_Event, tag="frontend_fault"):
    """The frontend rejects ``fraction`` of the requests that arrive in ``[at_s, at_s + duration_s)``
    (HTTP 5xx: never reach the fleet); which ones is a seeded, deterministic choice."""

    fraction: Fraction
    duration_s: PosF | None = None


class MdcUnavailable(_Event, tag="mdc_unavailable"):
    """The model deployment card (context length, KV capacity) is unavailable: the planner's
    observation carries ``model=None`` while it lasts."""

    duration_s: PosF | None = None


class PromWindowCross(_Event, tag="prom_window_cross"):
    """For ``ticks`` ticks from ``at_s``, each of ``signals`` is served as a mix of the value served on
    the tick before (weight ``weight_old``) and the fresh one: a metrics window that straddles a change."""

    signals: list[Signal]
    weight_old: Fraction = 0.66
    ticks: PosI = 1


Event = (
    BiasStep
    | BiasRamp
    | BiasSine
    | BudgetChange
    | ActuationFault
    | NodeDown
    | NodeUp
    | PromOutage
    | PromStale
    | OptimizerFailure
    | FrontendFault
    | MdcUnavailable
    | PromWindowCross
)


# -- assertions -------------------------------------------------------------------------

Op = Literal["==", "!=", "<", "<=", ">", ">=", "within"]


class Assertion(_Strict):
    """A predicate over the recorded ticks.

    Exactly one of ``at_tick`` (that tick), ``always: true`` (every tick) or
    ``eventually_by_tick`` (some tick up to and including that one); compare
    ``field`` with ``op`` against ``value`` or ``ref`` (``planner.<field>`` or
    ``system.<dotted.field>``); ``within`` needs ``tolerance`` (absolute).  String
    fields (``reason``, ``actuation``) take a string ``value`` and ``==``/``!=`` only.
    """

    field: str
    op: Op
    at_tick: NonNegI | None = None
    always: bool = False
    eventually_by_tick: NonNegI | None = None
    value: bool | int | float | str | None = None
    ref: str | None = None
    tolerance: NonNegF | None = None
    description: str = ""


class ToleranceBounds(_Strict):
    """``{rel: R, abs: A}``: equal when ``|a - b| <= max(A, R * max(|a|, |b|))``."""

    rel: NonNegF = 0.0
    abs: NonNegF = 0.0


class GoldenConfig(_Strict):
    """How goldens and ``compare`` judge this scenario's replays (docs/goldens.md): ``only`` the
    judged column classes, ``tolerance`` one value or ``{all|class|column: value}``."""

    only: str | None = None
    tolerance: NonNegF | dict[str, NonNegF | ToleranceBounds] | None = None


class Scenario(_Strict):
    name: str
    trace: TraceConfig
    system: str
    description: str = ""
    seed: NonNegI = 0
    ticks: Annotated[int, Meta(ge=1, le=MAX_TICKS)] | None = None
    fleet: FleetConfig = FleetConfig()
    planner: PlannerConfig = PlannerConfig()
    power: PowerConfig = PowerConfig()
    events: Annotated[list[Event], Meta(max_length=MAX_SCENARIO_EVENTS)] = []
    assertions: list[Assertion] = []
    golden: GoldenConfig = GoldenConfig()
