"""The human-readable summary ``python -m replaylib import`` prints."""

from __future__ import annotations

from replaylib.trace.importers.options import ImportReport


def format_report(r: ImportReport) -> str:
    lines = [
        f"imported    {r.format} {r.source} -> {r.output}",
        f"rows        {r.rows_read:,} read, {r.rows_written:,} written, {sum(r.dropped.values()):,} dropped",
    ]
    for reason, n in r.dropped.items():
        lines.append(f"  dropped   {n:,} {reason}")
    lines.append(f"span        {r.span_s:,.3f} s ({r.span_s / 60:,.1f} min), first request at 0")
    lines.append(f"rate        {r.rate_per_s:,.3f} req/s")
    lines.append(f"hash_ids    {r.hash_ids}")
    if r.stopped_early:
        lines.append(f"stopped     {r.stopped_early}; the rest of the source was not read")
    for note in r.notes:
        lines.append(f"note        {note}")
    return "\n".join(lines)
