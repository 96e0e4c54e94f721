"""Per-SKU system constants (``systems/<sku>.yaml``) as typed, validated objects.

Every number the simulator and the power overlay use comes from here: power
limits, the timing model of the reference model (analytic coefficients, or
measured/estimated tables), the cap→speed curves, KV capacity, start-up delay
and the power model.  The formulas that turn these numbers into pass times,
step times, watts and speeds live in :mod:`replaylib.timing`; this module only
reads and validates the data.

Sections whose ``model`` names a formula family (``timing.model``,
``power_model.model``) parse into the spec of that family: ``analytic``
(the default when ``model`` is absent), ``table``, or anything else — a
registered name or ``pkg.module:Class`` — kept as free-form ``params`` for the
user's class.  Cap curves and power tables may live in a CSV file next to the
YAML (``csv: file.csv``); every curve can say where its numbers come from
(``source:``) and, where they are an assumption, say so (``assumption:``).
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from replaylib.scenario.yamlio import ScenarioError, read_yaml

Pos = Annotated[float, Meta(gt=0)]
NonNeg = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(gt=0, le=1)]
PosInt = Annotated[int, Meta(ge=1)]
NonNegInt = Annotated[int, Meta(ge=0)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class GpuSpec(_Strict):
    model: str
    tdp_w: Pos
    min_cap_w: Pos
    max_cap_w: Pos
    idle_w: Pos
    source: str | None = None  #: where these numbers come from


class ModelSpec(_Strict):
    name: str
    gpus_per_worker: PosInt
    #: the model's context window in tokens (the serving engine's default ``max_model_len``);
    #: planners that scale on queue length against it (Dynamo's) read it, the fleet does not
    context_length: PosInt | None = None


# -- timing: analytic ---------------------------------------------------------------------------


class PrefillTiming(_Strict):
    """Pass time (ms) = base + per_token * new tokens + per_token_context * sum(new x context)."""

    base_ms: NonNeg
    per_token_ms: NonNeg
    per_token_context_ms: NonNeg


class DecodeTiming(_Strict):
    """Step time (ms) = base + per_seq * batch size + per_kv_token * KV tokens in use."""

    base_ms: NonNeg
    per_seq_ms: NonNeg
    per_kv_token_ms: NonNeg


class TransferTiming(_Strict):
    """KV hand-off time (ms) = base + per_token * prompt tokens."""

    base_ms: NonNeg = 0.0
    per_token_ms: NonNeg = 0.0


class Timing(_Strict, tag_field="model", tag="analytic"):
    """``timing.model: analytic`` (the default): datasheet coefficients."""

    prefill: PrefillTiming
    decode: DecodeTiming
    kv_transfer: TransferTiming = TransferTiming()
    source: str | None = None  #: where the coefficients come from
    assumption: str | None = None  #: words saying what is assumed (derived, not measured)


# -- timing: tables -----------------------------------------------------------------------------


class PrefillCurve(_Strict):
    """Time of one prefill pass of ``tokens`` new tokens after ``context`` tokens already in KV."""

    context: NonNegInt
    tokens: list[Annotated[int, Meta(gt=0)]]
    pass_ms: list[Pos]
    thpt_per_gpu: list[Pos] | None = None  #: optional: prompt tokens/s per GPU as the source reported it


class DecodeCurve(_Strict):
    """Time of one decode step of ``batch`` running sequences holding ``context`` KV tokens each (mean)."""

    context: Pos
    batch: list[Annotated[float, Meta(ge=1)]]
    step_ms: list[Pos]
    thpt_per_gpu: list[Pos] | None = None  #: optional: output tokens/s per GPU as the source reported it


class PrefillTable(_Strict):
    curves: list[PrefillCurve]
    #: per-pass overhead (ms) of the telescoping chunk cost; default: the context-0 curve's
    #: first interval extended to 0 tokens
    pass_overhead_ms: NonNeg | None = None
    #: the engine's chunk budget when the curves were measured: a point above it was measured as
    #: ceil(tokens / budget) passes, and the model removes the extra passes' overhead
    measured_max_num_batched_tokens: PosInt | None = None


class DecodeTable(_Strict):
    curves: list[DecodeCurve]


class TableTiming(_Strict, tag_field="model", tag="table"):
    """``timing.model: table``: measured or estimated points, interpolated (``replaylib.timing.table``)."""

    prefill: PrefillTable
    decode: DecodeTable
    kv_transfer: TransferTiming = TransferTiming()


class ExternalTiming(_Strict, tag_field="model", tag="external"):
    """``timing.model: NAME`` or ``pkg.module:Class``: a registered or user model and its own keys."""

    name: str
    params: dict[str, Any] = {}


# -- cap -> speed curves ------------------------------------------------------------------------


class CapCurve(_Strict):
    """Relative throughput at a per-GPU cap, ``[[watts, fraction], ...]``, read piecewise linearly.

    In YAML either a bare list of points or a mapping with ``points:`` or
    ``csv:`` (a file beside the YAML with columns ``cap_w``, ``speed`` and
    optionally ``role`` and ``source``), ``source:`` and ``assumption:``.
    """

    points: list[tuple[Pos, Fraction]]
    source: str | None = None
    assumption: str | None = None  #: words saying what is assumed, where the curve is not measured
    csv: str | None = None  #: the CSV the points were read from (as written in the YAML)
    point_sources: list[str] = []  #: per-point sources (from a CSV ``source`` column)
    csv_lines: list[int] = []  #: each point's line in the CSV (for error messages)


class SpeedCurves(_Strict):
    prefill: CapCurve
    decode: CapCurve


# -- power models -------------------------------------------------------------------------------


class PrefillPower(_Strict):
    uncapped_w: Pos
    base_fraction: Fraction
    saturation_tokens: Pos
    source: str | None = None
    assumption: str | None = None


class DecodePower(_Strict):
    uncapped_w: Pos
    base_fraction: Fraction
    hbm_saturation_kv_tokens: Pos
    source: str | None = None
    assumption: str | None = None


class PowerModel(_Strict, tag_field="model", tag="analytic"):
    """``power_model.model: analytic`` (the default): base share of TDP rising linearly with load."""

    prefill: PrefillPower
    decode: DecodePower


class PowerCurve(_Strict):
    """Busy per-GPU draw (uncapped) against load: prefill tokens per pass, or decode KV tokens in use.

    In YAML ``load:`` and ``draw_w:`` lists, or ``csv:`` (columns ``load``,
    ``draw_w`` and optionally ``role`` and ``source``), with ``source:``.
    """

    load: list[NonNeg]
    draw_w: list[Pos]
    source: str | None = None
    assumption: str | None = None
    csv: str | None = None
    point_sources: list[str] = []
    csv_lines: list[int] = []


class TablePower(_Strict, tag_field="model", tag="table"):
    """``power_model.model: table``: measured draw points, interpolated, never above the cap."""

    prefill: PowerCurve
    decode: PowerCurve


class ExternalPower(_Strict, tag_field="model", tag="external"):
    name: str
    params: dict[str, Any] = {}


# -- the system ---------------------------------------------------------------------------------


class KvSpec(_Strict):
    capacity_tokens: PosInt


class Provenance(_Strict):
    """Where a generated systems file came from (required for generated files)."""

    tool: str  #: dynamo-profiler, aiconfigurator, ...
    version: str
    call: str  #: the exact call that made this file
    source: str  #: input files / URLs and their sha256
    database: str | None = None  #: where applicable
    assumptions: list[str] = []  #: numbers the tool did not give, in words


class System(_Strict):
    name: str
    gpu: GpuSpec
    model: ModelSpec
    timing: Timing | TableTiming | ExternalTiming
    kv: KvSpec
    startup_delay_ms: NonNeg
    speed_curve: SpeedCurves
    power_model: PowerModel | TablePower | ExternalPower
    description: str = ""
    provenance: Provenance | None = None

    def clamp_cap(self, cap_w: float) -> float:
        """The cap the driver would actually apply: inside the settable range."""
        return min(max(cap_w, self.gpu.min_cap_w), self.gpu.max_cap_w)


#: ``model:`` values with a typed spec; any other value is a registered name or an import path.
_BUILTIN_FAMILIES = ("analytic", "table")


def load_system(path: str | os.PathLike[str]) -> System:
    """Load and validate one ``systems/*.yaml`` file (and the CSV files it names)."""
    path = os.fspath(path)
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ScenarioError(path, None, "expected a mapping at the top level")
    from replaylib.scenario.validate import convert  # local: validate imports this module's types

    doc = _normalise(doc, path)
    system = convert(doc, System, lambda keys: path)
    check_system(system, path)
    return system


def system_file_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a systems file's bytes (recorded in recordings' metadata)."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


# -- reading: the YAML's shorthands into the spec's one shape ---------------------------------------


def _normalise(doc: dict, path: str) -> dict:
    doc = dict(doc)
    for section in ("timing", "power_model"):
        raw = doc.get(section)
        if isinstance(raw, dict):
            model = raw.get("model", "analytic")
            if model in _BUILTIN_FAMILIES:
                doc[section] = {**raw, "model": model}
            elif isinstance(model, str) and model.strip():
                doc[section] = {"model": "external", "name": model.strip(),
                                "params": {k: v for k, v in raw.items() if k != "model"}}
            else:
                raise ScenarioError(path, f"{section}.model",
                                    f"expected 'analytic', 'table', a registered name or pkg.module:Class, got {model!r}")
    curves = doc.get("speed_curve")
    if isinstance(curves, dict):
        doc["speed_curve"] = {role: _curve_doc(raw, path, f"speed_curve.{role}", str(role), ("cap_w", "speed"))
                              for role, raw in curves.items()}
    pm = doc.get("power_model")
    if isinstance(pm, dict) and pm.get("model") == "table":
        doc["power_model"] = {k: (_curve_doc(v, path, f"power_model.{k}", k, ("load", "draw_w")) if k in ("prefill", "decode") else v)
                              for k, v in pm.items()}
    return doc


def _curve_doc(raw: Any, path: str, key: str, role: str, columns: tuple[str, str]) -> Any:
    """A cap curve / power curve as a mapping with its points (read from ``csv:`` if named).

    A bare list of points is the short form (no source); a mapping is the data form and must
    say where its numbers come from (``source:``, or a ``source`` column in its CSV)."""
    if isinstance(raw, list):
        return {"points": raw} if columns[0] == "cap_w" else raw
    if not isinstance(raw, dict):
        return raw
    if "csv" not in raw:
        if not raw.get("source"):
            raise ScenarioError(path, f"{key}.source", "points given as data need a source: where the numbers come from")
        return raw
    target = ("points",) if columns[0] == "cap_w" else columns
    given = [k for k in target if k in raw]
    if given:
        raise ScenarioError(path, f"{key}.csv", f"give the points either inline ({', '.join(given)}) or in a CSV file, not both")
    csv_name = raw["csv"]
    if not isinstance(csv_name, str) or not csv_name:
        raise ScenarioError(path, f"{key}.csv", f"expected a CSV file name, got {csv_name!r}")
    csv_path = os.path.join(os.path.dirname(os.path.abspath(path)), csv_name)
    xs, ys, sources, lines = read_points_csv(csv_path, columns, role)
    if not raw.get("source") and not all(sources):
        line = lines[sources.index("")]
        raise ScenarioError(csv_path, f"line {line}", f"{key}: the point has no source: fill the CSV's source column "
                                                      f"or give {key} a source:")
    out = {k: v for k, v in raw.items()}
    out["csv_lines"] = lines
    if columns[0] == "cap_w":
        out["points"] = [[x, y] for x, y in zip(xs, ys, strict=True)]
    else:
        out[columns[0]], out[columns[1]] = xs, ys
    if any(sources):
        out["point_sources"] = sources
    return out


def read_points_csv(csv_path: str, columns: tuple[str, str], role: str) -> tuple[list[float], list[float], list[str], list[int]]:
    """``(xs, ys, sources, lines)`` from a CSV (polars); rows of another ``role`` are skipped.

    Errors name the CSV file, its 1-based line and the column."""
    import polars as pl

    try:
        frame = pl.read_csv(csv_path, infer_schema=False, comment_prefix="#")
    except FileNotFoundError:
        raise ScenarioError(csv_path, None, "CSV file not found") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ScenarioError(csv_path, None, f"cannot read CSV: {exc}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ScenarioError(csv_path, None, f"missing column {missing[0]!r}; the header has {', '.join(frame.columns) or 'nothing'}")
    xs: list[float] = []
    ys: list[float] = []
    sources: list[str] = []
    lines: list[int] = []
    has_role, has_source = "role" in frame.columns, "source" in frame.columns
    for i, row in enumerate(frame.iter_rows(named=True)):
        line = i + 2  # 1-based, after the header
        if has_role and (row["role"] or "").strip() != role:
            continue
        values = []
        for c in columns:
            text = (row[c] or "").strip()
            try:
                v = float(text)
            except ValueError:
                raise ScenarioError(csv_path, None, f"line {line}: column {c!r}: expected a number, got {text!r}") from None
            if not math.isfinite(v):
                raise ScenarioError(csv_path, None, f"line {line}: column {c!r}: expected a finite number, got {text!r}")
            values.append(v)
        xs.append(values[0])
        ys.append(values[1])
        sources.append((row["source"] or "").strip() if has_source else "")
        lines.append(line)
    if not xs:
        raise ScenarioError(csv_path, None, f"no rows{f' with role {role!r}' if has_role else ''}")
    return xs, ys, sources, lines


# -- validation -----------------------------------------------------------------------------------


def check_system(s: System, path: str) -> None:
    """Cross-field checks a schema alone cannot express; errors name the file and key."""
    g = s.gpu
    if not g.min_cap_w <= g.max_cap_w <= g.tdp_w:
        raise ScenarioError(path, "gpu", f"expected min_cap_w <= max_cap_w <= tdp_w, got {g.min_cap_w}, {g.max_cap_w}, {g.tdp_w}")
    if g.idle_w >= g.min_cap_w:
        raise ScenarioError(path, "gpu.idle_w", f"expected less than min_cap_w ({g.min_cap_w}), got {g.idle_w}")
    for role in ("prefill", "decode"):
        curve: CapCurve = getattr(s.speed_curve, role)
        _check_cap_curve(curve, path, f"speed_curve.{role}", g)
    pm = s.power_model
    if isinstance(pm, PowerModel):
        for role in ("prefill", "decode"):
            spec = getattr(pm, role)
            if not g.idle_w < spec.uncapped_w <= g.tdp_w:
                raise ScenarioError(path, f"power_model.{role}.uncapped_w", f"expected between idle_w and tdp_w, got {spec.uncapped_w}")
    elif isinstance(pm, TablePower):
        for role in ("prefill", "decode"):
            _check_power_curve(getattr(pm, role), path, f"power_model.{role}", g)
    from replaylib.timing.registry import TimingSpecError, check_models  # local: timing imports this module

    try:
        check_models(s)
    except TimingSpecError as exc:
        raise ScenarioError(exc.path or path, exc.key, exc.message) from None


def _where(curve: CapCurve | PowerCurve, path: str, key: str, i: int) -> tuple[str, str]:
    """The file and key (or CSV line) that hold point ``i`` of a curve."""
    if curve.csv is not None and i < len(curve.csv_lines):
        return os.path.join(os.path.dirname(os.path.abspath(path)), curve.csv), f"line {curve.csv_lines[i]}: {key}"
    return path, f"{key}[{i}]"


def _check_cap_curve(curve: CapCurve, path: str, key: str, g: GpuSpec) -> None:
    pts = curve.points
    if len(pts) < 2:
        raise ScenarioError(path, key, "expected at least two [watts, speed] points")
    for i in range(1, len(pts)):
        (w0, s0), (w1, s1) = pts[i - 1], pts[i]
        if w1 <= w0:
            f, k = _where(curve, path, key, i)
            raise ScenarioError(f, k, f"expected strictly increasing watts: point {i} [{w1:g}, {s1:g}] after [{w0:g}, {s0:g}]")
        if s1 < s0:
            f, k = _where(curve, path, key, i)
            raise ScenarioError(f, k, f"speed must not fall as the cap rises: point {i} [{w1:g}, {s1:g}] is slower than "
                                      f"point {i - 1} [{w0:g}, {s0:g}]")
    if pts[0][0] > g.min_cap_w or pts[-1][0] < g.max_cap_w:
        raise ScenarioError(path, key, f"expected the points to cover the settable range {g.min_cap_w:g}-{g.max_cap_w:g} W, "
                                       f"got {pts[0][0]:g}-{pts[-1][0]:g} W")
    if pts[-1][1] != 1.0:
        raise ScenarioError(path, key, f"expected speed 1.0 at the highest cap, got {pts[-1][1]:g}")


def _check_power_curve(curve: PowerCurve, path: str, key: str, g: GpuSpec) -> None:
    if len(curve.load) != len(curve.draw_w):
        raise ScenarioError(path, key, f"expected load and draw_w of the same length, got {len(curve.load)} and {len(curve.draw_w)}")
    if len(curve.load) < 2:
        raise ScenarioError(path, key, "expected at least two [load, draw_w] points")
    for i in range(1, len(curve.load)):
        if curve.load[i] <= curve.load[i - 1]:
            f, k = _where(curve, path, f"{key}.load", i)
            raise ScenarioError(f, k, f"expected strictly increasing load: point {i} ({curve.load[i]:g}) after {curve.load[i - 1]:g}")
    for i, w in enumerate(curve.draw_w):
        if not g.idle_w < w <= g.tdp_w:
            f, k = _where(curve, path, f"{key}.draw_w", i)
            raise ScenarioError(f, k, f"expected a draw between idle_w ({g.idle_w:g}) and tdp_w ({g.tdp_w:g}) W: point {i} is {w:g} W")
