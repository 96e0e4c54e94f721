"""Incremental, atomic writing of a recording (Arrow IPC file format).

Rows are buffered and flushed as record batches every ``batch_rows`` rows, so
memory stays flat however long the replay and a killed process leaves every
complete batch readable.  The file is written under
``<path>.partial`` and renamed over ``<path>`` only when the replay finishes;
an interrupted replay closes the partial file properly (it stays readable) and
leaves any previous ``<path>`` untouched.
"""

from __future__ import annotations

import os
from types import TracebackType

import msgspec
import pyarrow as pa

from replaylib.record.schema import ARROW_SCHEMA, FIELDS, EventRow


def partial_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + ".partial"


class RecordingWriter:
    """Append :class:`EventRow` s; ``close()`` publishes the file, ``abort()`` keeps it partial."""

    def __init__(self, path: str | os.PathLike[str], metadata: dict[str, str], *, batch_rows: int = 256) -> None:
        self.path = os.fspath(path)
        self.partial = partial_path(self.path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self.schema = ARROW_SCHEMA.with_metadata({k: str(v) for k, v in metadata.items()})
        self._sink = pa.OSFile(self.partial, "wb")
        self._writer = pa.ipc.new_file(self._sink, self.schema)
        self._rows: list[EventRow] = []
        self._batch_rows = batch_rows
        self._seq = 0
        self.rows_written = 0
        self._open = True

    def next_seq(self) -> int:
        """The ``seq`` the next appended row must carry."""
        return self._seq

    def append(self, row: EventRow) -> None:
        if row.seq != self._seq:
            raise ValueError(f"rows must be appended in seq order: expected {self._seq}, got {row.seq}")
        self._seq += 1
        self._rows.append(row)
        if len(self._rows) >= self._batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        columns = list(zip(*(msgspec.structs.astuple(r) for r in self._rows), strict=True))
        arrays = [pa.array(col, type=self.schema.field(i).type) for i, col in enumerate(columns)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.rows_written += len(self._rows)
        self._rows.clear()

    def close(self) -> str:
        """Finish the file and move it into place atomically; returns the final path."""
        self._finish()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> str:
        """Finish the file but leave it under its ``.partial`` name; returns that path."""
        self._finish()
        return self.partial

    def _finish(self) -> None:
        if self._open:
            self._open = False
            try:
                self.flush()
            finally:
                self._writer.close()
                self._sink.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


assert FIELDS[0] == "kind"  # the writer relies on field order == column order
