"""Checking a planner's answer at the adapter boundary, before anything acts on it.

A planner is user code: whatever it returns is checked field by field, and a
bad answer stops the replay with a :class:`PlannerError` naming the planner,
the tick and the field, instead of a traceback deep in the fleet, an
hour-long replay of ten million workers, or a NaN cap in a published
recording.  Numbers of other numeric types (numpy's) are accepted and
normalised to ``int`` / ``float``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import msgspec

from replaylib.limits import MAX_CAP_W, MAX_REASON_CHARS, MAX_WORKERS_PER_ROLE, MIN_TICK_INTERVAL_S
from replaylib.planner.protocol import Decision, PlannerError

#: Diagnostic numbers a planner may attach (recorded as they are; any finite value).
_DIAGNOSTICS: tuple[str, ...] = (
    "predicted_rate", "predicted_isl", "predicted_osl", "c_ttft", "c_itl", "c_power_p", "c_power_d", "projected_w",
)


def _bad(planner: str, tick: int, field: str, expected: str, value: Any) -> PlannerError:
    got = repr(value) if isinstance(value, (int, float)) or isinstance(value, str) and len(value) <= 60 \
        else f"a {type(value).__name__} ({repr(value)[:40]}...)"
    return PlannerError(f"planner {planner} at tick {tick}: field {field}: expected {expected}, got {got}")


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _count(decision: Decision, field: str, planner: str, tick: int) -> int:
    n = getattr(decision, field)  # an int of any kind (numpy's too), or a float with no fraction (3.0)
    if not _real(n) or not math.isfinite(n) or not float(n).is_integer() or not 1 <= n <= MAX_WORKERS_PER_ROLE:
        raise _bad(planner, tick, field, f"an integer number of workers from 1 to {MAX_WORKERS_PER_ROLE} "
                   "(replaylib.limits.MAX_WORKERS_PER_ROLE)", n)
    return int(n)


def _number(decision: Decision, field: str, planner: str, tick: int, lo: float, hi: float, expected: str) -> float | None:
    x = getattr(decision, field)
    if x is None:
        return None
    if not _real(x) or not math.isfinite(x) or not lo <= x <= hi:
        raise _bad(planner, tick, field, expected, x)
    return float(x)


def check_decision(decision: Any, *, planner: str, tick: int) -> Decision:
    """``decision`` if every field is usable (numbers normalised), else a :class:`PlannerError`."""
    if not isinstance(decision, Decision):
        raise PlannerError(f"planner {planner} at tick {tick}: returned {type(decision).__name__}, expected a Decision")
    changes: dict[str, Any] = {
        "n_prefill": _count(decision, "n_prefill", planner, tick),
        "n_decode": _count(decision, "n_decode", planner, tick),
    }
    for field in ("cap_prefill_w", "cap_decode_w"):
        changes[field] = _number(decision, field, planner, tick, math.ulp(0.0), MAX_CAP_W,
                                 f"None or a finite cap in W per GPU, > 0 and <= {MAX_CAP_W:g}")
    changes["next_tick_s"] = _number(decision, "next_tick_s", planner, tick, MIN_TICK_INTERVAL_S, math.inf,
                                     f"None or a finite number of seconds >= {MIN_TICK_INTERVAL_S:g} "
                                     "(replaylib.limits.MIN_TICK_INTERVAL_S)")
    for field in _DIAGNOSTICS:
        changes[field] = _number(decision, field, planner, tick, -math.inf, math.inf, "None or a finite number")
    changes["admission_rps"] = _number(decision, "admission_rps", planner, tick, math.ulp(0.0), math.inf,
                                       "None or a finite rate in requests/s, > 0")
    if not isinstance(decision.reason, str) or len(decision.reason) > MAX_REASON_CHARS:
        raise _bad(planner, tick, "reason", f"a short code, a string of at most {MAX_REASON_CHARS} characters", decision.reason)
    if not isinstance(decision.sweep, bool):
        raise _bad(planner, tick, "sweep", "true or false", decision.sweep)
    return msgspec.structs.replace(decision, **changes)


def check_first_tick(value: Any, *, planner: str) -> float | None:
    """A planner's optional ``initial_tick_s``: None or seconds >= MIN_TICK_INTERVAL_S; returns ms."""
    if value is None:
        return None
    if not _real(value) or not math.isfinite(value) or value < MIN_TICK_INTERVAL_S:
        raise PlannerError(f"planner {planner}: initial_tick_s: expected a finite number of seconds >= "
                           f"{MIN_TICK_INTERVAL_S:g}, got {value!r}")
    return float(value) * 1000.0
