"""Where the fleet's arrivals come from: the trace as recorded, or closed-loop sessions.

The fleet pulls its next arrival from an *arrival source* and tells it when a
request finishes; the trace module only supplies rows.  Two sources:

* :class:`OpenLoopArrivals` — every row arrives at its recorded ``timestamp``
  (the default; what the fleet always did).
* :class:`ClosedLoopArrivals` — rows that carry a ``session_id`` form
  sessions.  A session's first turn arrives at its timestamp; every later turn
  waits for the previous turn of its session to finish and is issued ``delay``
  ms after that turn completed, so an overloaded fleet slows its own arrivals.
  Rows without a session arrive at their timestamp, as in open loop.

The exact closed-loop rule (``docs/fleet_model.md``, "Closed-loop sessions"):
with look-ahead ``L`` and session timeout ``T`` (:class:`ClosedLoop`), row
``k`` of session ``s`` with recorded time ``ts`` follows the previous row of
``s`` in trace order, ``j``, once ``j`` has finished at ``f`` —

* ``ts - f > T``: ``s`` had timed out; ``k`` opens a new session and arrives at ``ts``;
* ``j`` completed: ``k`` arrives at ``max(f + delay, ts - L)`` (without a
  ``delay``: ``max(f, ts)``);
* ``j`` was dropped or abandoned: ``k`` is **abandoned** at ``max(f, ts - L)``
  — the rest of a conversation whose turn failed is never sent.

Streaming: the trace is read ``L`` ahead of the fleet's clock (a row *enters*
at ``ts - L``), never eagerly.  Memory holds the rows inside that window, the
turns waiting for their session, and one small record per session that
finished less than ``T`` before the reading position — never the whole trace.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import msgspec

from replaylib.trace.model import Request

_INF = math.inf

#: The look-ahead and session timeout used when a scenario does not say (ms).
DEFAULT_LOOKAHEAD_MS = 600_000.0
DEFAULT_SESSION_TIMEOUT_MS = 3_600_000.0


class ClosedLoop(msgspec.Struct, frozen=True, kw_only=True):
    """Closed-loop session replay: how far ahead the trace is read and when a session times out."""

    #: a later turn may be issued at most this long before its recorded timestamp
    lookahead_ms: float = DEFAULT_LOOKAHEAD_MS
    #: a row recorded more than this long after its session's previous turn finished opens a new session
    session_timeout_ms: float = DEFAULT_SESSION_TIMEOUT_MS

    def __post_init__(self) -> None:
        for name in ("lookahead_ms", "session_timeout_ms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"ClosedLoop.{name} must be a finite number of milliseconds >= 0, got {value!r}")
        if self.session_timeout_ms <= 0:
            raise ValueError(f"ClosedLoop.session_timeout_ms must be > 0, got {self.session_timeout_ms!r}")


#: ``abandon(index, row, t)``: a row will never be issued (its session was cut at ``t``).
Abandon = Callable[[int, Request, float], None]


class _Rows:
    """The trace, pulled one row ahead, with the non-decreasing timestamp check."""

    __slots__ = ("_it", "index", "row", "ts")

    def __init__(self, rows: Iterable[Request]) -> None:
        self._it: Iterator[Request] = iter(rows)
        self.index = -1
        self.row: Request | None = None
        self.ts = -_INF
        self.advance()

    def advance(self) -> None:
        """Move to the next row (``row`` None and ``ts`` inf at the end)."""
        row = next(self._it, None)
        self.index += 1
        if row is None:
            self.row, self.ts = None, _INF
            return
        ts = float(row.timestamp)
        if ts < self.ts:
            raise ValueError(f"request {self.index} arrives at {ts} ms, before its predecessor ({self.ts} ms)")
        self.row, self.ts = row, ts


class OpenLoopArrivals:
    """Every row arrives at its recorded timestamp, in trace order."""

    __slots__ = ("_rows", "next_time")

    closed = False

    def __init__(self, rows: Iterable[Request]) -> None:
        self._rows = _Rows(rows)
        self.next_time = self._rows.ts

    @property
    def exhausted(self) -> bool:
        return self._rows.row is None

    def pop(self, t: float) -> tuple[int, Request] | None:
        """The arrival due at ``t`` (== ``next_time``): ``(index, row)``."""
        rows = self._rows
        item = (rows.index, rows.row)
        rows.advance()
        self.next_time = rows.ts
        return item  # type: ignore[return-value]

    def finished(self, index: int, t: float, completed: bool) -> None:
        """Open loop: what happens to a request never changes the arrivals."""

    def held(self, now: float) -> int:
        return 0

    abandoned = 0


class _Session:
    """One session's chain: its turn in the fleet (or due), the turns behind it, how the last one ended."""

    __slots__ = ("active", "finished_at", "ok", "pending", "sid")

    def __init__(self, sid: str | int, active: int) -> None:
        self.sid = sid
        self.active: int | None = active  # index of the turn issued or due (None: the last turn has finished)
        self.pending: deque[tuple[int, Request]] = deque()  # read, waiting for the active turn
        self.finished_at = -_INF
        self.ok = True  # the last finished turn completed (False: dropped or abandoned)


class ClosedLoopArrivals:
    """Sessions replayed closed loop (module docstring; ``docs/fleet_model.md``)."""

    __slots__ = (
        "_rows", "_lookahead", "_timeout", "_abandon", "_due", "_sessions", "_session_of",
        "_waiting", "_finished", "next_time", "abandoned",
    )

    closed = True

    def __init__(self, rows: Iterable[Request], config: ClosedLoop, abandon: Abandon) -> None:
        self._rows = _Rows(rows)
        self._lookahead = float(config.lookahead_ms)
        self._timeout = float(config.session_timeout_ms)
        self._abandon = abandon
        self._due: list[tuple[float, int, Request]] = []  # (issue time, index, row), a heap
        self._sessions: dict[str | int, _Session] = {}
        self._session_of: dict[int, _Session] = {}  # index of an active turn -> its session
        self._waiting: dict[int, float] = {}  # index -> recorded ts of every row read and not issued (read order)
        self._finished: deque[tuple[float, str | int]] = deque()  # (finish time, session): candidates to forget
        self.abandoned = 0
        self.next_time = _INF
        self._refresh()

    # -- what the fleet calls -------------------------------------------------------------

    @property
    def exhausted(self) -> bool:
        """Nothing left to issue: the trace is read and no turn is due or waiting."""
        return self._rows.row is None and not self._waiting

    def pop(self, t: float) -> tuple[int, Request] | None:
        """At ``t`` (== ``next_time``): read the rows that enter by ``t``, then the arrival due at ``t``, if any."""
        self._enter(t)
        due = self._due
        item = None
        if due and due[0][0] <= t:
            _, index, row = heapq.heappop(due)
            del self._waiting[index]
            item = (index, row)
        self._refresh()
        return item

    def finished(self, index: int, t: float, completed: bool) -> None:
        """Request ``index`` completed (or was dropped) at ``t``: release its session's next turn."""
        s = self._session_of.pop(index, None)
        if s is None:
            return  # not a session turn
        s.active = None
        self._ended(s, t, completed)
        while s.pending and s.active is None:
            k, row = s.pending.popleft()
            self._follow(s, k, row, t)
        if s.active is None and not s.pending:
            self._finished.append((s.finished_at, s.sid))
        self._refresh()

    def held(self, now: float) -> int:
        """Turns whose recorded time has come (``ts <= now``) that the closed loop has not issued."""
        n = 0
        for ts in self._waiting.values():  # read order = timestamp order
            if ts > now:
                break
            n += 1
        return n

    # -- internals ------------------------------------------------------------------------

    def _refresh(self) -> None:
        due = self._due[0][0] if self._due else _INF
        self.next_time = min(due, max(self._rows.ts - self._lookahead, 0.0))

    def _enter(self, t: float) -> None:
        """Read every row that enters by ``t`` (recorded ``ts - lookahead <= t``; the replay starts at 0)."""
        rows = self._rows
        while rows.row is not None and rows.ts - self._lookahead <= t:
            index, row, ts = rows.index, rows.row, rows.ts
            rows.advance()
            self._forget(ts)
            sid = row.session_id
            if sid is None:
                self._issue_at(index, row, ts)
                continue
            s = self._sessions.get(sid)
            if s is None:
                s = self._sessions[sid] = _Session(sid, index)
                self._session_of[index] = s
                self._issue_at(index, row, ts)
            elif s.active is not None:
                self._waiting[index] = ts
                s.pending.append((index, row))
            else:
                self._follow(s, index, row, t)
                if s.active is None:
                    self._finished.append((s.finished_at, sid))

    def _follow(self, s: _Session, index: int, row: Request, now: float) -> None:
        """Row ``index`` is next in session ``s``, whose last turn has finished: schedule or abandon it."""
        ts = float(row.timestamp)
        self._waiting.setdefault(index, ts)
        if ts - s.finished_at > self._timeout:
            at = ts  # the session had timed out: a new one starts
        elif s.ok:
            at = max(s.finished_at, ts) if row.delay is None else max(s.finished_at + float(row.delay), ts - self._lookahead)
        else:
            del self._waiting[index]
            self.abandoned += 1
            self._ended(s, now, False)
            self._abandon(index, row, now)
            return
        s.active = index
        self._session_of[index] = s
        heapq.heappush(self._due, (at, index, row))

    def _issue_at(self, index: int, row: Request, at: float) -> None:
        self._waiting[index] = float(row.timestamp)
        heapq.heappush(self._due, (at, index, row))

    @staticmethod
    def _ended(s: _Session, t: float, ok: bool) -> None:
        s.finished_at = t
        s.ok = ok

    def _forget(self, frontier: float) -> None:
        """Drop sessions that no later row can continue: finished more than ``T`` before ``frontier``."""
        fin = self._finished
        while fin and frontier - fin[0][0] > self._timeout:
            at, sid = fin.popleft()
            s = self._sessions.get(sid)
            if s is not None and s.active is None and not s.pending and s.finished_at == at:
                del self._sessions[sid]
