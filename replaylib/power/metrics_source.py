"""What planners can see of the readings: possibly in outage, possibly stale."""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from replaylib.scenario.model import SIGNALS


class MetricsSource:
    """Per-signal history of readings with outage and staleness windows.

    ``push(tick, values)`` stores one tick's true readings; ``observe(signal)``
    returns what a planner sees now: ``None`` while the signal is in outage,
    the value from ``lag`` ticks ago while it is stale (``None`` if there is
    no such history yet), the current value otherwise.  While a window cross
    is in force (``start_window_cross``: a metrics window that straddles a
    change), a numeric value is served as ``w * old + (1 - w) * value``, ``old``
    being what was served on the tick before the cross began.
    """

    def __init__(self, max_lag: int = 64) -> None:
        self._history: dict[str, deque[Any]] = {s: deque(maxlen=max_lag + 1) for s in SIGNALS}
        self._outage: dict[str, float] = {}  # signal -> end time (ms), inf for open-ended
        self._stale: dict[str, tuple[int, float]] = {}  # signal -> (lag ticks, end time)
        self._cross: dict[str, list[Any]] = {}  # signal -> [weight_old, old value, ticks left]
        self._served: dict[str, Any] = {}  # signal -> what observe() served on the previous tick
        self._now = 0.0

    def push(self, now_ms: float, values: dict[str, Any]) -> None:
        for sig in SIGNALS:
            self._served[sig] = self.observe(sig)  # before the new tick: what the planner saw last
            cross = self._cross.get(sig)
            if cross is not None:
                cross[2] -= 1
                if cross[2] < 0:
                    del self._cross[sig]
        self._now = now_ms
        for sig in SIGNALS:
            self._history[sig].append(values.get(sig))

    def start_window_cross(self, signals: list[str], weight_old: float, ticks: int) -> None:
        """Mix the value served on the previous tick into this tick's and the next ``ticks - 1``."""
        for s in signals:
            self._cross[s] = [weight_old, self._served.get(s), ticks - 1]

    def in_window_cross(self, signal: str) -> bool:
        return signal in self._cross

    def start_outage(self, signals: list[str], until_ms: float) -> None:
        for s in signals:
            self._outage[s] = until_ms

    def start_stale(self, signals: list[str], lag: int, until_ms: float) -> None:
        for s in signals:
            self._stale[s] = (lag, until_ms)

    def in_outage(self, signal: str) -> bool:
        return self._now < self._outage.get(signal, -1.0)

    def observe(self, signal: str) -> Any:
        if self.in_outage(signal):
            return None
        history = self._history[signal]
        lag, until = self._stale.get(signal, (0, -1.0))
        if self._now < until:
            value = history[-1 - lag] if len(history) > lag else None
        else:
            value = history[-1] if history else None
        cross = self._cross.get(signal)
        return value if cross is None else _mix(cross[1], value, cross[0])


def _mix(old: Any, new: Any, weight_old: float) -> Any:
    """``weight_old * old + (1 - weight_old) * new`` for a number or a latency summary (the mean and
    percentiles mixed, the count the new one's); either missing: the other as it is."""
    if old is None or new is None:
        return new
    if isinstance(new, (int, float)):
        return weight_old * old + (1.0 - weight_old) * new
    return msgspec.structs.replace(
        new,
        mean_ms=weight_old * old.mean_ms + (1.0 - weight_old) * new.mean_ms,
        p50_ms=weight_old * old.p50_ms + (1.0 - weight_old) * new.p50_ms,
        p99_ms=weight_old * old.p99_ms + (1.0 - weight_old) * new.p99_ms,
    )
