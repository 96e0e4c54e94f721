"""Rendering a :class:`DiffReport` (and a ``compare`` report) as text, JSON or Markdown."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from replaylib.diff.engine import IGNORED_BY_DEFAULT
from replaylib.diff.formats import FORMATS
from replaylib.diff.model import CompareReport, DiffError, DiffReport, KindDiff, KpiRow, TickSpan, Value
from replaylib.record.kpis import KPI_SPECS, Kpis, format_value

_CELL_MAX = 48  # characters of a string cell shown in text / markdown


# -- values -------------------------------------------------------------------------------------


def fmt_value(value: Value, *, precise: bool = False) -> str:
    """A cell for display: floats to 6 significant digits (all of them when ``precise``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if precise:
            return repr(value)
        return f"{value:.1f}" if 1e6 <= abs(value) < 1e15 else f"{value:.6g}"  # clock values in ms stay readable
    if isinstance(value, list):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def fmt_pair(a: Value, b: Value) -> tuple[str, str]:
    """Both sides of a difference, with enough digits to tell them apart."""
    fa, fb = fmt_value(a), fmt_value(b)
    if fa == fb and a != b:
        fa, fb = fmt_value(a, precise=True), fmt_value(b, precise=True)
    return fa, fb


def fmt_delta(row: KpiRow) -> str:
    d = row.delta
    if d is None:
        return "—"
    if d == 0:
        return "0"
    sign = "+" if d > 0 else "-"
    mag = abs(d)
    if row.style == "pct" or row.style == "ratio":
        return f"{sign}{mag * 100:.2f} pp"
    return sign + format_value(mag, row.style)


def _span(span: TickSpan) -> str:
    if span.count == 0:
        return "none"
    where = f"tick {span.first}" if span.first == span.last else f"ticks {span.first}–{span.last}"
    return f"{span.count:,} ({where})"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[bool] | None = None, indent: str = "  ") -> list[str]:
    """Aligned plain-text table lines."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    right = right or [False] + [True] * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[bool] | None = None) -> list[str]:
    right = right or [False] + [True] * (len(headers) - 1)
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |"]
    out.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


# -- shared pieces ------------------------------------------------------------------------------

#: How the two sides are called in a report (``format_text(..., labels=("golden", "replay"))``).
Labels = tuple[str, str]
AB: Labels = ("A", "B")


def verdict(report: DiffReport, labels: Labels = AB) -> str:
    """One sentence: identical, or what differs."""
    la, lb = labels
    if report.identical:
        n = max(report.ticks_a, report.ticks_b)
        return f"IDENTICAL ({n:,} ticks, {sum(k.count_a for k in report.events):,} other events)"
    parts = []
    aligned = min(report.ticks_a, report.ticks_b)
    if report.ticks_differing:
        parts.append(f"{report.ticks_differing:,} of {aligned:,} aligned ticks differ")
    if report.first_divergence is not None:
        parts.append(f"first at tick {report.first_divergence.tick}")
    if report.only_a.count:
        parts.append(f"{report.only_a.count:,} ticks only in {la}")
    if report.only_b.count:
        parts.append(f"{report.only_b.count:,} ticks only in {lb}")
    kinds = [k.kind for k in report.events if k.differing or k.only_a or k.only_b]
    if kinds:
        parts.append("events differ: " + ", ".join(kinds))
    if report.columns_only_a or report.columns_only_b:
        parts.append("column sets differ")
    return "DIFFERENT (" + "; ".join(parts) + ")"


def _options(report: DiffReport) -> str:
    tol = "exact" if report.tolerance == 0 else f"relative tolerance {report.tolerance:g}"
    ignored = [c for c in IGNORED_BY_DEFAULT if c not in report.columns]
    text = f"{len(report.columns)} columns compared, floats {tol}"
    return text + (f"; not compared: {', '.join(ignored)}" if ignored else "")


def _side_label(path: str | None, planner: str | None, side: str) -> str:
    bits = [b for b in (path, planner) if b]
    return f"{side}: " + ("  ".join(bits) if bits else "(no path)")


def _only_in(side: str, labels: Labels) -> str:
    return f"only in {labels[0] if side == 'a' else labels[1]}"


def _first_rows(report: DiffReport) -> list[list[str]]:
    div = report.first_divergence
    assert div is not None
    return [[f.column, *fmt_pair(f.a, f.b)] for f in div.fields]


def _context_cell(a: Value, b: Value, in_a: bool, in_b: bool, differs: bool) -> str:
    if not differs and in_a and in_b:
        return fmt_value(a)
    fa, fb = fmt_pair(a, b)
    return f"{fa if in_a else '—'} | {fb if in_b else '—'}"


def _context_table(report: DiffReport) -> tuple[list[str], list[list[str]]]:
    """Columns down, ticks across (first divergence marked ``>``); a cell reads ``A | B`` where they differ."""
    div = report.first_divergence
    assert div is not None
    headers = ["column", *(f">{r.tick}" if r.tick == div.tick else str(r.tick) for r in div.context)]
    rows = [
        [c, *(_context_cell(r.a[i], r.b[i], r.in_a, r.in_b, c in r.differs) for r in div.context)]
        for i, c in enumerate(div.columns)
    ]
    return headers, rows


def _event_first(k: KindDiff, labels: Labels) -> str:
    f = k.first
    if f is None:
        return ""
    where = f"#{f.index}"
    if f.only_in is not None:
        tick = f.tick_a if f.only_in == "a" else f.tick_b
        return f"{where} {_only_in(f.only_in, labels)}" + (f" (tick {tick})" if tick is not None else "")
    ticks = f"tick {f.tick_a}" if f.tick_a == f.tick_b else f"tick {f.tick_a} | {f.tick_b}"
    fields = ", ".join(f"{d.column} {fa} → {fb}" for d in f.fields for fa, fb in [fmt_pair(d.a, d.b)])
    return f"{where} ({ticks}): {fields}"


def _event_table(report: DiffReport, labels: Labels) -> tuple[list[str], list[list[str]]]:
    la, lb = labels
    headers = ["kind", la, lb, "differ", f"only {la}", f"only {lb}", "first difference"]
    rows = [
        [k.kind, f"{k.count_a:,}", f"{k.count_b:,}", f"{k.differing:,}", f"{k.only_a:,}", f"{k.only_b:,}", _event_first(k, labels)]
        for k in report.events
    ]
    return headers, rows


_EVENT_RIGHT = [False, True, True, True, True, True, False]


def _kpi_table(rows: Sequence[KpiRow], labels: Labels) -> tuple[list[str], list[list[str]]]:
    la, lb = labels
    headers = ["KPI", la, lb, f"Δ ({lb}−{la})"]
    return headers, [[r.label, format_value(r.a, r.style), format_value(r.b, r.style), fmt_delta(r)] for r in rows]


def _spans(report: DiffReport, labels: Labels) -> str:
    return f"ticks only in {labels[0]}: {_span(report.only_a)}; only in {labels[1]}: {_span(report.only_b)}"


def _columns_only(report: DiffReport, labels: Labels) -> str:
    a = ", ".join(report.columns_only_a) or "none"
    b = ", ".join(report.columns_only_b) or "none"
    return f"columns only in {labels[0]}: {a}; only in {labels[1]}: {b}"


# -- text ---------------------------------------------------------------------------------------


def format_text(report: DiffReport, *, kpis: bool = True, labels: Labels = AB) -> str:
    """The human report: metadata, verdict, first divergence with context, counts, events, KPIs."""
    la, lb = labels
    out = []
    if any((report.path_a, report.path_b, report.planner_a, report.planner_b)):
        out += [_side_label(report.path_a, report.planner_a, la), _side_label(report.path_b, report.planner_b, lb)]
    if report.metadata:
        out.append("metadata differs" + (" (forced)" if report.forced else "") + ":")
        out += _table(["key", la, lb], [[m.key, m.a, m.b] for m in report.metadata], right=[False, False, False])
    out.append(verdict(report, labels))
    out.append(_options(report))
    if report.columns_only_a or report.columns_only_b:
        out.append(_columns_only(report, labels))
    div = report.first_divergence
    if div is not None:
        out.append("")
        where = f" ({_only_in(div.only_in, labels)})" if div.only_in else ""
        now = fmt_pair(div.now_ms_a, div.now_ms_b)
        out.append(f"first divergence: tick {div.tick}{where}, now_ms {la} {now[0]} | {lb} {now[1]}")
        if div.fields:
            out += _table(["column", la, lb], _first_rows(report))
        if div.context:
            out.append(f"context (> first divergence; {la} | {lb} where they differ, — absent)")
            out += _table(*_context_table(report))
    if report.column_counts:
        out.append("")
        out.append("differing ticks per column")
        out += _table(["column", "ticks"], [[c.column, f"{c.ticks:,}"] for c in report.column_counts])
    if report.only_a.count or report.only_b.count:
        out += ["", _spans(report, labels)]
    if report.events:
        out += ["", "non-tick events"]
        out += _table(*_event_table(report, labels), right=_EVENT_RIGHT)
    if kpis and report.kpis:
        out.append("")
        out += _table(*_kpi_table(report.kpis, labels))
    return "\n".join(out)


# -- markdown -----------------------------------------------------------------------------------


def format_markdown(report: DiffReport, *, kpis: bool = True, heading: str = "###", labels: Labels = AB) -> str:
    """Markdown tables for a pull-request comment."""
    la, lb = labels
    a = report.planner_a or report.path_a or la
    b = report.planner_b or report.path_b or lb
    status = "identical" if report.identical else "**different**"
    out = [f"{heading} replaylib diff: `{a}` vs `{b}` — {status}", ""]
    out += [f"{verdict(report, labels)}. {_options(report)}.", ""]
    if report.columns_only_a or report.columns_only_b:
        out += [_columns_only(report, labels) + ".", ""]
    if report.metadata:
        out += _md_table(["metadata", la, lb], [[m.key, f"`{m.a}`", f"`{m.b}`"] for m in report.metadata], right=[False] * 3)
        out.append("")
    div = report.first_divergence
    if div is not None:
        where = f" ({_only_in(div.only_in, labels)})" if div.only_in else ""
        out += [f"{heading}# First divergence: tick {div.tick}{where}", ""]
        if div.fields:
            out += _md_table(["column", la, lb], _first_rows(report))
            out.append("")
        if div.context:
            out += _md_table(*_context_table(report))
            out += ["", f"`>` first divergence; cells read `{la} | {lb}` where they differ, `—` absent", ""]
    if report.column_counts:
        out += [f"{heading}# Differing ticks per column", ""]
        out += _md_table(["column", "ticks"], [[f"`{c.column}`", f"{c.ticks:,}"] for c in report.column_counts])
        out.append("")
    if report.only_a.count or report.only_b.count:
        out += [_spans(report, labels).capitalize() + ".", ""]
    if report.events:
        out += [f"{heading}# Non-tick events", ""]
        out += _md_table(*_event_table(report, labels), right=_EVENT_RIGHT)
        out.append("")
    if kpis and report.kpis:
        out += [f"{heading}# KPIs", ""]
        out += _md_table(*_kpi_table(report.kpis, labels))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# -- json ---------------------------------------------------------------------------------------


def format_json(report: DiffReport | CompareReport) -> str:
    return msgspec.json.format(msgspec.json.encode(report).decode(), indent=2)


def decode_report(data: str | bytes) -> DiffReport:
    """The inverse of :func:`format_json` for a diff report."""
    return msgspec.json.decode(data, type=DiffReport)


def decode_compare(data: str | bytes) -> CompareReport:
    return msgspec.json.decode(data, type=CompareReport)


def render(report: DiffReport, fmt: str) -> str:
    if fmt == "text":
        return format_text(report)
    if fmt == "json":
        return format_json(report)
    if fmt == "markdown":
        return format_markdown(report)
    raise DiffError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")


# -- compare ------------------------------------------------------------------------------------


def _kpi_matrix(kpis: Sequence[Kpis]) -> list[list[str]]:
    return [[spec.label, *(format_value(getattr(k, spec.name), spec.style) for k in kpis)] for spec in KPI_SPECS]


def render_compare(report: CompareReport, fmt: str) -> str:
    """Each planner's diff against the first, then one KPI table across all planners."""
    if fmt == "json":
        return format_json(report)
    if fmt not in FORMATS:
        raise DiffError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    seed = "scenario seed" if report.seed is None else f"seed {report.seed}"
    base = report.planners[0]
    if fmt == "markdown":
        out = [f"## replaylib compare: `{report.scenario}` ({seed})", ""]
        for d in report.diffs:
            out.append(format_markdown(d, kpis=False, heading="###").rstrip())
            out.append("")
        out += ["### KPIs", ""]
        out += _md_table(["KPI", *(f"`{p}`" for p in report.planners)], _kpi_matrix(report.kpis))
        return "\n".join(out) + "\n"
    out = [f"compare {report.scenario} ({seed}): {', '.join(report.planners)}"]
    for planner, d in zip(report.planners[1:], report.diffs, strict=True):
        out += ["", f"=== {base} vs {planner} ===", format_text(d, kpis=False)]
    out += ["", "KPIs"]
    out += _table(["KPI", *report.planners], _kpi_matrix(report.kpis))
    return "\n".join(out)


__all__ = [
    "FORMATS",
    "decode_compare",
    "decode_report",
    "fmt_pair",
    "fmt_value",
    "format_json",
    "format_markdown",
    "format_text",
    "render",
    "render_compare",
    "verdict",
]
