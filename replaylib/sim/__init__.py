"""The simulated disaggregated fleet: router, prefill and decode workers, scaling, caps.

Exact semantics: ``docs/fleet_model.md``.  Entry point: :class:`Fleet`.
"""

from replaylib.sim.fleet import DECODE, DROP_REASONS, PREFILL, Fleet
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
    "Fleet",
    "LatencyStats",
    "RequestOutcome",
    "RoleCounts",
    "ScalingResult",
    "Snapshot",
    "TrafficWindow",
    "WorkerMetrics",
]
