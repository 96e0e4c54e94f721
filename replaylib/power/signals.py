"""Bias timelines and seeded noise streams for the synthetic signals.

Each signal has its own ``random.Random`` seeded from ``(seed, signal name)``
and draws exactly once per tick (also while its readings are hidden by an
outage), so adding, removing or hiding one signal never shifts another's
numbers.
"""

from __future__ import annotations

import hashlib
import math
import random

from replaylib.scenario.model import BiasRamp, BiasSine, BiasStep, NoiseSpec


def signal_rng(seed: int, signal: str) -> random.Random:
    """A ``random.Random`` for one signal, independent of every other signal's."""
    digest = hashlib.sha256(f"replaylib:{seed}:{signal}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Noise:
    """Additive noise: ``none``, ``gaussian`` (sigma) or ``ar1`` (x = phi * x_prev + N(0, sigma))."""

    __slots__ = ("_phi", "_rng", "_sigma", "_state", "kind")

    def __init__(self, spec: NoiseSpec, rng: random.Random) -> None:
        self.kind = spec.kind
        self._sigma = spec.sigma
        self._phi = spec.phi
        self._rng = rng
        self._state = 0.0

    def draw(self) -> float:
        if self.kind == "none":
            return 0.0
        eps = self._rng.gauss(0.0, self._sigma)
        if self.kind == "gaussian":
            return eps
        self._state = self._phi * self._state + eps
        return self._state


BiasEvent = BiasStep | BiasRamp | BiasSine


def bias_at(constant: float, events: list[BiasEvent], t_s: float) -> float:
    """The bias of one signal at time ``t_s``: its constant plus every event in effect."""
    value = constant
    for ev in events:
        dt = t_s - ev.at_s
        if dt < 0:
            continue
        if isinstance(ev, BiasStep):
            value += ev.delta
        elif isinstance(ev, BiasRamp):
            value += ev.delta * min(1.0, dt / ev.duration_s)
        elif ev.duration_s is None or dt <= ev.duration_s:
            value += ev.amplitude * math.sin(2.0 * math.pi * dt / ev.period_s)
    return value
