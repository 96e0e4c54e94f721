"""The frontend in front of the fleet: injected request failures and admission control.

The fleet pulls its arrivals from an arrival source (:mod:`replaylib.sim.arrivals`);
a :class:`Frontend` wraps that source and decides, for every request at the moment
it arrives, whether the frontend passes it on to the fleet or rejects it.  A
rejected request never reaches the fleet: it is counted here (``rejected``; of
those, ``shed`` by admission control), not in the fleet's arrivals, drops or
completions, so that at every stop

    requests at the frontend = fleet arrivals + rejected
                             = completed + dropped + in flight + rejected.

Two reasons to reject, checked in this order:

* **admission control** (``set_admission(rate)``): the frontend admits at most
  ``rate`` requests per second, a token bucket that refills at ``rate`` per second
  and holds at most ``max(1, rate x ADMISSION_BURST_S)`` tokens (full when the limit
  is set); a request finding no token is *shed* (HTTP 429).  ``None`` switches
  admission control off.  Planners set it through ``Decision.admission_rps``
  (with ``planner.admission_control: auto``); it applies from the tick's time on.
* **a frontend fault** (:class:`~replaylib.scenario.model.FrontendFault`): a
  request arriving inside a fault's window ``[at_s, at_s + duration_s)`` is
  rejected (HTTP 5xx) with probability ``fraction`` (the largest fraction when
  windows overlap), by one draw of the frontend's own random stream (the
  ``rng`` it is given; the adapter's is ``signal_rng(seed, "frontend")``) per
  request arriving in a window, in arrival order: deterministic for a seed,
  independent of every other stream.

Closed-loop sessions: a rejected turn ends like a dropped one — the source is told
it failed, so the rest of its session is abandoned (``docs/fleet_model.md``,
"Closed-loop sessions"): a client whose request failed does not send the follow-up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from replaylib.trace.model import Request

#: The token bucket of admission control holds this many seconds of its rate (at least one request).
ADMISSION_BURST_S = 1.0


class FaultWindow:
    """One frontend fault: arrivals in ``[start_ms, end_ms)`` fail with probability ``fraction``."""

    __slots__ = ("end_ms", "fraction", "start_ms")

    def __init__(self, start_ms: float, end_ms: float, fraction: float) -> None:
        self.start_ms, self.end_ms, self.fraction = float(start_ms), float(end_ms), float(fraction)


class Frontend:
    """Rejects arrivals under a fault or beyond the admission limit (module docstring)."""

    def __init__(self, faults: Iterable[FaultWindow], rng: random.Random) -> None:
        self._faults = sorted(faults, key=lambda f: (f.start_ms, f.end_ms))
        self._rng = rng
        self._rate: float | None = None
        self._tokens = 0.0
        self._depth = 0.0
        self._last_ms = 0.0
        self.rejected = 0  #: cumulative: every request the frontend refused (fault and admission)
        self.shed = 0  #: cumulative: of those, the ones admission control refused
        self._window_rejected = 0
        self._window_shed = 0

    # -- what the adapter calls -----------------------------------------------------------

    @property
    def admission_rps(self) -> float | None:
        return self._rate

    def set_admission(self, rate: float | None, now_ms: float) -> None:
        """Admit at most ``rate`` requests/s from ``now_ms`` on (``None``: no limit).  An unchanged
        rate keeps the bucket as it is; a new one starts with a full bucket."""
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"admission rate must be a finite number > 0 of requests/s, got {rate!r}")
        if rate == self._rate:
            return
        self._rate = rate
        if rate is not None:
            self._depth = max(1.0, rate * ADMISSION_BURST_S)
            self._tokens = self._depth
            self._last_ms = now_ms

    def take_window(self) -> tuple[int, int]:
        """(rejected, shed) since the last call: what the planner sees of the frontend this tick."""
        out = (self._window_rejected, self._window_shed)
        self._window_rejected = self._window_shed = 0
        return out

    def wrap(self, source: Any) -> _GatedArrivals:
        """The fleet's arrival source, gated by this frontend."""
        return _GatedArrivals(source, self)

    # -- the decision, per arrival --------------------------------------------------------

    def fault_fraction(self, t_ms: float) -> float:
        """The rejection probability of a fault at ``t_ms`` (0: none in force)."""
        share = 0.0
        for f in self._faults:
            if f.start_ms > t_ms:
                break
            if t_ms < f.end_ms:
                share = max(share, f.fraction)
        return share

    def admit(self, t_ms: float) -> bool:
        """Whether a request arriving at ``t_ms`` is passed on (counts it when it is not)."""
        if self._rate is not None:
            self._tokens = min(self._depth, self._tokens + (t_ms - self._last_ms) / 1000.0 * self._rate)
            self._last_ms = t_ms
            if self._tokens < 1.0:
                self.rejected += 1
                self.shed += 1
                self._window_rejected += 1
                self._window_shed += 1
                return False
            self._tokens -= 1.0
        share = self.fault_fraction(t_ms)
        if share > 0.0 and self._rng.random() < share:
            self.rejected += 1
            self._window_rejected += 1
            return False
        return True


class _GatedArrivals:
    """An arrival source whose requests pass the frontend first (same interface as the source)."""

    __slots__ = ("_front", "_src", "closed", "next_time")

    def __init__(self, source: Any, front: Frontend) -> None:
        self._src = source
        self._front = front
        self.closed = source.closed
        self.next_time = source.next_time

    @property
    def exhausted(self) -> bool:
        return self._src.exhausted

    @property
    def abandoned(self) -> int:
        return self._src.abandoned

    def pop(self, t: float) -> tuple[int, Request] | None:
        item = self._src.pop(t)
        if item is not None and not self._front.admit(t):
            if self.closed:
                self._src.finished(item[0], t, False)  # the session's next turns are abandoned
            item = None
        self.next_time = self._src.next_time
        return item

    def finished(self, index: int, t: float, completed: bool) -> None:
        self._src.finished(index, t, completed)
        self.next_time = self._src.next_time

    def held(self, now: float) -> int:
        return self._src.held(now)


__all__ = ["ADMISSION_BURST_S", "FaultWindow", "Frontend"]
