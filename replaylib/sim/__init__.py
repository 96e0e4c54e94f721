"""The simulated disaggregated fleet: router, prefill and decode workers, scaling, caps.

Exact semantics: ``docs/fleet_model.md``.  Entry point: :class:`Fleet`; pass
``closed_loop=ClosedLoop(...)`` to replay a trace's sessions closed loop.
"""

from replaylib.sim.arrivals import ClosedLoop
from replaylib.sim.fleet import DECODE, DROP_REASONS, PREFILL, Fleet
from replaylib.sim.frontend import FaultWindow, Frontend
from replaylib.sim.metrics import (
    CapResult,
    LatencyStats,
    RequestOutcome,
    RoleCounts,
    ScalingResult,
    Snapshot,
    TrafficWindow,
    WorkerMetrics,
)

__all__ = [
    "DECODE",
    "DROP_REASONS",
    "PREFILL",
    "CapResult",
    "ClosedLoop",
    "FaultWindow",
    "Fleet",
    "Frontend",
    "LatencyStats",
    "RequestOutcome",
    "RoleCounts",
    "ScalingResult",
    "Snapshot",
    "TrafficWindow",
    "WorkerMetrics",
]
