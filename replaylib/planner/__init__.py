"""Planners: the protocol, the built-in versioned planners and the registry that finds them.

``load_planner("aic@1", ctx)`` / ``load_planner("my_pkg.mod:MyPlanner", ctx)``;
``available_planners()`` lists the built-ins (``aic@1``, ``aic@2``, ``power@1``,
``sla@1``); ``load_planner("dynamo", ctx)`` loads NVIDIA Dynamo's own planner through
the bridge in :mod:`replaylib.planner.dynamo` (an external planner, imported on
demand).  Planners see the fleet only through :class:`Observation` and act only
through :class:`Decision`.
"""

from replaylib.planner.protocol import (
    Actuation,
    Decision,
    LatencyObs,
    ModelCard,
    Observation,
    Planner,
    PlannerContext,
    PlannerError,
    RoleObs,
    WorkerObs,
)
from replaylib.planner.registry import available_planners, load_planner

__all__ = [
    "Actuation",
    "Decision",
    "LatencyObs",
    "ModelCard",
    "Observation",
    "Planner",
    "PlannerContext",
    "PlannerError",
    "RoleObs",
    "WorkerObs",
    "available_planners",
    "load_planner",
]
