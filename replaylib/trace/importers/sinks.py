"""Writers for imported traces: canonical Mooncake JSONL (plain/gzip) or Parquet."""

from __future__ import annotations

from typing import IO

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from replaylib.trace.model import Request

#: Parquet layout of a trace: the JSONL fields, times as float64 milliseconds.
PARQUET_SCHEMA = pa.schema(
    [
        ("timestamp", pa.float64()),
        ("input_length", pa.int64()),
        ("output_length", pa.int64()),
        ("hash_ids", pa.list_(pa.int64())),
        ("session_id", pa.string()),
        ("delay", pa.float64()),
    ],
    metadata={b"replaylib": b"request trace; timestamp and delay in ms; session_id as text"},
)


class JsonlSink:
    """Canonical JSONL, byte-identical to :func:`replaylib.trace.write_trace`."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._encode = msgspec.json.Encoder().encode_lines

    def write(self, rows: list[Request]) -> None:
        self._fh.write(self._encode(rows))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class ParquetSink:
    """One row group per batch, zstd-compressed, schema :data:`PARQUET_SCHEMA`."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._writer = pq.ParquetWriter(fh, PARQUET_SCHEMA, compression="zstd")

    def write(self, rows: list[Request]) -> None:
        columns = [
            pa.array([float(r.timestamp) for r in rows], pa.float64()),
            pa.array([r.input_length for r in rows], pa.int64()),
            pa.array([r.output_length for r in rows], pa.int64()),
            pa.array([r.hash_ids for r in rows], pa.list_(pa.int64())),
            pa.array([None if r.session_id is None else str(r.session_id) for r in rows], pa.string()),
            pa.array([None if r.delay is None else float(r.delay) for r in rows], pa.float64()),
        ]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=PARQUET_SCHEMA))

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        """Release the writer after an error (the file is being discarded anyway)."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - already failing; the original error matters
            pass


def output_kind(path: str) -> str | None:
    """``"jsonl"`` or ``"parquet"`` by the file name, None for an unsupported suffix."""
    if path.endswith(".parquet"):
        return "parquet"
    if path.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    return None
