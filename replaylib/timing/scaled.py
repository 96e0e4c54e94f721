"""Models scaled by a factor: how uncertain numbers move a replay (the ``sensitivity`` verb).

Each wrapper holds any timing / power model and changes one thing:

* :class:`ScaledTiming` — prefill pass times, decode step times and/or the KV
  hand-off times multiplied by a factor (1.2 = 20 % slower);
* :class:`ScaledPower` — a role's cap → speed **slowdown** ``1 − speed(cap)``
  multiplied by a factor (1.2 = the cap costs 20 % more speed; the uncapped
  speed stays 1), and/or a role's busy draw multiplied by a factor (never above
  the cap, never below idle).

A run of decode steps stays a run: its first step and its growth scale alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from replaylib.timing.protocol import PowerModel, RangeReport, Role, TimingModel

#: Who sees a scaled model in a sensitivity replay.
Audience = Literal["both", "fleet", "planner"]
AUDIENCES: tuple[str, ...] = ("both", "fleet", "planner")


class ScaledTiming:
    """``inner`` with prefill × ``prefill``, decode × ``decode``, hand-off × ``kv_transfer``."""

    def __init__(self, inner: TimingModel, *, prefill: float = 1.0, decode: float = 1.0, kv_transfer: float = 1.0) -> None:
        for name, k in (("prefill", prefill), ("decode", decode), ("kv_transfer", kv_transfer)):
            if not k > 0:
                raise ValueError(f"{name} factor must be > 0, got {k}")
        self.inner = inner
        self.name = f"{inner.name} (scaled)"
        self.k_prefill, self.k_decode, self.k_transfer = prefill, decode, kv_transfer

    def prefill_pass_ms(self, chunks: Sequence[tuple[int, int]], speed: float) -> float:
        return self.k_prefill * self.inner.prefill_pass_ms(chunks, speed)

    def prefill_request_ms(self, new_tokens: float, cached_tokens: float, max_batched_tokens: int, speed: float) -> float:
        return self.k_prefill * self.inner.prefill_request_ms(new_tokens, cached_tokens, max_batched_tokens, speed)

    def prefill_tokens_per_s(self, isl: float, max_batched_tokens: int, speed: float) -> float:
        return self.inner.prefill_tokens_per_s(isl, max_batched_tokens, speed) / self.k_prefill

    def decode_step_ms(self, batch: float, kv_tokens: float, speed: float) -> float:
        return self.k_decode * self.inner.decode_step_ms(batch, kv_tokens, speed)

    def decode_run(self, batch: int, kv_tokens: int, speed: float) -> tuple[float, float, int]:
        first, growth, steps = self.inner.decode_run(batch, kv_tokens, speed)
        return self.k_decode * first, self.k_decode * growth, steps

    def decode_max_batch(self, itl_ms: float, context: float, speed: float, limit: int) -> int:
        return self.inner.decode_max_batch(itl_ms / self.k_decode, context, speed, limit)

    def kv_transfer_end_ms(self, start_ms: float, isl: int) -> float:
        return start_ms + self.k_transfer * (self.inner.kv_transfer_end_ms(start_ms, isl) - start_ms)

    def range_report(self) -> RangeReport:
        return self.inner.range_report()


class ScaledPower:
    """``inner`` with each role's cap slowdown × ``slowdown[role]`` and busy draw × ``draw[role]``."""

    def __init__(self, inner: PowerModel, *, slowdown: dict[str, float] | None = None, draw: dict[str, float] | None = None) -> None:
        self.inner = inner
        self.name = f"{inner.name} (scaled)"
        self.idle_w = inner.idle_w
        self.slowdown = {"prefill": 1.0, "decode": 1.0, **(slowdown or {})}
        self.draw = {"prefill": 1.0, "decode": 1.0, **(draw or {})}
        for what, table in (("slowdown", self.slowdown), ("draw", self.draw)):
            for role, k in table.items():
                if role not in ("prefill", "decode") or not k > 0:
                    raise ValueError(f"{what} factor for {role!r} must be > 0 (roles: prefill, decode), got {k}")

    def speed(self, role: Role, cap_w: float) -> float:
        s = self.inner.speed(role, cap_w)
        k = self.slowdown[role]
        return s if k == 1.0 else min(1.0, max(1.0 - k * (1.0 - s), 1e-3))

    def worker_w(self, role: Role, cap_w: float, load: float, busy: float) -> float:
        k = self.draw[role]
        if k == 1.0:
            return self.inner.worker_w(role, cap_w, load, busy)
        busy_draw = self.inner.worker_w(role, cap_w, load, 1.0)
        return self.inner.busy_mix_w(self.inner.clamp_w(k * busy_draw, cap_w), min(max(busy, 0.0), 1.0))

    def saturated_w(self, role: Role, cap_w: float) -> float:
        k = self.draw[role]
        sat = self.inner.saturated_w(role, cap_w)
        return sat if k == 1.0 else self.inner.clamp_w(k * sat, cap_w)

    def busy_mix_w(self, draw_w: float, busy: float) -> float:
        return self.inner.busy_mix_w(draw_w, busy)

    def clamp_w(self, watts: float, cap_w: float) -> float:
        return self.inner.clamp_w(watts, cap_w)

    def provisioned_w(self, n_prefill: float, n_decode: float, cap_prefill_w: float, cap_decode_w: float) -> float:
        return self.inner.provisioned_w(n_prefill, n_decode, cap_prefill_w, cap_decode_w)

    def worker_provisioned_w(self, cap_w: float) -> float:
        return self.inner.worker_provisioned_w(cap_w)


# -- knobs: the named parts of the models a sensitivity replay can scale -------------------------


@dataclass(frozen=True)
class Knob:
    """One scalable part of the models: ``apply(timing, power, factor) -> (timing, power)``."""

    name: str
    help: str
    apply: Callable[[TimingModel, PowerModel, float], tuple[TimingModel, PowerModel]]


_KNOBS: dict[str, Knob] = {}


def register_knob(knob: Knob) -> None:
    if knob.name in _KNOBS:
        raise ValueError(f"a knob named {knob.name!r} is already registered")
    _KNOBS[knob.name] = knob


def knobs() -> dict[str, Knob]:
    return dict(sorted(_KNOBS.items()))


for _role in ("prefill", "decode"):
    register_knob(Knob(f"speed_curve.{_role}", f"the {_role} cap -> speed slowdown (1 - speed)",
                       lambda t, p, k, r=_role: (t, ScaledPower(p, slowdown={r: k}))))
    register_knob(Knob(f"timing.{_role}", f"{_role} {'pass' if _role == 'prefill' else 'step'} times",
                       lambda t, p, k, r=_role: (ScaledTiming(t, **{r: k}), p)))
    register_knob(Knob(f"power_model.{_role}", f"the busy draw of a {_role} GPU",
                       lambda t, p, k, r=_role: (t, ScaledPower(p, draw={r: k}))))
register_knob(Knob("timing.kv_transfer", "KV hand-off times", lambda t, p, k: (ScaledTiming(t, kv_transfer=k), p)))


__all__ = ["AUDIENCES", "Audience", "Knob", "ScaledPower", "ScaledTiming", "knobs", "register_knob"]
