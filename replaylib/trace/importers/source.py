"""What every source format hands to the import pipeline: batches of validated rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import msgspec


class SourceBatch(msgspec.Struct, kw_only=True):
    """Consecutive source rows, already parsed and validated, as parallel columns.

    ``t_ns`` is the arrival time in integer nanoseconds on the source's own clock
    (epoch time for datetime sources, offset for relative ones).  ``drop`` holds
    0 for a row to keep, else the 1-based index of its reason in
    ``Source.reasons``; ``None`` means every row is kept.  Optional columns are
    ``None`` when the source has no such field.
    """

    rows: Sequence[int]  #: 1-based data row (CSV/Parquet) or line (JSONL) numbers
    t_ns: list[int]
    input_length: list[int]
    output_length: list[int]
    drop: list[int] | None = None
    hash_ids: list[list[int]] | None = None
    session_id: list[str | int | None] | None = None
    delay_ns: list[int | None] | None = None


class Source(Protocol):
    """A readable source trace of one format."""

    path: str
    unit: str  #: what ``SourceBatch.rows`` counts: "data row" or "line"
    time_column: str  #: the source column or field holding the timestamp
    reasons: tuple[str, ...]  #: names of the drop codes 1, 2, ...
    ids_block_size: int | None  #: tokens per source hash id; None when the source has none

    def batches(self) -> Iterator[SourceBatch]: ...
