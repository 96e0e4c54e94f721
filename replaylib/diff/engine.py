"""Comparing two recordings with polars joins: no Python loop over rows.

Alignment: tick rows by ``tick`` (a repeated tick number is aligned by its
occurrence); every other event by (its tick, its kind, its order among the
events of that kind at that tick), so an event inserted on one side shows up
as one extra event, not as a shift of everything after it.  Assertion verdicts,
recorded once at the end, align by their order.

What counts: the columns of the judged classes (``only``, default decisions;
see :mod:`replaylib.diff.policy`) decide whether two recordings are the same;
the other columns are compared too and summarised.  Numbers are equal within
their column's tolerance (``|a - b| <= max(abs, rel * max(|a|, |b|))``, floats
only), null equals null, null differs from any value, NaN equals NaN.  ``seq``
(row positions) and the histogram columns are not compared unless named.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import polars as pl

from replaylib.diff.model import (
    ClassCount,
    ColumnCount,
    ColumnTolerance,
    ContextRow,
    DiffError,
    DiffReport,
    Divergence,
    EventDiff,
    FieldDiff,
    KindDiff,
    KpiRow,
    MetadataMismatch,
    MetaDiff,
    TickSpan,
    Value,
)
from replaylib.diff.policy import ComparePolicy, ToleranceSpec, make_policy
from replaylib.record.kpis import KPI_SPECS, Kpis, compute_kpis
from replaylib.record.reader import RecordingMeta, read_metadata, read_recording, recording_metadata
from replaylib.record.schema import FIELDS, KIND_CLASSES, KINDS, METADATA_KEYS, NOT_COMPARED, PLANNER_METADATA_PREFIX, ColumnClass, column_spec

#: Columns left out unless named with ``columns=`` (declared in the schema).
IGNORED_BY_DEFAULT: tuple[str, ...] = NOT_COMPARED

#: Metadata keys listed first, in this order; any other key follows in name order.
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
_D = "__d_"  # prefix of the per-column "differs beyond tolerance" flags
_X = "__x_"  # prefix of the per-column "differs at all" flags
_ANY = "__any"  # aligned row with at least one judged column differing
_ANYX = "__anyx"  # aligned row with any compared column differing
_DIV = "__div"  # judged difference, or present on one side only where presence is judged
_DIVX = "__divx"  # any difference, or present on one side only
_PJ = "__pj"  # presence of this row is judged
_OCC = "__occ"  # occurrence within the alignment group
_T = "__t"  # the tick an event aligns on (-1 for assertion verdicts)
_IN_A, _IN_B = "__in_a", "__in_b"


# -- metadata -----------------------------------------------------------------------------------

#: Metadata as stored (key -> utf-8 string), or typed.
MetaLike = RecordingMeta | Mapping[str, str]
_ABSENT = "(absent)"


def raw_metadata(meta: MetaLike) -> dict[str, str]:
    """Metadata as the file stores it: typed metadata back to its keys (the planner's own as ``planner.<key>``)."""
    if not isinstance(meta, RecordingMeta):
        return dict(meta)
    raw = {k: str(getattr(meta, k)) for k in METADATA_KEYS}
    if meta.overrides:
        raw["overrides"] = msgspec.json.encode(meta.overrides, order="sorted").decode()
    raw.update({PLANNER_METADATA_PREFIX + k: v for k, v in meta.planner_metadata.items()})
    return raw


def _meta_rank(key: str) -> tuple[int, str]:
    return (META_ORDER.index(key) if key in META_ORDER else len(META_ORDER), key)


def compare_metadata(a: MetaLike, b: MetaLike) -> list[MetaDiff]:
    """Every metadata key whose value differs: :data:`META_ORDER` first, then every other key in name
    order — the planners' own (``planner.<key>``, from their ``metadata()`` hook) and any key this
    version does not know, so metadata a newer writer adds shows up without a change here.

    A key present on one side only shows ``(absent)`` on the other.  When both values are JSON
    objects (a planner's full configuration), each differing field is its own row,
    ``<key>.<dotted.field>``, so a changed knob reads as one line instead of two walls of JSON.
    """
    ra, rb = raw_metadata(a), raw_metadata(b)
    out = []
    for key in sorted(set(ra) | set(rb), key=_meta_rank):
        va, vb = ra.get(key, _ABSENT), rb.get(key, _ABSENT)
        if va != vb:
            out += _json_field_diffs(key, va, vb)
    return out


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
    if not text.startswith("{"):
        return None
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
    only: str | Sequence[str] | None = None,
    tolerance: ToleranceSpec | None = None,
    policy: ComparePolicy | None = None,
    columns: Sequence[str] | None = None,
    context: int = 2,
    force: bool = False,
) -> DiffReport:
    """Diff two recording files, metadata first (see :func:`diff_frames` for the events)."""
    path_a, path_b = os.fspath(path_a), os.fspath(path_b)
    frame_a, raw_a, meta_a = load_side(path_a)
    frame_b, raw_b, meta_b = load_side(path_b)
    if (meta_a is None) != (meta_b is None):  # a recording against a golden: compare what the golden holds
        from replaylib.golden.text import META_EXCLUDED

        frame_a, frame_b = (_at_golden_precision(f, raw) if m is not None else f
                            for f, raw, m in ((frame_a, raw_a, meta_a), (frame_b, raw_b, meta_b)))  # fmt: skip
        raw_a, raw_b = ({k: v for k, v in raw.items() if k not in META_EXCLUDED} for raw in (raw_a, raw_b))
    meta_diffs = compare_metadata(raw_a, raw_b)
    forced = check_metadata(meta_diffs, force=force)
    report = diff_frames(
        frame_a,
        frame_b,
        only=only,
        tolerance=tolerance,
        policy=policy,
        columns=columns,
        context=context,
        meta_a=meta_a,
        meta_b=meta_b,
    )
    return msgspec.structs.replace(
        report,
        path_a=path_a,
        path_b=path_b,
        planner_a=report.planner_a or _planner(raw_a),
        planner_b=report.planner_b or _planner(raw_b),
        metadata=meta_diffs,
        forced=forced,
    )


GOLDEN_SUFFIX = ".golden"


def load_side(path: str) -> tuple[pl.DataFrame, dict[str, str], RecordingMeta | None]:
    """A diff side: a recording (frame, raw and typed metadata) or a ``.golden`` file (no typed metadata)."""
    if not path.endswith(GOLDEN_SUFFIX):
        meta = recording_metadata(path)
        return read_recording(path), read_metadata(path), meta
    from replaylib.golden.text import parse_golden

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise DiffError(f"{path}: no such golden") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffError(f"{path}: cannot read the golden ({exc})") from None
    golden = parse_golden(text, source=path)
    return golden.frame, golden.metadata, None


def _at_golden_precision(frame: pl.DataFrame, raw: Mapping[str, str]) -> pl.DataFrame:
    from replaylib.golden.text import golden_text, parse_golden

    return parse_golden(golden_text(frame, raw), source="recording").frame


def _planner(raw: Mapping[str, str]) -> str | None:
    name, version = raw.get("planner_name"), raw.get("planner_version")
    return f"{name}@{version}" if name and version else None


def diff_frames(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    only: str | Sequence[str] | None = None,
    tolerance: ToleranceSpec | None = None,
    policy: ComparePolicy | None = None,
    columns: Sequence[str] | None = None,
    context: int = 2,
    meta_a: RecordingMeta | None = None,
    meta_b: RecordingMeta | None = None,
    kpis: bool = True,
) -> DiffReport:
    """Diff two recordings given as DataFrames (as :func:`read_recording` returns them).

    ``only`` / ``tolerance`` (or a ready ``policy``) say which classes are judged and how
    closely numbers must agree; ``columns`` instead names the compared columns, all judged
    (``kind`` is always an alignment key).  ``context`` is the number of ticks shown either
    side of the first divergence.  ``meta_a`` / ``meta_b`` only label the report and the KPIs.
    """
    if context < 0:
        raise DiffError(f"context must be >= 0 ticks, got {context}")
    policy = policy if policy is not None else make_policy(only, tolerance)
    a, b = _prepare(a, "A"), _prepare(b, "B")
    compared, only_a_cols, only_b_cols = select_columns(a, b, columns)
    a, b = _harmonise(a, b, compared)
    dtypes = {c: a.schema[c] for c in compared}
    named = columns is not None
    judged = set(compared) if named else {c for c in compared if policy.judges(c)}
    tols = {c: policy.tolerance(c) for c in compared}

    value_cols = [c for c in compared if c != "tick"]
    spec = _Spec(value_cols, dtypes, tols, judged)
    ticks = _align(_ticks(a, value_cols), _ticks(b, value_cols), ["tick", _OCC], spec, pl.lit(True))
    events = _align(_events(a, value_cols), _events(b, value_cols), ["kind", _T, _OCC], spec, _presence_judged(policy, named))

    summary = _tick_summary(ticks, spec)
    counts = _column_counts(ticks, summary, spec)
    class_ticks = _class_ticks(ticks, spec, policy, named)
    only_a = TickSpan(count=summary["only_a"], first=summary["only_a_first"], last=summary["only_a_last"])
    only_b = TickSpan(count=summary["only_b"], first=summary["only_b_first"], last=summary["only_b_last"])
    kinds = _event_summary(events, spec, policy, named)
    judged_missing = [c for c in (*only_a_cols, *only_b_cols) if named or policy.judges(c)]
    identical = (
        summary["differing"] == 0
        and only_a.count == 0
        and only_b.count == 0
        and not judged_missing
        and all(k.judged_differences == 0 for k in kinds)
    )
    exact = (
        identical
        and summary["differing_any"] == 0
        and not only_a_cols
        and not only_b_cols
        and all(k.differing_any == 0 and k.only_a == 0 and k.only_b == 0 for k in kinds)
    )
    kpis_a = compute_kpis(a, meta_a) if kpis else None
    kpis_b = compute_kpis(b, meta_b) if kpis else None
    return DiffReport(
        identical=identical,
        exact=exact,
        only=["columns"] if named else policy.only,
        planner_a=meta_a.planner if meta_a is not None else None,
        planner_b=meta_b.planner if meta_b is not None else None,
        columns=list(compared),
        judged_columns=[c for c in compared if c in judged],
        tolerances=[
            ColumnTolerance(column=c, rel=tols[c].rel, abs=tols[c].abs)
            for c in compared
            if c in judged and dtypes[c].is_float()
        ],
        class_ticks=class_ticks,
        columns_only_a=only_a_cols,
        columns_only_b=only_b_cols,
        ticks_a=summary["ticks_a"],
        ticks_b=summary["ticks_b"],
        ticks_differing=summary["differing"],
        first_divergence=_first_divergence(ticks, spec, context),
        column_counts=counts,
        only_a=only_a,
        only_b=only_b,
        events=kinds,
        kpis_a=kpis_a,
        kpis_b=kpis_b,
        kpis=kpi_rows(kpis_a, kpis_b) if kpis_a is not None and kpis_b is not None else [],
    )


# -- input checks and column selection ---------------------------------------------------------


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


class _Spec:
    """The compared value columns, their dtypes and tolerances, and which are judged."""

    def __init__(self, value_cols: Sequence[str], dtypes: dict[str, pl.DataType], tols: dict[str, Any], judged: set[str]) -> None:
        self.value_cols = list(value_cols)
        self.dtypes = dtypes
        self.tols = tols
        self.judged = [c for c in value_cols if c in judged]
        self.summarised = [c for c in value_cols if c not in judged]

    def tolerant(self, column: str) -> bool:
        tol = self.tols[column]
        return self.dtypes[column].is_float() and bool(tol.rel or tol.abs)


def _ticks(df: pl.DataFrame, value_cols: Sequence[str]) -> pl.LazyFrame:
    """Tick rows keyed by (tick, occurrence of that tick number: 0 unless a tick repeats)."""
    ticks = df.lazy().filter(pl.col("kind") == "tick").select("tick", *value_cols).collect()
    strictly_increasing = ticks.select((pl.col("tick").diff() > 0).all()).item()
    occ = pl.lit(0, dtype=pl.Int64) if strictly_increasing else pl.int_range(pl.len(), dtype=pl.Int64).over("tick")
    return ticks.lazy().with_columns(occ.alias(_OCC))


def _events(df: pl.DataFrame, value_cols: Sequence[str]) -> pl.LazyFrame:
    """Non-tick rows keyed by (kind, tick, occurrence within that tick and kind); verdicts by their order."""
    key = pl.when(pl.col("kind") == "assertion").then(pl.lit(-1, dtype=pl.Int64)).otherwise(pl.col("tick"))
    return (
        df.lazy()
        .filter(pl.col("kind") != "tick")
        .select("kind", "tick", *value_cols)
        .with_columns(key.alias(_T))
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("kind", _T).alias(_OCC))
    )


def _presence_judged(policy: ComparePolicy, named: bool) -> pl.Expr:
    if named:
        return pl.lit(True)
    mapping = {k: policy.judges_class(c) for k, c in KIND_CLASSES.items()}
    return pl.col("kind").replace_strict(mapping, default=policy.judges_class(ColumnClass.OUTCOME), return_dtype=pl.Boolean)


def _equal(column: str, spec: _Spec) -> tuple[pl.Expr, pl.Expr]:
    """(exactly equal, equal within tolerance); null equals null, NaN equals NaN."""
    a, b = pl.col(column), pl.col(column + _B)
    same = a.eq_missing(b)
    if not spec.tolerant(column):
        return same, same
    tol = spec.tols[column]
    bound = pl.max_horizontal(pl.lit(tol.abs), pl.max_horizontal(a.abs(), b.abs()) * tol.rel)
    return same, same | ((a - b).abs() <= bound).fill_null(False)


def _align(a: pl.LazyFrame, b: pl.LazyFrame, keys: list[str], spec: _Spec, presence_judged: pl.Expr) -> pl.DataFrame:
    """Full join on ``keys``; per value column an ``__x_`` (differs) and a ``__d_`` (beyond tolerance)
    flag; per row ``__any`` / ``__anyx`` and ``__div`` / ``__divx``.

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
    exact_flags, close_flags = [], []
    for c in spec.value_cols:
        exact, close = _equal(c, spec)
        exact_flags.append((both & ~exact).alias(_X + c))
        close_flags.append((both & ~close if spec.tolerant(c) else pl.col(_X + c)).alias(_D + c))
    any_judged = pl.any_horizontal(pl.col(_D + c) for c in spec.judged) if spec.judged else pl.lit(False)
    any_diff = pl.any_horizontal(pl.col(_X + c) for c in spec.value_cols) if spec.value_cols else pl.lit(False)
    return (
        joined.with_columns(presence)
        .with_columns(*exact_flags, presence_judged.alias(_PJ))
        .with_columns(close_flags)
        .with_columns(any_judged.alias(_ANY), any_diff.alias(_ANYX))
        .with_columns((pl.col(_ANY) | (~both & pl.col(_PJ))).alias(_DIV), (pl.col(_ANYX) | ~both).alias(_DIVX))
        .collect()
    )


# -- tick results -------------------------------------------------------------------------------


def _tick_summary(ticks: pl.DataFrame, spec: _Spec) -> dict[str, Any]:
    only_a = pl.col(_IN_A) & ~pl.col(_IN_B)
    only_b = pl.col(_IN_B) & ~pl.col(_IN_A)
    tick = pl.col("tick")
    deviations = []
    for c in spec.value_cols:
        if spec.dtypes[c].is_numeric():
            a, b = pl.col(c).cast(pl.Float64), pl.col(c + _B).cast(pl.Float64)
            delta = (a - b).abs().filter(pl.col(_X + c))
            scale = pl.max_horizontal(a.abs(), b.abs()).filter(pl.col(_X + c))
            deviations += [delta.max().alias("__max_abs_" + c), (delta / scale).max().alias("__max_rel_" + c)]
    row = ticks.select(
        pl.col(_IN_A).sum().alias("ticks_a"),
        pl.col(_IN_B).sum().alias("ticks_b"),
        pl.col(_ANY).sum().alias("differing"),
        pl.col(_ANYX).sum().alias("differing_any"),
        only_a.sum().alias("only_a"),
        tick.filter(only_a).min().alias("only_a_first"),
        tick.filter(only_a).max().alias("only_a_last"),
        only_b.sum().alias("only_b"),
        tick.filter(only_b).min().alias("only_b_first"),
        tick.filter(only_b).max().alias("only_b_last"),
        *(pl.col(_D + c).sum() for c in spec.value_cols),
        *(pl.col(_X + c).sum() for c in spec.value_cols),
        *deviations,
    ).row(0, named=True)
    return {k: (int(v) if isinstance(v, (int, bool)) else v) for k, v in row.items()}


def _finite(x: Any) -> float | None:
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    return float(x)


def _column_counts(ticks: pl.DataFrame, summary: dict[str, Any], spec: _Spec) -> list[ColumnCount]:
    out = []
    judged = set(spec.judged)
    for c in spec.value_cols:
        beyond, anyd = summary[_D + c], summary[_X + c]
        if not anyd:
            continue
        out.append(
            ColumnCount(
                column=c,
                ticks=beyond,
                cls=column_spec(c).cls.value,
                judged=c in judged,
                within=anyd - beyond,
                max_abs=_finite(summary.get("__max_abs_" + c)),
                max_rel=_finite(summary.get("__max_rel_" + c)),
            )
        )
    return out


def _class_ticks(ticks: pl.DataFrame, spec: _Spec, policy: ComparePolicy, named: bool) -> list[ClassCount]:
    exprs = []
    classes = []
    for cls in ColumnClass:
        cols = [c for c in spec.value_cols if column_spec(c).cls is cls]
        if cols:
            classes.append(cls)
            exprs.append(pl.any_horizontal(pl.col(_D + c) for c in cols).sum().alias(cls.value))
    if not exprs:
        return []
    row = ticks.select(exprs).row(0, named=True)
    judged = set(spec.judged)
    return [
        ClassCount(
            cls=cls.value,
            judged=any(c in judged for c in spec.value_cols if column_spec(c).cls is cls) if named else policy.judges_class(cls),
            ticks=int(row[cls.value]),
        )
        for cls in classes
    ]


def _first_divergence(ticks: pl.DataFrame, spec: _Spec, context: int) -> Divergence | None:
    first = ticks.filter(pl.col(_DIV)).sort("tick", _OCC).head(1)
    if first.is_empty():
        return None
    row = first.row(0, named=True)
    tick = int(row["tick"])
    window = ticks.filter(pl.col("tick").is_between(tick - context, tick + context)).sort("tick", _OCC)
    fields = _field_diffs(row, spec.judged)
    shown = [f.column for f in fields][:CONTEXT_COLUMNS_MAX]
    if not shown:  # a tick present on one side only
        shown = [c for c in CONTEXT_DEFAULT if c in spec.value_cols] or list(spec.value_cols[:CONTEXT_COLUMNS_MAX])
    return Divergence(
        tick=tick,
        only_in=_only_in(row),
        now_ms_a=row.get("now_ms") if row[_IN_A] else None,
        now_ms_b=row.get("now_ms" + _B) if row[_IN_B] else None,
        fields=fields,
        columns=shown,
        context=_context_rows(window, shown),
        others=[c for c in spec.summarised if row[_D + c]],
    )


def _only_in(row: dict[str, Any]) -> str | None:
    if row[_IN_A] and row[_IN_B]:
        return None
    return "a" if row[_IN_A] else "b"


def _field_diffs(row: dict[str, Any], cols: Sequence[str], flag: str = _D) -> list[FieldDiff]:
    return [FieldDiff(column=c, a=cell(row[c]), b=cell(row[c + _B])) for c in cols if row[flag + c]]


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


def _event_summary(events: pl.DataFrame, spec: _Spec, policy: ComparePolicy, named: bool) -> list[KindDiff]:
    if events.is_empty():
        return []
    per_kind = (
        events.group_by("kind")
        .agg(
            pl.col(_IN_A).sum().alias("count_a"),
            pl.col(_IN_B).sum().alias("count_b"),
            pl.col(_ANY).sum().alias("differing"),
            pl.col(_ANYX).sum().alias("differing_any"),
            (pl.col(_IN_A) & ~pl.col(_IN_B)).sum().alias("only_a"),
            (pl.col(_IN_B) & ~pl.col(_IN_A)).sum().alias("only_b"),
        )
        .sort(_kind_order(), "kind")
    )
    order = [_kind_order(), "kind", _T, _OCC]
    judged_first = events.filter(pl.col(_DIV)).sort(order).group_by("kind", maintain_order=True).first()
    any_first = events.filter(pl.col(_DIVX)).sort(order).group_by("kind", maintain_order=True).first()
    first_judged = {r["kind"]: r for r in judged_first.iter_rows(named=True)}  # one row per kind
    first_any = {r["kind"]: r for r in any_first.iter_rows(named=True)}
    out = []
    for r in per_kind.iter_rows(named=True):  # one row per kind
        kind = r["kind"]
        cls = KIND_CLASSES.get(kind, ColumnClass.OUTCOME)
        f, judged = (first_judged[kind], True) if kind in first_judged else (first_any.get(kind), False)
        out.append(
            KindDiff(
                kind=kind,
                count_a=int(r["count_a"]),
                count_b=int(r["count_b"]),
                differing=int(r["differing"]),
                only_a=int(r["only_a"]),
                only_b=int(r["only_b"]),
                first=None if f is None else _event_diff(f, spec, judged),
                cls=cls.value,
                judged=True if named else policy.judges_class(cls),
                differing_any=int(r["differing_any"]),
            )
        )
    return out


def _event_diff(row: dict[str, Any], spec: _Spec, judged: bool) -> EventDiff:
    return EventDiff(
        kind=row["kind"],
        index=int(row[_OCC]),
        only_in=_only_in(row),
        tick_a=row["tick"] if row[_IN_A] else None,
        tick_b=row["tick" + _B] if row[_IN_B] else None,
        fields=_field_diffs(row, spec.judged) if judged else _field_diffs(row, spec.value_cols, _X),
        judged=judged,
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
    "raw_metadata",
    "kpi_rows",
    "select_columns",
]
