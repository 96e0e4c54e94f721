"""The planner protocol: what a planner sees each tick and what it decides.

A planner is any object with ``name``, ``version`` and
``on_tick(obs: Observation) -> Decision``, constructed as ``cls(ctx)`` with a
:class:`PlannerContext`.  It never touches the fleet: the adapter turns its
:class:`Decision` into scaling and cap calls (or fails to, under an injected
actuation fault, which the next observation reports).

A planner may also define any of these optional hooks; the adapter uses them
when present and behaves as before when absent:

* ``initial_tick_s`` (float > 0): the simulated time of its first tick, for a
  planner that keeps its own schedule (default: the scenario's
  ``adjustment_interval_s``);
* ``metadata() -> dict[str, str]``: facts about the planner that belong in the
  recording (an external planner's version, its full configuration), recorded
  as schema metadata keys ``planner.<key>`` and compared by ``diff``;
* ``close()``: called once when a replay that loaded the planner from a spec
  ends (successfully or not), to release what the planner holds.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from replaylib.errors import ReplaylibError
from replaylib.scenario.model import FleetConfig, PlannerConfig
from replaylib.scenario.system import System
from replaylib.sim.metrics import LatencySummary, WorkerMetrics

#: What happened to the previous decision when the adapter tried to apply it.
Actuation = Literal["ok", "scaling_denied", "caps_not_applied", "caps_forced_low", "caps_forced_high"]


#: Observed latency over the last window (milliseconds): the meter's own summary type
#: (a plain data struct; planners still see nothing of the fleet but their Observation).
LatencyObs = LatencySummary

#: One worker's forward-pass metrics at the tick: the fleet's own per-worker record (a plain
#: frozen data struct: id, role, state, batched prefill tokens, prefill and decode requests,
#: KV tokens in use and capacity, queued requests and tokens, busy time, passes and tokens
#: in the window), as a planner that reasons per worker (Dynamo's load-based scaling) needs it.
WorkerObs = WorkerMetrics


class RoleObs(msgspec.Struct, frozen=True, kw_only=True):
    """What a planner can see of one role (prefill or decode) at this tick."""

    active: int
    starting: int
    draining: int
    cap_w: float  #: per-GPU cap currently applied
    power_w: float | None  #: observed mean per-GPU power of the role (None: metrics outage)
    busy_fraction: float  #: mean share of the window the role's ready workers had work running
    queued_requests: int
    queued_tokens: int
    running_requests: int  #: prefill: requests in passes in flight; decode: running batch
    kv_tokens_used: int
    kv_capacity_tokens: int


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    """The model deployment card (MDC): what the serving stack publishes about the model.

    ``None`` in the observation while the card is unavailable (an ``mdc_unavailable`` event);
    ``kv_capacity_tokens`` carries the scenario's ``capacity`` noise (a relative error), as a
    capacity estimate would."""

    context_length: int | None  #: the model's context window in tokens (None: the system does not say)
    kv_capacity_tokens: int  #: KV-cache capacity of one worker, in tokens
    max_num_batched_tokens: int  #: the engine's prefill token budget per pass


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a planner observes at one tick (through the metrics source).

    Signals can be missing (``None``) during a metrics outage or when the window
    holds no samples, and can be stale (a value from earlier ticks).
    """

    tick: int
    now_ms: float
    window_s: float  #: length of the window the traffic numbers cover
    arrivals: int
    request_rate: float | None  #: requests per second over the window
    mean_isl: float | None
    mean_osl: float | None
    prefix_hit_rate: float | None
    ttft: LatencyObs | None
    itl: LatencyObs | None
    prefill: RoleObs
    decode: RoleObs
    budget_w: float | None  #: total GPU power limit in force (None: unlimited)
    last_actuation: Actuation = "ok"
    #: injected fault for planners with an optimiser: "raise" (it raises) or "empty" (no feasible point)
    optimizer_fault: Literal["raise", "empty"] | None = None
    #: requests the frontend refused in the window (they are not in ``arrivals``): an injected
    #: frontend fault's 5xx plus those shed by admission control; ``shed``: the latter alone
    rejected: int = 0
    shed: int = 0
    #: the frontend's admission limit in force (requests/s; None: no admission control)
    admission_rps: float | None = None
    #: the model deployment card (None: unavailable, e.g. under an ``mdc_unavailable`` fault)
    model: ModelCard | None = None
    #: every worker (starting, active, draining) at the tick's snapshot, prefill workers first, then
    #: decode, each in creation order (worker ids are unique across roles); taken
    #: before the tick's scenario events, so a worker lost to a ``node_down`` firing at this tick is
    #: still listed while the role counts above no longer include it (as a live planner's last
    #: forward-pass report outlives a vanished pod).  Empty when built by hand without workers.
    workers: tuple[WorkerObs, ...] = ()


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What a planner wants, and the numbers that explain why.

    ``cap_*_w`` of ``None`` leaves the role's cap unchanged; ``next_tick_s`` of
    ``None`` means the scenario's adjustment interval.  ``reason`` is a short
    code (``hold``, ``scale_out``, ``scale_in``, ``budget_cut_decode``,
    ``fallback_default_caps`` ...).
    """

    n_prefill: int
    n_decode: int
    cap_prefill_w: float | None = None
    cap_decode_w: float | None = None
    next_tick_s: float | None = None
    reason: str = "hold"
    predicted_rate: float | None = None
    predicted_isl: float | None = None
    predicted_osl: float | None = None
    c_ttft: float | None = None
    c_itl: float | None = None
    c_power_p: float | None = None
    c_power_d: float | None = None
    projected_w: float | None = None  #: replicas x GPUs x cap, both roles (the power model's ``provisioned_w``); None: the adapter fills it
    sweep: bool = False  #: the planner re-optimised its operating point this tick
    #: the frontend's admission limit to apply (requests/s; None: no limit); honoured with
    #: ``planner.admission_control: auto`` (``replaylib.sim.frontend``), ignored otherwise
    admission_rps: float | None = None


class PlannerContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a planner is constructed with."""

    config: PlannerConfig
    system: System
    initial_prefill: int
    initial_decode: int
    fleet: FleetConfig = FleetConfig()  #: the serving engine's knobs (batched tokens, max sequences ...)
    seed: int = 0
    #: the timing / power models to plan with (``replaylib.timing``); None: built from ``system``
    timing: Any = None
    power: Any = None


@runtime_checkable
class Planner(Protocol):
    name: str
    version: int

    def on_tick(self, obs: Observation) -> Decision: ...


class PlannerError(ReplaylibError):
    """A planner raised while deciding, or could not be found/constructed."""
