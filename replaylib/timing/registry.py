"""Timing and power models by name: the built-ins, registered ones, and ``pkg.module:Class``.

The systems YAML picks them (``timing.model``, ``power_model.model``); absent
means ``analytic``.  A model class is constructed as ``Class(system)`` and reads
its own section (a user class finds its keys in ``system.timing.params`` /
``system.power_model.params``); it must have the methods of
:class:`~replaylib.timing.protocol.TimingModel` /
:class:`~replaylib.timing.protocol.PowerModel`.  Register a name with
:func:`register_timing_model` / :func:`register_power_model`, like a vcrpy matcher.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from replaylib.timing.analytic import AnalyticTiming
from replaylib.timing.power import AnalyticPower, TablePower
from replaylib.timing.protocol import PowerModel, TimingModel, TimingSpecError
from replaylib.timing.table import TableTiming

if TYPE_CHECKING:
    from replaylib.scenario.system import System

_TIMING: dict[str, Any] = {"analytic": AnalyticTiming, "table": TableTiming}
_POWER: dict[str, Any] = {"analytic": AnalyticPower, "table": TablePower}
_TIMING_METHODS = ("prefill_pass_ms", "prefill_request_ms", "prefill_tokens_per_s", "decode_step_ms", "decode_run",
                   "decode_max_batch", "kv_transfer_end_ms", "range_report")
_POWER_METHODS = ("speed", "worker_w", "saturated_w", "busy_mix_w", "clamp_w", "provisioned_w", "worker_provisioned_w")


def register_timing_model(name: str, factory: Any) -> None:
    """Make ``timing.model: name`` build ``factory(system)``."""
    _register(_TIMING, "timing", name, factory)


def register_power_model(name: str, factory: Any) -> None:
    """Make ``power_model.model: name`` build ``factory(system)``."""
    _register(_POWER, "power", name, factory)


def _register(table: dict[str, Any], what: str, name: str, factory: Any) -> None:
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a {what} model name must be a non-empty string without ':', got {name!r}")
    if name in ("analytic", "table", "external"):
        raise ValueError(f"{name!r} is a built-in {what} model name")
    if not callable(factory):
        raise ValueError(f"{what} model {name!r}: expected a class or callable factory(system), got {factory!r}")
    table[name] = factory


def available_timing_models() -> list[str]:
    return sorted(_TIMING)


def available_power_models() -> list[str]:
    return sorted(_POWER)


def _resolve(table: dict[str, Any], key: str, name: str) -> Any:
    if name in table:
        return table[name]
    if ":" not in name:
        raise TimingSpecError(key, f"unknown model {name!r}; available: {', '.join(sorted(table))}, or an import path pkg.module:Class")
    module_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise TimingSpecError(key, f"cannot import module {module_name!r} for model {name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not part or not hasattr(obj, part):
            raise TimingSpecError(key, f"module {module_name!r} has no attribute {attr!r} (model {name!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TimingSpecError(key, f"{name!r} is a {type(obj).__name__}, not a class constructed as Class(system)")
    return obj


def _build(table: dict[str, Any], section: str, spec: Any, system: System, methods: tuple[str, ...]) -> Any:
    key = f"{section}.model"
    tag = type(spec).__struct_config__.tag
    name = spec.name if tag == "external" else tag
    factory = _resolve(table, key, name)
    try:
        model = factory(system)
    except TimingSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user constructor may raise anything
        raise TimingSpecError(key, f"building model {name!r} failed: {type(exc).__name__}: {exc}") from None
    missing = [m for m in methods if not callable(getattr(model, m, None))]
    if missing:
        raise TimingSpecError(key, f"model {name!r} built a {type(model).__name__} without {', '.join(missing)}")
    return model


def timing_model(system: System) -> TimingModel:
    """The timing model ``system.timing`` names, built from the system."""
    return _build(_TIMING, "timing", system.timing, system, _TIMING_METHODS)  # type: ignore[no-any-return]


def power_model(system: System) -> PowerModel:
    """The power model ``system.power_model`` names, built from the system."""
    return _build(_POWER, "power_model", system.power_model, system, _POWER_METHODS)  # type: ignore[no-any-return]


def check_models(system: System) -> None:
    """Build both models once, so a bad table or class fails when the system is loaded."""
    timing_model(system)
    power_model(system)


__all__ = [
    "available_power_models",
    "available_timing_models",
    "check_models",
    "power_model",
    "register_power_model",
    "register_timing_model",
    "timing_model",
]
