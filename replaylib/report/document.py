"""The report of a recording (optionally against another): HTML in one self-contained file, or Markdown.

A report holds the one-line verdict, the metadata, the KPI table (against the
SLA targets; side by side with a delta when comparing), every assertion's
verdict with its evidence, the plots (:mod:`replaylib.report.plot`) and, when
comparing, the diff's verdict and first divergence (:mod:`replaylib.diff`).
Every number comes from the recordings' :class:`~replaylib.report.summary.Summary`,
so a report says exactly what ``show --json`` says.

* HTML: inline CSS, the plots as a base64 PNG ``data:`` URI — one file to attach
  anywhere, no network.
* Markdown: GitHub-flavoured tables for a pull-request comment; the plots go to
  ``<report>.png`` beside it (linked; Markdown cannot embed them).

Writers are registered by output extension in :data:`WRITERS`.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from replaylib.errors import ReplaylibError
from replaylib.record.kpis import KPI_SPECS, format_value
from replaylib.report.summary import Summary

if TYPE_CHECKING:
    from replaylib.diff.model import DiffReport


class ReportError(ReplaylibError):
    """A report that cannot be made (unknown output format ...)."""


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """What a report shows."""

    summary: Summary
    other: Summary | None = None  #: ``--against``
    diff: DiffReport | None = None  #: ``summary``'s recording (A) against ``other``'s (B)
    png: bytes | None = None  #: the plots (overlaid when comparing); None without matplotlib or with plots off
    plot_note: str = ""  #: why there are no plots


def build_report(path: str | os.PathLike[str], *, against: str | os.PathLike[str] | None = None, plots: bool = True,
                 force: bool = False) -> Report:
    """Read the recording(s) and assemble the report (plots need matplotlib, else a note says so)."""
    from replaylib.report import plot
    from replaylib.report.summary import load_complete, summarize_frame

    path = os.fspath(path)
    df, meta = load_complete(path)
    summary = summarize_frame(df, meta, recording=path)
    recs = [plot.prepare(df, meta, path=path, label=meta.planner)] if plots else []
    other = diff = None
    if against is not None:
        from replaylib.diff import diff_recordings

        against = os.fspath(against)
        df_b, meta_b = load_complete(against)
        other = summarize_frame(df_b, meta_b, recording=against)
        diff = diff_recordings(path, against, force=force)
        if plots:
            recs.append(plot.prepare(df_b, meta_b, path=against, label=meta_b.planner))
    png, note = None, "" if plots else "plots left out (--no-plots)"
    if plots:
        try:
            png = plot.render(plot.figure(recs), "png")
        except plot.PlotError as exc:
            note = str(exc)
    return Report(summary=summary, other=other, diff=diff, png=png, plot_note=note)


# -- shared rows ---------------------------------------------------------------------------------------


def _kpi_rows(r: Report) -> tuple[list[str], list[list[str]]]:
    s, o = r.summary, r.other
    targets = {"ttft": s.meta.ttft_target_ms, "itl": s.meta.itl_target_ms}
    if o is None:
        rows = []
        for spec in KPI_SPECS:
            value = getattr(s.kpis, spec.name)
            prefix = spec.name.split("_", 1)[0]
            note = ""
            if spec.style == "ms" and prefix in targets:
                over = value is not None and value > targets[prefix]
                note = f"target {format_value(targets[prefix], 'ms')}" + (" — OVER" if over else "")
            rows.append([spec.label, format_value(value, spec.style), note])
        return ["KPI", "value", "against the SLA"], rows
    from replaylib.diff.engine import kpi_rows
    from replaylib.diff.report import fmt_delta

    a, b = _names(r)
    rows = [[k.label, format_value(k.a, k.style), format_value(k.b, k.style), fmt_delta(k)] for k in kpi_rows(s.kpis, o.kpis)]
    return ["KPI", a, b, f"Δ ({b} − {a})"], rows


def _names(r: Report) -> tuple[str, str]:
    a = r.summary.planner
    b = r.other.planner if r.other is not None else ""
    if a == b:
        a, b = f"A: {a}", f"B: {b}"
    return a, b


def _meta_rows(s: Summary) -> list[list[str]]:
    m = s.meta
    return [
        ["recording", s.recording], ["scenario", f"{m.scenario_name} (hash {m.scenario_hash[:12]})"],
        ["planner", s.planner], ["seed", str(m.seed)], ["system", m.system_name],
        ["trace", f"{m.trace_path} (sha256 {m.trace_sha256[:12]})"],
        ["SLA targets", f"TTFT {m.ttft_target_ms:g} ms, ITL {m.itl_target_ms:g} ms"],
        ["replaylib", f"{m.replaylib_version} (schema {m.schema_version})"],
    ]


def _assertion_rows(s: Summary) -> list[list[str]]:
    return [["PASS" if v.passed else "FAIL", f"[{v.index}] {v.description}", v.evidence] for v in s.assertions]


def _divergence(r: Report) -> tuple[str, list[list[str]]]:
    """The diff's verdict and the first diverging tick's differing columns."""
    from replaylib.diff.report import fmt_pair, verdict

    d = r.diff
    assert d is not None
    a, b = _names(r)
    text = verdict(d, (a, b))
    div = d.first_divergence
    rows: list[list[str]] = []
    if div is not None:
        where = "" if div.only_in is None else f" (only in {a if div.only_in == 'a' else b})"
        text += f"; first divergence at tick {div.tick}{where}"
        rows = [[f.column, *fmt_pair(f.a, f.b)] for f in div.fields]
    return text, rows


# -- Markdown -------------------------------------------------------------------------------------------


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def cell(t: str) -> str:
        return t.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return out + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def to_markdown(r: Report, *, image: str | None = None) -> str:
    """The Markdown report; ``image`` is the file name the plots were written to (linked), if any."""
    s = r.summary
    title = f"replaylib report: {s.meta.scenario_name} — {s.planner}"
    if r.other is not None:
        title += f" vs {r.other.planner}"
    out = [f"## {title}", "", f"**{s.verdict}**", ""]
    if r.other is not None:
        out += [f"**against:** {r.other.verdict}", ""]
    out += _md_table(["", "value"], _meta_rows(s)) + [""]
    out += ["### KPIs", ""] + _md_table(*_kpi_rows(r)) + [""]
    for label, summ in ((s.planner, s), *(((r.other.planner, r.other),) if r.other is not None else ())):
        out += [f"### Assertions ({label})", ""]
        out += (_md_table(["verdict", "assertion", "evidence"], _assertion_rows(summ)) if summ.assertions else ["none"]) + [""]
    if r.diff is not None:
        text, rows = _divergence(r)
        out += ["### Divergence", "", text + ".", ""]
        if rows:
            a, b = _names(r)
            out += _md_table(["column", a, b], rows) + [""]
    if image:
        out += ["### Plots", "", f"![replicas, caps, power against the budget, latency against the SLA, request rate]({image})", ""]
    elif r.plot_note:
        out += [f"_{r.plot_note}_", ""]
    return "\n".join(out).rstrip() + "\n"


# -- HTML -----------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1280px;color:#1b1b1b;padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.1em;font-weight:600;padding:.6em .8em;border-radius:4px;background:#e8f5e9;border-left:6px solid #2e7d32}
.verdict.fail{background:#fdecea;border-left-color:#c62828} .PASS{color:#2e7d32;font-weight:600} .FAIL{color:#c62828;font-weight:600}
img{max-width:100%;border:1px solid #ddd}
"""


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_table(headers: list[str], rows: list[list[str]], *, numeric: tuple[int, ...] = (), cls: str = "") -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            klass = " ".join(k for k in ("num" if i in numeric else "", c if c in ("PASS", "FAIL") else "") if k)
            cells.append(f'<td class="{klass}">{_h(c)}</td>' if klass else f"<td>{_h(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def to_html(r: Report) -> str:
    """The HTML report: one file, CSS and plots inline."""
    s = r.summary
    title = f"replaylib report: {s.meta.scenario_name} — {s.planner}" + (f" vs {r.other.planner}" if r.other else "")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_h(title)}</h1>",
        f'<p class="verdict{"" if s.passed else " fail"}" id="verdict">{_h(s.verdict)}</p>',
    ]
    if r.other is not None:
        parts.append(f'<p class="verdict{"" if r.other.passed else " fail"}">against: {_h(r.other.verdict)}</p>')
    parts += ["<h2>Recording</h2>", _html_table(["", "value"], _meta_rows(s), cls="meta")]
    headers, rows = _kpi_rows(r)
    parts += ["<h2>KPIs</h2>", _html_table(headers, rows, numeric=tuple(range(1, len(headers))), cls="kpis")]
    for label, summ in ((s.planner, s), *(((r.other.planner, r.other),) if r.other is not None else ())):
        parts.append(f"<h2>Assertions ({_h(label)})</h2>")
        parts.append(_html_table(["verdict", "assertion", "evidence"], _assertion_rows(summ), cls="assertions")
                     if summ.assertions else "<p>none</p>")
    if r.diff is not None:
        text, rows = _divergence(r)
        a, b = _names(r)
        parts += ["<h2>Divergence</h2>", f"<p>{_h(text)}.</p>"]
        if rows:
            parts.append(_html_table(["column", a, b], rows, cls="divergence"))
    parts.append("<h2>Plots</h2>")
    if r.png is not None:
        data = base64.b64encode(r.png).decode("ascii")
        parts.append(f'<img alt="replicas, caps, power against the budget, latency against the SLA, request rate" '
                     f'src="data:image/png;base64,{data}">')
    else:
        parts.append(f"<p>{_h(r.plot_note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- writing --------------------------------------------------------------------------------------------


def _write_html(r: Report, out: str) -> list[str]:
    from replaylib.report.output import write_text

    write_text(out, to_html(r))
    return [out]


def _write_markdown(r: Report, out: str) -> list[str]:
    from replaylib.report.output import check_output, write_bytes, write_text

    check_output(out)
    written = []
    image = None
    if r.png is not None:
        png_path = os.path.splitext(out)[0] + ".png"
        write_bytes(png_path, r.png)
        written.append(png_path)
        image = os.path.basename(png_path)
    write_text(out, to_markdown(r, image=image))
    return [out, *written]


#: Report writers by output extension: ``writer(report, out) -> files written``.
WRITERS: dict[str, Callable[[Report, str], list[str]]] = {
    ".html": _write_html,
    ".htm": _write_html,
    ".md": _write_markdown,
    ".markdown": _write_markdown,
}


def writer_for(out: str) -> Callable[[Report, str], list[str]]:
    ext = os.path.splitext(out)[1].lower()
    if ext not in WRITERS:
        raise ReportError(f"{out}: cannot write a report as {ext or 'an extension-less file'}; expected .html or .md")
    return WRITERS[ext]


def write_report(path: str | os.PathLike[str], out: str | os.PathLike[str], *, against: str | os.PathLike[str] | None = None,
                 plots: bool = True, force: bool = False) -> list[str]:
    """Build the report of ``path`` (against ``against``) and write it to ``out``; returns the files written."""
    from replaylib.report.output import check_output

    out = os.fspath(out)
    write = writer_for(out)
    check_output(out)  # before the (slower) reading and drawing
    return write(build_report(path, against=against, plots=plots, force=force), out)


__all__ = ["WRITERS", "Report", "ReportError", "build_report", "to_html", "to_markdown", "write_report", "writer_for"]
