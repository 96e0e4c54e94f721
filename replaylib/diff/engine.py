"""Comparing two recordings with polars joins: no Python loop over rows.

Alignment: tick rows by ``tick`` (a repeated tick number is aligned by its
occurrence); every other kind by its order of occurrence within that kind, so
an event inserted on one side shows up as one extra event, not as a shift of
everything after it.  ``seq`` (row positions) and the histogram columns are not
compared by default.  Floats are equal within a relative tolerance
(``|a - b| <= tol * max(|a|, |b|)``; 0 means exact), null equals null, null
differs from any value, NaN equals NaN.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from typing import Any

import msgspec
import polars as pl

from replaylib.diff.model import (
    ColumnCount,
    ContextRow,
    DiffError,
    DiffReport,
    Divergence,
    EventDiff,
    FieldDiff,
    KindDiff,
    KpiRow,
    MetaDiff,
    MetadataMismatch,
    TickSpan,
    Value,
)
from replaylib.record.kpis import KPI_SPECS, Kpis, compute_kpis
from replaylib.record.reader import RecordingMeta, read_recording, recording_metadata
from replaylib.record.schema import FIELDS, KINDS, PLANNER_METADATA_PREFIX

#: Columns left out unless named with ``columns=``: row positions shift when an
#: event is inserted, and the window histograms are summarised by their
#: count / mean / p50 / p99 columns.
IGNORED_BY_DEFAULT: tuple[str, ...] = ("seq", "ttft_hist", "itl_hist")

#: Metadata keys in the order their differences are listed.
META_ORDER: tuple[str, ...] = (
    "planner_name",
    "planner_version",
    "seed",
    "scenario_name",
    "scenario_hash",
    "trace_sha256",
    "trace_path",
    "systems_sha256",
    "system_name",
    "replaylib_version",
    "schema_version",
    "ttft_target_ms",
    "itl_target_ms",
    "gpus_per_worker",
    "trace_mode",
)

#: Metadata keys whose difference makes a diff meaningless (refused unless forced).
REFUSED_KEYS: tuple[str, ...] = ("trace_sha256", "scenario_name")

#: The context table shows the columns differing at the first divergence, at most this many.
CONTEXT_COLUMNS_MAX = 12

#: Columns the context table shows when the first divergence is a tick present on one side only.
CONTEXT_DEFAULT: tuple[str, ...] = ("now_ms", "target_prefill", "target_decode", "cap_prefill_w", "cap_decode_w", "power_total_w")

_B = "__b"  # suffix of B's columns after the join
_D = "__d_"  # prefix of the per-column "differs" flags
_ANY = "__any"  # aligned row with at least one differing column
_DIV = "__div"  # differing or present on one side only
_OCC = "__occ"  # occurrence within the alignment group
_IN_A, _IN_B = "__in_a", "__in_b"


# -- metadata -----------------------------------------------------------------------------------


def compare_metadata(a: RecordingMeta, b: RecordingMeta) -> list[MetaDiff]:
    """The metadata keys whose values differ: :data:`META_ORDER` first, then the planners' own keys.

    A planner's own key (``planner.<key>``, from its ``metadata()`` hook) present on one side only
    shows ``(absent)`` on the other.  When both values are JSON objects (a planner's full
    configuration), each differing field is its own row, ``planner.<key>.<dotted.field>``, so a
    changed knob reads as one line instead of two walls of JSON.
    """
    out = []
    for key in META_ORDER:
        va, vb = getattr(a, key), getattr(b, key)
        if va != vb:
            out.append(MetaDiff(key=key, a=str(va), b=str(vb)))
    own_a, own_b = a.planner_metadata, b.planner_metadata
    for key in sorted(set(own_a) | set(own_b)):
        va, vb = own_a.get(key, _ABSENT), own_b.get(key, _ABSENT)
        if va != vb:
            out += _json_field_diffs(PLANNER_METADATA_PREFIX + key, va, vb)
    return out


_ABSENT = "(absent)"


def _json_field_diffs(key: str, va: str, vb: str) -> list[MetaDiff]:
    ja, jb = _json_object(va), _json_object(vb)
    if ja is None or jb is None:
        return [MetaDiff(key=key, a=va, b=vb)]
    fa, fb = _flatten(ja), _flatten(jb)
    enc = msgspec.json.encode
    return [
        MetaDiff(key=f"{key}.{field}", a=enc(fa[field]).decode() if field in fa else _ABSENT,
                 b=enc(fb[field]).decode() if field in fb else _ABSENT)
        for field in sorted(set(fa) | set(fb))
        if fa.get(field, _ABSENT) != fb.get(field, _ABSENT)
    ] or [MetaDiff(key=key, a=va, b=vb)]  # same fields, different text (formatting): show it whole


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            flat |= _flatten(v, f"{prefix}{k}.")
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def check_metadata(diffs: Sequence[MetaDiff], *, force: bool) -> bool:
    """Raise :class:`MetadataMismatch` for a refused difference unless ``force``; True when one was forced."""
    refused = [d for d in diffs if d.key in REFUSED_KEYS]
    if refused and not force:
        what = "; ".join(f"{d.key} {_short(d.a)} vs {_short(d.b)}" for d in refused)
        raise MetadataMismatch(
            f"refusing to diff recordings of different {'traces' if refused[0].key == 'trace_sha256' else 'scenarios'} "
            f"({what}); their ticks do not correspond. Use --force (force=True) to diff anyway"
        )
    return bool(refused)


def _short(value: str) -> str:
    return value[:12] + "…" if len(value) == 64 else repr(value)


# -- entry points -------------------------------------------------------------------------------


def diff_recordings(
    path_a: str | os.PathLike[str],
    path_b: str | os.PathLike[str],
    *,
    tolerance: float = 0.0,
    columns: Sequence[str] | None = None,
    context: int = 2,
    force: bool = False,
) -> DiffReport:
    """Diff two recording files, metadata first (see :func:`diff_frames` for the events)."""
    path_a, path_b = os.fspath(path_a), os.fspath(path_b)
    meta_a, meta_b = recording_metadata(path_a), recording_metadata(path_b)
    meta_diffs = compare_metadata(meta_a, meta_b)
    forced = check_metadata(meta_diffs, force=force)
    report = diff_frames(
        read_recording(path_a),
        read_recording(path_b),
        tolerance=tolerance,
        columns=columns,
        context=context,
        meta_a=meta_a,
        meta_b=meta_b,
    )
    return msgspec.structs.replace(report, path_a=path_a, path_b=path_b, metadata=meta_diffs, forced=forced)


def diff_frames(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    tolerance: float = 0.0,
    columns: Sequence[str] | None = None,
    context: int = 2,
    meta_a: RecordingMeta | None = None,
    meta_b: RecordingMeta | None = None,
) -> DiffReport:
    """Diff two recordings given as DataFrames (as :func:`read_recording` returns them).

    ``columns`` restricts the compared columns (``kind`` is always the
    alignment key); ``context`` is the number of ticks shown either side of the
    first divergence.  ``meta_a`` / ``meta_b`` only label the report and the KPIs.
    """
    _check_options(tolerance, context)
    a, b = _prepare(a, "A"), _prepare(b, "B")
    compared, only_a_cols, only_b_cols = select_columns(a, b, columns)
    a, b = _harmonise(a, b, compared)
    dtypes = {c: a.schema[c] for c in compared}

    value_cols = [c for c in compared if c != "tick"]
    ticks = _align(_ticks(a, value_cols), _ticks(b, value_cols), ["tick", _OCC], value_cols, dtypes, tolerance)
    events = _align(_events(a, compared), _events(b, compared), ["kind", _OCC], compared, dtypes, tolerance)

    summary = _tick_summary(ticks, value_cols)
    counts = [ColumnCount(column=c, ticks=summary[_D + c]) for c in value_cols if summary[_D + c]]
    only_a = TickSpan(count=summary["only_a"], first=summary["only_a_first"], last=summary["only_a_last"])
    only_b = TickSpan(count=summary["only_b"], first=summary["only_b_first"], last=summary["only_b_last"])
    kinds = _event_summary(events, compared)
    kpis_a, kpis_b = compute_kpis(a, meta_a), compute_kpis(b, meta_b)
    identical = (
        summary["differing"] == 0
        and only_a.count == 0
        and only_b.count == 0
        and not only_a_cols
        and not only_b_cols
        and all(k.differing == 0 and k.only_a == 0 and k.only_b == 0 for k in kinds)
    )
    return DiffReport(
        identical=identical,
        planner_a=meta_a.planner if meta_a is not None else None,
        planner_b=meta_b.planner if meta_b is not None else None,
        tolerance=float(tolerance),
        columns=list(compared),
        columns_only_a=only_a_cols,
        columns_only_b=only_b_cols,
        ticks_a=summary["ticks_a"],
        ticks_b=summary["ticks_b"],
        ticks_differing=summary["differing"],
        first_divergence=_first_divergence(ticks, value_cols, context),
        column_counts=counts,
        only_a=only_a,
        only_b=only_b,
        events=kinds,
        kpis_a=kpis_a,
        kpis_b=kpis_b,
        kpis=kpi_rows(kpis_a, kpis_b),
    )


# -- input checks and column selection ---------------------------------------------------------


def _check_options(tolerance: float, context: int) -> None:
    if not (tolerance >= 0.0) or tolerance == float("inf"):
        raise DiffError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if context < 0:
        raise DiffError(f"context must be >= 0 ticks, got {context}")


def _prepare(df: pl.DataFrame, side: str) -> pl.DataFrame:
    """Check the key columns and put the rows in recording order (by ``seq`` when present)."""
    for key in ("kind", "tick"):
        if key not in df.columns:
            raise DiffError(f"recording {side} has no {key!r} column: not a replaylib recording")
    if df.schema["kind"] != pl.String:
        raise DiffError(f"recording {side}: column 'kind' is {df.schema['kind']}, expected strings")
    if not (df.schema["tick"].is_integer() or df.schema["tick"] == pl.Null):
        raise DiffError(f"recording {side}: column 'tick' is {df.schema['tick']}, expected integers")
    if df.schema["tick"] != pl.Int64:
        df = df.with_columns(pl.col("tick").cast(pl.Int64))
    if "seq" in df.columns and df.schema["seq"].is_numeric() and not df["seq"].is_sorted():
        df = df.sort("seq", maintain_order=True, nulls_last=True)
    return df


def _column_order(names: set[str]) -> list[str]:
    known = [f for f in FIELDS if f in names]
    return known + sorted(names - set(FIELDS))


def select_columns(a: pl.DataFrame, b: pl.DataFrame, columns: Sequence[str] | None) -> tuple[list[str], list[str], list[str]]:
    """(compared columns, columns only A has, columns only B has), in schema order.

    Raises :class:`DiffError` for a named column neither frame has.
    """
    present = set(a.columns) | set(b.columns)
    if columns is None:
        wanted = {c for c in present if c not in IGNORED_BY_DEFAULT}
    else:
        unknown = [c for c in columns if c not in present]
        if unknown:
            raise DiffError("; ".join(_unknown_column(c, present) for c in unknown))
        if not columns:
            raise DiffError("no columns to compare (empty column list)")
        wanted = set(columns)
    wanted.discard("kind")  # the alignment key
    ordered = _column_order(wanted)
    compared = [c for c in ordered if c in a.columns and c in b.columns]
    return compared, [c for c in ordered if c not in b.columns], [c for c in ordered if c not in a.columns]


def _unknown_column(name: str, present: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(present), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else f" (columns: {', '.join(_column_order(present))})"
    return f"unknown column {name!r}{hint}"


def _harmonise(a: pl.DataFrame, b: pl.DataFrame, compared: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast each compared column to one dtype on both sides (e.g. a golden parsed ints where floats were)."""
    casts_a, casts_b = [], []
    for c in compared:
        da, db = a.schema[c], b.schema[c]
        if da == db:
            continue
        target = _common_dtype(c, da, db)
        if da != target:
            casts_a.append(pl.col(c).cast(target))
        if db != target:
            casts_b.append(pl.col(c).cast(target))
    return (a.with_columns(casts_a) if casts_a else a), (b.with_columns(casts_b) if casts_b else b)


def _common_dtype(column: str, da: pl.DataType, db: pl.DataType) -> pl.DataType:
    if da == pl.Null:
        return db
    if db == pl.Null:
        return da
    if da.is_numeric() and db.is_numeric():
        return pl.Float64 if (da.is_float() or db.is_float()) else pl.Int64
    raise DiffError(f"column {column!r} has type {da} in A but {db} in B; cannot compare")


# -- alignment ----------------------------------------------------------------------------------


def _ticks(df: pl.DataFrame, value_cols: Sequence[str]) -> pl.LazyFrame:
    """Tick rows keyed by (tick, occurrence of that tick number: 0 unless a tick repeats)."""
    ticks = df.lazy().filter(pl.col("kind") == "tick").select("tick", *value_cols).collect()
    strictly_increasing = ticks.select((pl.col("tick").diff() > 0).all()).item()
    occ = pl.lit(0, dtype=pl.Int64) if strictly_increasing else pl.int_range(pl.len(), dtype=pl.Int64).over("tick")
    return ticks.lazy().with_columns(occ.alias(_OCC))


def _events(df: pl.DataFrame, compared: Sequence[str]) -> pl.LazyFrame:
    return (
        df.lazy()
        .filter(pl.col("kind") != "tick")
        .select("kind", *compared)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("kind").alias(_OCC))
    )


def _equal(column: str, dtype: pl.DataType, tolerance: float) -> pl.Expr:
    a, b = pl.col(column), pl.col(column + _B)
    same = a.eq_missing(b)
    if tolerance > 0.0 and dtype.is_float():
        close = (a - b).abs() <= pl.max_horizontal(a.abs(), b.abs()) * tolerance
        same = same | close.fill_null(False)
    return same


def _align(
    a: pl.LazyFrame,
    b: pl.LazyFrame,
    keys: list[str],
    value_cols: Sequence[str],
    dtypes: dict[str, pl.DataType],
    tolerance: float,
) -> pl.DataFrame:
    """Full join on ``keys``; one ``__d_<col>`` flag per value column, ``__any`` and ``__div`` per row.

    The rows come out in no particular order: consumers sort the few rows they show.
    """
    joined = a.with_columns(pl.lit(True).alias(_IN_A)).join(
        b.with_columns(pl.lit(True).alias(_IN_B)),
        on=keys,
        how="full",
        coalesce=True,
        suffix=_B,
        maintain_order="none",
    )
    presence = [pl.col(_IN_A).fill_null(False), pl.col(_IN_B).fill_null(False)]
    both = pl.col(_IN_A) & pl.col(_IN_B)
    flags = [(both & ~_equal(c, dtypes[c], tolerance)).alias(_D + c) for c in value_cols]
    any_flag = pl.any_horizontal(pl.col(_D + c) for c in value_cols) if value_cols else pl.lit(False)
    return (
        joined.with_columns(presence)
        .with_columns(flags)
        .with_columns(any_flag.alias(_ANY))
        .with_columns((pl.col(_ANY) | ~both).alias(_DIV))
        .collect()
    )


# -- tick results -------------------------------------------------------------------------------


def _tick_summary(ticks: pl.DataFrame, value_cols: Sequence[str]) -> dict[str, Any]:
    only_a = pl.col(_IN_A) & ~pl.col(_IN_B)
    only_b = pl.col(_IN_B) & ~pl.col(_IN_A)
    tick = pl.col("tick")
    row = ticks.select(
        pl.col(_IN_A).sum().alias("ticks_a"),
        pl.col(_IN_B).sum().alias("ticks_b"),
        pl.col(_ANY).sum().alias("differing"),
        only_a.sum().alias("only_a"),
        tick.filter(only_a).min().alias("only_a_first"),
        tick.filter(only_a).max().alias("only_a_last"),
        only_b.sum().alias("only_b"),
        tick.filter(only_b).min().alias("only_b_first"),
        tick.filter(only_b).max().alias("only_b_last"),
        *(pl.col(_D + c).sum() for c in value_cols),
    ).row(0, named=True)
    return {k: (int(v) if isinstance(v, (int, bool)) else v) for k, v in row.items()}


def _first_divergence(ticks: pl.DataFrame, value_cols: Sequence[str], context: int) -> Divergence | None:
    first = ticks.filter(pl.col(_DIV)).sort("tick", _OCC).head(1)
    if first.is_empty():
        return None
    row = first.row(0, named=True)
    tick = int(row["tick"])
    window = ticks.filter(pl.col("tick").is_between(tick - context, tick + context)).sort("tick", _OCC)
    fields = _field_diffs(row, value_cols)
    shown = [f.column for f in fields][:CONTEXT_COLUMNS_MAX]
    if not shown:  # a tick present on one side only
        shown = [c for c in CONTEXT_DEFAULT if c in value_cols] or list(value_cols[:CONTEXT_COLUMNS_MAX])
    return Divergence(
        tick=tick,
        only_in=_only_in(row),
        now_ms_a=row.get("now_ms") if row[_IN_A] else None,
        now_ms_b=row.get("now_ms" + _B) if row[_IN_B] else None,
        fields=fields,
        columns=shown,
        context=_context_rows(window, shown),
    )


def _only_in(row: dict[str, Any]) -> str | None:
    if row[_IN_A] and row[_IN_B]:
        return None
    return "a" if row[_IN_A] else "b"


def _field_diffs(row: dict[str, Any], cols: Sequence[str]) -> list[FieldDiff]:
    return [FieldDiff(column=c, a=cell(row[c]), b=cell(row[c + _B])) for c in cols if row[_D + c]]


def _context_rows(window: pl.DataFrame, shown: Sequence[str]) -> list[ContextRow]:
    """The (at most 2 x context + 1) ticks around the divergence, as report rows."""
    small = window.select("tick", _IN_A, _IN_B, *shown, *(c + _B for c in shown), *(_D + c for c in shown))
    return [
        ContextRow(
            tick=int(r["tick"]),
            in_a=bool(r[_IN_A]),
            in_b=bool(r[_IN_B]),
            a=[cell(r[c]) for c in shown],
            b=[cell(r[c + _B]) for c in shown],
            differs=[c for c in shown if r[_D + c]],
        )
        for r in small.iter_rows(named=True)
    ]


# -- non-tick events ----------------------------------------------------------------------------


def _kind_order() -> pl.Expr:
    return pl.col("kind").replace_strict({k: i for i, k in enumerate(KINDS)}, default=len(KINDS), return_dtype=pl.Int64)


def _event_summary(events: pl.DataFrame, compared: Sequence[str]) -> list[KindDiff]:
    if events.is_empty():
        return []
    per_kind = (
        events.group_by("kind")
        .agg(
            pl.col(_IN_A).sum().alias("count_a"),
            pl.col(_IN_B).sum().alias("count_b"),
            pl.col(_ANY).sum().alias("differing"),
            (pl.col(_IN_A) & ~pl.col(_IN_B)).sum().alias("only_a"),
            (pl.col(_IN_B) & ~pl.col(_IN_A)).sum().alias("only_b"),
        )
        .sort(_kind_order(), "kind")
    )
    firsts = events.filter(pl.col(_DIV)).sort(_kind_order(), "kind", _OCC).group_by("kind", maintain_order=True).first()
    first_of = {r["kind"]: r for r in firsts.iter_rows(named=True)}  # one row per kind
    out = []
    for r in per_kind.iter_rows(named=True):  # one row per kind
        f = first_of.get(r["kind"])
        out.append(
            KindDiff(
                kind=r["kind"],
                count_a=int(r["count_a"]),
                count_b=int(r["count_b"]),
                differing=int(r["differing"]),
                only_a=int(r["only_a"]),
                only_b=int(r["only_b"]),
                first=None if f is None else _event_diff(f, compared),
            )
        )
    return out


def _event_diff(row: dict[str, Any], compared: Sequence[str]) -> EventDiff:
    tick_col = "tick" if "tick" in compared else None
    return EventDiff(
        kind=row["kind"],
        index=int(row[_OCC]),
        only_in=_only_in(row),
        tick_a=row[tick_col] if tick_col and row[_IN_A] else None,
        tick_b=row[tick_col + _B] if tick_col and row[_IN_B] else None,
        fields=_field_diffs(row, compared),
    )


# -- KPIs and values ----------------------------------------------------------------------------


def kpi_rows(a: Kpis, b: Kpis) -> list[KpiRow]:
    """The KPIs side by side with ``b - a``."""
    rows = []
    for spec in KPI_SPECS:
        va, vb = getattr(a, spec.name), getattr(b, spec.name)
        delta = vb - va if va is not None and vb is not None else None
        rows.append(KpiRow(name=spec.name, label=spec.label, style=spec.style, a=_num(va), b=_num(vb), delta=_num(delta)))
    return rows


def _num(value: int | float | None) -> int | float | None:
    if isinstance(value, float) and value != value:
        return None
    return value


def cell(value: Any) -> Value:
    """A DataFrame cell as a report value (non-finite floats as strings, so JSON round-trips)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, (list, pl.Series)):
        return [int(v) for v in value]
    return str(value)


__all__ = [
    "CONTEXT_DEFAULT",
    "IGNORED_BY_DEFAULT",
    "META_ORDER",
    "REFUSED_KEYS",
    "cell",
    "check_metadata",
    "compare_metadata",
    "diff_frames",
    "diff_recordings",
    "kpi_rows",
    "select_columns",
]
