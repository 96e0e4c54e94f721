"""Comparing recordings: align by tick / event, judge decisions, summarise the rest, KPIs."""

from replaylib.diff.compare import compare_planners
from replaylib.diff.engine import IGNORED_BY_DEFAULT, compare_metadata, diff_frames, diff_recordings
from replaylib.diff.model import CompareReport, DiffError, DiffReport, MetadataMismatch
from replaylib.diff.policy import ComparePolicy, ToleranceError, make_policy, scenario_policy
from replaylib.diff.report import (
    FORMATS,
    decode_report,
    format_json,
    format_markdown,
    format_stat,
    format_text,
    render,
    render_compare,
)

__all__ = [
    "FORMATS",
    "IGNORED_BY_DEFAULT",
    "CompareReport",
    "ComparePolicy",
    "DiffError",
    "DiffReport",
    "MetadataMismatch",
    "ToleranceError",
    "compare_metadata",
    "compare_planners",
    "decode_report",
    "diff_frames",
    "diff_recordings",
    "format_json",
    "format_markdown",
    "format_stat",
    "format_text",
    "make_policy",
    "render",
    "render_compare",
    "scenario_policy",
]
