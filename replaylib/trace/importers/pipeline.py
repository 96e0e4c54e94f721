"""The format-independent part of an import: order, window, sample, ids, write.

Every source yields :class:`SourceBatch` es.  Rows then go, one at a time and
in a fixed order, through:

1. the order check (streaming) -- or, with ``sort``, a stable in-memory sort;
2. the time origin: the first source row, before any filter;
3. ``end_s`` (streaming stops at the first row at or after it), the source's
   own drop reasons, ``start_s``, ``sample``;
4. rebasing: the first written row is at 0; ``speedup`` divides;
5. hash ids (synthesised or re-blocked), then the output batch.

Times are integer nanoseconds until they are written, so no rounding happens
on the way.  A written time is an int when it is a whole number of
milliseconds, else a float (the nearest double to the exact value): Azure's
100 ns timestamps survive as e.g. ``3435948.056``.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Iterator
from hashlib import blake2b
from itertools import repeat

from replaylib.report.output import OutputError, check_output

from replaylib.trace.importers.blocks import Reblocker, Synthesiser, check_ratio
from replaylib.trace.importers.formats import open_source
from replaylib.trace.importers.options import FORMATS, ImportOptions, ImportReport, TraceImportError
from replaylib.trace.importers.sinks import JsonlSink, ParquetSink, output_kind
from replaylib.trace.importers.source import Source, SourceBatch
from replaylib.trace.model import Request
from replaylib.trace.writer import atomic_output

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000

#: Options that only some formats take, with their CLI spelling.
_ONLY_FOR: dict[str, tuple[str, frozenset[str]]] = {
    "columns": ("--map", frozenset({"csv", "parquet"})),
    "time_unit": ("--time-unit", frozenset({"csv", "parquet"})),
    "time_format": ("--time-format", frozenset({"csv", "parquet", "azure"})),
    "model": ("--model", frozenset({"burstgpt"})),
    "log_type": ("--log-type", frozenset({"burstgpt"})),
    "source_block_size": ("--source-block-size", frozenset({"mooncake", "bailian", "csv", "parquet"})),
}


def import_trace(fmt: str, src: str | os.PathLike[str], dst: str | os.PathLike[str], options: ImportOptions | None = None) -> ImportReport:
    """Import the ``fmt`` trace at ``src`` into a replaylib trace at ``dst``.

    ``dst`` ends in ``.jsonl``, ``.jsonl.gz`` or ``.parquet``.  The output is
    written atomically: on any error :class:`TraceImportError` (a
    :class:`~replaylib.trace.TraceError`) is raised and ``dst`` keeps whatever
    it held before.  Same inputs and options give a byte-identical output.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    opts = options or ImportOptions()
    _check_options(fmt, src, dst, opts)
    source = open_source(fmt, src, opts)
    ids: Synthesiser | Reblocker
    if source.ids_block_size is None:
        ids = Synthesiser(opts.block_size, opts.shared_prefix_tokens)
    else:
        if opts.shared_prefix_tokens:
            raise TraceImportError(src, None, None, f"--shared-prefix-tokens only applies to sources without hash ids; {fmt} has them")
        why = check_ratio(source.ids_block_size, opts.block_size)
        if why:
            raise TraceImportError(src, None, None, why)
        ids = Reblocker(source.ids_block_size, opts.block_size)
    sort = opts.sort if opts.sort is not None else fmt == "mooncake"
    kind = output_kind(dst)
    try:
        with atomic_output(dst, gzip_output=False if kind == "parquet" else None) as fh:
            sink = JsonlSink(fh) if kind == "jsonl" else ParquetSink(fh)
            run = _Run(source, opts, ids, sink)
            try:
                if sort:
                    run.consume(iter([_sorted(source)]), check_order=False, holds_all=True)
                else:
                    run.consume(source.batches(), check_order=True, holds_all=False)
                if run.written == 0:
                    raise TraceImportError(src, None, None, f"nothing to write: {_dropped_text(run)}")
            except BaseException:
                sink.abort()
                raise
            sink.close()
    except OSError as exc:  # the sources turn their own read errors into TraceImportErrors: this is the output's
        raise OutputError(f"{dst}: cannot write: {exc.strerror or exc}") from None
    notes = []
    if sort:
        notes.append("sorted by timestamp in memory (stable)")
    if isinstance(ids, Reblocker) and ids.adjusted:
        notes.append(
            f"{ids.adjusted:,} row(s) had a source hash_ids count other than ceil(input_length / "
            f"{ids.source_block_size}); surplus ids were ignored, missing ones made fresh"
        )
    span_s = run.last_ns / _NS_PER_S
    return ImportReport(
        format=fmt,
        source=src,
        output=dst,
        rows_read=run.read,
        rows_written=run.written,
        dropped=dict(run.dropped),
        span_s=span_s,
        rate_per_s=run.written / span_s if span_s > 0 else math.inf,
        sorted=sort,
        stopped_early=run.stopped,
        hash_ids=ids.describe(),
        notes=notes,
    )


def _check_options(fmt: str, src: str, dst: str, o: ImportOptions) -> None:
    def bad(flag: str, message: str) -> TraceImportError:
        return TraceImportError(src, None, None, f"{flag}: {message}")

    if fmt not in FORMATS:
        raise TraceImportError(src, None, None, f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if output_kind(dst) is None:
        raise bad("-o", f"output '{dst}' must end in .jsonl, .jsonl.gz or .parquet")
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise bad("-o", "the output is the source file")
    check_output(dst)  # a folder, a missing or read-only folder: refused before the source is read
    for name, (flag, formats) in _ONLY_FOR.items():
        if getattr(o, name) not in (None, {}) and fmt not in formats:
            raise bad(flag, f"applies only to {', '.join(sorted(formats))}, not to {fmt}")
    if o.block_size < 1:
        raise bad("--block-size", f"must be >= 1, got {o.block_size}")
    if o.source_block_size is not None and o.source_block_size < 1:
        raise bad("--source-block-size", f"must be >= 1, got {o.source_block_size}")
    if o.shared_prefix_tokens < 0:
        raise bad("--shared-prefix-tokens", f"must be >= 0, got {o.shared_prefix_tokens}")
    if not (math.isfinite(o.speedup) and o.speedup > 0):
        raise bad("--speedup", f"must be a finite number > 0, got {o.speedup}")
    if o.start_s is not None and not (math.isfinite(o.start_s) and o.start_s >= 0):
        raise bad("--start", f"must be a finite number of seconds >= 0, got {o.start_s}")
    if o.end_s is not None and not (o.end_s > (o.start_s or 0.0)):
        raise bad("--end", f"must be greater than --start ({o.start_s or 0.0}), got {o.end_s}")
    if o.sample is not None and not (0 < o.sample <= 1):
        raise bad("--sample", f"must be a fraction in (0, 1], got {o.sample}")
    if o.limit is not None and o.limit < 1:
        raise bad("--limit", f"must be >= 1, got {o.limit}")
    if o.batch_rows < 1:
        raise bad("batch_rows", f"must be >= 1, got {o.batch_rows}")


def _sorted(source: Source) -> SourceBatch:
    """The whole source as one batch, stably sorted by timestamp (held in memory)."""
    parts = list(source.batches())
    t = [x for b in parts for x in b.t_ns]
    order = sorted(range(len(t)), key=t.__getitem__)

    def column(name: str, fill: object) -> list:
        values = [x for b in parts for x in (getattr(b, name) or repeat(fill, len(b.t_ns)))]
        return [values[i] for i in order]

    return SourceBatch(
        rows=column("rows", 0),
        t_ns=[t[i] for i in order],
        input_length=column("input_length", 0),
        output_length=column("output_length", 0),
        drop=column("drop", 0),
        hash_ids=column("hash_ids", None),
        session_id=column("session_id", None),
        delay_ns=column("delay_ns", None),
    )


class _Sampler:
    """Keeps a row (or a whole session) when a keyed hash of its id falls under the fraction."""

    def __init__(self, fraction: float, seed: int) -> None:
        self._threshold = math.floor(fraction * 2.0**64)
        self._key = str(seed).encode()[:64]

    def __call__(self, row: int, session: str | int | None) -> bool:
        key = f"r{row}" if session is None else f"s{session!r}"
        digest = blake2b(key.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little") < self._threshold


class _Run:
    """The row loop and its counters (kept together so the loop reads as one function)."""

    def __init__(self, source: Source, opts: ImportOptions, ids: Synthesiser | Reblocker, sink: JsonlSink | ParquetSink) -> None:
        self.source = source
        self.opts = opts
        self.ids = ids
        self.sink = sink
        self.read = 0
        self.written = 0
        self.last_ns = 0
        self.dropped: dict[str, int] = {}
        self.stopped: str | None = None

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def consume(self, batches: Iterator[SourceBatch], *, check_order: bool, holds_all: bool) -> None:
        """Run every row through the steps in the module doc.  ``holds_all``: the
        batches hold the whole (sorted) source, so rows left after a stop count as dropped."""
        o = self.opts
        source = self.source
        reasons = source.reasons
        start_ns = 0 if o.start_s is None else round(o.start_s * _NS_PER_S)
        end_ns = round(o.end_s * _NS_PER_S) if o.end_s is not None and math.isfinite(o.end_s) else math.inf
        limit = o.limit or -1
        speedup = o.speedup
        sampler = _Sampler(o.sample, o.seed) if o.sample is not None and o.sample < 1 else None
        synth = self.ids if isinstance(self.ids, Synthesiser) else None
        reblock = self.ids if isinstance(self.ids, Reblocker) else None
        batch_rows = o.batch_rows
        write = self.sink.write
        buf: list[Request] = []
        origin = base = None
        prev_t = -math.inf
        prev_row = 0
        out_ns = 0
        read = written = total = 0
        # The loop allocates a list per row and creates no cycles: pausing the
        # cyclic GC saves collections that could find nothing (as the reader does).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for b in batches:
                n = len(b.t_ns)
                total += n
                for row, t, isl, osl, drop, hids, session, delay in zip(
                    b.rows,
                    b.t_ns,
                    b.input_length,
                    b.output_length,
                    b.drop or repeat(0, n),
                    b.hash_ids or repeat(None, n),
                    b.session_id or repeat(None, n),
                    b.delay_ns or repeat(None, n),
                ):
                    read += 1
                    if check_order:
                        if t < prev_t:
                            self._backwards(row, t, prev_row, prev_t)
                        prev_t, prev_row = t, row
                    if origin is None:
                        origin = t
                    off = t - origin
                    if off >= end_ns:
                        self._drop("after --end")
                        self.stopped = f"reached --end ({o.end_s:g} s after the first source row)"
                        break
                    if drop:
                        self._drop(reasons[drop - 1])
                        continue
                    if off < start_ns:
                        self._drop("before --start")
                        continue
                    if sampler is not None and not sampler(row, session):
                        self._drop("sampled out")
                        continue
                    if base is None:
                        base = off
                    out_ns = off - base
                    if speedup != 1.0:
                        out_ns = round(out_ns / speedup)
                    ts = out_ns // _NS_PER_MS if out_ns % _NS_PER_MS == 0 else out_ns / _NS_PER_MS
                    if delay is not None:
                        if speedup != 1.0:
                            delay = round(delay / speedup)
                        delay = delay // _NS_PER_MS if delay % _NS_PER_MS == 0 else delay / _NS_PER_MS
                    buf.append(Request(ts, isl, osl, synth(isl) if synth else reblock(hids, isl), session, delay))  # type: ignore[misc]
                    written += 1
                    if len(buf) >= batch_rows:
                        write(buf)
                        buf = []
                    if written == limit:
                        self.stopped = f"reached --limit ({limit:,} rows written)"
                        break
                if self.stopped is not None:
                    break
            if buf:
                write(buf)
        finally:
            if gc_was_enabled:
                gc.enable()
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        self.read, self.written, self.last_ns = read, written, out_ns
        if holds_all and self.stopped is not None:
            left = total - read
            if left:
                self.read += left
                self._drop("after --end" if self.stopped.startswith("reached --end") else "over --limit", left)
            self.stopped = None  # every row was read; the ones left are counted as dropped

    def _backwards(self, row: int, t: int, prev_row: int, prev_t: int) -> None:
        s = self.source
        raise TraceImportError(
            s.path,
            row,
            s.time_column,
            f"timestamp goes backwards by {(prev_t - t) / _NS_PER_MS:,.3f} ms ({s.unit} {prev_row} is later); "
            "the source must be time-ordered, or import with --sort (holds the trace in memory)",
            unit=s.unit,
            what="column" if s.unit == "data row" else "field",
        )


def _dropped_text(run: _Run) -> str:
    if not run.read:
        return "the source holds no rows"
    parts = ", ".join(f"{n:,} {reason}" for reason, n in run.dropped.items())
    return f"all {run.read:,} rows read were dropped ({parts})"
