"""Incremental, crash-safe, atomic writing of a recording.

Rows are buffered and flushed as record batches every ``batch_rows`` rows, so
memory stays flat however long the replay.  While the replay runs, the events
go to ``<path>.partial`` as an **Arrow IPC stream**, one ``write`` call per
batch: a process killed at any moment (SIGKILL included) leaves a partial file
that ends at a batch boundary and that plain ``pyarrow.ipc.open_stream`` and
``polars.read_ipc_stream`` read, every complete batch in it.  When the replay
finishes, the stream is converted to the **Arrow IPC file** format (the one
with a footer, that ``read_recording`` and ``diff`` require) in a temporary
file beside ``<path>``, which is then renamed over it: ``<path>`` is at every
moment either the previous recording or the new one, complete.

Two replays to the same ``<path>``: the partial file is held under an
exclusive ``flock`` for the writer's life, and a second writer that cannot
take it refuses at once (:class:`OutputError`) — the first replay's recording
is published, the second's is never started.  A lock dies with its process,
so a killed replay leaves no stale lock, only its readable partial.

Ending a replay: :meth:`close` publishes; :meth:`abort` (interrupt, crash)
keeps the partial, ended properly; :meth:`discard` (bad input) deletes it.
A write that fails (a full disk) raises :class:`OutputError` naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import tempfile
from types import TracebackType

import msgspec
import pyarrow as pa

from replaylib.record.schema import ARROW_SCHEMA, FIELDS, EventRow
from replaylib.report.output import OutputError, check_output


#: Signals held back while a batch is written (see ``RecordingWriter._write_batch``).
_DEFERRED = frozenset({signal.SIGINT, signal.SIGTERM})


def partial_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + ".partial"


class _Pending:
    """The file-like sink the Arrow stream writer writes into: bytes wait here until :meth:`take`."""

    closed = False

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def _fail(path: str, exc: OSError, doing: str) -> OutputError:
    return OutputError(f"{path}: cannot {doing}: {exc.strerror or exc}")


def _open_locked(partial: str) -> int:
    """Open ``partial`` for writing under an exclusive lock, emptied; refuse if another writer holds it."""
    for _ in range(5):
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _fail(partial, exc, "create the recording's partial file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise OutputError(
                    f"{partial}: another replay is writing this recording right now (its partial file is locked); "
                    "wait for it to finish or record to another --out"
                ) from None
            raise _fail(partial, exc, "lock the recording's partial file") from None
        try:
            same = os.stat(partial).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file another writer renamed away while we waited
            os.ftruncate(fd, 0)
            return fd
        os.close(fd)
    raise OutputError(f"{partial}: the partial file keeps being replaced by another writer; record to another --out")


_FLOAT_FIELDS = tuple(i for i, f in enumerate(ARROW_SCHEMA) if pa.types.is_floating(f.type))
_LINES = msgspec.json.Encoder()


def rows_to_batch(rows: list[EventRow], schema: pa.Schema) -> pa.RecordBatch:
    """One Arrow record batch of ``rows``.

    The rows go to Arrow as JSON lines read by pyarrow's JSON reader against the
    schema, not through ``pa.array`` on Python lists: that asks pandas whether the
    lists are pandas objects, importing pandas (about 0.2 s) wherever it is
    installed.  JSON has no NaN or infinity, so a batch holding one (no built-in
    column does) takes the ``pa.array`` path; both give the same arrays.
    """
    from pyarrow import json as pa_json

    tuples = [msgspec.structs.astuple(r) for r in rows]
    if any((v := t[i]) is not None and v - v != 0 for t in tuples for i in _FLOAT_FIELDS):  # NaN or +-inf
        arrays = [pa.array(col, type=schema.field(i).type) for i, col in enumerate(zip(*tuples, strict=True))]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
    table = pa_json.read_json(pa.BufferReader(_LINES.encode_lines(rows)),
                              read_options=pa_json.ReadOptions(use_threads=False, block_size=1 << 30),
                              parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))
    return pa.RecordBatch.from_arrays([table.column(i).combine_chunks() for i in range(len(schema))], schema=schema)


class RecordingWriter:
    """Append :class:`EventRow` s; ``close()`` publishes the file, ``abort()`` keeps it partial, ``discard()`` drops it."""

    def __init__(self, path: str | os.PathLike[str], metadata: dict[str, str], *, batch_rows: int = 256) -> None:
        self.path = os.fspath(path)
        self.partial = partial_path(self.path)
        check_output(self.path, create_folders=True)  # a folder, a device, a read-only place: refused here
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise _fail(directory, exc, "create the recording's folder") from None
        self.schema = ARROW_SCHEMA.with_metadata({k: str(v) for k, v in metadata.items()})
        self._fd = _open_locked(self.partial)
        self._pending = _Pending()
        self._writer = pa.ipc.new_stream(pa.PythonFile(self._pending, mode="w"), self.schema)
        # An empty first batch puts the schema (and the metadata) on disk at once: the partial file is a
        # readable, empty recording from the start, not an empty file (publishing skips empty batches).
        self._write_batch(pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in self.schema], schema=self.schema))
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
        rows, self._rows = self._rows, []
        self._write_batch(rows_to_batch(rows, self.schema))
        self.rows_written += len(rows)

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        """Encode ``batch`` and write it out with Ctrl-C / SIGTERM held back meanwhile (delivered right
        after), so an interrupt never leaves half a batch for :meth:`abort` to end the stream after."""
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
        try:
            self._writer.write_batch(batch)
            self._write_out()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _write_out(self) -> None:
        """The stream's new bytes in one ``write`` (a kill cannot split it): the partial ends at a batch boundary."""
        data = memoryview(self._pending.take())
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            raise _fail(self.partial, exc, "write") from None

    def close(self) -> str:
        """Finish the recording and move it into place atomically; returns the final path."""
        try:
            self._end_stream()
        except OutputError:
            self.discard()
            raise
        try:
            with pa.memory_map(self.partial) as src:
                reader = pa.ipc.open_stream(src)
                fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".publishing",
                                           dir=os.path.dirname(os.path.abspath(self.path)))
                try:
                    with os.fdopen(fd, "wb") as fh, pa.ipc.new_file(pa.PythonFile(fh, mode="w"), reader.schema) as out:
                        for batch in reader:
                            if batch.num_rows:
                                out.write_batch(batch)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, self.path)
                except BaseException:
                    os.unlink(tmp)
                    raise
        except OSError as exc:
            self.discard()
            raise _fail(self.path, exc, "publish the recording") from None
        os.unlink(self.partial)
        self._release()
        return self.path

    def abort(self) -> str:
        """End the stream but leave it under its ``.partial`` name (interrupt, crash); returns that path."""
        try:
            self._end_stream()
        finally:
            self._release()
        return self.partial

    def discard(self) -> None:
        """Drop the partial file (the replay stopped on bad input: nothing half-written stays)."""
        self._open = False
        if self._fd >= 0:
            try:
                os.unlink(self.partial)
            except FileNotFoundError:
                pass
            self._release()

    def _end_stream(self) -> None:
        if self._open:
            self._open = False
            self.flush()
            self._writer.close()  # the end-of-stream marker
            self._write_out()

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # and with it the lock
            self._fd = -1

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


assert FIELDS[0] == "kind"  # the writer relies on field order == column order
