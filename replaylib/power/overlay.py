"""Synthetic per-GPU power (and latency readings) from the fleet's forward-pass metrics.

Model (constants from ``systems/<sku>.yaml`` ``power_model``):

* a worker that is starting, or idle for the whole window, draws ``gpu.idle_w``;
* a busy **prefill** worker draws ``base_fraction x tdp`` rising linearly to
  ``uncapped_w`` as its batched tokens per pass approach ``saturation_tokens``
  (compute-bound: it runs into the cap early);
* a busy **decode** worker draws ``base_fraction x tdp`` rising to ``uncapped_w``
  as its KV tokens in use approach ``hbm_saturation_kv_tokens`` (memory-bound:
  its draw sits well under TDP, so only low caps bind);
* the busy draw is limited by the applied cap; over a window a worker draws
  ``idle + busy_fraction x (busy - idle)``.

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

    def __init__(self, system: System, config: PowerConfig, bias_events: list[BiasEvent], seed: int) -> None:
        self.system = system
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
        g = self.system.gpu
        if w.state == "starting":
            return g.idle_w
        if window_ms > 0:
            busy = min(1.0, w.busy_ms / window_ms)
        else:
            busy = 1.0 if (w.batched_prefill_tokens or w.decode_requests) else 0.0
        if busy <= 0.0:
            return g.idle_w
        if w.role == "prefill":
            pm = self.system.power_model.prefill
            per_pass = w.tokens / w.passes if w.passes else float(w.batched_prefill_tokens)
            load = min(1.0, per_pass / pm.saturation_tokens)
        else:
            pm = self.system.power_model.decode
            load = min(1.0, w.kv_tokens_used / pm.hbm_saturation_kv_tokens)
        base = pm.base_fraction * g.tdp_w
        draw = min(base + (pm.uncapped_w - base) * load, w.cap_w)
        return g.idle_w + busy * (max(draw, g.idle_w) - g.idle_w)

    def read(self, snap: Snapshot) -> Readings:
        """Readings for the window that ends at ``snap.now_ms``; draws every noise stream once."""
        window_ms = snap.window.duration_ms
        t_s = snap.now_ms / 1000.0
        idle = self.system.gpu.idle_w
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
            value = min(max(mean + self.bias(sig, t_s) + noise[sig], idle), cap)
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
