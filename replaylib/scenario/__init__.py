"""Scenarios (YAML with ``extends:``), per-SKU systems, events and assertions."""

from replaylib.scenario.loader import LoadedScenario, load_scenario
from replaylib.scenario.model import Assertion, FleetConfig, PlannerConfig, PowerConfig, Scenario, TraceConfig
from replaylib.scenario.system import System, load_system
from replaylib.scenario.yamlio import ScenarioError

__all__ = [
    "Assertion",
    "FleetConfig",
    "LoadedScenario",
    "PlannerConfig",
    "PowerConfig",
    "Scenario",
    "ScenarioError",
    "System",
    "TraceConfig",
    "load_scenario",
    "load_system",
]
