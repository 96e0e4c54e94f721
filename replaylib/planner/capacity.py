"""Per-worker capacity, latency and power, from the system's timing and power models.

The pass times, step times, watts and cap speeds come from the same
:class:`~replaylib.timing.TimingModel` and :class:`~replaylib.timing.PowerModel`
the simulated fleet uses (:mod:`replaylib.timing`; analytic formulas or measured
tables), so a planner's capacity model and the fleet cannot disagree about the
machine.  Every function takes a :class:`~replaylib.timing.Models` (what the
built-in planners hold) or a bare :class:`~replaylib.scenario.system.System`
(its models are then built from its YAML).  Every cap is first clamped to the
settable range (``System.clamp_cap``, as the fleet does) and
``speed = power.speed(role, cap)``.  What this module adds is queueing and
sizing:

* **prefill throughput** of a saturated worker, ``timing.prefill_tokens_per_s``;
* **unloaded time of one request** of ``isl`` tokens, ``cached`` of them from the
  prefix cache, ``timing.prefill_request_ms(new = isl − cached, cached, B)``
  (``cached`` ≤ ``isl − 1``, as the fleet's prefix cache);
* **expected TTFT under load** (M/D/1 queue per worker, service time
  ``S = 1000 · new / prefill_tokens_per_s``, utilisation ``ρ`` clamped to
  ``[0, RHO_MAX]``)::

      ttft_ms = prefill_request_ms + ρ · S / (2 · (1 − ρ))

  and the highest utilisation that keeps it within a target ``T*``:
  ``m = 2 · (T* − prefill_request_ms) / S``, ``ρ_max = m / (1 + m)`` (0 when the
  unloaded time alone misses the target);
* the **decode operating point at an ITL target**: a request holds
  ``isl + osl/2`` KV tokens on average, so ``kv ≈ b · (isl + osl/2)``; the batch
  is the largest integer ``b`` whose step meets the target
  (``timing.decode_max_batch``), with ``b · (isl + osl/2 + 1) ≤ kv.capacity_tokens``
  (the fleet admits a request only if every running one can grow by a token)
  and ``b ≤ max_num_seqs``; ``decode_tokens_per_s = 1000 · b / step_ms(b)``.
  ``b = 0`` (not even one sequence meets the target) is reported as infeasible;
* **power**: ``power.saturated_w`` (a loaded worker) and ``power.worker_w`` (a
  worker at a load and busy fraction) — the synthetic power overlay's watts
  before bias and noise.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from replaylib.scenario.system import System
from replaylib.timing import Models, as_models

Role = Literal["prefill", "decode"]

#: FleetConfig's defaults, used when a planner is not told the fleet's engine knobs.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
DEFAULT_MAX_NUM_SEQS = 256
#: Utilisation at which the expected-TTFT queueing term is capped (avoids the pole at 1).
RHO_MAX = 0.95
#: Slack when flooring a batch size, so that a batch hitting the target exactly counts.
_EPS = 1e-9


def _speed(m: Models, role: Role, cap_w: float) -> float:
    return m.power.speed(role, m.system.clamp_cap(cap_w))


# -- prefill ------------------------------------------------------------------------------------


def prefill_pass_ms(system: System | Models, chunks: list[tuple[int, int]], cap_w: float) -> float:
    """One prefill pass of ``(new tokens, context)`` chunks at ``cap_w``."""
    m = as_models(system)
    return m.timing.prefill_pass_ms(chunks, _speed(m, "prefill", cap_w))


def prefill_tokens_per_s(system: System | Models, isl: float, cap_w: float, max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS) -> float:
    """Prompt tokens per second of one saturated worker serving prompts of ``isl`` tokens."""
    m = as_models(system)
    return m.timing.prefill_tokens_per_s(isl, max_num_batched_tokens, _speed(m, "prefill", cap_w))


def prefill_request_ms(
    system: System | Models,
    isl: float,
    cap_w: float,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    cached_tokens: float = 0.0,
) -> float:
    """Unloaded prefill time (ms) of one request: its passes back to back, nothing else queued."""
    m = as_models(system)
    cached = min(max(cached_tokens, 0.0), max(isl - 1.0, 0.0))
    new = max(isl - cached, 1.0)
    return m.timing.prefill_request_ms(new, cached, max_num_batched_tokens, _speed(m, "prefill", cap_w))


def prefill_service_ms(system: System | Models, isl: float, cap_w: float, max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS, cached_tokens: float = 0.0) -> float:
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


def decode_step_ms(system: System | Models, batch: float, kv_tokens: float, cap_w: float) -> float:
    """One decode step of ``batch`` sequences holding ``kv_tokens`` KV tokens."""
    m = as_models(system)
    return m.timing.decode_step_ms(batch, kv_tokens, _speed(m, "decode", cap_w))


def decode_point(
    system: System | Models,
    isl: float,
    osl: float,
    cap_w: float,
    itl_ms: float,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    kv_capacity_tokens: float | None = None,
) -> DecodePoint:
    """The largest batch meeting ``itl_ms`` within KV capacity and ``max_num_seqs`` (see the module doc);
    ``kv_capacity_tokens``: a worker's KV capacity as the planner knows it (None: the system's)."""
    m = as_models(system)
    ctx = max(isl, 0.0) + max(osl, 0.0) / 2.0
    kv = m.system.kv.capacity_tokens if kv_capacity_tokens is None else kv_capacity_tokens
    b_kv = math.floor(kv / (ctx + 1.0) + _EPS)
    # asked one past the other limits, so "itl" is named only when the target itself binds
    b_itl = m.timing.decode_max_batch(itl_ms, ctx, _speed(m, "decode", cap_w), min(b_kv, max_num_seqs) + 1)
    batch = min(b_itl, b_kv, max_num_seqs)
    if batch < 1:
        step = decode_step_ms(m, 1, ctx, cap_w)
        return DecodePoint(batch=0, step_ms=step, tokens_per_s=0.0, kv_per_seq=ctx, limited_by="infeasible")
    limited_by: Literal["itl", "kv", "max_num_seqs"] = "itl" if batch == b_itl else "kv" if batch == b_kv else "max_num_seqs"
    step = decode_step_ms(m, batch, batch * ctx, cap_w)
    return DecodePoint(batch=batch, step_ms=step, tokens_per_s=1000.0 * batch / step, kv_per_seq=ctx, limited_by=limited_by)


def decode_point_at_batch(system: System | Models, isl: float, osl: float, cap_w: float, batch: int) -> DecodePoint:
    """The operating point at a fixed batch (e.g. 1: the best ITL a worker can give)."""
    ctx = max(isl, 0.0) + max(osl, 0.0) / 2.0
    step = decode_step_ms(system, batch, batch * ctx, cap_w)
    return DecodePoint(batch=batch, step_ms=step, tokens_per_s=1000.0 * batch / step, kv_per_seq=ctx, limited_by="infeasible")


def decode_tokens_per_s(system: System | Models, isl: float, osl: float, cap_w: float, itl_ms: float, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS) -> float:
    """Output tokens per second of one decode worker at the ITL target (0 when infeasible)."""
    return decode_point(system, isl, osl, cap_w, itl_ms, max_num_seqs).tokens_per_s


# -- power --------------------------------------------------------------------------------------


def loaded_power_w(system: System | Models, role: Role, cap_w: float) -> float:
    """Per-GPU draw of a saturated worker at ``cap_w``."""
    return as_models(system).power.saturated_w(role, cap_w)


def worker_power_w(system: System | Models, role: Role, cap_w: float, *, load: float, busy: float) -> float:
    """Expected per-GPU draw of a ready worker busy ``busy`` of the time at ``load``
    (prefill: batched tokens per pass; decode: KV tokens in use)."""
    return as_models(system).power.worker_w(role, cap_w, load, busy)


__all__ = [
    "DEFAULT_MAX_NUM_BATCHED_TOKENS",
    "DEFAULT_MAX_NUM_SEQS",
    "RHO_MAX",
    "DecodePoint",
    "Role",
    "decode_point",
    "decode_point_at_batch",
    "decode_step_ms",
    "decode_tokens_per_s",
    "loaded_power_w",
    "prefill_pass_ms",
    "prefill_request_ms",
    "prefill_service_ms",
    "prefill_tokens_per_s",
    "queued_ttft_ms",
    "utilization_ceiling",
    "worker_power_w",
]
