"""The typed options, report and error of the trace importers."""

from __future__ import annotations

from typing import Literal

import msgspec

from replaylib.trace.model import TraceError

#: Source formats ``import_trace`` understands.
FORMATS: tuple[str, ...] = ("mooncake", "azure", "burstgpt", "bailian", "csv", "parquet")

Format = Literal["mooncake", "azure", "burstgpt", "bailian", "csv", "parquet"]
TimeUnit = Literal["s", "ms", "us", "ns", "datetime"]

#: Canonical fields a ``csv``/``parquet`` column mapping may name.
MAPPABLE: tuple[str, ...] = ("timestamp", "input_length", "output_length", "session_id", "hash_ids")


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to import a trace.  Every field has a default; ``None`` means "not set".

    Time options are in seconds of the *source* trace (before ``speedup``), counted
    from its first row.  ``sort=None`` picks the format's default: ``mooncake``
    sorts (upstream files are small and not always ordered), every other format
    streams and fails on the first out-of-order row.
    """

    block_size: int = 512  #: target tokens per hash block
    start_s: float | None = None  #: keep rows at or after this offset from the first source row
    end_s: float | None = None  #: keep rows before this offset (reading stops there)
    speedup: float = 1.0  #: divide every output time (timestamps and delays) by this
    sample: float | None = None  #: keep this fraction of rows (whole sessions when the source has them)
    seed: int = 0  #: seed of the deterministic sampling
    limit: int | None = None  #: stop after writing this many rows
    sort: bool | None = None  #: sort by timestamp in memory instead of streaming
    shared_prefix_tokens: int = 0  #: synthesised ids: the first N tokens' full blocks are shared
    source_block_size: int | None = None  #: tokens per source hash id (mooncake 512, bailian 16)
    columns: dict[str, str] = {}  #: csv/parquet: canonical field -> source column
    time_unit: TimeUnit | None = None  #: csv/parquet: unit of the timestamp column
    time_format: str | None = None  #: strftime-style format of datetime strings (csv/parquet/azure)
    model: str | None = None  #: burstgpt: keep only this ``Model`` (case-insensitive)
    log_type: str | None = None  #: burstgpt: keep only this ``Log Type`` (case-insensitive)
    batch_rows: int = 65_536  #: rows per processing batch (memory vs. per-batch overhead)


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did.  Deterministic: holds no wall-clock figures."""

    format: str
    source: str
    output: str
    rows_read: int  #: source rows (CSV data rows / JSONL lines) consumed
    rows_written: int
    dropped: dict[str, int]  #: reason -> rows; rows_read == rows_written + sum(dropped)
    span_s: float  #: timestamp of the last written row, in seconds (the first is 0)
    rate_per_s: float  #: rows_written / span_s (inf for a zero span)
    sorted: bool  #: True when the trace was held in memory and sorted
    stopped_early: str | None  #: why the rest of the source was not read, if it was not
    hash_ids: str  #: how the hash ids were produced
    notes: list[str] = []


class TraceImportError(TraceError):
    """A source that cannot be imported.

    ``row`` is the 1-based data row (CSV/Parquet, header not counted) or line
    (JSONL); ``column`` the source column or field.  Both may be ``None``.
    """

    def __init__(
        self, path: str, row: int | None, column: str | None, message: str, *, unit: str = "data row", what: str = "column"
    ) -> None:
        super().__init__(path, row, column, message)
        self.row = row
        self.column = column
        where = [f"{unit} {row}"] if row is not None else []
        if column is not None:
            where.append(f"{what} '{column}'")
        prefix = f"{self.path}: {', '.join(where)}: " if where else f"{self.path}: "
        self.args = (prefix + message,)

    def __str__(self) -> str:
        return str(self.args[0])
