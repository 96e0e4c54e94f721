"""Per-SKU system constants (``systems/<sku>.yaml``) as typed, validated objects.

Every number the simulator and the power overlay use comes from here: power
limits, the timing model of the reference model, the cap->speed curves, KV
capacity, start-up delay and the synthetic power model.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from typing import Annotated

import msgspec
from msgspec import Meta

from replaylib.scenario.yamlio import ScenarioError, read_yaml

Pos = Annotated[float, Meta(gt=0)]
NonNeg = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(gt=0, le=1)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class GpuSpec(_Strict):
    model: str
    tdp_w: Pos
    min_cap_w: Pos
    max_cap_w: Pos
    idle_w: Pos


class ModelSpec(_Strict):
    name: str
    gpus_per_worker: Annotated[int, Meta(ge=1)]
    #: the model's context window in tokens (the serving engine's default ``max_model_len``);
    #: planners that scale on queue length against it (Dynamo's) read it, the fleet does not
    context_length: Annotated[int, Meta(ge=1)] | None = None


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


class Timing(_Strict):
    prefill: PrefillTiming
    decode: DecodeTiming
    kv_transfer: TransferTiming = TransferTiming()


class KvSpec(_Strict):
    capacity_tokens: Annotated[int, Meta(ge=1)]


class SpeedCurves(_Strict):
    """Relative throughput at a per-GPU cap: ``[[watts, fraction], ...]``, piecewise linear."""

    prefill: list[tuple[Pos, Fraction]]
    decode: list[tuple[Pos, Fraction]]


class PrefillPower(_Strict):
    uncapped_w: Pos
    base_fraction: Fraction
    saturation_tokens: Pos


class DecodePower(_Strict):
    uncapped_w: Pos
    base_fraction: Fraction
    hbm_saturation_kv_tokens: Pos


class PowerModel(_Strict):
    prefill: PrefillPower
    decode: DecodePower


class System(_Strict):
    name: str
    gpu: GpuSpec
    model: ModelSpec
    timing: Timing
    kv: KvSpec
    startup_delay_ms: NonNeg
    speed_curve: SpeedCurves
    power_model: PowerModel
    description: str = ""

    def speed(self, role: str, cap_w: float) -> float:
        """Relative speed (0, 1] of a ``role`` worker whose GPUs are capped at ``cap_w``."""
        return interpolate(self.speed_curve.prefill if role == "prefill" else self.speed_curve.decode, cap_w)

    def clamp_cap(self, cap_w: float) -> float:
        """The cap the driver would actually apply: inside the settable range."""
        return min(max(cap_w, self.gpu.min_cap_w), self.gpu.max_cap_w)


def interpolate(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear interpolation, flat beyond the first and last point."""
    xs = [p[0] for p in points]
    i = bisect.bisect_right(xs, x)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def load_system(path: str | os.PathLike[str]) -> System:
    """Load and validate one ``systems/*.yaml`` file."""
    path = os.fspath(path)
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ScenarioError(path, None, "expected a mapping at the top level")
    from replaylib.scenario.validate import convert  # local: validate imports this module's types

    system = convert(doc, System, lambda keys: path)
    _check_system(system, path)
    return system


def system_file_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a systems file's bytes (recorded in recordings' metadata)."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _check_system(s: System, path: str) -> None:
    g = s.gpu
    if not g.min_cap_w <= g.max_cap_w <= g.tdp_w:
        raise ScenarioError(path, "gpu", f"expected min_cap_w <= max_cap_w <= tdp_w, got {g.min_cap_w}, {g.max_cap_w}, {g.tdp_w}")
    if g.idle_w >= g.min_cap_w:
        raise ScenarioError(path, "gpu.idle_w", f"expected less than min_cap_w ({g.min_cap_w}), got {g.idle_w}")
    for role in ("prefill", "decode"):
        pts = getattr(s.speed_curve, role)
        key = f"speed_curve.{role}"
        if len(pts) < 2:
            raise ScenarioError(path, key, "expected at least two [watts, speed] points")
        if any(b[0] <= a[0] for a, b in zip(pts, pts[1:])):
            raise ScenarioError(path, key, "expected strictly increasing watts")
        if any(b[1] < a[1] for a, b in zip(pts, pts[1:])):
            raise ScenarioError(path, key, "expected speed not to fall as the cap rises")
        if pts[0][0] > g.min_cap_w or pts[-1][0] < g.max_cap_w:
            raise ScenarioError(path, key, f"expected the points to cover the settable range {g.min_cap_w}-{g.max_cap_w} W")
        if pts[-1][1] != 1.0:
            raise ScenarioError(path, key, "expected speed 1.0 at the highest cap")
    for role in ("prefill", "decode"):
        pm = getattr(s.power_model, role)
        if not g.idle_w < pm.uncapped_w <= g.tdp_w:
            raise ScenarioError(path, f"power_model.{role}.uncapped_w", f"expected between idle_w and tdp_w, got {pm.uncapped_w}")
