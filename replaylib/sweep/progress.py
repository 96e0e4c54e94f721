"""The sweep's progress line on a terminal: runs done of the total, failures, elapsed time and ETA.

Wall-clock time is read here for display only; nothing it measures reaches a
recording or the results table.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from replaylib.sweep.task import RunOutcome


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """``[#######.......] 12/24 runs | 3 reused | 1 failed | 0:42 elapsed | ETA 0:40`` on one line of ``stream``.

    The ETA extrapolates the pace of the runs replayed so far (reused runs cost
    almost nothing and are left out of the pace) over the runs left, spread
    over ``workers`` running at once.
    """

    WIDTH = 24

    def __init__(self, total: int, *, workers: int = 1, stream: TextIO | None = None, label: str = "runs") -> None:
        self.total = total
        self.workers = max(1, workers)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.done = self.reused = self.failed = 0
        self.start = time.monotonic()
        self._replayed_s = 0.0
        self._replayed = 0
        self.draw()

    def update(self, outcome: RunOutcome) -> None:
        self.done += 1
        if outcome.reused:
            self.reused += 1
        else:
            self._replayed += 1
            self._replayed_s += outcome.seconds
        if outcome.status != "passed":
            self.failed += 1
        self.draw()

    def eta(self) -> float | None:
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if not self._replayed:
            return None
        elapsed = time.monotonic() - self.start
        # the observed throughput, or the per-run cost spread over the workers when that is all we know
        by_rate = elapsed / self.done * left if self.done >= self.workers else None
        by_cost = self._replayed_s / self._replayed * left / self.workers
        return by_rate if by_rate is not None else by_cost

    def draw(self) -> None:
        filled = int(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        eta = self.eta()
        parts = [
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} {self.label}",
            *([f"{self.reused} reused"] if self.reused else []),
            *([f"{self.failed} failed"] if self.failed else []),
            f"{format_duration(time.monotonic() - self.start)} elapsed",
            f"ETA {format_duration(eta)}" if eta is not None else "ETA …",
        ]
        self.stream.write("\r" + " | ".join(parts) + " ")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


__all__ = ["ProgressBar", "format_duration"]
