"""Streaming reader for traces: Mooncake-style JSONL (plain or gzip) and Parquet.

The format is told by the file's bytes (:func:`replaylib.trace.formats.sniff`);
a CSV or another format is refused with a pointer to ``import``.  Parquet
traces are read by :mod:`replaylib.trace.parquet` through the same row
validation, so both give the same errors.

The file is read in fixed-size chunks cut at line boundaries, so memory does
not grow with the trace length.  A chunk of canonical rows is decoded in one
``msgspec`` call; a chunk that uses upstream aliases, carries extra fields, has
blank lines or holds an error is decoded line by line, which is what gives
every error its 1-based line number and field.
"""

from __future__ import annotations

import gc
import gzip
import math
import os
import zlib
from collections.abc import Callable, Iterator
from typing import IO

import msgspec

from replaylib.limits import MAX_LINE_BYTES
from replaylib.trace.model import ALIASES, EXPECTED, Request, TraceError

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1 << 20
_FAST = msgspec.json.Decoder(Request)
#: The slow path reads every float itself, so a number beyond float range (``1e400``) becomes inf and is
#: refused by the row's validation, naming its field, instead of failing the whole line's decoding.
_ANY = msgspec.json.Decoder(float_hook=float)
_FIELDS = frozenset(Request.__struct_fields__)


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for binary reading, transparently gunzipping by magic bytes."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise TraceError(str(path), None, None, f"cannot open: {exc.strerror or exc}") from None
    if fh.peek(2)[:2] == _GZIP_MAGIC:
        fh.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]  # owns (and closes) its file
    return fh


def read_trace(path: str | os.PathLike[str], *, sort: bool = False) -> Iterator[Request]:
    """Yield the requests of a trace (Mooncake JSONL, plain or gzip, or Parquet) in arrival order.

    Timestamps must be non-decreasing; ``sort=True`` instead reorders the rows
    by timestamp (stable).  Sorting has to see the whole trace, so only then is
    the trace held in memory.  Raises :class:`TraceError` on the first bad line
    (or Parquet row), and on a file of another format (saying which).
    """
    from replaylib.trace.formats import sniff

    path = str(path)
    stream = _STREAMS[sniff(path)]
    if sort:
        rows = list(stream(path, check_order=False))
        rows.sort(key=_timestamp)
        return iter(rows)
    return stream(path, check_order=True)


def _stream_parquet(path: str, *, check_order: bool) -> Iterator[Request]:
    from replaylib.trace.parquet import stream_parquet

    prev_ts = -1.0
    seen = 0
    for first, rows in stream_parquet(path):
        stamps = [row.timestamp for row in rows]
        if check_order and stamps and (stamps[0] < prev_ts or stamps != sorted(stamps)):
            _first_backwards(path, first, stamps, first - 1, prev_ts)
        if stamps:
            prev_ts = stamps[-1]
        seen += len(rows)
        yield from rows
    if seen == 0:
        raise TraceError(path, None, None, "the trace is empty: it holds no requests")


#: How each format :func:`replaylib.trace.formats.sniff` tells apart is streamed (set below the JSONL reader).
_STREAMS: dict[str, Callable[..., Iterator[Request]]] = {}


def _timestamp(row: Request) -> float:
    return row.timestamp


def _stream(path: str, *, check_order: bool) -> Iterator[Request]:
    prev_ts: float = -1.0
    prev_line = 0
    line_no = 0  # lines consumed before the current chunk
    blank_at: int | None = None  # first blank line not yet followed by a row
    seen = 0
    with open_binary(path) as fh:
        for chunk, n_lines in _chunks(fh, path):
            rows = _decode_fast(chunk, n_lines)
            if rows is None or blank_at is not None:
                numbered, blank_at = _decode_slow(path, chunk, line_no, blank_at)
            else:
                numbered = None
            if numbered is None:
                stamps = [row.timestamp for row in rows]  # type: ignore[union-attr]
                for i, row in enumerate(rows):  # type: ignore[arg-type]
                    if len(row.hash_ids) > row.input_length:
                        raise _too_many_ids(path, line_no + i + 1, row)
                if check_order and stamps and (stamps[0] < prev_ts or stamps != sorted(stamps)):
                    _first_backwards(path, line_no + 1, stamps, prev_line, prev_ts)
                if stamps:
                    prev_ts = stamps[-1]
                    prev_line = line_no + len(stamps)
                yield from rows  # type: ignore[misc]
                seen += len(stamps)
            else:
                for no, row in numbered:
                    ts = row.timestamp
                    if ts < prev_ts and check_order:
                        _backwards(path, no, ts, prev_line, prev_ts)
                    prev_ts = ts
                    prev_line = no
                    yield row
                seen += len(numbered)
            line_no += n_lines
    if seen == 0:
        raise TraceError(path, None, None, "the trace is empty: it holds no requests")


_STREAMS.update(jsonl=_stream, parquet=_stream_parquet)


def _chunks(fh: IO[bytes], path: str) -> Iterator[tuple[bytes, int]]:
    """Yield pieces of the file that end at a line boundary (or at end of file), each with the number of
    lines it holds (counted once, here); a line longer than MAX_LINE_BYTES is refused (no line break in
    sight: ``/dev/zero``, a decompression bomb)."""
    tail = b""
    lines = 0
    while True:
        try:
            block = fh.read(_CHUNK_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise TraceError(path, None, None, f"cannot read: a corrupt or truncated gzip stream ({exc})") from None
        if not block:
            if tail:
                yield tail, tail.count(b"\n") + 1  # its last line has no line break
            return
        cut = block.rfind(b"\n")
        if cut < 0:
            tail += block
            if len(tail) > MAX_LINE_BYTES:
                raise TraceError(path, lines + 1, None, f"line longer than {MAX_LINE_BYTES:,} bytes "
                                 "(replaylib.limits.MAX_LINE_BYTES): not a trace of one request per line?")
            continue
        chunk = tail + block[: cut + 1]
        n = chunk.count(b"\n")
        lines += n
        yield chunk, n
        tail = block[cut + 1 :]


def _decode_fast(chunk: bytes, n_lines: int) -> list[Request] | None:
    """Decode a chunk of canonical rows in one call; None when it needs the slow path."""
    # Decoding allocates one list per row; pausing the cyclic GC meanwhile
    # avoids collections that can find nothing (the rows hold no cycles).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        rows = _FAST.decode_lines(chunk)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    finally:
        if was_enabled:
            gc.enable()
    return rows if len(rows) == n_lines else None


def _decode_slow(
    path: str, chunk: bytes, line_no: int, blank_at: int | None
) -> tuple[list[tuple[int, Request]], int | None]:
    out: list[tuple[int, Request]] = []
    parts = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        parts.pop()
    for i, raw in enumerate(parts):
        no = line_no + i + 1
        if not raw.strip():
            if blank_at is None:
                blank_at = no
            continue
        if blank_at is not None:
            raise TraceError(path, blank_at, None, "blank line between requests (only the end of the file may be blank)")
        out.append((no, parse_row(raw, path, no)))
    return out, blank_at


def parse_row(raw: bytes, path: str, line: int) -> Request:
    """Decode one JSON line into a :class:`Request`, accepting upstream aliases."""
    try:
        obj = _ANY.decode(raw)
    except msgspec.DecodeError as exc:
        raise TraceError(path, line, None, f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise TraceError(path, line, None, f"expected a JSON object, got {type(obj).__name__}")
    return request_from_mapping(obj, path, line)


def request_from_mapping(obj: dict, path: str, line: int) -> Request:
    """Validate one decoded row (aliases allowed, unknown keys ignored)."""
    for alias, canonical in ALIASES.items():
        if alias in obj and canonical not in obj:
            obj[canonical] = obj[alias]
    clean = {k: obj[k] for k in Request.__struct_fields__ if k in obj}
    try:
        row = msgspec.convert(clean, Request)
    except msgspec.ValidationError as exc:
        raise _field_error(path, line, str(exc), clean) from None
    ts = row.timestamp
    if ts.__class__ is float and not math.isfinite(ts):
        raise TraceError(path, line, "timestamp", f"expected {EXPECTED['timestamp']}, got {ts}")
    if len(row.hash_ids) > row.input_length:
        raise _too_many_ids(path, line, row)
    return row


def _too_many_ids(path: str, line: int, row: Request) -> TraceError:
    """More hash ids than input tokens: no block size can give that (one id per block of >= 1 token)."""
    return TraceError(path, line, "hash_ids", f"expected at most input_length ({row.input_length:,}) ids, one per "
                      f"block of input, got {len(row.hash_ids):,}")


def _field_error(path: str, line: int, text: str, obj: dict) -> TraceError:
    """Turn a msgspec validation message into a TraceError naming the field and value."""
    if text.startswith("Object missing required field `"):
        name = text.split("`")[1]
        aliases = [a for a, c in ALIASES.items() if c == name]
        also = f" (or its alias '{aliases[0]}')" if aliases else ""
        return TraceError(path, line, name, f"missing{also}; expected {EXPECTED[name]}")
    loc = text.rsplit(" - at `$", 1)
    if len(loc) == 2:
        where = loc[1].rstrip("`")  # e.g. ".hash_ids[3]"
        field = where.lstrip(".")
        top = field.split("[", 1)[0]
        value = obj.get(top)
        if "[" in field and isinstance(value, list):
            try:
                value = value[int(field.split("[", 1)[1].split("]", 1)[0])]
            except (ValueError, IndexError):
                pass
        got = str(value) if isinstance(value, float) and not math.isfinite(value) else msgspec.json.encode(value).decode()
        if len(got) > 60:
            got = got[:57] + "..."
        return TraceError(path, line, field, f"expected {EXPECTED.get(top, 'a valid value')}, got {got}")
    return TraceError(path, line, None, text)


def _first_backwards(path: str, first: int, stamps: list[float], prev_line: int, prev_ts: float) -> None:
    for i, ts in enumerate(stamps):
        if ts < prev_ts:
            _backwards(path, first + i, ts, prev_line, prev_ts)
        prev_ts, prev_line = ts, first + i


def _backwards(path: str, line: int, ts: float, prev_line: int, prev_ts: float) -> None:
    raise TraceError(
        path,
        line,
        "timestamp",
        f"timestamp {ts} goes backwards (line {prev_line} has {prev_ts}); "
        "timestamps must be non-decreasing, or read with sort=True to reorder",
    )
