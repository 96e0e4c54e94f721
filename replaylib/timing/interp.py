"""Piecewise-linear interpolation: the one place the timing and power tables are read.

Two readings of a table ``xs -> ys`` (``xs`` strictly increasing):

* :func:`interp_flat` — linear between points, **flat** beyond the first and
  the last point (a cap → speed curve, a power draw, a decode step time);
* :func:`interp_slope` — linear between points, continued beyond the last point
  with the **last interval's slope** (a cumulative prompt cost, where holding the
  value flat would make tokens past the measured range free).

Both return the value and whether ``x`` was outside ``[xs[0], xs[-1]]``, so a
caller can count out-of-range lookups.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def interp_flat(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear between points, flat beyond the first and last point."""
    i = bisect.bisect_right(xs, x)
    if i == 0:
        return ys[0]
    if i == len(xs):
        return ys[-1]
    x0, x1 = xs[i - 1], xs[i]
    y0 = ys[i - 1]
    return y0 + (ys[i] - y0) * (x - x0) / (x1 - x0)


def interp_slope(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear between points, the first/last interval's line continued beyond the ends."""
    n = len(xs)
    i = bisect.bisect_right(xs, x)
    if i == 0:
        i = 1
    elif i == n:
        i = n - 1
    x0, x1 = xs[i - 1], xs[i]
    y0 = ys[i - 1]
    return y0 + (ys[i] - y0) * (x - x0) / (x1 - x0)


def outside(xs: Sequence[float], x: float) -> int:
    """-1 below the first point, +1 above the last, 0 inside (ends included)."""
    if x < xs[0]:
        return -1
    if x > xs[-1]:
        return 1
    return 0


__all__ = ["interp_flat", "interp_slope", "outside"]
