"""Reading a recording back: a polars DataFrame and its typed metadata."""

from __future__ import annotations

import os

import polars as pl
import pyarrow as pa

from replaylib.record.meta import RecordingError, RecordingMeta, parse_metadata
from replaylib.record.schema import ARROW_SCHEMA, FIELDS


#: The columns every event has (the schema's non-nullable ones): a null in one marks a damaged file.
_REQUIRED = tuple(f.name for f in ARROW_SCHEMA if not f.nullable)
_STREAM_START = b"\xff\xff\xff\xff"  # an Arrow IPC stream's first message (a partial recording)


def _read_table(path: str, *, partial: bool) -> pa.Table:
    """The whole recording.  A complete one is an Arrow IPC *file* (it ends with a footer); a replay's
    ``.partial`` is an IPC *stream* and is read only with ``partial=True``, every complete batch of it."""
    try:
        with pa.memory_map(path) as source:
            return pa.ipc.open_file(source).read_all()
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a folder, not a recording") from None
    except pa.ArrowInvalid:
        pass  # not a complete Arrow file: which kind of incomplete, below
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.startswith(_STREAM_START):
        kind, body = "partial", data  # a replay's partial file: an IPC stream
    elif data.startswith(b"ARROW1"):
        kind, body = "truncated", data[8:]  # a file whose end (the footer) is missing
    else:
        raise RecordingError(f"{path}: not a readable recording (not an Arrow IPC file)")
    if not partial:
        if kind == "partial":
            raise RecordingError(f"{path}: a partial recording (an interrupted replay's events so far, an Arrow IPC stream), "
                                 "not a complete one; read it with read_recording(path, partial=True), "
                                 "pyarrow.ipc.open_stream or polars.read_ipc_stream")
        raise RecordingError(f"{path}: truncated recording: the Arrow file has no footer ({len(data):,} bytes; cut short, or "
                             "its writer was killed); re-record it, or read what is left with read_recording(path, partial=True)")
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
    except (pa.ArrowInvalid, OSError) as exc:
        raise RecordingError(f"{path}: not a readable recording, not even in part ({exc})") from None
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


def read_recording(path: str | os.PathLike[str], *, partial: bool = False) -> pl.DataFrame:
    """All events of a recording, one row each, columns as in :mod:`replaylib.record.schema`.

    Raises :class:`RecordingError` for a missing, foreign, truncated or damaged file, and for an
    interrupted replay's partial file unless ``partial=True`` (which reads every complete batch of
    a partial or truncated recording).
    """
    path = os.fspath(path)
    table = _read_table(path, partial=partial)
    missing = [f for f in FIELDS if f not in table.column_names]
    if missing:
        raise RecordingError(f"{path}: not a replaylib recording (missing columns: {', '.join(missing[:5])})")
    for name in _REQUIRED:
        want, got = ARROW_SCHEMA.field(name).type, table.schema.field(name).type
        if got != want:
            raise RecordingError(f"{path}: damaged: column {name} holds {got}, expected {want}")
        nulls = table.column(name).null_count
        if nulls:
            raise RecordingError(f"{path}: damaged: column {name} has {nulls:,} null values of {table.num_rows:,}; "
                                 "every event has one")
    return pl.from_arrow(table.replace_schema_metadata(None))  # type: ignore[return-value]


def read_metadata(path: str | os.PathLike[str], *, partial: bool = False) -> dict[str, str]:
    """Every key of a recording's schema metadata as strings, in key order (including keys this
    version does not know, so that diffs show metadata added by newer writers or adapters)."""
    path = os.fspath(path)
    try:
        schema = pa.ipc.open_file(path).schema
    except (OSError, pa.ArrowInvalid):  # missing, a folder, not complete: _read_table says which
        schema = _read_table(path, partial=partial).schema
    return dict(sorted((k.decode(), v.decode()) for k, v in (schema.metadata or {}).items()))


def recording_metadata(path: str | os.PathLike[str], *, partial: bool = False) -> RecordingMeta:
    """The typed schema metadata of a recording (``partial``: as for :func:`read_recording`)."""
    path = os.fspath(path)
    return parse_metadata(read_metadata(path, partial=partial), path)


__all__ = ["RecordingError", "RecordingMeta", "read_metadata", "read_recording", "recording_metadata"]
