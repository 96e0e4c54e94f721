"""Pieces the built-in planners share: engine settings, the predicted workload, replica fitting.

Engine settings
    The serving engine's knobs (``max_num_batched_tokens``, ``max_num_seqs``)
    come from the scenario's ``FleetConfig`` (``PlannerContext.fleet``), so the
    planner's capacity model and the simulated fleet always agree.  One planner
    knob has no ``PlannerConfig`` field and is read from ``PlannerConfig.params``:
    ``scale_in_ticks`` (default 3), the ticks a lower replica target must
    persist before a role scales in.

Replica fitting (:func:`cut_to_fit`)
    When replicas cost more than a limit (GPUs, or watts), remove one replica
    at a time from the role with the **more headroom**: the role that would
    still cover the larger fraction of its need after the cut,
    ``(n_role − 1) / need_role`` (``need`` = fractional replicas the predicted
    load needs; a role with no need has infinite headroom).  Ties cut decode.
    No role goes below ``floor`` (``min_endpoint``); if both sit at the floor
    and the cost still exceeds the limit, the fit is infeasible.
"""

from __future__ import annotations

import math

import msgspec

from replaylib.planner.capacity import DEFAULT_MAX_NUM_BATCHED_TOKENS, DEFAULT_MAX_NUM_SEQS
from replaylib.planner.protocol import PlannerContext, PlannerError

DEFAULT_SCALE_IN_TICKS = 3
#: Tolerance used when rounding a fractional replica need up (2.0000000001 -> 2).
NEED_EPS = 1e-9

class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Engine knobs (from the fleet config) and planner knobs ``PlannerConfig`` has no field for."""

    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    scale_in_ticks: int = DEFAULT_SCALE_IN_TICKS


def resolve_settings(ctx: PlannerContext) -> Settings:
    """Engine knobs from ``ctx.fleet``; ``scale_in_ticks`` from ``ctx.config.params``."""
    raw = ctx.config.params.get("scale_in_ticks", DEFAULT_SCALE_IN_TICKS)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise PlannerError(f"planner.params.scale_in_ticks: expected an integer >= 1, got {raw!r}")
    return Settings(
        max_num_batched_tokens=ctx.fleet.max_num_batched_tokens,
        max_num_seqs=ctx.fleet.max_num_seqs,
        scale_in_ticks=raw,
    )


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """The predicted load of the next interval."""

    rate: float  #: requests per second
    isl: float  #: mean input tokens per request
    osl: float  #: mean output tokens per request
    hit: float  #: prefix-cache hit rate assumed (share of input tokens not recomputed)

    @property
    def prefill_demand(self) -> float:
        """Prompt tokens per second to compute: ``rate · isl · (1 − hit)``."""
        return self.rate * self.isl * (1.0 - self.hit)

    @property
    def decode_demand(self) -> float:
        """Output tokens per second to generate: ``rate · osl``."""
        return self.rate * self.osl


class RoleSizing(msgspec.Struct, frozen=True, kw_only=True):
    """One role's demand and per-worker capacity at a cap."""

    cap_w: float
    demand: float  #: tokens per second the role must serve
    per_worker: float  #: tokens per second one worker serves (corrected)

    @property
    def need(self) -> float:
        """Fractional workers the demand needs (``inf`` when a worker serves nothing)."""
        if self.demand <= 0.0:
            return 0.0
        return self.demand / self.per_worker if self.per_worker > 0.0 else math.inf

    def served(self, n: int) -> float:
        """Share of the demand ``n`` workers serve, in [0, 1] (1 with no demand)."""
        need = self.need
        return 1.0 if need <= 0.0 else min(1.0, n / need)


class Sizing(msgspec.Struct, frozen=True, kw_only=True):
    prefill: RoleSizing
    decode: RoleSizing


class Fit(msgspec.Struct, frozen=True, kw_only=True):
    """The result of :func:`cut_to_fit`."""

    n_prefill: int
    n_decode: int
    cut_prefill: int = 0
    cut_decode: int = 0
    feasible: bool = True


def ceil_need(need: float, floor: int, ceiling: int) -> int:
    """``ceil(need)`` (with a tiny tolerance) clamped to ``[floor, ceiling]``."""
    if math.isinf(need) or need > ceiling:
        return max(floor, ceiling)
    return min(max(floor, math.ceil(need - NEED_EPS)), max(floor, ceiling))


def _headroom(n: int, need: float) -> float:
    return math.inf if need <= 0.0 else (n - 1) / need


def cut_to_fit(
    n_prefill: int,
    n_decode: int,
    *,
    cost_prefill: float,
    cost_decode: float,
    limit: float,
    need_prefill: float,
    need_decode: float,
    floor: int,
) -> Fit:
    """Remove replicas (more-headroom role first, ties decode) until the cost fits ``limit``."""
    n_p, n_d, cut_p, cut_d = n_prefill, n_decode, 0, 0
    while n_p * cost_prefill + n_d * cost_decode > limit * (1.0 + 1e-12):
        can_p, can_d = n_p > floor, n_d > floor
        if not (can_p or can_d):
            return Fit(n_prefill=n_p, n_decode=n_d, cut_prefill=cut_p, cut_decode=cut_d, feasible=False)
        if can_d and (not can_p or _headroom(n_d, need_decode) >= _headroom(n_p, need_prefill)):
            n_d, cut_d = n_d - 1, cut_d + 1
        else:
            n_p, cut_p = n_p - 1, cut_p + 1
    return Fit(n_prefill=n_p, n_decode=n_d, cut_prefill=cut_p, cut_decode=cut_d)


def clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


__all__ = [
    "DEFAULT_SCALE_IN_TICKS",
    "Fit",
    "RoleSizing",
    "Settings",
    "Sizing",
    "Workload",
    "ceil_need",
    "clamp",
    "cut_to_fit",
    "resolve_settings",
]
