"""The summary of one recording: metadata, KPIs, assertion verdicts and a one-line verdict.

One :class:`Summary` feeds every view of a recording — the text ``record`` and
``show`` print, their ``--json``, the HTML and Markdown reports and the
OpenMetrics export — so they cannot disagree.  The KPIs are
:func:`replaylib.record.kpis.compute_kpis` of the recorded rows (the one KPI
implementation); the verdicts are the recording's ``assertion`` rows.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from replaylib.record.kpis import Kpis
from replaylib.record.meta import RecordingMeta

if TYPE_CHECKING:
    import polars as pl

    from replaylib.adapter import ReplayResult


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """One scenario assertion's verdict, as recorded."""

    index: int
    description: str
    passed: bool
    evidence: str
    tick: int  #: the last tick of the replay (when the verdict was recorded)


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``show`` prints about one recording (``show --json`` is this, encoded)."""

    recording: str
    events: int  #: rows in the recording
    verdict: str  #: the one-line verdict (assertions, SLA attainment, budget)
    passed: bool  #: every assertion passed (True when there are none)
    planner: str  #: name@version
    meta: RecordingMeta
    kpis: Kpis
    assertions: list[Verdict]
    #: closed loop, at the last tick: session turns held back and abandoned (None open loop)
    turns_held: int | None = None
    turns_abandoned: int | None = None


def verdicts(df: pl.DataFrame) -> list[Verdict]:
    """The assertion rows of a recording, in order (``detail`` is ``description -- evidence``)."""
    import polars as pl

    rows = df.filter(pl.col("kind") == "assertion").select("tick", "detail", "passed").iter_rows()
    out = []
    for i, (tick, detail, passed) in enumerate(rows):
        description, _, evidence = (detail or "").partition(" -- ")
        out.append(Verdict(index=i, description=description, passed=bool(passed), evidence=evidence, tick=int(tick)))
    return out


def summarize_frame(df: pl.DataFrame, meta: RecordingMeta, *, recording: str) -> Summary:
    """The summary of a recording already read back (``df`` as from :func:`read_recording`)."""
    from replaylib.record.kpis import compute_kpis

    import polars as pl

    kpis = compute_kpis(df, meta)
    checks = verdicts(df)
    held = abandoned = None
    if "turns_abandoned" in df.columns:
        last = df.filter(pl.col("kind") == "tick").select("turns_held", "turns_abandoned").tail(1).rows()
        if last:
            held, abandoned = last[0]
    return Summary(
        recording=recording, events=df.height, verdict=verdict_line(kpis, checks), passed=all(v.passed for v in checks),
        planner=meta.planner, meta=meta, kpis=kpis, assertions=checks, turns_held=held, turns_abandoned=abandoned,
    )


def summarize_replay(result: ReplayResult) -> Summary:
    """The summary of a replay just run, from the rows as they were recorded (``result.kpis``): no read-back,
    no polars.  Equal to :func:`summarize` of its recording (``tests/test_report.py`` checks it)."""
    last_tick = result.ticks - 1
    checks = [Verdict(index=a.index, description=a.description, passed=a.passed, evidence=a.evidence, tick=last_tick)
              for a in result.assertions]
    return Summary(
        recording=result.path, events=result.rows, verdict=verdict_line(result.kpis, checks),
        passed=all(v.passed for v in checks), planner=result.meta.planner, meta=result.meta, kpis=result.kpis,
        assertions=checks, turns_held=result.turns_held, turns_abandoned=result.turns_abandoned,
    )


def load_complete(path: str | os.PathLike[str]) -> tuple[pl.DataFrame, RecordingMeta]:
    """The rows and metadata of a finished recording; a truncated or partial one is a :class:`RecordingError`
    (:func:`~replaylib.record.read_recording` refuses it: a report of it would silently miss the end of the
    replay and its verdicts)."""
    from replaylib.record import read_recording, recording_metadata

    path = os.fspath(path)
    df = read_recording(path)  # missing, foreign, truncated, partial or damaged files: its own errors
    return df, recording_metadata(path)


def summarize(path: str | os.PathLike[str]) -> Summary:
    """Read the finished recording at ``path`` and summarise it (a :class:`RecordingError` when it is not one)."""
    path = os.fspath(path)
    df, meta = load_complete(path)
    return summarize_frame(df, meta, recording=path)


# -- the verdict -------------------------------------------------------------------------------------


def verdict_line(k: Kpis, checks: list[Verdict]) -> str:
    """``PASS 4/4 assertions | SLA attainment 76.81% (TTFT 76.81%, ITL 90.91%) | budget kept: peak 59.7% of 6,000 W``."""
    from replaylib.record.kpis import format_value

    failed = [v for v in checks if not v.passed]
    if not checks:
        head = "NO ASSERTIONS"
    elif failed:
        which = ", ".join(f"[{v.index}]" for v in failed[:5]) + (" ..." if len(failed) > 5 else "")
        head = f"FAIL {len(failed)} of {len(checks)} assertions failed ({which})"
    else:
        head = f"PASS {len(checks)}/{len(checks)} assertions"
    sla = "SLA attainment " + format_value(k.sla_attainment, "pct")
    if k.ttft_attainment is not None or k.itl_attainment is not None:
        sla += f" (TTFT {format_value(k.ttft_attainment, 'pct')}, ITL {format_value(k.itl_attainment, 'pct')})"
    if k.budget_peak_w is None:
        budget = "no power budget"
    else:
        peak = f"peak {format_value(k.power_budget_peak_ratio, 'ratio')} of {format_value(k.budget_peak_w, 'w')}"
        if k.budget_violations:
            budget = f"budget EXCEEDED on {k.budget_violations:,} ticks: {peak}"
        else:
            budget = f"budget kept: {peak}"
    return " | ".join((head, sla, budget))


# -- text ------------------------------------------------------------------------------------------


def format_summary(s: Summary, *, scenario_path: str | None = None, ticks_note: str = "") -> str:
    """The text ``show`` and ``record`` print: the verdict first, then metadata, KPIs and assertions."""
    from replaylib.record.kpis import format_kpis

    m = s.meta
    where = f" ({scenario_path})" if scenario_path else ""
    lines = [
        s.verdict,
        f"scenario {m.scenario_name}{where} | planner {s.planner} | seed {m.seed} | system {m.system_name}",
        f"recording {s.recording}: {s.events:,} events over {s.kpis.ticks:,} ticks{ticks_note}",
        format_kpis(s.kpis, m),
    ]
    if s.turns_abandoned is not None:
        lines.append(f"closed loop: session turns abandoned {s.turns_abandoned:,}, held back at the end {s.turns_held:,}")
    if s.assertions:
        lines.append("assertions")
        lines += [f"  {'PASS' if v.passed else 'FAIL'}  [{v.index}] {v.description} -- {v.evidence}" for v in s.assertions]
    return "\n".join(lines)


def to_json(s: Summary) -> str:
    """``show --json``: the summary, pretty-printed (floats exactly as computed)."""
    return msgspec.json.format(msgspec.json.encode(s).decode(), indent=2)


def from_json(text: str | bytes) -> Summary:
    """The inverse of :func:`to_json`."""
    return msgspec.json.decode(text, type=Summary)


__all__ = ["Summary", "Verdict", "format_summary", "from_json", "summarize", "summarize_frame", "summarize_replay", "to_json",
           "verdict_line", "verdicts"]
