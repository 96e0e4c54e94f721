"""The source formats: how each one's columns map onto a request."""

from __future__ import annotations

import msgspec

from replaylib.trace.importers.jsonl import BailianSource, MooncakeSource
from replaylib.trace.importers.options import MAPPABLE, ImportOptions, TraceImportError
from replaylib.trace.importers.source import Source
from replaylib.trace.importers.tabular import Filter, TableSource, TableSpec

#: Azure LLM inference traces (2023 and 2024): CSV, datetime with 7 fractional digits.
AZURE = TableSpec(
    timestamp="TIMESTAMP",
    input_length="ContextTokens",
    output_length="GeneratedTokens",
    time_unit="datetime",
    time_format=None,
)

#: BurstGPT: CSV, ``Timestamp`` in seconds from the trace start.
BURSTGPT_COLUMNS = {"timestamp": "Timestamp", "input_length": "Request tokens", "output_length": "Response tokens"}


def open_source(fmt: str, path: str, o: ImportOptions) -> Source:
    """The :class:`Source` reading ``path`` as ``fmt`` (options already range-checked)."""
    if fmt == "mooncake":
        return MooncakeSource(path, source_block_size=o.source_block_size, batch_rows=o.batch_rows)
    if fmt == "bailian":
        return BailianSource(path, source_block_size=o.source_block_size, batch_rows=o.batch_rows)
    if fmt == "azure":
        spec = AZURE if o.time_format is None else msgspec.structs.replace(AZURE, time_format=o.time_format)
        return TableSource(path, spec, parquet=False, batch_rows=o.batch_rows)
    if fmt == "burstgpt":
        filters = []
        if o.model is not None:
            filters.append(Filter("Model", o.model, f"model not {o.model!r}"))
        if o.log_type is not None:
            filters.append(Filter("Log Type", o.log_type, f"log type not {o.log_type!r}"))
        spec = TableSpec(
            **BURSTGPT_COLUMNS,
            time_unit="s",
            filters=tuple(filters),
            zero_output_reason="failed (0 response tokens)",
        )
        return TableSource(path, spec, parquet=False, batch_rows=o.batch_rows)
    return TableSource(path, _mapped_spec(path, o), parquet=fmt == "parquet", batch_rows=o.batch_rows)


def _mapped_spec(path: str, o: ImportOptions) -> TableSpec:
    unknown = sorted(set(o.columns) - set(MAPPABLE))
    if unknown:
        raise TraceImportError(path, None, None, f"--map: unknown field(s) {', '.join(unknown)}; expected {', '.join(MAPPABLE)}")
    cols = {field: o.columns.get(field, field) for field in ("timestamp", "input_length", "output_length")}
    hash_ids = o.columns.get("hash_ids")
    if o.source_block_size is not None and hash_ids is None:
        raise TraceImportError(path, None, None, "--source-block-size needs a hash_ids column (--map hash_ids=COLUMN)")
    return TableSpec(
        **cols,
        session_id=o.columns.get("session_id"),
        hash_ids=hash_ids,
        ids_block_size=o.source_block_size or o.block_size,
        time_unit=o.time_unit,
        time_format=o.time_format,
    )

