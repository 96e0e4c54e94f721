"""Comparing recordings: align by tick / event, report the first divergence, counts and KPIs.

Exports are imported on first use (:mod:`replaylib._lazy`): the CLI can read
:data:`~replaylib.diff.formats.FORMATS` without importing polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replaylib._lazy import lazy_exports

if TYPE_CHECKING:
    from replaylib.diff.compare import compare_planners
    from replaylib.diff.engine import IGNORED_BY_DEFAULT, compare_metadata, diff_frames, diff_recordings
    from replaylib.diff.formats import FORMATS
    from replaylib.diff.model import CompareReport, DiffError, DiffReport, MetadataMismatch
    from replaylib.diff.report import decode_report, format_json, format_markdown, format_text, render, render_compare

_EXPORTS = {
    "FORMATS": "replaylib.diff.formats",
    "IGNORED_BY_DEFAULT": "replaylib.diff.engine",
    "CompareReport": "replaylib.diff.model",
    "DiffError": "replaylib.diff.model",
    "DiffReport": "replaylib.diff.model",
    "MetadataMismatch": "replaylib.diff.model",
    "compare_metadata": "replaylib.diff.engine",
    "compare_planners": "replaylib.diff.compare",
    "decode_report": "replaylib.diff.report",
    "diff_frames": "replaylib.diff.engine",
    "diff_recordings": "replaylib.diff.engine",
    "format_json": "replaylib.diff.report",
    "format_markdown": "replaylib.diff.report",
    "format_text": "replaylib.diff.report",
    "render": "replaylib.diff.report",
    "render_compare": "replaylib.diff.report",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
