"""Runs of decode steps: the closed form the event-skipping fleet sums (``replaylib.timing.protocol``).

In a run of steps at a fixed batch, step ``i`` (0-based) lasts ``first + growth * i``.  These three
functions are the only place that arithmetic is written; the fleet compiles them with itself
(``replaylib.native``), so this module imports only the standard library.
"""

from __future__ import annotations

import math


def run_step(first: float, growth: float, i: int) -> float:
    """Duration of step ``i`` (0-based) of a run."""
    return first + growth * i


def run_end(start: float, first: float, growth: float, k: int) -> float:
    """End time of the run's ``k``-th step (``k = 0`` is the run's start)."""
    return start + k * first + growth * (k * (k - 1) / 2.0)


def run_steps_by(start: float, first: float, growth: float, k_max: int, t: float) -> int:
    """Steps of a run (at most ``k_max``) completed by time ``t``: the inverse of :func:`run_end`."""
    dt = t - start
    if dt <= 0.0:
        return 0
    a, b = growth / 2.0, first - growth / 2.0
    if a == 0.0 and b <= 0.0:
        return k_max  # zero-duration steps
    if a == 0.0:
        k = int(dt / b)
    else:  # a < 0 (a step time falling along the run) is fine: the first root is the one wanted
        k = int((-b + math.sqrt(max(b * b + 4.0 * a * dt, 0.0))) / (2.0 * a))
    k = min(max(k, 0), k_max)
    while k < k_max and run_end(start, first, growth, k + 1) <= t:
        k += 1
    while k > 0 and run_end(start, first, growth, k) > t:
        k -= 1
    return k


__all__ = [
    "UNBOUNDED_STEPS",
    "PowerModel",
    "RangeReport",
    "Role",
    "TimingModel",
    "TimingSpecError",
    "run_end",
    "run_step",
    "run_steps_by",
]
