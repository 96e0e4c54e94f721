"""Writing traces: canonical Mooncake JSONL, plain or gzip, written atomically."""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO

import msgspec

from replaylib.trace.model import Request

_ENCODER = msgspec.json.Encoder()


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, gzip_output: bool | None = None) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    On any exception the temporary file is removed and ``path`` keeps whatever it
    held before.  Gzip output (chosen by a ``.gz`` suffix unless ``gzip_output``
    says otherwise) is deterministic: no name and a zero mtime in the header.
    """
    path = os.fspath(path)
    if gzip_output is None:
        gzip_output = path.endswith(".gz")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        with os.fdopen(fd, "wb") as raw:
            if gzip_output:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                    yield gz  # type: ignore[misc]
            else:
                yield raw
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def encode_rows(rows: Iterable[Request]) -> Iterator[bytes]:
    """Canonical JSONL bytes for ``rows``, one line each (field order fixed, no spaces)."""
    encode = _ENCODER.encode
    for row in rows:
        yield encode(row) + b"\n"


def write_trace(path: str | os.PathLike[str], rows: Iterable[Request], *, batch: int = 4096) -> int:
    """Write ``rows`` as canonical Mooncake JSONL (gzip when ``path`` ends in .gz).

    Streaming and atomic: the file appears only when every row was written.
    Reading the file back and writing it again reproduces it byte for byte.
    Returns the number of rows written.
    """
    n = 0
    buf: list[bytes] = []
    with atomic_output(path) as out:
        for line in encode_rows(rows):
            buf.append(line)
            if len(buf) >= batch:
                out.write(b"".join(buf))
                n += len(buf)
                buf.clear()
        out.write(b"".join(buf))
        n += len(buf)
    return n
