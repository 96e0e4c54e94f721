"""Key performance indicators of one recording, computed with polars expressions.

Every KPI is derived from the tick rows (plus the number of ``scale`` rows), so
it works on a recording read back with :func:`read_recording` as well as on a
DataFrame rebuilt from a text golden.  Missing columns are treated as all-null
and a KPI whose inputs are all null is ``None``, never a fake 0 (a replay
without a power budget has no budget KPIs).  A NaN reading counts as missing.

Definitions (``Δt`` of a tick = its ``now_ms`` minus the previous tick's; the
first tick's ``Δt`` is its own ``now_ms``: the replay starts at 0):

- requests arrived / completed / dropped / in flight: the last tick row's
  cumulative counters.
- SLA attainment: Σ ``*_within_sla`` / Σ ``*_count`` over tick rows, for TTFT
  and ITL; the combined attainment is the smaller of the two.
- TTFT / ITL p50 and p99: nearest-rank quantile of the whole replay's merged
  window histograms (buckets of :mod:`replaylib.sim.metrics`, reported at the
  bucket's representative value ``GAMMA ** (b - 0.5)``).
- GPU-hours: Σ ``gpus`` × Δt.  Energy: Σ ``power_total_w`` × Δt, in kWh.
- Power: peak = max ``power_total_w``; mean = energy / time, over the ticks
  that have a power reading (time-weighted).
- Budget: the peak budget in force (max ``budget_w``), the peak of
  ``power_total_w / budget_w`` over ticks, and the number of tick rows with
  ``power_total_w > budget_w``; all ``None`` when no tick had a budget.
- Scaling actions: the number of ``scale`` rows.
- Oscillations: per role, the number of direction reversals of the target
  replica count over tick rows (sign changes between consecutive non-zero
  deltas), summed over prefill and decode.
- Assertions passed / failed: the ``assertion`` rows by their verdict
  (``None`` when the recording has no assertion rows).
"""

from __future__ import annotations

import math

import msgspec
import polars as pl

from replaylib.record.reader import RecordingError, RecordingMeta
from replaylib.record.schema import ARROW_SCHEMA
from replaylib.sim.metrics import GAMMA

_MS_PER_HOUR = 3_600_000.0

#: The recording schema as polars dtypes.
POLARS_SCHEMA: pl.Schema = pl.from_arrow(ARROW_SCHEMA.empty_table()).schema  # type: ignore[union-attr]


class Kpis(msgspec.Struct, frozen=True, kw_only=True):
    """The KPIs of one replay (see the module docstring for the definitions)."""

    ticks: int
    duration_s: float | None
    arrived: int | None
    completed: int | None
    dropped: int | None
    in_flight: int | None
    ttft_attainment: float | None  #: fraction 0..1
    itl_attainment: float | None
    sla_attainment: float | None  #: min of the two
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    itl_p50_ms: float | None
    itl_p99_ms: float | None
    gpu_hours: float | None
    energy_kwh: float | None
    power_peak_w: float | None
    power_mean_w: float | None
    budget_peak_w: float | None  #: the largest budget in force during the replay
    power_budget_peak_ratio: float | None  #: max over ticks of power_total_w / budget_w
    budget_violations: int | None  #: tick rows with power_total_w > budget_w
    scaling_actions: int
    oscillations: int
    assertions_passed: int | None = None  #: scenario assertions that held (None: none recorded)
    assertions_failed: int | None = None
    ttft_target_ms: float | None = None  #: from the recording metadata, when given
    itl_target_ms: float | None = None


class KpiSpec(msgspec.Struct, frozen=True):
    """How one KPI is labelled and printed."""

    name: str
    label: str
    style: str  #: "int" | "pct" | "ms" | "w" | "ratio" | "num" | "s"


#: The KPIs in display order (shared by ``format_kpis`` and the diff report).
KPI_SPECS: tuple[KpiSpec, ...] = (
    KpiSpec("ticks", "ticks", "int"),
    KpiSpec("duration_s", "duration", "s"),
    KpiSpec("arrived", "requests arrived", "int"),
    KpiSpec("completed", "requests completed", "int"),
    KpiSpec("dropped", "requests dropped", "int"),
    KpiSpec("in_flight", "requests in flight", "int"),
    KpiSpec("sla_attainment", "SLA attainment", "pct"),
    KpiSpec("ttft_attainment", "TTFT attainment", "pct"),
    KpiSpec("itl_attainment", "ITL attainment", "pct"),
    KpiSpec("ttft_p50_ms", "TTFT p50", "ms"),
    KpiSpec("ttft_p99_ms", "TTFT p99", "ms"),
    KpiSpec("itl_p50_ms", "ITL p50", "ms"),
    KpiSpec("itl_p99_ms", "ITL p99", "ms"),
    KpiSpec("gpu_hours", "GPU-hours", "num"),
    KpiSpec("energy_kwh", "energy (kWh)", "num"),
    KpiSpec("power_peak_w", "peak power", "w"),
    KpiSpec("power_mean_w", "mean power", "w"),
    KpiSpec("budget_peak_w", "budget (peak)", "w"),
    KpiSpec("power_budget_peak_ratio", "peak power / budget", "ratio"),
    KpiSpec("budget_violations", "budget violations", "int"),
    KpiSpec("scaling_actions", "scaling actions", "int"),
    KpiSpec("oscillations", "oscillations", "int"),
    KpiSpec("assertions_passed", "assertions passed", "int"),
    KpiSpec("assertions_failed", "assertions failed", "int"),
)

_TICK_COLUMNS = (
    "tick", "now_ms", "gpus", "power_total_w", "budget_w",
    "ttft_count", "ttft_within_sla", "itl_count", "itl_within_sla",
    "oscillations", "arrived", "completed", "dropped", "in_flight",
    "ttft_hist", "itl_hist",
)  # fmt: skip


def compute_kpis(df: pl.DataFrame, meta: RecordingMeta | None = None) -> Kpis:
    """The KPIs of the recording ``df`` (as from :func:`read_recording`); ``meta`` adds the SLA targets."""
    ticks = _tick_frame(df)
    _check_pairs(ticks, ("ttft_hist", "itl_hist"))
    lazy = ticks.lazy()
    scalars_lf = lazy.select(
        pl.len().alias("ticks"),
        *_duration_exprs(),
        *_last_exprs(),
        *_attainment_exprs(),
        *_energy_exprs(),
        *_budget_exprs(),
        pl.col("oscillations").drop_nulls().last().alias("oscillations"),
    )
    scale_lf = df.lazy().filter(pl.col("kind") == "scale") if "kind" in df.columns else df.lazy().head(0)
    verdicts_lf = (
        df.lazy().filter(pl.col("kind") == "assertion").select(pl.col("passed").cast(pl.Boolean))
        if "kind" in df.columns and "passed" in df.columns
        else pl.LazyFrame({"passed": []}, schema={"passed": pl.Boolean})
    )
    frames = pl.collect_all(
        [
            scalars_lf,
            scale_lf.select(pl.len().alias("n")),
            verdicts_lf.select(pl.len().alias("n"), pl.col("passed").fill_null(False).sum().alias("ok")),
            _quantile_buckets(_merged(lazy, ticks.schema, "ttft_hist")),
            _quantile_buckets(_merged(lazy, ticks.schema, "itl_hist")),
        ]
    )
    scalars = frames[0].row(0, named=True)
    n_verdicts, n_passed = frames[2].row(0)
    ttft, itl = (tuple(None if b is None else GAMMA ** (b - 0.5) for b in f.row(0)) for f in frames[3:])
    return Kpis(
        ticks=int(scalars["ticks"]),
        duration_s=scalars["duration_s"],
        arrived=scalars["arrived"],
        completed=scalars["completed"],
        dropped=scalars["dropped"],
        in_flight=scalars["in_flight"],
        ttft_attainment=scalars["ttft_attainment"],
        itl_attainment=scalars["itl_attainment"],
        sla_attainment=scalars["sla_attainment"],
        ttft_p50_ms=ttft[0],
        ttft_p99_ms=ttft[1],
        itl_p50_ms=itl[0],
        itl_p99_ms=itl[1],
        gpu_hours=scalars["gpu_hours"],
        energy_kwh=scalars["energy_kwh"],
        power_peak_w=scalars["power_peak_w"],
        power_mean_w=scalars["power_mean_w"],
        budget_peak_w=scalars["budget_peak_w"],
        power_budget_peak_ratio=scalars["power_budget_peak_ratio"],
        budget_violations=scalars["budget_violations"],
        scaling_actions=int(frames[1].item()),
        oscillations=int(scalars["oscillations"] or 0),
        assertions_passed=int(n_passed) if n_verdicts else None,
        assertions_failed=int(n_verdicts - n_passed) if n_verdicts else None,
        ttft_target_ms=meta.ttft_target_ms if meta is not None else None,
        itl_target_ms=meta.itl_target_ms if meta is not None else None,
    )


# -- the tick frame ---------------------------------------------------------------------------


def _tick_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Tick rows in tick order, with every column the KPIs read (missing ones all-null) and ``dt_ms``."""
    lf = df.lazy()
    if "kind" in df.columns:
        lf = lf.filter(pl.col("kind") == "tick")
    missing = [pl.lit(None, dtype=POLARS_SCHEMA[name]).alias(name) for name in _TICK_COLUMNS if name not in df.columns]
    if missing:
        lf = lf.with_columns(missing)
    ticks = lf.select(_TICK_COLUMNS).collect()
    if not ticks["tick"].is_sorted():  # rows are in recording (seq) order: ticks normally ascend already
        ticks = ticks.sort("tick", maintain_order=True, nulls_last=True)
    return ticks.with_columns(pl.col(pl.Float64, pl.Float32).fill_nan(None)).with_columns(  # NaN counts as missing
        (pl.col("now_ms") - pl.col("now_ms").shift(1, fill_value=0.0)).alias("dt_ms")
    )


# -- scalar KPIs -------------------------------------------------------------------------------


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num.cast(pl.Float64) / den).otherwise(None)


def _if_any(column: str, value: pl.Expr) -> pl.Expr:
    """``value``, or null when ``column`` is null on every tick row."""
    return pl.when(pl.col(column).is_not_null().any()).then(value).otherwise(None)


def _duration_exprs() -> list[pl.Expr]:
    return [(pl.col("now_ms").last().cast(pl.Float64) / 1000.0).alias("duration_s")]


def _last_exprs() -> list[pl.Expr]:
    return [pl.col(c).last().alias(c) for c in ("arrived", "completed", "dropped", "in_flight")]


def _attainment_exprs() -> list[pl.Expr]:
    ttft = _ratio(pl.col("ttft_within_sla").sum(), pl.col("ttft_count").sum())
    itl = _ratio(pl.col("itl_within_sla").sum(), pl.col("itl_count").sum())
    return [
        ttft.alias("ttft_attainment"),
        itl.alias("itl_attainment"),
        pl.min_horizontal(ttft, itl).alias("sla_attainment"),
    ]


def _energy_exprs() -> list[pl.Expr]:
    dt = pl.col("dt_ms")
    power = pl.col("power_total_w")
    powered_ms = dt.filter(power.is_not_null()).sum()
    return [
        _if_any("gpus", (pl.col("gpus") * dt).sum() / _MS_PER_HOUR).alias("gpu_hours"),
        _if_any("power_total_w", (power * dt).sum() / _MS_PER_HOUR / 1000.0).alias("energy_kwh"),
        power.max().cast(pl.Float64).alias("power_peak_w"),
        _if_any("power_total_w", _ratio((power * dt).sum(), powered_ms)).alias("power_mean_w"),
    ]


def _budget_exprs() -> list[pl.Expr]:
    power, budget = pl.col("power_total_w"), pl.col("budget_w")
    ratio = pl.when(budget > 0).then(power / budget).otherwise(None)
    return [
        budget.max().cast(pl.Float64).alias("budget_peak_w"),
        ratio.max().alias("power_budget_peak_ratio"),
        _if_any("budget_w", (power > budget).sum()).cast(pl.Int64).alias("budget_violations"),
    ]


class ReversalCounter:
    """Oscillations: direction reversals of the replica targets, counted tick by tick.

    Per role, a reversal is a non-zero change of the target whose sign is the
    opposite of the previous non-zero change; the count is summed over roles.
    The adapter records the running count in every tick row (``oscillations``),
    so assertions can use it and the KPI is the last tick's value.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._sign: dict[str, int] = {}
        self.count = 0

    def update(self, targets: dict[str, int]) -> int:
        for role, n in targets.items():
            prev = self._last.get(role)
            self._last[role] = n
            if prev is None or n == prev:
                continue
            sign = 1 if n > prev else -1
            if self._sign.get(role, sign) != sign:
                self.count += 1
            self._sign[role] = sign
        return self.count


# -- histogram quantiles ----------------------------------------------------------------------


def _check_pairs(ticks: pl.DataFrame, columns: tuple[str, ...]) -> None:
    """Raise :class:`RecordingError` for a histogram that is not ``[bucket, count, ...]`` pairs."""
    lists = [c for c in columns if isinstance(ticks.schema[c], pl.List)]
    if not lists:
        return
    odd = ticks.select((pl.col(c).list.len() % 2 == 1).any() for c in lists).row(0)
    for column, bad in zip(lists, odd, strict=True):
        if bad:
            tick = ticks.filter(pl.col(column).list.len() % 2 == 1)["tick"][0]
            raise RecordingError(f"{column} of tick {tick} has an odd number of values; expected bucket, count pairs")


def _merged(ticks: pl.LazyFrame, schema: pl.Schema, column: str) -> pl.LazyFrame:
    if not isinstance(schema[column], pl.List):
        return pl.LazyFrame(schema={"bucket": pl.Int64, "count": pl.Int64})
    # Every list holds whole pairs (see _check_pairs), so the flattened values alternate bucket, count.
    flat = pl.col(column).explode().drop_nulls()
    return (
        ticks.select(flat.gather_every(2).alias("bucket"), flat.gather_every(2, offset=1).alias("count"))
        .group_by("bucket")
        .agg(pl.col("count").sum())
        .sort("bucket")
    )


def merged_histogram(ticks: pl.DataFrame, column: str) -> pl.DataFrame:
    """The replay's histogram ``column`` merged over tick rows ``ticks``: (bucket, count), in bucket order."""
    _check_pairs(ticks, (column,))
    return _merged(ticks.lazy(), ticks.schema, column).collect()


def _quantile_buckets(hist: pl.LazyFrame, qs: tuple[float, ...] = (0.5, 0.99)) -> pl.LazyFrame:
    """The buckets holding the nearest-rank quantiles ``qs``, as ``LatencyStats.quantile`` finds them."""
    total = pl.col("count").sum()
    seen = pl.col("count").cum_sum()
    return hist.select(
        pl.col("bucket").filter(seen >= (total.cast(pl.Float64) * q).ceil().clip(lower_bound=1.0)).first().alias(f"q{i}")
        for i, q in enumerate(qs)
    )


# -- formatting --------------------------------------------------------------------------------


def format_value(value: float | int | None, style: str) -> str:
    """One KPI value as text ("—" for null)."""
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if style == "int":
        return f"{int(value):,}"
    if style == "pct":
        return f"{value * 100:.2f}%"
    if style == "ms":
        return f"{value:,.1f} ms"
    if style == "w":
        return f"{value:,.0f} W"
    if style == "s":
        return f"{value:,.1f} s"
    if style == "ratio":
        return f"{value * 100:.1f}%"
    return f"{value:,.3f}"


def format_kpis(kpis: Kpis, meta: RecordingMeta | None = None) -> str:
    """A two-column KPI table; latency quantiles are shown against the SLA targets of ``meta``."""
    targets = {
        "ttft": meta.ttft_target_ms if meta is not None else kpis.ttft_target_ms,
        "itl": meta.itl_target_ms if meta is not None else kpis.itl_target_ms,
    }
    rows: list[tuple[str, str, str]] = []
    for spec in KPI_SPECS:
        value = getattr(kpis, spec.name)
        note = ""
        prefix = spec.name.split("_", 1)[0]
        if spec.style == "ms" and targets.get(prefix) is not None:
            target = targets[prefix]
            note = f"target {target:,.1f} ms" + ("  OVER" if value is not None and value > target else "")
        rows.append((spec.label, format_value(value, spec.style), note))
    title = "KPIs" if meta is None else f"KPIs  {meta.planner} on {meta.scenario_name} (seed {meta.seed})"
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [title]
    lines += [f"  {label:<{w0}}  {value:>{w1}}  {note}".rstrip() for label, value, note in rows]
    return "\n".join(lines)


__all__ = ["KPI_SPECS", "POLARS_SCHEMA", "KpiSpec", "Kpis", "compute_kpis", "format_kpis", "format_value", "merged_histogram"]
