"""Importers: turn production traces (Mooncake variants, Azure, BurstGPT, Qwen-Bailian,
any CSV/Parquet table) into replaylib's Mooncake-style JSONL or Parquet traces.

One entry point, :func:`import_trace`, streams the source in batches, applies the
common options of :class:`ImportOptions` (window, speedup, sampling, limit,
hash-id synthesis or re-blocking) and returns an :class:`ImportReport`.  The
output is written atomically and is byte-identical for the same inputs.
"""

from replaylib.trace.importers.options import FORMATS, ImportOptions, ImportReport, TraceImportError
from replaylib.trace.importers.pipeline import import_trace
from replaylib.trace.importers.report import format_report

__all__ = ["FORMATS", "ImportOptions", "ImportReport", "TraceImportError", "format_report", "import_trace"]
