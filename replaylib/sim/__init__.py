"""The simulated disaggregated fleet: router, prefill and decode workers, scaling, caps.

Exact semantics: ``docs/fleet_model.md``.  Entry point: :class:`Fleet`; pass
``closed_loop=ClosedLoop(...)`` to replay a trace's sessions closed loop.
"""

import os as _os

from replaylib.sim import native as _native

_native.select(_os.path.dirname(__file__))  # before fleet / prefix_cache load: their compiled build or the sources

from replaylib.sim.arrivals import ClosedLoop  # noqa: E402 - after the build is chosen
from replaylib.sim.fleet import DECODE, DROP_REASONS, PREFILL, Fleet  # noqa: E402
from replaylib.sim.frontend import FaultWindow, Frontend  # noqa: E402
from replaylib.sim.metrics import (  # noqa: E402
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
