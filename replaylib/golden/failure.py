"""The message of a golden that no longer matches its replay.

It names the first diverging tick, shows golden against replay for the judged
columns that changed there (decisions, by default) — nothing else — and counts
the rest: further ticks, columns, events, summarised classes, metadata.  It is
plain text built here, so it reads the same under any pytest verbosity and
whether or not pytest rewrote anyone's asserts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from replaylib.diff.model import DiffReport, MetaDiff
from replaylib.diff.report import fmt_pair, judged_phrase, summarised_differences, tolerance_note

LABELS = ("golden", "replay")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _table(rows: Sequence[tuple[str, str, str]]) -> list[str]:
    head = ("column", *LABELS)
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(3)]
    return [f"    {r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}".rstrip() for r in (head, *rows)]


def failure_lines(report: DiffReport, metadata: Sequence[MetaDiff] = ()) -> Iterator[str]:
    """The lines of the failure message (no trailing "how to update": the caller adds it)."""
    judged = judged_phrase(report)
    aligned = min(report.ticks_a, report.ticks_b)
    yield f"the replay's {judged} differ from the golden (compared {tolerance_note(report)})"
    div = report.first_divergence
    if div is not None:
        if div.only_in is not None:
            side = "golden" if div.only_in == "a" else "replay"
            yield f"first diverging tick: {div.tick}, present in the {side} only"
        else:
            now = fmt_pair(div.now_ms_a, div.now_ms_b)
            yield f"first diverging tick: {div.tick} (now_ms golden {now[0]} | replay {now[1]})"
            yield from _table([(f.column, *fmt_pair(f.a, f.b)) for f in div.fields])
        if div.others:
            yield f"  also changed at tick {div.tick}, not judged: {', '.join(div.others)}"
    rest = []
    later = report.ticks_differing - (1 if div is not None and div.only_in is None else 0)
    if later > 0:
        cols = [f"{c.column} {_plural(c.ticks, 'tick')}" for c in report.column_counts if c.judged and c.ticks]
        rest.append(f"{judged} differ at {_plural(later, 'more tick')} of {aligned:,} ({', '.join(cols)})")
    if report.only_a.count:
        rest.append(f"{_plural(report.only_a.count, 'tick')} only in the golden (from tick {report.only_a.first})")
    if report.only_b.count:
        rest.append(f"{_plural(report.only_b.count, 'tick')} only in the replay (from tick {report.only_b.first})")
    for k in report.events:
        if not k.judged_differences:
            continue
        bits = [f"{k.differing:,} differ"] if k.differing else []
        bits += [f"{k.only_a:,} only in the golden"] if k.only_a and k.judged else []
        bits += [f"{k.only_b:,} only in the replay"] if k.only_b and k.judged else []
        first = k.first
        where = ""
        if first is not None:
            tick = first.tick_a if first.tick_a is not None else first.tick_b
            where = f", first at tick {tick}" if tick is not None else ""
        rest.append(f"{k.kind} events: {', '.join(bits)} (golden {k.count_a:,}, replay {k.count_b:,}{where})")
    if report.columns_only_a or report.columns_only_b:
        rest.append(f"columns only in the golden: {', '.join(report.columns_only_a) or 'none'}; "
                    f"only in the replay: {', '.join(report.columns_only_b) or 'none'}")  # fmt: skip
    if rest:
        yield "the rest:"
        yield from (f"  {r}" for r in rest)
    summarised = summarised_differences(report)
    if summarised:
        yield f"not judged (summarised): {'; '.join(summarised)}"
    if metadata:
        yield "metadata: " + "; ".join(f"{m.key} golden {m.a} | replay {m.b}" for m in metadata)


__all__ = ["failure_lines"]
