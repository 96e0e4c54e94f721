"""The latency histogram's arithmetic: which bucket a sample lands in, and how samples and runs of
samples are added.  :class:`Histogram` is the only place they are computed; the fleet keeps one per
window and statistic, and :class:`replaylib.sim.metrics.LatencyStats` (what a snapshot reports) is
built from it and adds through it.

Buckets are log-spaced with relative width 1%: a sample ``x > 0`` lands in bucket
``ceil(log(x) / log(GAMMA))``, samples ``<= 0`` in ``NO_BUCKET``.  The fleet compiles this module with
itself (``replaylib.native``), so it imports only the standard library.
"""

from __future__ import annotations

import math
from typing import Final

#: Bucket growth factor: a sample x lands in bucket ceil(log(x) / log(GAMMA)).
GAMMA: Final = 1.01
_LOG_GAMMA: Final = math.log(GAMMA)
NO_BUCKET: Final = -(2**31)  # where samples <= 0 go


def bucket(value: float) -> int:
    return math.ceil(math.log(value) / _LOG_GAMMA) if value > 0 else NO_BUCKET


class Histogram:
    """Samples as a count, a sum, min/max and log-spaced bucket counts (``buckets``: bucket -> count)."""

    __slots__ = ("count", "total", "min", "max", "buckets")

    def __init__(self, count: int = 0, total: float = 0.0, lo: float = math.inf, hi: float = -math.inf,
                 buckets: dict[int, int] | None = None) -> None:
        self.count = count
        self.total = total
        self.min = lo
        self.max = hi
        self.buckets: dict[int, int] = {} if buckets is None else buckets

    def add(self, value: float, weight: int = 1) -> None:
        """Add ``weight`` samples equal to ``value`` (> 0)."""
        b = math.ceil(math.log(value) / _LOG_GAMMA) if value > 0 else NO_BUCKET  # bucket(value)
        buckets = self.buckets
        buckets[b] = buckets.get(b, 0) + weight
        self.count += weight
        self.total += value * weight
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def add_linear(self, first: float, step: float, k: int, weight: int) -> None:
        """Add ``weight`` samples of each of ``first + step * i`` for ``i in range(k)``.

        Costs one operation per histogram bucket the progression crosses, not per
        sample: this is how a run of ``k`` decode steps is accounted in closed form.
        """
        if k <= 0:
            return
        if step == 0.0:
            self.add(first, k * weight)
            return
        self.count += k * weight
        self.total += weight * (k * first + step * k * (k - 1) / 2.0)
        last = first + step * (k - 1)
        lo, hi = (first, last) if step > 0 else (last, first)
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        buckets = self.buckets
        b = math.ceil(math.log(first) / _LOG_GAMMA) if first > 0 else NO_BUCKET  # bucket(first), bucket(last)
        if b == (math.ceil(math.log(last) / _LOG_GAMMA) if last > 0 else NO_BUCKET):
            # the samples are monotonic: all in one bucket (the walk below puts them there too)
            buckets[b] = buckets.get(b, 0) + k * weight
            return
        i = 0
        while i < k:
            b = bucket(first + step * i)
            edge = GAMMA**b if step > 0 else GAMMA ** (b - 1)
            j = int((edge - first) / step)  # last index still inside bucket b
            j = min(max(j, i), k - 1)
            buckets[b] = buckets.get(b, 0) + (j - i + 1) * weight
            i = j + 1
