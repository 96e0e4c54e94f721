"""The recording's event schema: one row per event, typed columns, nulls where n/a.

Row kinds: ``tick`` (one per planner tick: the fleet, the power, the decision),
``scale`` (replica targets changed), ``cap`` (applied caps changed), ``fault``
(a scenario event fired or an actuation failed), ``sweep`` (the planner
re-optimised its operating point), ``assertion`` (a scenario assertion's
verdict, at the end).  Every row carries ``kind``, ``seq``, ``tick`` and
``now_ms``; other columns are null where they do not apply — never a fake 0.
"""

from __future__ import annotations

import re

import msgspec
import pyarrow as pa

KINDS = ("tick", "scale", "cap", "fault", "sweep", "assertion")

#: Bumped whenever a column is added, removed or changes meaning.
SCHEMA_VERSION = 2


class EventRow(msgspec.Struct, kw_only=True, omit_defaults=False):
    """One recorded event.  Field order is the column order."""

    kind: str
    seq: int  #: position in the recording (0, 1, 2 ...)
    tick: int
    now_ms: float  #: the planner's clock: max(scheduled tick, fleet time)
    t_sched_ms: float | None = None  #: when the tick was scheduled
    fleet_ms: float | None = None  #: where the fleet really stopped (passes are atomic)
    # replicas, as the planner saw them (after this tick's events, before its actuation)
    prefill_active: int | None = None
    prefill_starting: int | None = None
    prefill_draining: int | None = None
    decode_active: int | None = None
    decode_starting: int | None = None
    decode_draining: int | None = None
    target_prefill: int | None = None
    target_decode: int | None = None
    # caps (per GPU, W)
    cap_prefill_w: float | None = None  #: applied
    cap_decode_w: float | None = None
    target_cap_prefill_w: float | None = None  #: asked for by the planner
    target_cap_decode_w: float | None = None
    # power (per GPU mean of the role, W; total over all GPUs, W)
    power_prefill_w: float | None = None  #: true (synthetic meter, with bias and noise)
    power_decode_w: float | None = None
    obs_power_prefill_w: float | None = None  #: what the planner saw (null in an outage)
    obs_power_decode_w: float | None = None
    power_total_w: float | None = None
    projected_w: float | None = None  #: the planner's replicas x GPUs x caps
    projected_w_filled: bool | None = None  #: the planner left projected_w empty; the adapter computed it
    budget_w: float | None = None
    budget_clamped: bool | None = None  #: the adapter lowered caps to fit the budget
    provisioned_w: float | None = None  #: after actuation: GPUs of all non-gone workers x their role's cap
    budget_headroom_w: float | None = None  #: budget_w - provisioned_w (negative: over budget)
    gpus: int | None = None  #: GPUs held by the fleet (all non-gone workers)
    # load
    arrivals: int | None = None
    request_rate: float | None = None
    mean_isl: float | None = None
    mean_osl: float | None = None
    predicted_rate: float | None = None
    predicted_isl: float | None = None
    predicted_osl: float | None = None
    prefix_hit_rate: float | None = None
    # planner corrections
    c_ttft: float | None = None
    c_itl: float | None = None
    c_power_p: float | None = None
    c_power_d: float | None = None
    # latency over the window (true fleet values, ms)
    ttft_mean_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    ttft_count: int | None = None
    ttft_within_sla: int | None = None  #: samples at or under the TTFT target
    itl_mean_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    itl_count: int | None = None
    itl_within_sla: int | None = None
    ttft_hist: list[int] | None = None  #: window histogram: bucket, count, bucket, count ... (sim.metrics.GAMMA)
    itl_hist: list[int] | None = None
    obs_ttft_ms: float | None = None  #: observed mean TTFT (bias, noise, outage, staleness)
    obs_itl_ms: float | None = None
    ttft_violation: bool | None = None  #: window mean TTFT above target
    itl_violation: bool | None = None
    # decision and actuation
    reason: str | None = None
    actuation: str | None = None
    oscillations: int | None = None  #: running count of replica-target reversals (record.kpis.ReversalCounter)
    # cumulative request counts
    arrived: int | None = None
    completed: int | None = None
    dropped: int | None = None
    in_flight: int | None = None
    preemptions: int | None = None
    # closed-loop sessions (null in an open-loop replay)
    turns_held: int | None = None  #: session turns due by the recorded time, waiting for their previous turn
    turns_abandoned: int | None = None  #: cumulative: session turns never issued (an earlier turn was dropped)
    # non-tick events
    event: str | None = None  #: fault/event type, scale direction, assertion field ...
    detail: str | None = None  #: human-readable detail
    passed: bool | None = None  #: assertion verdict


def _arrow_type(annotation: object) -> pa.DataType:
    text = str(annotation)
    if "list" in text:
        return pa.list_(pa.int64())
    if "bool" in text:
        return pa.bool_()
    if "int" in text:
        return pa.int64()
    if "float" in text:
        return pa.float64()
    return pa.string()


FIELDS: tuple[str, ...] = EventRow.__struct_fields__
ARROW_SCHEMA = pa.schema(
    [
        pa.field(name, _arrow_type(EventRow.__annotations__[name]), nullable=name not in ("kind", "seq", "tick", "now_ms"))
        for name in FIELDS
    ]
)

#: Tick columns an assertion may name (``field:``); ``reason`` and ``actuation`` are strings.
ASSERTABLE: tuple[str, ...] = tuple(f for f in FIELDS if f not in ("kind", "seq", "event", "detail", "passed", "ttft_hist", "itl_hist"))
#: The string-valued ones (only ``==`` and ``!=`` apply).
STRING_FIELDS: tuple[str, ...] = ("reason", "actuation")

#: A planner's own metadata (its optional ``metadata()`` hook) is recorded under keys with this
#: prefix, ``planner.<key>`` with ``<key>`` matching :data:`PLANNER_METADATA_KEY`; ``diff`` compares them.
PLANNER_METADATA_PREFIX = "planner."
PLANNER_METADATA_KEY = re.compile(r"[a-z][a-z0-9_]*")

#: Keys of the Arrow schema metadata, all utf-8 strings.
METADATA_KEYS = (
    "replaylib_version",
    "schema_version",
    "planner_name",
    "planner_version",
    "scenario_name",
    "scenario_hash",
    "trace_path",
    "trace_sha256",
    "systems_sha256",
    "system_name",
    "seed",
    "ttft_target_ms",
    "itl_target_ms",
    "gpus_per_worker",
)
#: Keys a recording may carry besides those (absent in older recordings): ``overrides`` (JSON, sorted keys),
#: ``trace_mode`` (``open_loop`` / ``closed_loop``).
OPTIONAL_METADATA_KEYS = ("overrides", "trace_mode")
