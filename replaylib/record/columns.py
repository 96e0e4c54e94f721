"""What each recording column means: its unit and the rows that carry it (the source of
``docs/recording_columns.md``, which ``tests/test_reference_docs.py`` regenerates and compares).

Every column of :class:`replaylib.record.schema.EventRow` must have an entry
here (a test checks both ways), so a new column cannot land undocumented.
"""

from __future__ import annotations

import msgspec


class ColumnDoc(msgspec.Struct, frozen=True):
    unit: str  #: "" for counts, flags and text
    rows: str  #: which row kinds fill it
    meaning: str


_T = "tick"
_ALL = "all"

COLUMNS: dict[str, ColumnDoc] = {
    "kind": ColumnDoc("", _ALL, "row kind: tick, scale, cap, fault, sweep or assertion"),
    "seq": ColumnDoc("", _ALL, "position of the row in the recording: 0, 1, 2 ..."),
    "tick": ColumnDoc("", _ALL, "planner tick the row belongs to (0-based); assertion rows carry the last tick"),
    "now_ms": ColumnDoc("ms", _ALL, "the planner's clock: max(scheduled tick time, where the fleet stopped), simulated ms from the trace start"),
    "t_sched_ms": ColumnDoc("ms", _T, "when the tick was scheduled (previous now + the planner's next_tick_s or the adjustment interval)"),
    "fleet_ms": ColumnDoc("ms", _T, "where the fleet really stopped (forward passes are atomic, so it may be past the scheduled time)"),
    "prefill_active": ColumnDoc("workers", _T, "prefill workers serving, as the planner saw them (after this tick's events, before its actuation)"),
    "prefill_starting": ColumnDoc("workers", _T, "prefill workers still in their start-up delay"),
    "prefill_draining": ColumnDoc("workers", _T, "prefill workers finishing their work before removal"),
    "decode_active": ColumnDoc("workers", _T, "decode workers serving, as the planner saw them"),
    "decode_starting": ColumnDoc("workers", _T, "decode workers still in their start-up delay"),
    "decode_draining": ColumnDoc("workers", _T, "decode workers finishing their work before removal"),
    "target_prefill": ColumnDoc("workers", "tick, scale, sweep", "prefill replicas the planner asked for"),
    "target_decode": ColumnDoc("workers", "tick, scale, sweep", "decode replicas the planner asked for"),
    "cap_prefill_w": ColumnDoc("W per GPU", "tick, cap", "power cap applied to prefill GPUs after this tick's actuation"),
    "cap_decode_w": ColumnDoc("W per GPU", "tick, cap", "power cap applied to decode GPUs after this tick's actuation"),
    "target_cap_prefill_w": ColumnDoc("W per GPU", "tick, cap, sweep", "prefill cap the planner asked for (null: keep the current one)"),
    "target_cap_decode_w": ColumnDoc("W per GPU", "tick, cap, sweep", "decode cap the planner asked for (null: keep the current one)"),
    "power_prefill_w": ColumnDoc("W per GPU", _T, "true mean power of a prefill GPU (synthetic meter, with bias and noise)"),
    "power_decode_w": ColumnDoc("W per GPU", _T, "true mean power of a decode GPU"),
    "obs_power_prefill_w": ColumnDoc("W per GPU", _T, "prefill power the planner observed (null in a metrics outage; stale while stale)"),
    "obs_power_decode_w": ColumnDoc("W per GPU", _T, "decode power the planner observed"),
    "power_total_w": ColumnDoc("W total", _T, "true power of all GPUs of the fleet"),
    "projected_w": ColumnDoc("W total", "tick, sweep", "the decision's provisioned watts: replicas x GPUs per worker x caps, both roles"),
    "projected_w_filled": ColumnDoc("", _T, "true when the planner left projected_w empty and the adapter computed it from the decision"),
    "budget_w": ColumnDoc("W total", _T, "the GPU power budget in force (null: unlimited)"),
    "budget_clamped": ColumnDoc("", _T, "the adapter's budget guard lowered the caps to make the decision fit the budget"),
    "provisioned_w": ColumnDoc("W total", _T, "after actuation: GPUs of every worker not gone (draining included) x its role's cap"),
    "budget_headroom_w": ColumnDoc("W total", _T, "budget_w - provisioned_w (negative: over budget; null without a budget)"),
    "gpus": ColumnDoc("GPUs", _T, "GPUs held by the fleet (every worker not gone)"),
    "arrivals": ColumnDoc("requests", _T, "requests that arrived in the tick's window"),
    "request_rate": ColumnDoc("requests/s", _T, "arrival rate over the window"),
    "mean_isl": ColumnDoc("tokens", _T, "mean input length of the window's arrivals"),
    "mean_osl": ColumnDoc("tokens", _T, "mean output length of the window's arrivals"),
    "predicted_rate": ColumnDoc("requests/s", _T, "the planner's predicted arrival rate"),
    "predicted_isl": ColumnDoc("tokens", _T, "the planner's predicted input length"),
    "predicted_osl": ColumnDoc("tokens", _T, "the planner's predicted output length"),
    "prefix_hit_rate": ColumnDoc("fraction", _T, "share of the window's prompt tokens served from the prefix cache"),
    "c_ttft": ColumnDoc("factor", _T, "the planner's TTFT correction (observed / expected)"),
    "c_itl": ColumnDoc("factor", _T, "the planner's ITL correction (observed / expected)"),
    "c_power_p": ColumnDoc("factor", _T, "the planner's prefill power correction (observed / expected)"),
    "c_power_d": ColumnDoc("factor", _T, "the planner's decode power correction (observed / expected)"),
    "ttft_mean_ms": ColumnDoc("ms", _T, "true mean time to first token of requests whose first token came in the window"),
    "ttft_p50_ms": ColumnDoc("ms", _T, "true TTFT median over the window (histogram bucket value)"),
    "ttft_p99_ms": ColumnDoc("ms", _T, "true TTFT 99th percentile over the window"),
    "ttft_count": ColumnDoc("samples", _T, "TTFT samples in the window"),
    "ttft_within_sla": ColumnDoc("samples", _T, "TTFT samples at or under the scenario's TTFT target"),
    "itl_mean_ms": ColumnDoc("ms", _T, "true mean inter-token latency over the window"),
    "itl_p50_ms": ColumnDoc("ms", _T, "true ITL median over the window"),
    "itl_p99_ms": ColumnDoc("ms", _T, "true ITL 99th percentile over the window"),
    "itl_count": ColumnDoc("samples", _T, "ITL samples (decode steps x sequences) in the window"),
    "itl_within_sla": ColumnDoc("samples", _T, "ITL samples at or under the scenario's ITL target"),
    "ttft_hist": ColumnDoc("ms buckets", _T, "the window's TTFT histogram: bucket, count, bucket, count ... (buckets of sim.metrics.GAMMA; mergeable)"),
    "itl_hist": ColumnDoc("ms buckets", _T, "the window's ITL histogram, same layout"),
    "obs_ttft_ms": ColumnDoc("ms", _T, "mean TTFT the planner observed (bias, noise, outage, staleness)"),
    "obs_itl_ms": ColumnDoc("ms", _T, "mean ITL the planner observed"),
    "obs_kv_capacity_tokens": ColumnDoc("tokens", _T, "one worker's KV capacity as the planner read it from the model card (with the scenario's capacity noise); null while the card is unavailable (mdc_unavailable)"),
    "ttft_violation": ColumnDoc("", _T, "the window's true mean TTFT is above the target (null: no sample)"),
    "itl_violation": ColumnDoc("", _T, "the window's true mean ITL is above the target (null: no sample)"),
    "reason": ColumnDoc("", "tick, sweep", "the planner's reason code: hold, scale_out, scale_in, budget_cut_decode, fallback_default_caps ..."),
    "actuation": ColumnDoc("", _T, "what happened to the decision: ok, scaling_denied, caps_not_applied, caps_forced_low, caps_forced_high"),
    "oscillations": ColumnDoc("reversals", _T, "running count of direction reversals of the replica targets, summed over roles"),
    "admission_rps": ColumnDoc("requests/s", _T, "the frontend admission limit the planner asked for (honoured with planner.admission_control: auto); null: no limit"),
    "arrived": ColumnDoc("requests", _T, "requests that reached the frontend since the start (cumulative): completed + dropped + in flight + rejected"),
    "completed": ColumnDoc("requests", _T, "requests completed since the start (cumulative)"),
    "dropped": ColumnDoc("requests", _T, "requests dropped since the start (cumulative)"),
    "in_flight": ColumnDoc("requests", _T, "requests arrived but neither completed nor dropped"),
    "preemptions": ColumnDoc("preemptions", _T, "decode preemptions since the start (KV capacity; cumulative)"),
    "rejected": ColumnDoc("requests", _T, "requests the frontend refused since the start (a frontend fault's 5xx plus admission control's shed; they never reach the fleet; cumulative); null without a frontend fault or admission control"),
    "shed": ColumnDoc("requests", _T, "of rejected, those admission control shed (cumulative); null like rejected"),
    "turns_held": ColumnDoc("turns", _T, "closed loop: session turns whose recorded time has come but that wait for their previous turn (plus its delay); null open loop"),
    "turns_abandoned": ColumnDoc("turns", _T, "closed loop: session turns never issued because an earlier turn of their session was dropped (cumulative); null open loop"),
    "event": ColumnDoc("", "scale, cap, fault, sweep, assertion", "fault/event type, scale direction (scale_out, scale_in, rebalance), cap, sweep, or the asserted field"),
    "detail": ColumnDoc("", "scale, cap, fault, assertion", "human-readable detail (an assertion row: description -- evidence)"),
    "passed": ColumnDoc("", "assertion", "the assertion's verdict"),
}
