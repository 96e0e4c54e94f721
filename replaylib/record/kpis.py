"""Key performance indicators of one recording.

Every KPI is derived from the tick rows (plus the number of ``scale`` rows), in
one place, :class:`KpiAccumulator`: the adapter feeds it the rows as it records
them (a replay knows its KPIs without reading its file back or importing
polars), and :func:`compute_kpis` feeds it a recording read back with
:func:`read_recording` or a DataFrame rebuilt from a text golden.  Missing
columns are treated as all-null and a KPI whose inputs are all null is
``None``, never a fake 0 (a replay without a power budget has no budget KPIs).
A NaN reading counts as missing.

Definitions (``Δt`` of a tick = its ``now_ms`` minus the previous tick's; the
first tick's ``Δt`` is its own ``now_ms``: the replay starts at 0):

- requests arrived / completed / dropped / in flight / rejected: the last tick
  row's cumulative counters (``arrived`` counts every request that reached the
  frontend, ``rejected`` those it refused; ``None`` without a frontend fault or
  admission control), so ``arrived = completed + dropped + in flight + rejected``.
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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from replaylib.record.meta import RecordingError, RecordingMeta
from replaylib.record.reversals import ReversalCounter
from replaylib.record.schema import EventRow
from replaylib.sim.metrics import GAMMA

if TYPE_CHECKING:
    import polars as pl

_MS_PER_HOUR = 3_600_000.0


class Kpis(msgspec.Struct, frozen=True, kw_only=True):
    """The KPIs of one replay (see the module docstring for the definitions)."""

    ticks: int
    duration_s: float | None
    arrived: int | None
    completed: int | None
    dropped: int | None
    in_flight: int | None
    rejected: int | None = None  #: refused at the frontend (fault or admission control); None: no frontend in play
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
    KpiSpec("rejected", "requests rejected", "int"),
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



#: The tick-row columns the KPIs read.
TICK_COLUMNS: tuple[str, ...] = (
    "tick", "now_ms", "gpus", "power_total_w", "budget_w",
    "ttft_count", "ttft_within_sla", "itl_count", "itl_within_sla",
    "oscillations", "arrived", "completed", "dropped", "in_flight", "rejected",
    "ttft_hist", "itl_hist",
)  # fmt: skip


class KpiAccumulator:
    """The KPIs of a recording, accumulated row by row in recording order (the one place the formulas live).

    The adapter feeds it every row as it records them, so a replay knows its
    KPIs without reading the file back (and without polars);
    :func:`compute_kpis` feeds it the rows of a recording read back.  Memory is
    bounded by the number of distinct histogram buckets, not by the length of
    the replay.  Tick rows must come in tick order.
    """

    def __init__(self) -> None:
        self.ticks = 0
        self.scaling_actions = 0
        self.verdicts = 0  #: assertion rows
        self.verdicts_passed = 0
        self._prev_ms: float | None = 0.0  # the replay starts at 0
        self._last: dict[str, Any] = {}
        self._oscillations: int | None = None
        self._sums: dict[str, list[float]] = {"gpu_ms": [], "energy": [], "powered_ms": []}
        self._counts = {"ttft_count": 0, "ttft_within_sla": 0, "itl_count": 0, "itl_within_sla": 0}
        self._seen = {"gpus": False, "power_total_w": False, "budget_w": False}
        self._power_peak: float | None = None
        self._budget_peak: float | None = None
        self._ratio_peak: float | None = None
        self._violations = 0
        self._hist: dict[str, dict[int, int]] = {"ttft_hist": {}, "itl_hist": {}}

    def add(self, kind: str | None, row: Mapping[str, Any]) -> None:
        """One recorded row (``kind`` None: a frame without a ``kind`` column, every row a tick)."""
        if kind == "scale":
            self.scaling_actions += 1
        elif kind == "assertion":
            self.verdicts += 1
            self.verdicts_passed += bool(row.get("passed"))
        elif kind is None or kind == "tick":
            self._add_tick(row)

    def add_event(self, row: EventRow) -> None:
        """One :class:`~replaylib.record.schema.EventRow`, as the adapter appends it."""
        if row.kind == "tick":
            self._add_tick({name: getattr(row, name) for name in TICK_COLUMNS})
        else:
            self.add(row.kind, {"passed": row.passed})

    def _add_tick(self, row: Mapping[str, Any]) -> None:
        get = row.get
        self.ticks += 1
        now = _num(get("now_ms"))
        dt = None if now is None or self._prev_ms is None else now - self._prev_ms
        self._prev_ms = now
        for name in ("now_ms", "arrived", "completed", "dropped", "in_flight", "rejected"):
            self._last[name] = _num(get(name))
        osc = get("oscillations")
        if osc is not None:
            self._oscillations = osc
        for name in self._counts:
            value = get(name)
            if value is not None:
                self._counts[name] += value
        gpus, power, budget = _num(get("gpus")), _num(get("power_total_w")), _num(get("budget_w"))
        for name, value in (("gpus", gpus), ("power_total_w", power), ("budget_w", budget)):
            self._seen[name] = self._seen[name] or value is not None
        if gpus is not None and dt is not None:
            self._sums["gpu_ms"].append(gpus * dt)
        if power is not None:
            self._power_peak = power if self._power_peak is None else max(self._power_peak, power)
            if dt is not None:
                self._sums["energy"].append(power * dt)
                self._sums["powered_ms"].append(dt)
        if budget is not None:
            self._budget_peak = budget if self._budget_peak is None else max(self._budget_peak, budget)
            if power is not None:
                if budget > 0:
                    ratio = power / budget
                    self._ratio_peak = ratio if self._ratio_peak is None else max(self._ratio_peak, ratio)
                if power > budget:
                    self._violations += 1
        for name, merged in self._hist.items():
            flat = get(name)
            if not flat:
                continue
            if len(flat) % 2:
                raise RecordingError(f"{name} of tick {get('tick')} has an odd number of values; expected bucket, count pairs")
            values = [v for v in flat if v is not None]
            for bucket, n in zip(values[::2], values[1::2], strict=False):
                merged[bucket] = merged.get(bucket, 0) + n

    def histogram(self, column: str) -> list[tuple[int, int]]:
        """The merged histogram ``column`` (``ttft_hist`` / ``itl_hist``): (bucket, count) in bucket order."""
        return sorted(self._hist[column].items())

    def result(self, *, ttft_target_ms: float | None = None, itl_target_ms: float | None = None) -> Kpis:
        c, sums = self._counts, self._sums
        ttft = _ratio(c["ttft_within_sla"], c["ttft_count"])
        itl = _ratio(c["itl_within_sla"], c["itl_count"])
        energy_wms = math.fsum(sums["energy"])
        now = self._last.get("now_ms")
        ttft_q = _quantiles(self.histogram("ttft_hist"))
        itl_q = _quantiles(self.histogram("itl_hist"))
        return Kpis(
            ticks=self.ticks,
            duration_s=None if now is None else float(now) / 1000.0,
            arrived=self._last.get("arrived"),
            completed=self._last.get("completed"),
            dropped=self._last.get("dropped"),
            in_flight=self._last.get("in_flight"),
            rejected=self._last.get("rejected"),
            ttft_attainment=ttft,
            itl_attainment=itl,
            sla_attainment=min((x for x in (ttft, itl) if x is not None), default=None),
            ttft_p50_ms=ttft_q[0],
            ttft_p99_ms=ttft_q[1],
            itl_p50_ms=itl_q[0],
            itl_p99_ms=itl_q[1],
            gpu_hours=math.fsum(sums["gpu_ms"]) / _MS_PER_HOUR if self._seen["gpus"] else None,
            energy_kwh=energy_wms / _MS_PER_HOUR / 1000.0 if self._seen["power_total_w"] else None,
            power_peak_w=None if self._power_peak is None else float(self._power_peak),
            power_mean_w=_ratio(energy_wms, math.fsum(sums["powered_ms"])) if self._seen["power_total_w"] else None,
            budget_peak_w=None if self._budget_peak is None else float(self._budget_peak),
            power_budget_peak_ratio=self._ratio_peak,
            budget_violations=self._violations if self._seen["budget_w"] else None,
            scaling_actions=self.scaling_actions,
            oscillations=int(self._oscillations or 0),
            assertions_passed=self.verdicts_passed if self.verdicts else None,
            assertions_failed=self.verdicts - self.verdicts_passed if self.verdicts else None,
            ttft_target_ms=ttft_target_ms,
            itl_target_ms=itl_target_ms,
        )


def _num(value: Any) -> Any:
    """A reading as the KPIs see it: NaN counts as missing."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _ratio(num: float, den: float) -> float | None:
    return float(num) / den if den > 0 else None


def _quantiles(hist: list[tuple[int, int]], qs: tuple[float, ...] = (0.5, 0.99)) -> tuple[float | None, ...]:
    """Nearest-rank quantiles of a merged histogram, as ``LatencyStats.quantile`` finds them, at the bucket's value."""
    total = sum(n for _, n in hist)
    out: list[float | None] = []
    for q in qs:
        rank = max(float(math.ceil(float(total) * q)), 1.0)
        seen = 0
        value = None
        for bucket, n in hist:
            seen += n
            if seen >= rank:
                value = GAMMA ** (bucket - 0.5)
                break
        out.append(value)
    return tuple(out)


def compute_kpis(df: pl.DataFrame, meta: RecordingMeta | None = None) -> Kpis:
    """The KPIs of the recording ``df`` (as from :func:`read_recording`); ``meta`` adds the SLA targets."""
    return accumulate(df).result(
        ttft_target_ms=meta.ttft_target_ms if meta is not None else None,
        itl_target_ms=meta.itl_target_ms if meta is not None else None,
    )


def merged_histogram(ticks: pl.DataFrame, column: str) -> pl.DataFrame:
    """The replay's histogram ``column`` merged over tick rows ``ticks``: (bucket, count), in bucket order."""
    import polars as pl

    hist = accumulate(ticks).histogram(column)
    return pl.DataFrame({"bucket": [b for b, _ in hist], "count": [n for _, n in hist]}, schema={"bucket": pl.Int64, "count": pl.Int64})


def accumulate(df: pl.DataFrame) -> KpiAccumulator:
    """A :class:`KpiAccumulator` fed every row of ``df`` (tick rows in tick order; missing columns all-null)."""
    import polars as pl

    acc = KpiAccumulator()
    has_kind = "kind" in df.columns
    ticks = df.lazy()
    if has_kind:
        ticks = ticks.filter(pl.col("kind") == "tick")
        acc.scaling_actions = int(df.lazy().filter(pl.col("kind") == "scale").select(pl.len()).collect().item())
        if "passed" in df.columns:
            verdicts = df.lazy().filter(pl.col("kind") == "assertion").select(pl.len(), pl.col("passed").fill_null(False).sum()).collect()
            acc.verdicts, acc.verdicts_passed = (int(x) for x in verdicts.row(0))
    present = [c for c in TICK_COLUMNS if c in df.columns]
    frame = ticks.select(present).collect()
    if "tick" in present and not frame["tick"].is_sorted():  # rows are in seq order: ticks normally ascend already
        frame = frame.sort("tick", maintain_order=True, nulls_last=True)
    for row in frame.iter_rows(named=True):
        acc.add("tick", row)
    return acc


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


__all__ = [
    "KPI_SPECS",
    "TICK_COLUMNS",
    "KpiAccumulator",
    "KpiSpec",
    "Kpis",
    "ReversalCounter",
    "accumulate",
    "compute_kpis",
    "format_kpis",
    "format_value",
    "merged_histogram",
]
