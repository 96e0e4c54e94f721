"""Per-worker capacity, latency and power from a system's timing model.

Pure functions of a :class:`~replaylib.scenario.system.System`, using the
same formulas as the simulated fleet (``docs/fleet_model.md``); ``T`` is the
``timing`` section of ``systems/<sku>.yaml``.  Every cap is first clamped to
the settable range (``System.clamp_cap``, as the fleet does) and
``speed = System.speed(role, cap)``.

Prefill (a pass of ``Σn`` new tokens, each chunk ``n`` at context ``ctx``)::

    pass_ms = (T.base + T.per_token · Σn + T.per_token_context · Σ n·(ctx + n/2)) / speed

* **throughput** of a worker running full passes of ``B = max_num_batched_tokens``
  tokens whose attended context averages half the ISL
  (``Σ n·(ctx + n/2) ≈ B · isl/2``)::

      prefill_tokens_per_s = 1000 · B / pass_ms(B, B · isl/2)

* **unloaded time of one request** of ``isl`` tokens, ``cached`` of them from the
  prefix cache, chunked into ``k = ceil((isl − cached) / B)`` passes.  With
  ``new = isl − cached`` the chunks' ``Σ n·(ctx + n/2)`` is exactly
  ``new · cached + new²/2``::

      prefill_request_ms = (k · T.base + T.per_token · new + T.per_token_context · (new · cached + new²/2)) / speed

* **expected TTFT under load** (M/D/1 queue per worker, service time
  ``S = 1000 · new / prefill_tokens_per_s``, utilisation ``ρ`` clamped to
  ``[0, RHO_MAX]``)::

      ttft_ms = prefill_request_ms + ρ · S / (2 · (1 − ρ))

  and the highest utilisation that keeps it within a target ``T*``:
  ``m = 2 · (T* − prefill_request_ms) / S``, ``ρ_max = m / (1 + m)`` (0 when the
  unloaded time alone misses the target).

Decode (a step of batch ``b`` with ``kv`` KV tokens in use)::

    step_ms = (T.base + T.per_seq · b + T.per_kv_token · kv) / speed

* the **operating point at an ITL target**: a request holds ``isl + osl/2`` KV
  tokens on average, so ``kv ≈ b · (isl + osl/2)``; the batch is the largest
  integer ``b`` with ``step_ms(b) ≤ itl``, ``b · (isl + osl/2 + 1) ≤ kv.capacity_tokens``
  (the fleet admits a request only if every running one can grow by a token)
  and ``b ≤ max_num_seqs``; ``decode_tokens_per_s = 1000 · b / step_ms(b)``.
  ``b = 0`` (not even one sequence meets the target) is reported as infeasible.

Power (``power_model``; a saturated worker draws its uncapped power, never
more than the cap)::

    loaded_power_w(role, cap) = min(uncapped_w, cap)
    worker_power_w = idle + busy · (max(min(base + (uncapped − base) · load, cap), idle) − idle)
    base = base_fraction · tdp;  load = prefill tokens per pass / saturation_tokens
                                  (decode: KV tokens in use / hbm_saturation_kv_tokens), ≤ 1

which is the synthetic power overlay's formula (``replaylib.power``) before
bias and noise.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from replaylib.scenario.system import System

Role = Literal["prefill", "decode"]

#: FleetConfig's defaults, used when a planner is not told the fleet's engine knobs.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
DEFAULT_MAX_NUM_SEQS = 256
#: Utilisation at which the expected-TTFT queueing term is capped (avoids the pole at 1).
RHO_MAX = 0.95
#: Slack when flooring a batch size, so that a batch hitting the target exactly counts.
_EPS = 1e-9


def _speed(system: System, role: Role, cap_w: float) -> float:
    return system.speed(role, system.clamp_cap(cap_w))


# -- prefill ------------------------------------------------------------------------------------


def prefill_pass_ms(system: System, tokens: float, attended: float, cap_w: float) -> float:
    """One prefill pass of ``tokens`` new tokens with ``attended = Σ n·(ctx + n/2)``."""
    t = system.timing.prefill
    return (t.base_ms + t.per_token_ms * tokens + t.per_token_context_ms * attended) / _speed(system, "prefill", cap_w)


def prefill_tokens_per_s(system: System, isl: float, cap_w: float, max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS) -> float:
    """Prompt tokens per second of one worker running full passes (context ≈ isl/2)."""
    b = float(max_num_batched_tokens)
    return 1000.0 * b / prefill_pass_ms(system, b, b * max(isl, 0.0) / 2.0, cap_w)


def prefill_request_ms(
    system: System,
    isl: float,
    cap_w: float,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    cached_tokens: float = 0.0,
) -> float:
    """Unloaded prefill time (ms) of one request: its passes back to back, nothing else queued."""
    cached = min(max(cached_tokens, 0.0), max(isl - 1.0, 0.0))
    new = max(isl - cached, 1.0)
    passes = max(1, math.ceil(new / max_num_batched_tokens - _EPS))
    t = system.timing.prefill
    work = passes * t.base_ms + t.per_token_ms * new + t.per_token_context_ms * (new * cached + new * new / 2.0)
    return work / _speed(system, "prefill", cap_w)


def prefill_service_ms(system: System, isl: float, cap_w: float, max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS, cached_tokens: float = 0.0) -> float:
    """Worker time one request occupies at full-pass throughput: ``1000 · new / prefill_tokens_per_s``."""
    new = max(isl - max(cached_tokens, 0.0), 1.0)
    return 1000.0 * new / prefill_tokens_per_s(system, isl, cap_w, max_num_batched_tokens)


def queued_ttft_ms(unloaded_ms: float, service_ms: float, utilization: float) -> float:
    """M/D/1 expected TTFT: ``unloaded + ρ·S / (2(1 − ρ))`` with ``ρ`` clamped to ``[0, RHO_MAX]``."""
    rho = min(max(utilization, 0.0), RHO_MAX)
    return unloaded_ms + rho * service_ms / (2.0 * (1.0 - rho))


def utilization_ceiling(unloaded_ms: float, service_ms: float, target_ms: float) -> float:
    """Highest ``ρ`` whose M/D/1 TTFT stays ≤ ``target_ms``: ``m/(1+m)``, ``m = 2(target − unloaded)/S``."""
    slack = target_ms - unloaded_ms
    if slack <= 0.0:
        return 0.0
    if service_ms <= 0.0:
        return 1.0
    m = 2.0 * slack / service_ms
    return m / (1.0 + m)


# -- decode -------------------------------------------------------------------------------------


class DecodePoint(msgspec.Struct, frozen=True, kw_only=True):
    """A decode worker's operating point: batch size, step time and output tokens per second."""

    batch: int
    step_ms: float
    tokens_per_s: float
    kv_per_seq: float  #: mean KV tokens one running request holds (isl + osl/2)
    limited_by: Literal["itl", "kv", "max_num_seqs", "infeasible"]


def decode_step_ms(system: System, batch: float, kv_tokens: float, cap_w: float) -> float:
    """One decode step of ``batch`` sequences holding ``kv_tokens`` KV tokens."""
    t = system.timing.decode
    return (t.base_ms + t.per_seq_ms * batch + t.per_kv_token_ms * kv_tokens) / _speed(system, "decode", cap_w)


def decode_point(
    system: System,
    isl: float,
    osl: float,
    cap_w: float,
    itl_ms: float,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
) -> DecodePoint:
    """The largest batch meeting ``itl_ms`` within KV capacity and ``max_num_seqs`` (see the module doc)."""
    t = system.timing.decode
    ctx = max(isl, 0.0) + max(osl, 0.0) / 2.0
    speed = _speed(system, "decode", cap_w)
    per_seq = t.per_seq_ms + t.per_kv_token_ms * ctx
    room = itl_ms * speed - t.base_ms
    if room < 0.0:
        b_itl = 0
    elif per_seq <= 0.0:
        b_itl = max_num_seqs
    else:
        b_itl = math.floor(room / per_seq + _EPS)
    b_kv = math.floor(system.kv.capacity_tokens / (ctx + 1.0) + _EPS)
    batch = min(b_itl, b_kv, max_num_seqs)
    if batch < 1:
        step = decode_step_ms(system, 1, ctx, cap_w)
        return DecodePoint(batch=0, step_ms=step, tokens_per_s=0.0, kv_per_seq=ctx, limited_by="infeasible")
    limited_by: Literal["itl", "kv", "max_num_seqs"] = "itl" if batch == b_itl else "kv" if batch == b_kv else "max_num_seqs"
    step = decode_step_ms(system, batch, batch * ctx, cap_w)
    return DecodePoint(batch=batch, step_ms=step, tokens_per_s=1000.0 * batch / step, kv_per_seq=ctx, limited_by=limited_by)


def decode_point_at_batch(system: System, isl: float, osl: float, cap_w: float, batch: int) -> DecodePoint:
    """The operating point at a fixed batch (e.g. 1: the best ITL a worker can give)."""
    ctx = max(isl, 0.0) + max(osl, 0.0) / 2.0
    step = decode_step_ms(system, batch, batch * ctx, cap_w)
    return DecodePoint(batch=batch, step_ms=step, tokens_per_s=1000.0 * batch / step, kv_per_seq=ctx, limited_by="infeasible")


def decode_tokens_per_s(system: System, isl: float, osl: float, cap_w: float, itl_ms: float, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS) -> float:
    """Output tokens per second of one decode worker at the ITL target (0 when infeasible)."""
    return decode_point(system, isl, osl, cap_w, itl_ms, max_num_seqs).tokens_per_s


# -- power --------------------------------------------------------------------------------------


def loaded_power_w(system: System, role: Role, cap_w: float) -> float:
    """Per-GPU draw of a saturated worker: ``min(uncapped_w, cap)``."""
    pm = system.power_model.prefill if role == "prefill" else system.power_model.decode
    return min(pm.uncapped_w, system.clamp_cap(cap_w))


def prefill_load(system: System, tokens_per_pass: float) -> float:
    """Prefill power load in [0, 1]: tokens per pass / ``saturation_tokens``."""
    return min(1.0, max(tokens_per_pass, 0.0) / system.power_model.prefill.saturation_tokens)


def decode_load(system: System, kv_tokens: float) -> float:
    """Decode power load in [0, 1]: KV tokens in use / ``hbm_saturation_kv_tokens``."""
    return min(1.0, max(kv_tokens, 0.0) / system.power_model.decode.hbm_saturation_kv_tokens)


def worker_power_w(system: System, role: Role, cap_w: float, *, load: float, busy: float) -> float:
    """Expected per-GPU draw of a ready worker busy ``busy`` of the time at power ``load``."""
    g = system.gpu
    pm = system.power_model.prefill if role == "prefill" else system.power_model.decode
    busy = min(max(busy, 0.0), 1.0)
    base = pm.base_fraction * g.tdp_w
    draw = min(base + (pm.uncapped_w - base) * min(max(load, 0.0), 1.0), system.clamp_cap(cap_w))
    return g.idle_w + busy * (max(draw, g.idle_w) - g.idle_w)


__all__ = [
    "DEFAULT_MAX_NUM_BATCHED_TOKENS",
    "DEFAULT_MAX_NUM_SEQS",
    "RHO_MAX",
    "DecodePoint",
    "decode_load",
    "decode_point",
    "decode_point_at_batch",
    "decode_step_ms",
    "decode_tokens_per_s",
    "loaded_power_w",
    "prefill_load",
    "prefill_pass_ms",
    "prefill_request_ms",
    "prefill_service_ms",
    "prefill_tokens_per_s",
    "queued_ttft_ms",
    "utilization_ceiling",
    "worker_power_w",
]
