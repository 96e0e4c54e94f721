"""What planners can see of the readings: possibly in outage, possibly stale."""

from __future__ import annotations

from collections import deque
from typing import Any

from replaylib.scenario.model import SIGNALS


class MetricsSource:
    """Per-signal history of readings with outage and staleness windows.

    ``push(tick, values)`` stores one tick's true readings; ``observe(signal)``
    returns what a planner sees now: ``None`` while the signal is in outage,
    the value from ``lag`` ticks ago while it is stale (``None`` if there is
    no such history yet), the current value otherwise.
    """

    def __init__(self, max_lag: int = 64) -> None:
        self._history: dict[str, deque[Any]] = {s: deque(maxlen=max_lag + 1) for s in SIGNALS}
        self._outage: dict[str, float] = {}  # signal -> end time (ms), inf for open-ended
        self._stale: dict[str, tuple[int, float]] = {}  # signal -> (lag ticks, end time)
        self._now = 0.0

    def push(self, now_ms: float, values: dict[str, Any]) -> None:
        self._now = now_ms
        for sig in SIGNALS:
            self._history[sig].append(values.get(sig))

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
            return history[-1 - lag] if len(history) > lag else None
        return history[-1] if history else None
