"""What the fleet reports: per-request outcomes, latency statistics, snapshots.

Latency statistics keep a count, a sum, min/max and a log-bucketed histogram
(relative bucket width 1%), so two windows merge *exactly* (counts and sums
add, buckets add) and percentiles are within 0.5% of the exact sample value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from replaylib.sim.histogram import GAMMA as GAMMA  # the bucket growth factor, for the readers of histograms
from replaylib.sim.histogram import Histogram
from replaylib.sim.histogram import bucket as _bucket


class LatencyStats(msgspec.Struct, kw_only=True):
    """Mergeable latency samples (milliseconds)."""

    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    buckets: dict[int, int] = msgspec.field(default_factory=dict)

    @classmethod
    def of(cls, h: Histogram) -> LatencyStats:
        """The statistics ``h`` holds (sharing its bucket counts)."""
        return cls(count=h.count, total=h.total, min=h.min, max=h.max, buckets=h.buckets)

    def _update(self, add: Callable[[Histogram], None]) -> None:
        h = Histogram(self.count, self.total, self.min, self.max, self.buckets)  # the same bucket dict
        add(h)
        self.count, self.total, self.min, self.max = h.count, h.total, h.min, h.max

    def add(self, value: float, weight: int = 1) -> None:
        """Add ``weight`` samples equal to ``value`` (> 0): :meth:`Histogram.add`."""
        self._update(lambda h: h.add(value, weight))

    def add_linear(self, first: float, step: float, k: int, weight: int) -> None:
        """Add ``weight`` samples of each of ``first + step * i`` for ``i in range(k)``: :meth:`Histogram.add_linear`
        (one operation per bucket the progression crosses, not per sample)."""
        self._update(lambda h: h.add_linear(first, step, k, weight))

    def merge(self, other: LatencyStats) -> None:
        """Fold ``other`` into this one (exact)."""
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def count_le(self, limit: float) -> int:
        """Samples at or under ``limit`` (to the histogram's 1% bucket resolution)."""
        edge = _bucket(limit)
        return sum(n for b, n in self.buckets.items() if b <= edge)

    def flat(self) -> list[int]:
        """The histogram as ``[bucket, count, bucket, count, ...]`` in bucket order."""
        out: list[int] = []
        for b in sorted(self.buckets):
            out += (b, self.buckets[b])
        return out

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile from the histogram (None without samples)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                value = GAMMA ** (b - 0.5)
                return min(max(value, self.min), self.max)
        return self.max  # pragma: no cover - rank <= count

    @property
    def p50(self) -> float | None:
        return self.quantile(0.50)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)


class LatencySummary(msgspec.Struct, frozen=True, kw_only=True):
    """A window's latency in four numbers (milliseconds): what a meter reports and a planner sees."""

    mean_ms: float
    p50_ms: float
    p99_ms: float
    count: int


def summarize(stats: LatencyStats, offset: float = 0.0) -> LatencySummary | None:
    """``stats`` shifted by ``offset`` ms (bias, noise), never below 0; None without samples."""
    if not stats.count:
        return None
    return LatencySummary(
        mean_ms=max(stats.mean + offset, 0.0),  # type: ignore[operator]
        p50_ms=max(stats.p50 + offset, 0.0),  # type: ignore[operator]
        p99_ms=max(stats.p99 + offset, 0.0),  # type: ignore[operator]
        count=stats.count,
    )


#: The counts a :class:`TrafficWindow` keeps besides its span and latency statistics (each adds when windows merge).
WINDOW_COUNTERS = (
    "arrivals", "isl_sum", "osl_sum", "completions", "dropped", "preemptions",
    "first_tokens", "hit_tokens", "lookup_tokens", "prefill_tokens", "decode_tokens",
)


class TrafficWindow(msgspec.Struct, kw_only=True):
    """Traffic between two snapshots; every field merges exactly with another window's."""

    start_ms: float
    end_ms: float
    arrivals: int = 0
    isl_sum: int = 0
    osl_sum: int = 0
    completions: int = 0
    dropped: int = 0
    preemptions: int = 0
    first_tokens: int = 0
    ttft: LatencyStats = msgspec.field(default_factory=LatencyStats)
    itl: LatencyStats = msgspec.field(default_factory=LatencyStats)
    hit_tokens: int = 0
    lookup_tokens: int = 0
    prefill_tokens: int = 0  #: tokens computed by prefill passes
    decode_tokens: int = 0  #: tokens generated by decode steps

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms

    @property
    def mean_isl(self) -> float | None:
        return self.isl_sum / self.arrivals if self.arrivals else None

    @property
    def mean_osl(self) -> float | None:
        return self.osl_sum / self.arrivals if self.arrivals else None

    @property
    def prefix_hit_rate(self) -> float | None:
        return self.hit_tokens / self.lookup_tokens if self.lookup_tokens else None

    @property
    def request_rate_per_s(self) -> float | None:
        d = self.duration_ms
        return self.arrivals * 1000.0 / d if d > 0 else None

    def merge(self, other: TrafficWindow) -> None:
        """Extend this window by the adjacent window ``other`` (exact)."""
        self.start_ms = min(self.start_ms, other.start_ms)
        self.end_ms = max(self.end_ms, other.end_ms)
        for name in WINDOW_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ttft.merge(other.ttft)
        self.itl.merge(other.itl)


class WorkerMetrics(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Forward-pass metrics of one worker at the snapshot time, plus its window activity."""

    worker_id: int
    role: str  #: "prefill" | "decode"
    state: str  #: "starting" | "active" | "draining"
    ready_at_ms: float
    cap_w: float
    batched_prefill_tokens: int  #: new tokens in the prefill pass in flight (0 when idle)
    prefill_requests: int  #: requests in the prefill pass in flight
    decode_requests: int  #: running decode batch
    kv_tokens_used: int  #: decode: KV of the running batch; prefill: prefix-cache occupancy
    kv_capacity_tokens: int
    queued_requests: int  #: prefill: queued, not in the pass; decode: waiting for admission
    queued_tokens: int  #: prefill: tokens still to compute (whole queue); decode: KV the waiting need
    busy_ms: float  #: time in the window with a pass or step in flight
    passes: int  #: passes (prefill) or steps (decode) that ended in the window
    tokens: int  #: tokens computed (prefill) or generated (decode) in the window


class RoleCounts(msgspec.Struct, frozen=True, gc=False):
    active: int
    starting: int
    draining: int

    @property
    def accepting(self) -> int:
        return self.active + self.starting


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The fleet at ``now_ms`` (see docs/fleet_model.md)."""

    now_ms: float
    done: bool
    prefill: RoleCounts
    decode: RoleCounts
    cap_prefill_w: float
    cap_decode_w: float
    workers: tuple[WorkerMetrics, ...]
    window: TrafficWindow
    arrived: int
    completed: int
    dropped: int
    in_flight: int
    dropped_by_reason: dict[str, int]
    preemptions: int
    #: closed loop: session turns whose recorded time has come but that wait for their previous turn
    turns_held: int = 0
    #: closed loop: session turns never issued because an earlier turn of their session was dropped
    turns_abandoned: int = 0


class RequestOutcome(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """How one request ended (or where it stands when the replay stops)."""

    index: int
    arrival_ms: float
    status: str  #: "completed" | "dropped" | "in_flight" | "abandoned" (closed loop: never issued)
    drop_reason: str | None
    first_token_ms: float | None
    completion_ms: float | None
    generated: int
    preemptions: int
    cached_tokens: int


class ScalingResult(msgspec.Struct, frozen=True, kw_only=True):
    started: tuple[int, ...]  #: ids of workers created (starting)
    draining: tuple[int, ...]  #: ids of workers that began draining
    removed: tuple[int, ...]  #: ids gone at once (drained with nothing held)


class CapResult(msgspec.Struct, frozen=True, kw_only=True):
    requested_prefill_w: float
    requested_decode_w: float
    applied_prefill_w: float
    applied_decode_w: float

    @property
    def clamped_prefill(self) -> bool:
        return self.applied_prefill_w != self.requested_prefill_w

    @property
    def clamped_decode(self) -> bool:
        return self.applied_decode_w != self.requested_decode_w
