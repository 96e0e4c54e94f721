"""Summary statistics of a trace, computed in one streaming pass."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

import msgspec

from replaylib.trace.model import Request


class Distribution(msgspec.Struct, frozen=True):
    mean: float
    p50: float
    p99: float


class TraceStats(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    duration_s: float
    arrival_rate_per_s: float
    isl: Distribution
    osl: Distribution
    input_tokens: int
    output_tokens: int
    distinct_blocks: int
    total_blocks: int
    prefix_reuse: float  #: share of input blocks that repeat an earlier block
    block_mismatches: int  #: rows whose hash_ids count != ceil(input_length / block_size)
    block_size: int
    sessions: int


def nearest_rank(sorted_values: list[float] | array, q: float) -> float:
    """The q-quantile (0 < q <= 1) of sorted values by the nearest-rank method."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def _distribution(values: array) -> Distribution:
    ordered = sorted(values)
    return Distribution(
        mean=sum(ordered) / len(ordered) if ordered else math.nan,
        p50=nearest_rank(ordered, 0.50),
        p99=nearest_rank(ordered, 0.99),
    )


def trace_stats(rows: Iterable[Request], *, block_size: int = 512) -> TraceStats:
    """Statistics of ``rows``; holds the lengths (8 bytes a row) and the distinct block ids."""
    isl = array("q")
    osl = array("q")
    seen: set[int] = set()
    total_blocks = 0
    mismatches = 0
    sessions: set[object] = set()
    first_ts = last_ts = 0.0
    n = 0
    for row in rows:
        if n == 0:
            first_ts = row.timestamp
        last_ts = row.timestamp
        n += 1
        isl.append(row.input_length)
        osl.append(row.output_length)
        ids = row.hash_ids
        total_blocks += len(ids)
        seen.update(ids)
        if len(ids) != -(-row.input_length // block_size):
            mismatches += 1
        if row.session_id is not None:
            sessions.add(row.session_id)
    duration_s = (last_ts - first_ts) / 1000.0
    return TraceStats(
        requests=n,
        duration_s=duration_s,
        arrival_rate_per_s=(n / duration_s) if duration_s > 0 else math.inf,
        isl=_distribution(isl),
        osl=_distribution(osl),
        input_tokens=sum(isl),
        output_tokens=sum(osl),
        distinct_blocks=len(seen),
        total_blocks=total_blocks,
        prefix_reuse=(total_blocks - len(seen)) / total_blocks if total_blocks else 0.0,
        block_mismatches=mismatches,
        block_size=block_size,
        sessions=len(sessions),
    )


def format_stats(path: str, s: TraceStats) -> str:
    """The human-readable report printed by ``python -m replaylib validate trace``."""
    lines = [
        f"trace       {path}",
        f"requests    {s.requests:,}",
        f"duration    {s.duration_s:,.1f} s ({s.duration_s / 60:,.1f} min)",
        f"arrivals    {s.arrival_rate_per_s:,.3f} req/s",
        f"ISL tokens  mean {s.isl.mean:,.1f}  p50 {s.isl.p50:,.0f}  p99 {s.isl.p99:,.0f}  (total {s.input_tokens:,})",
        f"OSL tokens  mean {s.osl.mean:,.1f}  p50 {s.osl.p50:,.0f}  p99 {s.osl.p99:,.0f}  (total {s.output_tokens:,})",
        f"blocks      {s.distinct_blocks:,} distinct of {s.total_blocks:,} "
        f"-> prefix reuse {100 * s.prefix_reuse:.1f}% of input blocks repeat an earlier block",
    ]
    if s.sessions:
        lines.append(f"sessions    {s.sessions:,}")
    if s.block_mismatches:
        lines.append(
            f"warning     {s.block_mismatches:,} rows have a hash_ids count other than "
            f"ceil(input_length / {s.block_size}); is the block size right?"
        )
    return "\n".join(lines)


class TraceExtent(msgspec.Struct, frozen=True):
    requests: int
    last_ms: float  #: the latest arrival, ms from the trace start


def trace_extent(path: str, *, sort: bool = False) -> TraceExtent:
    """How many requests a trace holds and when the last one arrives (one streaming pass; for progress displays)."""
    from replaylib.trace.reader import read_trace

    n = 0
    last = 0.0
    for row in read_trace(path, sort=sort):
        n += 1
        last = max(last, float(row.timestamp))
    return TraceExtent(requests=n, last_ms=last)
