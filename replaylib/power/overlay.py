"""Synthetic per-GPU power (and latency readings) from the fleet's forward-pass metrics.

The watts come from the system's power model (:mod:`replaylib.timing.power`;
the YAML's ``power_model``): a worker that is starting, or idle for the whole
window, draws ``gpu.idle_w``; a ready worker draws what the power model gives
for its load over the window — a **prefill** worker's load is its batched
tokens per pass, a **decode** worker's its KV tokens in use — and its busy
fraction of the window, never above the applied cap.

The role's per-GPU mean then gets the scenario's bias (constant plus bias
events) and seeded noise, and is clamped to ``[idle_w, cap]``: never below
the SKU's idle draw, never above the applied cap.  These are the *true*
readings; what a planner sees goes through :class:`~replaylib.power.MetricsSource`.
"""

from __future__ import annotations

import msgspec

from replaylib.power.signals import BiasEvent, Noise, bias_at, signal_rng
from replaylib.scenario.model import SIGNALS, BiasRamp, BiasSine, BiasStep, NoiseSpec, PowerConfig
from replaylib.scenario.system import System
from replaylib.sim.metrics import LatencySummary, Snapshot, WorkerMetrics, summarize
from replaylib.timing import PowerModel, power_model

_BIAS_OF = {
    "power_prefill": "power_bias_prefill",
    "power_decode": "power_bias_decode",
    "ttft": "ttft_bias",
    "itl": "itl_bias",
}


class Readings(msgspec.Struct, frozen=True, kw_only=True):
    """One tick's synthetic measurements (truth, before any outage or staleness)."""

    power_prefill_w: float | None  #: per-GPU mean over the role's workers (None: no workers)
    power_decode_w: float | None
    power_total_w: float  #: all GPUs of all workers
    gpus: int
    ttft: LatencySummary | None  #: None when the window holds no first tokens
    itl: LatencySummary | None


class Overlay:
    """Turns snapshots into power and latency readings with bias and seeded noise."""

    def __init__(self, system: System, config: PowerConfig, bias_events: list[BiasEvent], seed: int,
                 power: PowerModel | None = None) -> None:
        self.system = system
        self.power: PowerModel = power if power is not None else power_model(system)
        self._gpus = system.model.gpus_per_worker
        self._constant = {sig: config.bias.get(_BIAS_OF[sig], 0.0) for sig in SIGNALS}
        self._events: dict[str, list[BiasEvent]] = {sig: [] for sig in SIGNALS}
        for ev in bias_events:
            sig = next(s for s, b in _BIAS_OF.items() if b == ev.signal)
            self._events[sig].append(ev)
        self._noise = {sig: Noise(config.noise.get(sig, NoiseSpec()), signal_rng(seed, sig)) for sig in SIGNALS}

    def bias(self, signal: str, t_s: float) -> float:
        return bias_at(self._constant[signal], self._events[signal], t_s)

    def worker_power(self, w: WorkerMetrics, window_ms: float) -> float:
        """Deterministic per-GPU draw of one worker over the window (before bias and noise)."""
        power = self.power
        if w.state == "starting":
            return power.idle_w
        if window_ms > 0:
            busy = min(1.0, w.busy_ms / window_ms)
        else:
            busy = 1.0 if (w.batched_prefill_tokens or w.decode_requests) else 0.0
        if busy <= 0.0:
            return power.idle_w
        if w.role == "prefill":
            load = w.tokens / w.passes if w.passes else float(w.batched_prefill_tokens)
            return power.worker_w("prefill", w.cap_w, load, busy)
        return power.worker_w("decode", w.cap_w, float(w.kv_tokens_used), busy)

    def read(self, snap: Snapshot) -> Readings:
        """Readings for the window that ends at ``snap.now_ms``; draws every noise stream once."""
        window_ms = snap.window.duration_ms
        t_s = snap.now_ms / 1000.0
        noise = {sig: self._noise[sig].draw() for sig in SIGNALS}
        role_w: dict[str, float | None] = {}
        gpus = 0
        total = 0.0
        for role, cap in (("prefill", snap.cap_prefill_w), ("decode", snap.cap_decode_w)):
            workers = [w for w in snap.workers if w.role == role]
            if not workers:
                role_w[role] = None
                continue
            mean = sum(self.worker_power(w, window_ms) for w in workers) / len(workers)
            sig = f"power_{role}"
            value = self.power.clamp_w(mean + self.bias(sig, t_s) + noise[sig], cap)
            role_w[role] = value
            n_gpus = len(workers) * self._gpus
            gpus += n_gpus
            total += value * n_gpus
        return Readings(
            power_prefill_w=role_w["prefill"],
            power_decode_w=role_w["decode"],
            power_total_w=total,
            gpus=gpus,
            ttft=summarize(snap.window.ttft, self.bias("ttft", t_s) + noise["ttft"]),
            itl=summarize(snap.window.itl, self.bias("itl", t_s) + noise["itl"]),
        )


__all__ = ["BiasRamp", "BiasSine", "BiasStep", "Overlay", "Readings"]
