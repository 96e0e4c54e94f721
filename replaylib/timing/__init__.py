"""Timing and power models: the one place pass times, step times, watts and cap speeds are computed.

The fleet (``replaylib.sim``), the power overlay (``replaylib.power``), the
adapter's budget guard and the planners' capacity models
(``replaylib.planner.capacity``) all call a :class:`TimingModel` and a
:class:`PowerModel` built from the system — the ``analytic`` formulas, the
``table`` of measured or estimated points, or a user's class named in the
systems YAML (``timing: {model: pkg.mod:Class, …}``) or passed to the library
call.  Protocols: :mod:`replaylib.timing.protocol`; the interpolation of tables:
:mod:`replaylib.timing.table`; the semantics: ``docs/fleet_model.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from replaylib.timing.analytic import AnalyticTiming
from replaylib.timing.power import AnalyticPower, TablePower
from replaylib.timing.protocol import (
    UNBOUNDED_STEPS,
    PowerModel,
    RangeReport,
    Role,
    TimingModel,
    TimingSpecError,
)
from replaylib.timing.registry import (
    available_power_models,
    available_timing_models,
    power_model,
    register_power_model,
    register_timing_model,
    timing_model,
)
from replaylib.timing.runs import run_end, run_step, run_steps_by
from replaylib.timing.table import TableTiming

if TYPE_CHECKING:
    from replaylib.scenario.system import System


class Models(NamedTuple):
    """A system with the timing and power models built from it (or given)."""

    system: System
    timing: TimingModel
    power: PowerModel


def models_for(system: System, timing: TimingModel | None = None, power: PowerModel | None = None) -> Models:
    """``system``'s models; ``timing`` / ``power`` replace the ones its YAML names."""
    return Models(system, timing if timing is not None else timing_model(system), power if power is not None else power_model(system))


def as_models(system: System | Models) -> Models:
    """``system`` itself when it already is a :class:`Models`, else its models built from its YAML."""
    return system if isinstance(system, Models) else models_for(system)


__all__ = [
    "UNBOUNDED_STEPS",
    "AnalyticPower",
    "AnalyticTiming",
    "Models",
    "PowerModel",
    "RangeReport",
    "Role",
    "TablePower",
    "TableTiming",
    "TimingModel",
    "TimingSpecError",
    "available_power_models",
    "as_models",
    "available_timing_models",
    "models_for",
    "power_model",
    "register_power_model",
    "register_timing_model",
    "run_end",
    "run_step",
    "run_steps_by",
    "timing_model",
]
