"""JSON-lines sources: Mooncake-style traces and Alibaba Qwen-Bailian traces.

Both are read line by line (plain or gzip), so memory holds one batch of rows;
Bailian additionally keeps one ``chat_id -> root chat_id`` entry per chat
(about 100 bytes each) to give every turn its session's id.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Annotated

import msgspec
from msgspec import Meta

from replaylib.trace.importers.blocks import MAX_ID
from replaylib.trace.importers.options import TraceImportError
from replaylib.trace.importers.source import SourceBatch
from replaylib.trace.reader import request_from_mapping

_ANY = msgspec.json.Decoder()


class _Columns:
    """Column lists of the batch being filled."""

    __slots__ = ("rows", "t", "isl", "osl", "drop", "ids", "session", "delay")

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.t: list[int] = []
        self.isl: list[int] = []
        self.osl: list[int] = []
        self.drop: list[int] = []
        self.ids: list[list[int]] = []
        self.session: list[str | int | None] = []
        self.delay: list[int | None] = []

    def batch(self, *, sessions: bool, delays: bool) -> SourceBatch:
        return SourceBatch(
            rows=self.rows,
            t_ns=self.t,
            input_length=self.isl,
            output_length=self.osl,
            drop=self.drop if any(self.drop) else None,
            hash_ids=self.ids,
            session_id=self.session if sessions else None,
            delay_ns=self.delay if delays else None,
        )


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for every non-blank line; gzip detected by magic bytes."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TraceImportError(path, None, None, f"cannot open: {exc.strerror or exc}") from None
    # Not reader.open_binary: its GzipFile does not close the file under it.
    with raw, (gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw) as fh:
        try:
            for no, line in enumerate(fh, 1):
                if line.strip():
                    yield no, line
        except (OSError, EOFError) as exc:
            raise TraceImportError(path, None, None, f"cannot read (corrupt gzip stream?): {exc}") from None


def _ms_to_ns(value: int | float) -> int:
    return value * 1_000_000 if value.__class__ is int else round(value * 1_000_000)  # type: ignore[return-value]


class MooncakeSource:
    """Mooncake JSONL with upstream variants: aliases, float timestamps, sessions and delays.

    Each line is validated like :func:`replaylib.trace.read_trace` does (same
    messages, naming the line and field); unknown fields are ignored.
    """

    unit = "line"
    time_column = "timestamp"
    reasons: tuple[str, ...] = ()

    def __init__(self, path: str, *, source_block_size: int | None, batch_rows: int) -> None:
        self.path = path
        self.ids_block_size = source_block_size or 512
        self.batch_rows = batch_rows

    def batches(self) -> Iterator[SourceBatch]:
        cols = _Columns()
        sessions = delays = False
        for no, raw in _lines(self.path):
            try:
                obj = _ANY.decode(raw)
            except msgspec.DecodeError as exc:
                raise TraceImportError(self.path, no, None, f"malformed JSON: {exc}", unit="line") from None
            if not isinstance(obj, dict):
                raise TraceImportError(self.path, no, None, f"expected a JSON object, got {type(obj).__name__}", unit="line")
            req = request_from_mapping(obj, self.path, no)
            if req.hash_ids and max(req.hash_ids) > MAX_ID:
                raise TraceImportError(self.path, no, "hash_ids", f"id {max(req.hash_ids)} does not fit in int64", unit="line", what="field")
            cols.rows.append(no)
            cols.t.append(_ms_to_ns(req.timestamp))
            cols.isl.append(req.input_length)
            cols.osl.append(req.output_length)
            cols.drop.append(0)
            cols.ids.append(req.hash_ids)
            cols.session.append(req.session_id)
            cols.delay.append(None if req.delay is None else _ms_to_ns(req.delay))
            sessions = sessions or req.session_id is not None
            delays = delays or req.delay is not None
            if len(cols.rows) >= self.batch_rows:
                yield cols.batch(sessions=sessions, delays=delays)
                cols = _Columns()
        if cols.rows:
            yield cols.batch(sessions=sessions, delays=delays)


Count = Annotated[int, Meta(ge=0)]


class BailianRow(msgspec.Struct):
    """One line of a Qwen-Bailian trace (unknown fields ignored)."""

    chat_id: int
    parent_chat_id: int  #: -1 for the first turn of a session
    timestamp: Annotated[float, Meta(ge=0)]  #: seconds since the trace start
    input_length: Count
    output_length: Count
    hash_ids: list[Annotated[int, Meta(ge=0, le=MAX_ID)]]  #: one per 16 tokens
    type: str | None = None
    turn: int | None = None


_BAILIAN = msgspec.json.Decoder(BailianRow)


class BailianSource:
    """Alibaba Qwen-Bailian JSONL: sessions from the root chat, 16-token hash ids."""

    unit = "line"
    time_column = "timestamp"
    reasons = ("zero output tokens", "zero input tokens")

    def __init__(self, path: str, *, source_block_size: int | None, batch_rows: int) -> None:
        self.path = path
        self.ids_block_size = source_block_size or 16
        self.batch_rows = batch_rows

    def batches(self) -> Iterator[SourceBatch]:
        root_of: dict[int, int] = {}
        cols = _Columns()
        decode = _BAILIAN.decode
        for no, raw in _lines(self.path):
            try:
                row = decode(raw)
            except msgspec.ValidationError as exc:
                raise _validation_error(self.path, no, str(exc)) from None
            except msgspec.DecodeError as exc:
                raise TraceImportError(self.path, no, None, f"malformed JSON: {exc}", unit="line") from None
            if row.parent_chat_id < 0:
                root = row.chat_id
            else:
                root = root_of.get(row.parent_chat_id, row.parent_chat_id)
            root_of[row.chat_id] = root
            cols.rows.append(no)
            cols.t.append(round(row.timestamp * 1_000_000_000))
            cols.isl.append(row.input_length)
            cols.osl.append(row.output_length)
            cols.drop.append(1 if row.output_length == 0 else 2 if row.input_length == 0 else 0)
            cols.ids.append(row.hash_ids)
            cols.session.append(root)
            if len(cols.rows) >= self.batch_rows:
                yield cols.batch(sessions=True, delays=False)
                cols = _Columns()
        if cols.rows:
            yield cols.batch(sessions=True, delays=False)


def _validation_error(path: str, line: int, text: str) -> TraceImportError:
    """Turn a msgspec validation message into an error naming the line and field."""
    if text.startswith("Object missing required field `"):
        return TraceImportError(path, line, text.split("`")[1], "missing", unit="line", what="field")
    message, _, where = text.rpartition(" - at `$")
    if not message:
        return TraceImportError(path, line, None, text, unit="line")
    return TraceImportError(path, line, where.rstrip("`").lstrip("."), message, unit="line", what="field")
