"""Importers: turn production traces (Mooncake variants, Azure, BurstGPT, Qwen-Bailian,
any CSV/Parquet table) into replaylib's Mooncake-style JSONL or Parquet traces.

One entry point, :func:`import_trace`, streams the source in batches, applies the
common options of :class:`ImportOptions` (window, speedup, sampling, limit,
hash-id synthesis or re-blocking) and returns an :class:`ImportReport`.  The
output is written atomically and is byte-identical for the same inputs.

Exports are imported on first use (:mod:`replaylib._lazy`): listing
:data:`FORMATS` does not import polars or pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replaylib._lazy import lazy_exports

if TYPE_CHECKING:
    from replaylib.trace.importers.options import FORMATS, ImportOptions, ImportReport, TraceImportError
    from replaylib.trace.importers.pipeline import import_trace
    from replaylib.trace.importers.report import format_report

_EXPORTS = {
    "FORMATS": "replaylib.trace.importers.options",
    "ImportOptions": "replaylib.trace.importers.options",
    "ImportReport": "replaylib.trace.importers.options",
    "TraceImportError": "replaylib.trace.importers.options",
    "format_report": "replaylib.trace.importers.report",
    "import_trace": "replaylib.trace.importers.pipeline",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
