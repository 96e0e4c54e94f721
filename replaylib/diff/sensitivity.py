"""Sensitivity: replay one scenario with one model knob scaled and show how KPIs and decisions move.

A **knob** scales one uncertain part of the system's models (the wrappers of
:mod:`replaylib.timing.scaled`):

=========================  ==========================================================
``speed_curve.prefill``    the prefill cap → speed slowdown ``1 − speed`` (×1.2: a cap costs 20 % more)
``speed_curve.decode``     the decode cap → speed slowdown
``timing.prefill``         prefill pass times
``timing.decode``          decode step times
``timing.kv_transfer``     KV hand-off times
``power_model.prefill``    the busy draw of a prefill GPU (never above the cap)
``power_model.decode``     the busy draw of a decode GPU
=========================  ==========================================================

Every ``(knob, factor)`` is one replay, against a base replay of the scenario
as it is (same trace, seed and planner).  ``to`` says who sees the scaled
model: ``both`` (the machine is different and the planner knows it), ``fleet``
(the machine is different, the planner still plans with the YAML's numbers) or
``planner`` (the planner's model is wrong, the machine is as in the YAML).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence

import msgspec
import polars as pl

from replaylib.errors import ReplaylibError
from replaylib.record.kpis import KPI_SPECS, Kpis, compute_kpis, format_value
from replaylib.timing.scaled import AUDIENCES, Audience, knobs

class SensitivityError(ReplaylibError):
    """A knob or factor that cannot be applied."""


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    """One replay: its label, the knob and factor (none for the base), its KPIs and decisions."""

    label: str
    knob: str | None
    factor: float | None
    recording: str | None
    kpis: Kpis
    mean_prefill: float | None  #: mean target prefill replicas over the ticks
    mean_decode: float | None
    mean_cap_prefill_w: float | None  #: mean applied cap over the ticks
    mean_cap_decode_w: float | None
    first_decision_change: int | None  #: first tick whose targets or caps differ from the base's (None: none)


class SensitivityReport(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str
    planner: str
    seed: int
    audience: str
    variants: list[Variant]  #: the base first


def parse_scales(specs: Sequence[str]) -> list[tuple[str, float]]:
    """``["speed_curve.prefill=0.8,1.2", ...]`` → ``[("speed_curve.prefill", 0.8), ...]``."""
    out: list[tuple[str, float]] = []
    for spec in specs:
        name, sep, factors = spec.partition("=")
        name = name.strip()
        if not sep or name not in knobs():
            raise SensitivityError(f"--scale {spec!r}: expected KNOB=F1,F2,... with KNOB one of {', '.join(knobs())}")
        for text in factors.split(","):
            try:
                k = float(text)
            except ValueError:
                raise SensitivityError(f"--scale {spec!r}: {text.strip()!r} is not a number") from None
            if not (k > 0 and k != float("inf")):
                raise SensitivityError(f"--scale {spec!r}: a factor must be a finite number > 0, got {text.strip()!r}")
            out.append((name, k))
    if not out:
        raise SensitivityError("give at least one --scale KNOB=F1,F2,...")
    return out


#: The targets a planner actuates (a subset of the schema's decision columns, record.schema.columns_of("decision")):
#: the first tick where one of them differs is where the scaled model changed what the fleet was asked to do.
_TARGETS = ("target_prefill", "target_decode", "target_cap_prefill_w", "target_cap_decode_w")


def _decisions(path: str) -> pl.DataFrame:
    from replaylib.record import read_recording

    return read_recording(path).filter(pl.col("kind") == "tick").select("tick", *_TARGETS, "cap_prefill_w", "cap_decode_w")


def _first_change(base: pl.DataFrame, other: pl.DataFrame) -> int | None:
    joined = base.join(other, on="tick", how="full", suffix="_b", coalesce=True).sort("tick")
    for row in joined.iter_rows(named=True):
        if any(row[c] != row[f"{c}_b"] for c in _TARGETS):
            return int(row["tick"])
    return None


def _mean(df: pl.DataFrame, column: str) -> float | None:
    v = df[column].drop_nulls()
    return float(v.mean()) if len(v) else None  # type: ignore[arg-type]


def sensitivity(
    scenario: object,
    scales: Sequence[tuple[str, float]],
    *,
    to: Audience = "both",
    planner: str | None = None,
    seed: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> SensitivityReport:
    """Replay ``scenario`` (a path or ``LoadedScenario``) as is, then once per ``(knob, factor)``."""
    from replaylib.adapter import planner_context, replay
    from replaylib.planner.registry import load_planner
    from replaylib.record.reader import recording_metadata
    from replaylib.scenario import LoadedScenario, load_scenario
    from replaylib.timing import power_model, timing_model

    if to not in AUDIENCES:
        raise SensitivityError(f"to must be one of {', '.join(AUDIENCES)}, got {to!r}")
    for name, _ in scales:
        if name not in knobs():
            raise SensitivityError(f"unknown knob {name!r}; available: {', '.join(knobs())}")
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(os.fspath(scenario))  # type: ignore[arg-type]
    spec = planner or loaded.scenario.planner.name
    run_seed = loaded.scenario.seed if seed is None else seed
    runs: list[tuple[str, str | None, float | None]] = [("base", None, None)] + [(f"{n} x{k:g}", n, k) for n, k in scales]
    variants: list[Variant] = []
    with tempfile.TemporaryDirectory(prefix="replaylib-sensitivity-") as tmp:
        directory = os.fspath(out_dir) if out_dir is not None else tmp
        os.makedirs(directory, exist_ok=True)
        base_frame: pl.DataFrame | None = None
        for i, (label, name, factor) in enumerate(runs):
            if log is not None:
                log(f"replaying {loaded.scenario.name} ({label})")
            base_t, base_p = timing_model(loaded.system), power_model(loaded.system)
            t, p = base_t, base_p
            if name is not None and factor is not None:
                t, p = knobs()[name].apply(base_t, base_p, factor)
            fleet_t, fleet_p = (t, p) if to in ("both", "fleet") else (base_t, base_p)
            plan_t, plan_p = (t, p) if to in ("both", "planner") else (timing_model(loaded.system), power_model(loaded.system))
            planner_obj = load_planner(spec, planner_context(loaded, seed=run_seed, timing=plan_t, power=plan_p))
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")
            out = os.path.join(directory, f"{i:02d}-{slug}.arrow")
            result = replay(loaded, out=out, planner=planner_obj, seed=run_seed, timing=fleet_t, power=fleet_p)
            frame = _decisions(result.path)
            if base_frame is None:
                base_frame = frame
            kpis = compute_kpis(_read(result.path), recording_metadata(result.path))
            variants.append(Variant(
                label=label, knob=name, factor=factor, recording=result.path if out_dir is not None else None, kpis=kpis,
                mean_prefill=_mean(frame, "target_prefill"), mean_decode=_mean(frame, "target_decode"),
                mean_cap_prefill_w=_mean(frame, "cap_prefill_w"), mean_cap_decode_w=_mean(frame, "cap_decode_w"),
                first_decision_change=None if name is None else _first_change(base_frame, frame),
            ))
    return SensitivityReport(scenario=loaded.scenario.name, planner=spec, seed=run_seed, audience=to, variants=variants)


def _read(path: str) -> pl.DataFrame:
    from replaylib.record import read_recording

    return read_recording(path)


# -- rendering ------------------------------------------------------------------------------------

_WHO = {"both": "the fleet and the planner", "fleet": "the fleet only (the planner plans with the YAML's numbers)",
        "planner": "the planner only (the fleet runs the YAML's numbers)"}


def _delta(base: float | int | None, value: float | int | None, style: str) -> str:
    if base is None or value is None or value == base:
        return ""
    d = value - base
    if style in ("pct", "ratio"):
        return f" ({d * 100:+.2f} pp)"
    if base != 0:
        return f" ({d / abs(base) * 100:+.1f}%)"
    return f" ({d:+g})"


def render_sensitivity(report: SensitivityReport, fmt: str = "text") -> str:
    """KPIs and decisions side by side, each variant's change against the base."""
    if fmt == "json":
        return msgspec.json.encode(report).decode()
    if fmt != "text":
        raise SensitivityError(f"unknown format {fmt!r} (expected text or json)")
    base = report.variants[0]
    headers = ["", *(v.label for v in report.variants)]
    rows: list[list[str]] = []
    for spec in KPI_SPECS:
        b = getattr(base.kpis, spec.name)
        rows.append([spec.label] + [format_value(getattr(v.kpis, spec.name), spec.style)
                                    + ("" if v is base else _delta(b, getattr(v.kpis, spec.name), spec.style))
                                    for v in report.variants])
    rows.append(["decisions"] + [""] * len(report.variants))
    for label, attr, style in (("  mean prefill replicas", "mean_prefill", "num"), ("  mean decode replicas", "mean_decode", "num"),
                               ("  mean prefill cap", "mean_cap_prefill_w", "w"), ("  mean decode cap", "mean_cap_decode_w", "w")):
        b = getattr(base, attr)
        rows.append([label] + [("—" if getattr(v, attr) is None else format_value(getattr(v, attr), style))
                               + ("" if v is base else _delta(b, getattr(v, attr), style)) for v in report.variants])
    rows.append(["  first tick deciding differently"] + ["—" if v is base else ("none" if v.first_decision_change is None
                                                                              else f"tick {v.first_decision_change}")
                                                         for v in report.variants])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [f"sensitivity {report.scenario} | planner {report.planner} | seed {report.seed} | scaled for {_WHO[report.audience]}", ""]
    for r in [headers, *rows]:
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(lines) + "\n"


__all__ = ["SensitivityError", "SensitivityReport", "Variant", "parse_scales", "render_sensitivity", "sensitivity"]
