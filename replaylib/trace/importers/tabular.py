"""CSV and Parquet sources, parsed and validated a batch at a time with pyarrow + polars.

CSV is read with ``pyarrow.csv.open_csv`` (streaming, every used column as
text) and Parquet with ``ParquetFile.iter_batches``; each batch becomes a
polars frame, is converted with vectorised expressions and checked: the first
bad value raises :class:`TraceImportError` naming the 1-based data row and the
column.  Memory is one batch plus Arrow's read-ahead (about 32 CSV blocks of
``batch_rows * 16`` bytes: 32 MiB by default), whatever the file length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import msgspec
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from replaylib.trace.importers.options import TimeUnit, TraceImportError
from replaylib.trace.importers.source import SourceBatch

#: Datetime layouts tried, in order, on the first value when no format is given.
DATETIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
)
_UNIT_NS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_CSV_BYTES_PER_ROW = 16  #: CSV read block = batch_rows * this (1 MiB for the default 65,536 rows)


class Filter(msgspec.Struct, frozen=True):
    """Drop rows whose ``column`` is not ``value`` (compared case-insensitively)."""

    column: str
    value: str
    reason: str


class TableSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Which source columns hold what, and how to read the time column."""

    timestamp: str
    input_length: str
    output_length: str
    session_id: str | None = None
    hash_ids: str | None = None
    time_unit: TimeUnit | None  #: None: only valid for a native datetime column
    time_format: str | None = None
    filters: tuple[Filter, ...] = ()
    zero_output_reason: str = "zero output tokens"
    ids_block_size: int | None = None

    def columns(self) -> list[str]:
        named = [self.timestamp, self.input_length, self.output_length, self.session_id, self.hash_ids]
        named += [f.column for f in self.filters]
        return list(dict.fromkeys(c for c in named if c is not None))


class TableSource:
    """A CSV (plain or gzip) or Parquet file read through a :class:`TableSpec`."""

    unit = "data row"

    def __init__(self, path: str, spec: TableSpec, *, parquet: bool, batch_rows: int) -> None:
        self.path = path
        self.spec = spec
        self.parquet = parquet
        self.batch_rows = batch_rows
        self.time_column = spec.timestamp
        self.ids_block_size = spec.ids_block_size if spec.hash_ids else None
        self.reasons = (*(f.reason for f in spec.filters), spec.zero_output_reason, "zero input tokens")
        self._time_format: str | None = spec.time_format

    # -- reading ---------------------------------------------------------------------------

    def batches(self) -> Iterator[SourceBatch]:
        first = 1
        frames = self._parquet_frames() if self.parquet else self._csv_frames()
        for frame in frames:
            if frame.height:
                yield self._convert(frame, first)
                first += frame.height

    def _csv_frames(self) -> Iterator[pl.DataFrame]:
        cols = self.spec.columns()
        header = self._csv_header()
        self._missing(header)
        # Every column is read as (UTF-8 checked) text, the unused ones too: a file with bytes that are not
        # UTF-8 is refused wherever they are, naming the line, instead of imported as if it were clean.
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in header}, check_utf8=True)
        # Arrow reads ahead about 32 blocks, so the block size bounds the memory.
        read = pacsv.ReadOptions(block_size=max(1 << 12, self.batch_rows * _CSV_BYTES_PER_ROW))
        stream = _arrow_input(self.path)
        reader = None
        try:
            try:
                reader = pacsv.open_csv(stream, read_options=read, convert_options=convert)
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                raise self._csv_error(exc) from None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowInvalid, OSError, EOFError) as exc:
                    raise self._csv_error(exc) from None
                yield pl.from_arrow(batch.select(cols))  # type: ignore[misc]
        finally:
            if reader is not None:
                reader.close()
            stream.close()

    def _csv_header(self) -> list[str]:
        stream = _arrow_input(self.path)
        try:
            return pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
        except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError) as exc:
            raise self._csv_error(exc) from None
        finally:
            stream.close()

    def _csv_error(self, exc: BaseException) -> TraceImportError:
        """Arrow's CSV error; for text that is not UTF-8, with the line and byte Arrow does not name."""
        if "utf8" in str(exc).lower().replace("-", ""):
            at = _first_non_utf8(self.path)
            if at is not None:
                line, offset, byte = at
                return TraceImportError(self.path, line - 1 if line > 1 else None, None, f"line {line}: not UTF-8 text (byte {byte:#04x} at offset "
                                        f"{offset:,} of the {'decompressed ' if _is_gzip(self.path) else ''}file)")
        return TraceImportError(self.path, None, None, f"cannot read as CSV: {exc}")

    def _parquet_frames(self) -> Iterator[pl.DataFrame]:
        try:
            pf = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise TraceImportError(self.path, None, None, f"cannot read as Parquet: {exc}") from None
        with pf:
            self._missing(pf.schema_arrow.names)
            try:
                for batch in pf.iter_batches(batch_size=self.batch_rows, columns=self.spec.columns()):
                    yield pl.from_arrow(batch)  # type: ignore[misc]
            except (pa.ArrowException, OSError) as exc:
                raise TraceImportError(self.path, None, None, f"cannot read as Parquet: {exc}") from None

    def _missing(self, header: list[str]) -> None:
        for col in self.spec.columns():
            if col not in header:
                shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
                raise TraceImportError(self.path, None, col, f"missing column; the header has: {shown}")

    # -- converting --------------------------------------------------------------------------

    def _convert(self, df: pl.DataFrame, first: int) -> SourceBatch:
        s = self.spec
        t = self._times(df[s.timestamp], first)
        isl = _counts(df[s.input_length])
        osl = _counts(df[s.output_length])
        ids = _ids(df[s.hash_ids]) if s.hash_ids else None
        self._check(df, first, t, isl, osl, ids)
        codes = _drop_codes([_keep(df[f.column], f.value) for f in s.filters], isl, osl)
        return SourceBatch(
            rows=range(first, first + df.height),
            t_ns=t.to_list(),
            input_length=isl.to_list(),
            output_length=osl.to_list(),
            drop=codes.to_list() if (codes != 0).any() else None,
            hash_ids=ids.to_list() if ids is not None else None,
            session_id=_session_list(df[s.session_id]) if s.session_id else None,
        )

    def _times(self, col: pl.Series, first: int) -> pl.Series:
        """The time column as Int64 nanoseconds; null where a value does not parse."""
        s = self.spec
        dtype = col.dtype
        if dtype.is_temporal():
            if s.time_unit not in (None, "datetime"):
                raise TraceImportError(self.path, None, s.timestamp, f"is a {dtype} column; use --time-unit datetime (or leave it out)")
            if dtype == pl.Date:
                return col.cast(pl.Datetime("ns")).dt.epoch("ns")
            if dtype == pl.Duration:
                return col.cast(pl.Duration("ns")).cast(pl.Int64)
            return col.cast(pl.Datetime("ns", dtype.time_zone)).dt.epoch("ns")  # type: ignore[attr-defined]
        if s.time_unit is None:
            raise TraceImportError(self.path, None, s.timestamp, "needs --time-unit (s, ms, us, ns or datetime)")
        if s.time_unit == "datetime":
            if dtype != pl.String:
                raise TraceImportError(self.path, None, s.timestamp, f"is a {dtype} column, not datetime text")
            if s.time_format is None:
                fast = _iso_ns(col)
                if fast is not None:
                    return fast
            self._time_format = self._time_format or self._guess_format(col, first)
            return col.str.strip_chars().str.to_datetime(self._time_format, time_unit="ns", strict=False).dt.epoch("ns")
        factor = _UNIT_NS[s.time_unit]
        limit = (2**63 - 1) // factor  # larger values would overflow int64 nanoseconds: reported as bad
        if dtype == pl.String:
            col = col.str.strip_chars()
        elif not (dtype.is_integer() or dtype.is_float()):
            raise TraceImportError(self.path, None, s.timestamp, f"is a {dtype} column, not a number of {s.time_unit}")
        as_int = col.cast(pl.Int64, strict=False) if not dtype.is_float() else pl.Series([None] * len(col), dtype=pl.Int64)
        from_int = pl.select(pl.when(as_int.abs() <= limit).then(as_int * factor)).to_series()
        if not dtype.is_float() and as_int.null_count() == col.null_count():
            return from_int
        f = col.cast(pl.Float64, strict=False)
        from_float = pl.select(pl.when(f.is_finite() & (f.abs() < float(limit))).then((f * factor).round(0)).cast(pl.Int64))
        return from_int.fill_null(from_float.to_series())

    def _guess_format(self, col: pl.Series, first: int) -> str:
        """The first of :data:`DATETIME_FORMATS` that parses the batch's first value."""
        present = col.is_not_null().arg_true()
        if not len(present):
            raise TraceImportError(self.path, first, self.spec.timestamp, "empty value")
        i = int(present[0])
        value = col.slice(i, 1).str.strip_chars()
        if not value[0]:
            raise TraceImportError(self.path, first + i, self.spec.timestamp, "empty value")
        for fmt in DATETIME_FORMATS:
            if value.str.to_datetime(fmt, time_unit="ns", strict=False).null_count() == 0:
                return fmt
        raise TraceImportError(
            self.path,
            first + i,
            self.spec.timestamp,
            f"cannot parse {value[0]!r} as a datetime in any of the layouts {', '.join(DATETIME_FORMATS)}; "
            "pass --time-format",
        )

    def _check(
        self, df: pl.DataFrame, first: int, t: pl.Series, isl: pl.Series, osl: pl.Series, ids: pl.Series | None
    ) -> None:
        """Raise on the first row holding a bad value (columns checked left to right)."""
        s = self.spec
        bad = {
            s.timestamp: t.is_null(),
            s.input_length: isl.is_null() | (isl < 0),
            s.output_length: osl.is_null() | (osl < 0),
        }
        if ids is not None and s.hash_ids:
            bad[s.hash_ids] = ids.is_null() | (ids.list.min() < 0).fill_null(False)
        any_bad = pl.select(pl.any_horizontal(list(bad.values()))).to_series()
        if not any_bad.any():
            return
        i = int(any_bad.arg_true()[0])
        col = next(name for name, flags in bad.items() if flags[i])
        raise TraceImportError(self.path, first + i, col, self._explain(col, df[col][i]))

    def _explain(self, col: str, raw: object) -> str:
        s = self.spec
        shown = repr(raw)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return "empty value"
        if col == s.timestamp:
            if s.time_unit == "datetime":
                return f"cannot parse {shown} as a datetime (format {self._time_format})"
            try:
                number = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                number = math.nan
            if math.isfinite(number):
                return f"{shown} {s.time_unit} is out of range (int64 nanoseconds reach about 292 years)"
            return f"cannot parse {shown} as a finite number of {s.time_unit}"
        if col == s.hash_ids:
            if isinstance(raw, str):
                return "hash ids must be a list<int> column (Parquet), not text"
            return f"expected a list of integers >= 0, got {shown}"
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return f"cannot parse {shown} as a token count (an integer >= 0)"
        if value < 0:
            return f"negative token count {shown}"
        return f"cannot parse {shown} as a token count (an integer >= 0)"


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _first_non_utf8(path: str) -> tuple[int, int, int] | None:
    """(1-based line, byte offset, the byte) of the first bytes of ``path`` that are not UTF-8, or None."""
    import codecs
    import gzip

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as fh:
        while block := fh.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                bad = max(exc.start, 0)
                return line + block[:bad].count(b"\n"), offset + bad, block[bad] if bad < len(block) else 0
            line += block.count(b"\n")
            offset += len(block)
    return None


def _arrow_input(path: str) -> pa.NativeFile:
    """A native Arrow stream over ``path``, gunzipped when it starts with the gzip magic.

    Native (not a Python file object) so that Arrow's read-ahead threads never
    call back into Python, even when the import stops before the end of the file.
    """
    try:
        raw = pa.OSFile(path, "rb")
    except (OSError, pa.ArrowException) as exc:
        raise TraceImportError(path, None, None, f"cannot open: {exc}") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return pa.CompressedInputStream(raw, "gzip")
    raw.seek(0)
    return raw


def _iso_ns(col: pl.Series) -> pl.Series | None:
    """ISO-8601 text (naive, or all with zone offsets) as Int64 ns via Arrow's fast parser.

    None when some value is not strict ISO-8601 (the caller then parses with
    polars, which marks exactly the bad rows).
    """
    arr = col.to_arrow()
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", "UTC")):
        try:
            return pl.Series(col.name, arr.cast(typ).cast(pa.int64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _counts(col: pl.Series) -> pl.Series:
    """A token count column as Int64: integers, or integral floats; null for anything else."""
    dtype = col.dtype
    if dtype.is_integer():
        return col.cast(pl.Int64, strict=False)
    if dtype == pl.String:
        col = col.str.strip_chars()
        as_int = col.cast(pl.Int64, strict=False)
        if as_int.null_count() == col.null_count():
            return as_int
    elif dtype.is_float():
        as_int = pl.Series(col.name, [None] * len(col), pl.Int64)
    else:
        return pl.Series(col.name, [None] * len(col), pl.Int64)
    f = col.cast(pl.Float64, strict=False)
    integral = pl.select(
        pl.when(f.is_finite() & (f == f.floor()) & (f.abs() < 2.0**53)).then(f).cast(pl.Int64)
    ).to_series()
    return as_int.fill_null(integral)


def _ids(col: pl.Series) -> pl.Series:
    """A list<int> column as list<Int64>; null rows for any other type (reported as bad)."""
    dtype = col.dtype
    if not isinstance(dtype, (pl.List, pl.Array)) or not dtype.inner.is_integer():
        return pl.Series(col.name, [None] * len(col), pl.List(pl.Int64))
    if dtype.inner == pl.UInt64:  # ids above int64 become -1: reported as bad
        return col.list.eval(pl.element().cast(pl.Int64, strict=False).fill_null(-1))
    return col.cast(pl.List(pl.Int64))


def _keep(col: pl.Series, value: str) -> pl.Series:
    return (col.cast(pl.String).str.to_lowercase() == value.lower()).fill_null(False)


def _drop_codes(keeps: list[pl.Series], isl: pl.Series, osl: pl.Series) -> pl.Series:
    """0 to keep, else the 1-based reason: the filters in order, then zero output, then zero input."""
    conds = [~k for k in keeps] + [osl == 0, isl == 0]
    expr = pl.lit(0, pl.Int8)
    for code in range(len(conds), 0, -1):  # built inside out: the first matching reason wins
        expr = pl.when(pl.lit(conds[code - 1])).then(pl.lit(code, pl.Int8)).otherwise(expr)
    return pl.select(expr).to_series()


def _session_list(col: pl.Series) -> list[str | int | None]:
    if col.dtype.is_integer():
        return col.cast(pl.Int64).to_list()
    return col.cast(pl.String).to_list()

