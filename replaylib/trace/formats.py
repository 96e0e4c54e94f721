"""Which trace format a file holds, told by its bytes (not its name), with a pointer to ``import`` for the others.

``record`` and ``validate`` replay the formats the importer writes: Mooncake
JSONL (plain or gzip) and Parquet (:data:`replaylib.trace.importers.sinks.PARQUET_SCHEMA`,
or any Parquet file with the trace's column names).  A CSV, an Arrow file or
anything else is refused with a :class:`TraceError` that says what the file
looks like and which ``python -m replaylib import`` command converts it.
"""

from __future__ import annotations

import gzip
import os
import zlib

from replaylib.trace.model import TraceError

#: The formats :func:`replaylib.trace.read_trace` reads.
READABLE = ("jsonl", "parquet")
_PEEK = 4096
_IMPORT = "python -m replaylib import"
#: A CSV header naming these columns is that source format (see ``import --help``).
_CSV_FORMATS = (("ContextTokens", "azure"), ("Request tokens", "burstgpt"))


def sniff(path: str | os.PathLike[str]) -> str:
    """``"jsonl"`` or ``"parquet"`` for a readable trace; raises :class:`TraceError` for anything else."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_PEEK)
    except OSError as exc:
        raise TraceError(path, None, None, f"cannot open: {exc.strerror or exc}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1"):
        raise TraceError(path, None, None, "this is an Arrow IPC file (a replaylib recording?), not a trace; "
                         "replay .jsonl, .jsonl.gz or .parquet traces (`show` summarises a recording)")
    text = head
    if head.startswith(b"\x1f\x8b"):
        try:
            text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, _PEEK)
        except zlib.error as exc:
            raise TraceError(path, None, None, f"cannot read (corrupt gzip stream?): {exc}") from None
        if not text:  # the first block holds no data yet (a large header): read a little more
            with gzip.open(path, "rb") as gz:
                try:
                    text = gz.read(_PEEK)
                except (OSError, EOFError) as exc:
                    raise TraceError(path, None, None, f"cannot read (corrupt gzip stream?): {exc}") from None
    first = text.lstrip().split(b"\n", 1)[0]
    if not first or first.startswith((b"{", b"[")):
        return "jsonl"  # JSON lines (or empty: the JSONL reader says so, naming the file)
    raise TraceError(path, 1, None, _not_a_trace(first))


def _not_a_trace(first: bytes) -> str:
    if b"\x00" in first or not _is_text(first):
        return (f"not a trace replaylib reads (binary data); record and validate read Mooncake JSONL (.jsonl, .jsonl.gz) "
                f"and Parquet traces: convert other formats with `{_IMPORT} FORMAT SRC -o trace.jsonl.gz` (see `import --help`)")
    line = first.decode("utf-8", "replace").strip()
    shown = line if len(line) <= 80 else line[:77] + "..."
    if "," in line or "\t" in line:
        fmt = next((f for column, f in _CSV_FORMATS if column in line), None)
        how = (f"`{_IMPORT} {fmt} SRC -o trace.jsonl.gz`" if fmt else
               f"`{_IMPORT} csv SRC -o trace.jsonl.gz --map timestamp=COL,input_length=COL,output_length=COL --time-unit ms`")
        return f"this is CSV (header {shown!r}), not a JSONL trace; convert it with {how}"
    return (f"not a JSONL trace (line 1 is {shown!r}); record and validate read Mooncake JSONL (.jsonl, .jsonl.gz) and "
            f"Parquet traces: convert other formats with `{_IMPORT} FORMAT SRC -o trace.jsonl.gz` (see `import --help`)")


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(data) - 4  # a multi-byte character cut at the end of the peek is still text
    return True
