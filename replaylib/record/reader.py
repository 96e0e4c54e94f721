"""Reading a recording back: a polars DataFrame and its typed metadata."""

from __future__ import annotations

import os

import msgspec
import polars as pl
import pyarrow as pa

from replaylib.errors import ReplaylibError
from replaylib.record.schema import FIELDS, METADATA_KEYS, OPTIONAL_METADATA_KEYS


class RecordingError(ReplaylibError):
    """A file that is not a replaylib recording, or a damaged one."""


class RecordingMeta(msgspec.Struct, frozen=True, kw_only=True):
    replaylib_version: str
    schema_version: int
    planner_name: str
    planner_version: int
    scenario_name: str
    scenario_hash: str
    trace_path: str
    trace_sha256: str
    systems_sha256: str
    system_name: str
    seed: int
    ttft_target_ms: float
    itl_target_ms: float
    gpus_per_worker: int
    trace_mode: str = "open_loop"  #: "open_loop" | "closed_loop" (absent from schema-1 recordings)

    @property
    def planner(self) -> str:
        return f"{self.planner_name}@{self.planner_version}"


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
    missing = [k for k in METADATA_KEYS if k not in raw]
    if missing:
        raise RecordingError(f"{path}: recording metadata lacks {', '.join(missing)}")
    try:
        known = {k: raw[k] for k in (*METADATA_KEYS, *OPTIONAL_METADATA_KEYS) if k in raw}
        return msgspec.convert(known, RecordingMeta, strict=False)
    except msgspec.ValidationError as exc:
        raise RecordingError(f"{path}: bad recording metadata: {exc}") from None
