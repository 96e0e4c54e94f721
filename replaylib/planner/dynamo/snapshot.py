"""Observation -> the snapshot Dynamo's replay runtime hands its planner; Dynamo's answer -> Decision.

Dynamo's offline replay calls ``ReplayPlannerAdapter.on_tick(snapshot)`` with a
plain dict per scaling tick; :func:`dynamo_snapshot` builds the same dict from
an :class:`~replaylib.planner.Observation`:

* worker ids by role and state (``active_*_ids``, ``starting_*_ids``,
  ``draining_*_ids``) from ``obs.workers``; the counts Dynamo takes as the
  current inventory (``active_*_count``, ``non_draining_*_count``) from the
  role counts, which already include this tick's node loss and recovery;
* one forward-pass-metrics record per worker that runs passes (active and
  draining), from the fleet's per-worker metrics (:func:`fpm_record`);
* the traffic window since the last tick (:func:`traffic_window`).

Field by field (ours -> Dynamo's ``ForwardPassMetrics``):

=============================  ==================================================
``wall_time``                  mean pass (prefill) or step (decode) time in the
                               window, seconds; 0.0 when idle (Dynamo's idle
                               heartbeat)
``num_prefill_requests``       requests in the prefill pass in flight
``sum_prefill_tokens``         new tokens in that pass
``num_decode_requests``        the decode worker's running batch
``sum_decode_kv_tokens``       the decode worker's KV tokens in use
``num_queued_prefill``         prefill requests queued, not in the pass
``sum_queued_prefill_tokens``  prefill tokens still to compute beyond the pass in
                               flight
``num_queued_decode``          decode requests waiting for KV room
``sum_queued_decode_kv_tokens``  the KV those waiting requests need
variances, ``sum_prefill_kv_tokens``  0 (the fleet does not track them; Dynamo's
                               load-based scaling does not read them)
=============================  ==================================================

:func:`to_decision` maps Dynamo's answer back: a ``None`` target keeps the
role's current (non-draining) count; ``next_tick_ms`` (absolute simulated
time) becomes ``next_tick_s`` relative to the tick's ``now``.  Dynamo keeps its
own tick schedule, and the tick loop's ``now = max(tick, fleet_now)`` may run
past it when a forward pass outlasts the tick; a next tick that is already due
is then asked for :data:`OVERDUE_STEP_S` later, the soonest the loop can go.
The reason and reasoning numbers come from Dynamo's tick diagnostics.
"""

from __future__ import annotations

from typing import Any

from replaylib.planner.protocol import Decision, Observation, WorkerObs

#: The step asked for when Dynamo's next tick is already due (the fleet ran past it).
OVERDUE_STEP_S = 0.001


def fpm_record(m: WorkerObs) -> dict[str, Any]:
    """One worker's forward-pass metrics in the dict layout Dynamo's replay runtime sends."""
    prefill = m.role == "prefill"
    return {
        "worker_id": m.worker_id,
        "dp_rank": 0,
        "wall_time": m.busy_ms / m.passes / 1000.0 if m.passes else 0.0,
        "num_prefill_requests": m.prefill_requests,
        "sum_prefill_tokens": m.batched_prefill_tokens,
        "var_prefill_length": 0.0,
        "sum_prefill_kv_tokens": 0,
        "num_decode_requests": m.decode_requests,
        "sum_decode_kv_tokens": 0 if prefill else m.kv_tokens_used,
        "var_decode_kv_tokens": 0.0,
        "num_queued_prefill": m.queued_requests if prefill else 0,
        "sum_queued_prefill_tokens": max(0, m.queued_tokens - m.batched_prefill_tokens) if prefill else 0,
        "var_queued_prefill_length": 0.0,
        "num_queued_decode": 0 if prefill else m.queued_requests,
        "sum_queued_decode_kv_tokens": 0 if prefill else m.queued_tokens,
        "var_queued_decode_kv_tokens": 0.0,
    }


def traffic_window(obs: Observation) -> dict[str, Any]:
    """The window since the last tick, as Dynamo's replay runtime reports it (with its sample counts)."""
    ttft, itl = obs.ttft, obs.itl
    shaped = obs.arrivals if obs.mean_isl is not None else 0
    return {
        "duration_s": obs.window_s,
        "num_req": float(obs.arrivals),
        "avg_isl": obs.mean_isl or 0.0,
        "avg_osl": obs.mean_osl or 0.0,
        "avg_ttft_ms": ttft.mean_ms if ttft is not None else 0.0,
        "avg_itl_ms": itl.mean_ms if itl is not None else 0.0,
        "shape_count": float(shaped),  # our ISL/OSL means are over the window's arrivals
        "ttft_count": float(ttft.count) if ttft is not None else 0.0,
        "itl_count": float(itl.count) if itl is not None else 0.0,
        "avg_accept_length": None,  # no speculative decoding in the fleet
        "avg_kv_hit_rate": obs.prefix_hit_rate if obs.prefix_hit_rate is not None else 0.0,
        "hit_rate_count": float(shaped) if obs.prefix_hit_rate is not None else 0.0,
        "accept_length_forward_count": 0.0,
    }


def dynamo_snapshot(obs: Observation) -> dict[str, Any]:
    """The dict Dynamo's ``ReplayPlannerAdapter.on_tick`` takes, for this tick (see the module docstring)."""
    ids: dict[tuple[str, str], list[int]] = {(r, s): [] for r in ("prefill", "decode") for s in ("active", "starting", "draining")}
    fpms: dict[str, list[dict[str, Any]]] = {"prefill": [], "decode": []}
    for m in obs.workers:
        ids[(m.role, m.state)].append(m.worker_id)
        if m.state != "starting":
            fpms[m.role].append(fpm_record(m))
    p, d = obs.prefill, obs.decode
    return {
        "tick_ordinal": obs.tick,
        "now_ms": obs.now_ms,
        "prefill_fpm_snapshots": fpms["prefill"],
        "decode_fpm_snapshots": fpms["decode"],
        "active_prefill_count": p.active,
        "active_decode_count": d.active,
        "active_prefill_ids": ids[("prefill", "active")],
        "active_decode_ids": ids[("decode", "active")],
        "starting_prefill_count": p.starting,
        "starting_decode_count": d.starting,
        "starting_prefill_ids": ids[("prefill", "starting")],
        "starting_decode_ids": ids[("decode", "starting")],
        "draining_prefill_count": p.draining,
        "draining_decode_count": d.draining,
        "draining_prefill_ids": ids[("prefill", "draining")],
        "draining_decode_ids": ids[("decode", "draining")],
        "non_draining_prefill_count": p.active + p.starting,
        "non_draining_decode_count": d.active + d.starting,
        "total_prefill_count": p.active + p.starting + p.draining,
        "total_decode_count": d.active + d.starting + d.draining,
        "traffic": traffic_window(obs),
    }


def next_tick_s(next_tick_ms: float | None, now_ms: float) -> float | None:
    """Dynamo's absolute next tick as a step from ``now`` (None: Dynamo scheduled none)."""
    if next_tick_ms is None:
        return None
    step = (next_tick_ms - now_ms) / 1000.0
    return step if step > 0 else OVERDUE_STEP_S


def reason(diagnostics: dict[str, Any] | None) -> str:
    """A short reason from Dynamo's tick diagnostics: ``load scale_up (prefill scale_up, decode no_change)``."""
    if not diagnostics:
        return "hold"
    parts = []
    for loop in ("load", "throughput"):
        total = diagnostics.get(f"{loop}_decision_reason")
        roles = [(r, diagnostics.get(f"{loop}_decision_reason_{r}")) for r in ("prefill", "decode")]
        roles = [(r, v) for r, v in roles if v is not None]
        if total is None and not roles:
            continue
        text = f"{loop} {total or 'per_role'}"
        if roles and any(v != total for _, v in roles):
            text += " (" + ", ".join(f"{r} {v}" for r, v in roles) + ")"
        parts.append(text)
    action = diagnostics.get("execute_action")
    if action and action != "apply":
        parts.append(str(action))
    short = diagnostics.get("short_circuit_reason")
    if short:
        parts.append(str(short))
    return "; ".join(parts) if parts else "hold"


def to_decision(answer: dict[str, Any], obs: Observation, diagnostics: dict[str, Any] | None,
                throughput_interval_s: float) -> Decision:
    """Dynamo's answer (``target_prefill``, ``target_decode``, ``next_tick_ms``) as a replaylib Decision."""
    target_p, target_d = answer.get("target_prefill"), answer.get("target_decode")
    diag = diagnostics or {}
    predicted = diag.get("predicted_num_req")
    return Decision(
        n_prefill=obs.prefill.active + obs.prefill.starting if target_p is None else int(target_p),
        n_decode=obs.decode.active + obs.decode.starting if target_d is None else int(target_d),
        next_tick_s=next_tick_s(answer.get("next_tick_ms"), obs.now_ms),
        reason=reason(diagnostics),
        predicted_rate=None if predicted is None else float(predicted) / throughput_interval_s,
        predicted_isl=_float(diag.get("predicted_isl")),
        predicted_osl=_float(diag.get("predicted_osl")),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


__all__ = ["OVERDUE_STEP_S", "dynamo_snapshot", "fpm_record", "next_tick_s", "reason", "to_decision", "traffic_window"]
