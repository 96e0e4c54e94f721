"""The latency histogram's arithmetic: which bucket a sample lands in, and how samples and runs of
samples are added (:class:`replaylib.sim.metrics.LatencyStats` keeps the counts; this module is the
only place they are computed).

Buckets are log-spaced with relative width 1%: a sample ``x > 0`` lands in bucket
``ceil(log(x) / log(GAMMA))``, samples ``<= 0`` in ``NO_BUCKET``.  The fleet calls :func:`add` and
:func:`add_linear` directly and compiles them with itself (``replaylib.native``), so this module
imports only the standard library and takes the statistics as any object with ``count``, ``total``,
``min``, ``max`` and ``buckets``.
"""

from __future__ import annotations

import math
from typing import Any, Final

#: Bucket growth factor: a sample x lands in bucket ceil(log(x) / log(GAMMA)).
GAMMA: Final = 1.01
_LOG_GAMMA: Final = math.log(GAMMA)
NO_BUCKET: Final = -(2**31)  # where samples <= 0 go
_ceil, _log = math.ceil, math.log


def bucket(value: float) -> int:
    return _ceil(_log(value) / _LOG_GAMMA) if value > 0 else NO_BUCKET


def add(stats: Any, value: float, weight: int = 1) -> None:
    """Add ``weight`` samples equal to ``value`` (> 0) to ``stats``."""
    b = _ceil(_log(value) / _LOG_GAMMA) if value > 0 else NO_BUCKET  # bucket(value)
    stats.buckets[b] = stats.buckets.get(b, 0) + weight
    stats.count += weight
    stats.total += value * weight
    if value < stats.min:
        stats.min = value
    if value > stats.max:
        stats.max = value


def add_linear(stats: Any, first: float, step: float, k: int, weight: int) -> None:
    """Add ``weight`` samples of each of ``first + step * i`` for ``i in range(k)`` to ``stats``.

    Costs one operation per histogram bucket the progression crosses, not per
    sample: this is how a run of ``k`` decode steps is accounted in closed form.
    """
    if k <= 0:
        return
    if step == 0.0:
        add(stats, first, k * weight)
        return
    stats.count += k * weight
    stats.total += weight * (k * first + step * k * (k - 1) / 2.0)
    last = first + step * (k - 1)
    lo, hi = (first, last) if step > 0 else (last, first)
    if lo < stats.min:
        stats.min = lo
    if hi > stats.max:
        stats.max = hi
    buckets = stats.buckets
    b = _ceil(_log(first) / _LOG_GAMMA) if first > 0 else NO_BUCKET  # bucket(first), bucket(last)
    if b == (_ceil(_log(last) / _LOG_GAMMA) if last > 0 else NO_BUCKET):
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
