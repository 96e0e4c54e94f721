"""Reading a recording back: a polars DataFrame and its typed metadata."""

from __future__ import annotations

import os

import polars as pl
import pyarrow as pa

from replaylib.record.meta import RecordingError, RecordingMeta, parse_metadata
from replaylib.record.schema import FIELDS


def _read_table(path: str) -> pa.Table:
    try:
        with pa.memory_map(path) as source:
            return pa.ipc.open_file(source).read_all()
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording") from None
    except pa.ArrowInvalid:
        pass
    # A partial file from a killed replay has no footer: read its stream part.
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(b"ARROW1"):
            raise pa.ArrowInvalid("not an Arrow IPC file")
        reader = pa.ipc.open_stream(pa.py_buffer(data[8:]))
    except (pa.ArrowInvalid, OSError) as exc:
        raise RecordingError(f"{path}: not a readable recording ({exc})") from None
    # The kill may have come in the middle of writing a batch: keep every complete batch before it.
    batches: list[pa.RecordBatch] = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError):
            break
    return pa.Table.from_batches(batches, schema=reader.schema)


def read_recording(path: str | os.PathLike[str]) -> pl.DataFrame:
    """All events of a recording, one row each, columns as in :mod:`replaylib.record.schema`."""
    path = os.fspath(path)
    table = _read_table(path)
    missing = [f for f in FIELDS if f not in table.column_names]
    if missing:
        raise RecordingError(f"{path}: not a replaylib recording (missing columns: {', '.join(missing[:5])})")
    return pl.from_arrow(table.replace_schema_metadata(None))  # type: ignore[return-value]


def recording_metadata(path: str | os.PathLike[str]) -> RecordingMeta:
    """The typed schema metadata of a recording."""
    path = os.fspath(path)
    try:
        schema = pa.ipc.open_file(path).schema
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording") from None
    except pa.ArrowInvalid:
        schema = _read_table(path).schema
    raw = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    return parse_metadata(raw, path)


__all__ = ["RecordingError", "RecordingMeta", "read_recording", "recording_metadata"]
