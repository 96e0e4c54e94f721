"""Oscillations counted tick by tick (a light module: the adapter uses it without importing polars)."""

from __future__ import annotations


class ReversalCounter:
    """Oscillations: direction reversals of the replica targets, counted tick by tick.

    Per role, a reversal is a non-zero change of the target whose sign is the
    opposite of the previous non-zero change; the count is summed over roles.
    The adapter records the running count in every tick row (``oscillations``),
    so assertions can use it and the KPI is the last tick's value.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._sign: dict[str, int] = {}
        self.count = 0

    def update(self, targets: dict[str, int]) -> int:
        for role, n in targets.items():
            prev = self._last.get(role)
            self._last[role] = n
            if prev is None or n == prev:
                continue
            sign = 1 if n > prev else -1
            if self._sign.get(role, sign) != sign:
                self.count += 1
            self._sign[role] = sign
        return self.count
