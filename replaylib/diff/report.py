"""Rendering a :class:`DiffReport` (and a ``compare`` report) as text, JSON or Markdown."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from replaylib.diff.engine import IGNORED_BY_DEFAULT
from replaylib.diff.formats import FORMATS
from replaylib.diff.model import CompareReport, DiffError, DiffReport, KindDiff, KpiRow, TickSpan, Value
from replaylib.record.kpis import KPI_SPECS, Kpis, format_value
from replaylib.record.schema import column_spec

# -- values -------------------------------------------------------------------------------------


def fmt_value(value: Value, *, precise: bool = False) -> str:
    """A cell for display: floats to 6 significant digits (all of them when ``precise``); text in full."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if precise:
            return repr(value)
        return f"{value:.1f}" if 1e6 <= abs(value) < 1e15 else f"{value:.6g}"  # clock values in ms stay readable
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


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

_PLURAL = {"decision": "decisions", "observation": "observations", "outcome": "outcomes"}
_CLASS_ORDER = {c: i for i, c in enumerate(_PLURAL)}


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def judged_phrase(report: DiffReport) -> str:
    """What was judged: ``decisions``, ``decisions and observations``, ``the named columns`` ..."""
    if report.only == ["columns"]:
        return "the named columns"
    return _and(report.only) if report.only else "nothing"


def summarised_differences(report: DiffReport) -> list[str]:
    """The differences that were summarised, not judged: ``observations differ at 41 ticks`` ..."""
    out = [f"{_PLURAL.get(c.cls, c.cls)} differ at {c.ticks:,} tick{'' if c.ticks == 1 else 's'}"
           for c in report.class_ticks if not c.judged and c.ticks]  # fmt: skip
    kinds = [k.kind for k in report.events if not k.judged and (k.only_a or k.only_b)]
    kinds += [k.kind for k in report.events if k.differing_any > k.differing and k.kind not in kinds and not k.judged_differences]
    if kinds:
        out.append(f"{', '.join(kinds)} events differ")
    return out


def _within(report: DiffReport) -> bool:
    return any(c.judged and c.within for c in report.column_counts)


def verdict(report: DiffReport, labels: Labels = AB) -> str:
    """One sentence: identical, the same decisions, or what differs."""
    la, lb = labels
    n = max(report.ticks_a, report.ticks_b)
    events = sum(k.count_a for k in report.events)
    if report.exact:
        return f"IDENTICAL ({n:,} ticks, {events:,} other events)"
    judged = judged_phrase(report)
    if report.identical:
        parts = [f"{judged} identical" + (" within tolerance" if _within(report) else "")]
        summarised = summarised_differences(report)
        if summarised:
            parts.append("; ".join(summarised) + " (summarised, not judged)")
        return f"SAME ({n:,} ticks, {events:,} other events: " + "; ".join(parts) + ")"
    parts = []
    aligned = min(report.ticks_a, report.ticks_b)
    if report.ticks_differing:
        parts.append(f"{judged} differ at {report.ticks_differing:,} of {aligned:,} aligned ticks")
    if report.first_divergence is not None:
        parts.append(f"first at tick {report.first_divergence.tick}")
    if report.only_a.count:
        parts.append(f"{report.only_a.count:,} ticks only in {la}")
    if report.only_b.count:
        parts.append(f"{report.only_b.count:,} ticks only in {lb}")
    kinds = [k.kind for k in report.events if k.judged_differences]
    if kinds:
        parts.append("events differ: " + ", ".join(kinds))
    if report.columns_only_a or report.columns_only_b:
        parts.append("column sets differ")
    return "DIFFERENT (" + "; ".join(parts) + ")"


def tolerance_note(report: DiffReport) -> str:
    """How the judged classes were compared: ``decisions exact except c_ttft, c_itl within rel 0.25``.

    Each class is described by the tolerance most of its float columns share; the columns that
    differ from it are named.  Ints, booleans and strings always compare exactly.
    """
    by_class: dict[str, list[tuple[str, str]]] = {}
    for t in report.tolerances:
        by_class.setdefault(column_spec(t.column).cls.value, []).append((t.column, _tol(t.rel, t.abs)))
    parts = []
    for cls, cols in sorted(by_class.items(), key=lambda kv: _CLASS_ORDER.get(kv[0], len(_CLASS_ORDER))):
        counts: dict[str, int] = {}
        for _, tol in cols:
            counts[tol] = counts.get(tol, 0) + 1
        common = max(counts, key=lambda k: (counts[k], k == "exact"))
        text = f"{_PLURAL.get(cls, cls)} {'exactly' if common == 'exact' else 'within ' + common}"
        groups: dict[str, list[str]] = {}
        for col, tol in cols:
            if tol != common:
                groups.setdefault(tol, []).append(col)
        if groups:
            text += " except " + "; ".join(f"{', '.join(c)} {'exactly' if t == 'exact' else 'within ' + t}" for t, c in groups.items())
        parts.append(text)
    return "; ".join(parts) if parts else "exactly"


def _tol(rel: float, abs_: float) -> str:
    if not rel and not abs_:
        return "exact"
    parts = ([f"rel {rel:g}"] if rel else []) + ([f"abs {abs_:g}"] if abs_ else [])
    return " or ".join(parts)


def _options(report: DiffReport) -> str:
    ignored = [c for c in IGNORED_BY_DEFAULT if c not in report.columns]
    n = len(report.judged_columns)
    text = f"judged: {judged_phrase(report)} ({n} column{'s' if n != 1 else ''}; {tolerance_note(report)})"
    summarised = [c for c in _PLURAL.values() if c not in report.only] if report.only != ["columns"] else []
    if summarised:
        text += f"; summarised: {', '.join(summarised)}"
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


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.3g}%"


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _count_rows(report: DiffReport) -> list[list[str]]:
    ordered = [c for c in report.column_counts if c.judged] + [c for c in report.column_counts if not c.judged]
    return [
        [c.column, c.cls, f"{c.ticks:,}", f"{c.within:,}", _num(c.max_abs), _pct(c.max_rel), "" if c.judged else "summarised"]
        for c in ordered
    ]


_COUNT_HEADERS = ["column", "class", "ticks", "within tol.", "max |Δ|", "max rel", ""]
_COUNT_RIGHT = [False, False, True, True, True, True, False]


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
    return f"{where} ({ticks}): {fields}" + ("" if f.judged else " (summarised)")


def _event_table(report: DiffReport, labels: Labels, *, first: bool = True) -> tuple[list[str], list[list[str]]]:
    la, lb = labels
    headers = ["kind", la, lb, "differ", f"only {la}", f"only {lb}"] + (["first difference"] if first else [])
    rows = [
        [k.kind + ("" if k.judged else " (summarised)"), f"{k.count_a:,}", f"{k.count_b:,}", f"{k.differing_any:,}",
         f"{k.only_a:,}", f"{k.only_b:,}"] + ([_event_first(k, labels)] if first else [])
        for k in report.events
    ]  # fmt: skip
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


def _metadata_lines(report: DiffReport, labels: Labels) -> list[str]:
    la, lb = labels
    if not report.metadata:
        return []
    out = ["metadata differs" + (" (forced)" if report.forced else "") + ":"]
    rows = [[m.key, _cell(m.a), _cell(m.b)] for m in report.metadata]
    return out + _table(["key", la, lb], rows, right=[False, False, False])


#: Longest metadata value shown whole in the text report (a planner's config JSON can run to kilobytes;
#: the JSON report and ``read_metadata`` keep every value whole).
_CELL = 64


def _cell(value: str) -> str:
    return value if len(value) <= _CELL else f"{value[: _CELL - 16]}… ({len(value):,} chars)"


# -- text ---------------------------------------------------------------------------------------


def format_text(report: DiffReport, *, kpis: bool = True, labels: Labels = AB) -> str:
    """The human report: metadata, verdict, first divergence with context, counts, events, KPIs."""
    la, lb = labels
    out = []
    if any((report.path_a, report.path_b, report.planner_a, report.planner_b)):
        out += [_side_label(report.path_a, report.planner_a, la), _side_label(report.path_b, report.planner_b, lb)]
    out += _metadata_lines(report, labels)
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
        if div.others:
            out.append(f"  also differing at this tick (summarised): {', '.join(div.others)}")
        if div.context:
            out.append(f"context (> first divergence; {la} | {lb} where they differ, — absent)")
            out += _table(*_context_table(report))
    if report.column_counts:
        out += ["", "differing ticks per column"]
        out += _table(_COUNT_HEADERS, _count_rows(report), right=_COUNT_RIGHT)
    if report.only_a.count or report.only_b.count:
        out += ["", _spans(report, labels)]
    if report.events:
        out += ["", "non-tick events"]
        out += _table(*_event_table(report, labels), right=_EVENT_RIGHT)
    if kpis and report.kpis:
        out.append("")
        out += _table(*_kpi_table(report.kpis, labels))
    return "\n".join(out)


def format_stat(report: DiffReport, *, labels: Labels = AB) -> str:
    """``diff --stat``: the verdict, metadata and per-column / per-kind counts only."""
    out = [*_metadata_lines(report, labels), verdict(report, labels), _options(report)]
    if report.column_counts:
        out += _table(_COUNT_HEADERS, _count_rows(report), right=_COUNT_RIGHT)
    if report.only_a.count or report.only_b.count:
        out.append("  " + _spans(report, labels))
    changed = [k for k in report.events if k.differing_any or k.only_a or k.only_b]
    if changed:
        out += _table(*_event_table(msgspec.structs.replace(report, events=changed), labels, first=False), right=_EVENT_RIGHT[:-1])
    return "\n".join(out)


# -- markdown -----------------------------------------------------------------------------------


def format_markdown(report: DiffReport, *, kpis: bool = True, heading: str = "###", labels: Labels = AB) -> str:
    """Markdown tables for a pull-request comment."""
    la, lb = labels
    a = report.planner_a or report.path_a or la
    b = report.planner_b or report.path_b or lb
    status = "identical" if report.exact else "same" if report.identical else "**different**"
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
        if div.others:
            out += [f"Also differing at this tick (summarised): {', '.join(f'`{c}`' for c in div.others)}.", ""]
        if div.context:
            out += _md_table(*_context_table(report))
            out += ["", f"`>` first divergence; cells read `{la} | {lb}` where they differ, `—` absent", ""]
    if report.column_counts:
        out += [f"{heading}# Differing ticks per column", ""]
        rows = [[f"`{r[0]}`", *r[1:]] for r in _count_rows(report)]
        out += _md_table(_COUNT_HEADERS, rows, right=_COUNT_RIGHT)
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


#: Report renderers by format name (``--format``).
RENDERERS: dict[str, Callable[[DiffReport], str]] = {
    "text": format_text,
    "json": format_json,
    "markdown": format_markdown,
}
assert tuple(RENDERERS) == FORMATS, "replaylib.diff.formats.FORMATS lists the renderers' names"


def render(report: DiffReport, fmt: str) -> str:
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise DiffError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return renderer(report)


# -- compare ------------------------------------------------------------------------------------


def _kpi_matrix(kpis: Sequence[Kpis]) -> list[list[str]]:
    return [[spec.label, *(format_value(getattr(k, spec.name), spec.style) for k in kpis)] for spec in KPI_SPECS]


def compare_verdict(report: CompareReport) -> str:
    """``SAME`` / ``DIFFERENT`` decisions across the planners, and the assertion count."""
    differ = [p for p, d in zip(report.planners[1:], report.diffs, strict=True) if not d.identical]
    failed = sum(not v.passed for verdicts in report.assertions for v in verdicts)
    total = sum(len(v) for v in report.assertions)
    head = "DIFFERENT" if differ or failed else "SAME"
    verb = "decides" if len(differ) == 1 else "decide"
    base = report.planners[0]
    what = f"{', '.join(differ)} {verb} differently from {base}" if differ else f"every planner decides as {base}"
    if failed:
        checks = f"{failed} of {total} assertion verdicts failed"
    else:
        checks = f"all {total} assertion verdicts passed" if total else "no assertions"
    return f"{head}: {what}; {checks}"


def _assertion_lines(report: CompareReport) -> list[str]:
    out = []
    for planner, verdicts in zip(report.planners, report.assertions, strict=False):
        for v in verdicts:
            out.append(f"  {'PASS' if v.passed else 'FAIL'}  {planner}  [{v.index}] {v.description} -- {v.evidence}")
    return out


def render_compare(report: CompareReport, fmt: str) -> str:
    """Each planner's diff against the first, one KPI table across all planners, the assertion verdicts."""
    if fmt == "json":
        return format_json(report)
    if fmt not in FORMATS:
        raise DiffError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    seed = "scenario seed" if report.seed is None else f"seed {report.seed}"
    base = report.planners[0]
    if fmt == "markdown":
        out = [f"## replaylib compare: `{report.scenario}` ({seed})", "", compare_verdict(report) + ".", ""]
        for d in report.diffs:
            out.append(format_markdown(d, kpis=False, heading="###").rstrip())
            out.append("")
        out += ["### KPIs", ""]
        out += _md_table(["KPI", *(f"`{p}`" for p in report.planners)], _kpi_matrix(report.kpis))
        if report.assertions:
            out += ["", "### Assertions", ""]
            out += _md_table(
                ["planner", "assertion", "verdict", "evidence"],
                [[f"`{p}`", f"[{v.index}] {v.description}", "pass" if v.passed else "**FAIL**", v.evidence]
                 for p, verdicts in zip(report.planners, report.assertions, strict=False) for v in verdicts],
                right=[False] * 4,
            )  # fmt: skip
        return "\n".join(out) + "\n"
    out = [f"compare {report.scenario} ({seed}): {', '.join(report.planners)}", compare_verdict(report)]
    if report.recordings:
        out += ["recordings kept:", *(f"  {p}" for p in report.recordings)]
    for planner, d in zip(report.planners[1:], report.diffs, strict=True):
        out += ["", f"=== {base} vs {planner} ===", format_text(d, kpis=False)]
    out += ["", "KPIs"]
    out += _table(["KPI", *report.planners], _kpi_matrix(report.kpis))
    if report.assertions:
        out += ["", "assertions"]
        out += _assertion_lines(report)
    return "\n".join(out)


__all__ = [
    "FORMATS",
    "RENDERERS",
    "compare_verdict",
    "decode_compare",
    "decode_report",
    "fmt_pair",
    "fmt_value",
    "format_json",
    "format_markdown",
    "format_stat",
    "format_text",
    "judged_phrase",
    "render",
    "render_compare",
    "summarised_differences",
    "verdict",
]
