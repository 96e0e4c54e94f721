"""Streaming reader for Parquet traces (as ``import … -o trace.parquet`` writes them).

Row groups are read a batch at a time with ``ParquetFile.iter_batches``, so
memory does not grow with the trace.  Columns are those of a JSONL trace
(``timestamp`` and ``delay`` in milliseconds, ``hash_ids`` a list of integers;
the upstream aliases are accepted, other columns ignored).  A batch is
converted in one ``msgspec`` call; a batch that fails is converted row by row
through the JSONL reader's own row validation, so an error names the file, the
1-based data row and the field exactly as for JSONL (``trace.parquet:12:
field 'input_length': ...``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import msgspec

from replaylib.trace.model import ALIASES, Request, TraceError

_BATCH_ROWS = 65_536
_FIELDS = tuple(Request.__struct_fields__)


def stream_parquet(path: str, *, batch_rows: int = _BATCH_ROWS) -> Iterator[tuple[int, list[Request]]]:
    """Yield ``(first_row, requests)`` per batch; ``first_row`` is the 1-based row number of the first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from replaylib.trace.reader import request_from_mapping

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(path, None, None, f"not a readable Parquet file: {exc}") from None
    names = pf.schema_arrow.names
    wanted = [c for c in names if c in _FIELDS or c in ALIASES]
    missing = [f for f in ("timestamp", "input_length", "output_length", "hash_ids")
               if f not in names and not any(ALIASES.get(a) == f for a in names)]
    if missing:
        raise TraceError(path, None, missing[0], f"missing column; a Parquet trace has the columns {', '.join(_FIELDS[:4])} "
                         f"(and optionally session_id, delay); it has {', '.join(names) or 'none'}. Convert other tables "
                         "with `python -m replaylib import parquet SRC -o trace.parquet --map ...`")
    first = 1
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
            rows = batch.to_pylist()
            for row in rows:
                _canonical(row)
            try:
                requests = msgspec.convert(rows, list[Request])
                if not all(math.isfinite(r.timestamp) and len(r.hash_ids) <= r.input_length for r in requests):
                    raise ValueError("a timestamp is not finite, or a row has more hash ids than input tokens")
            except (msgspec.ValidationError, ValueError):  # find the row, with the JSONL reader's messages
                requests = [request_from_mapping(row, path, first + i) for i, row in enumerate(rows)]
            yield first, requests
            first += len(rows)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(path, first, None, f"cannot read the Parquet data (truncated or corrupt?): {exc}") from None


def _canonical(row: dict) -> None:
    """Aliases renamed, nulls of the optional columns dropped (as absent keys in JSONL)."""
    for alias, canonical in ALIASES.items():
        if alias in row:
            value = row.pop(alias)
            row.setdefault(canonical, value)
    for key in ("session_id", "delay"):
        if key in row and row[key] is None:
            del row[key]
