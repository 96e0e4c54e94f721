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
from enum import StrEnum

import msgspec
import pyarrow as pa

KINDS = ("tick", "scale", "cap", "fault", "sweep", "assertion")

#: Bumped whenever a column is added, removed or changes meaning.
SCHEMA_VERSION = 3


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
    #: per-worker KV capacity the planner read from the model card (capacity noise; null: card unavailable)
    obs_kv_capacity_tokens: int | None = None
    ttft_violation: bool | None = None  #: window mean TTFT above target
    itl_violation: bool | None = None
    # decision and actuation
    reason: str | None = None
    actuation: str | None = None
    oscillations: int | None = None  #: running count of replica-target reversals (record.kpis.ReversalCounter)
    admission_rps: float | None = None  #: the admission limit the planner set (requests/s; null: none)
    # cumulative request counts
    arrived: int | None = None
    completed: int | None = None
    dropped: int | None = None
    in_flight: int | None = None
    preemptions: int | None = None
    #: cumulative frontend rejections (in ``arrived``, never in the fleet): fault 5xx plus admission
    #: control's shed; null in a replay without a frontend fault or admission control
    rejected: int | None = None
    shed: int | None = None  #: cumulative: of ``rejected``, those admission control shed
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

# -- column classes and default tolerances -------------------------------------------------------


class ColumnClass(StrEnum):
    """What a column is about: what the planner decided, what it saw, or what happened."""

    DECISION = "decision"  #: targets, caps, reason, actuation, next tick, the planner's reasoning numbers
    OBSERVATION = "observation"  #: what the planner saw (after bias, noise, outages)
    OUTCOME = "outcome"  #: fleet state, latency, power, counters, KPIs


class Tolerance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Two numbers are equal when ``|a - b| <= max(abs, rel * max(|a|, |b|))`` (floats only:
    ints, booleans and strings always compare exactly)."""

    rel: float = 0.0
    abs: float = 0.0


EXACT = Tolerance()


class ColumnSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A column's class, its default tolerance, and whether diffs and goldens look at it by default."""

    cls: ColumnClass
    tolerance: Tolerance
    compared: bool = True  #: False: left out unless named (row positions, raw histograms)


#: Default tolerance of each class.  Decisions compare exactly; observations and outcomes
#: (judged only when asked for: ``only="all"``) within one unit of a golden's sixth
#: significant digit, so that a platform's last-bit rounding never flips them.
CLASS_TOLERANCE: dict[ColumnClass, Tolerance] = {
    ColumnClass.DECISION: EXACT,
    ColumnClass.OBSERVATION: Tolerance(rel=1e-5),
    ColumnClass.OUTCOME: Tolerance(rel=1e-5),
}

#: The planner's correction factors are ratios of noisy readings to its model: they move with
#: the measurement noise (a seed change shifts them by several per cent) while the decisions
#: they feed stay put, so they are compared within 25%.  Everything else uses its class default.
_ESTIMATE = Tolerance(rel=0.25)

_D, _O, _X = ColumnClass.DECISION, ColumnClass.OBSERVATION, ColumnClass.OUTCOME

#: Every column of :class:`EventRow`, its class and (when not its class default) its tolerance.
#: A column missing here fails ``tests/test_column_classes.py::test_every_column_has_a_class``.
COLUMN_CLASSES: dict[str, ColumnClass | tuple[ColumnClass, Tolerance]] = {
    "kind": _D, "seq": _X, "tick": _D, "now_ms": _X, "t_sched_ms": _D, "fleet_ms": _X,
    "prefill_active": _O, "prefill_starting": _O, "prefill_draining": _O,
    "decode_active": _O, "decode_starting": _O, "decode_draining": _O,
    "target_prefill": _D, "target_decode": _D,
    "cap_prefill_w": _D, "cap_decode_w": _D, "target_cap_prefill_w": _D, "target_cap_decode_w": _D,
    "power_prefill_w": _X, "power_decode_w": _X, "obs_power_prefill_w": _O, "obs_power_decode_w": _O,
    "power_total_w": _X, "projected_w": _D, "projected_w_filled": _D, "budget_w": _O, "budget_clamped": _D,
    "provisioned_w": _X, "budget_headroom_w": _X, "gpus": _X,
    "arrivals": _O, "request_rate": _O, "mean_isl": _O, "mean_osl": _O,
    "predicted_rate": _D, "predicted_isl": _D, "predicted_osl": _D, "prefix_hit_rate": _O,
    "c_ttft": (_D, _ESTIMATE), "c_itl": (_D, _ESTIMATE), "c_power_p": (_D, _ESTIMATE), "c_power_d": (_D, _ESTIMATE),
    "ttft_mean_ms": _X, "ttft_p50_ms": _X, "ttft_p99_ms": _X, "ttft_count": _X, "ttft_within_sla": _X,
    "itl_mean_ms": _X, "itl_p50_ms": _X, "itl_p99_ms": _X, "itl_count": _X, "itl_within_sla": _X,
    "ttft_hist": _X, "itl_hist": _X, "obs_ttft_ms": _O, "obs_itl_ms": _O, "obs_kv_capacity_tokens": _O,
    "ttft_violation": _X, "itl_violation": _X,
    "reason": _D, "actuation": _D, "oscillations": _X, "admission_rps": _D,
    "arrived": _X, "completed": _X, "dropped": _X, "in_flight": _X, "preemptions": _X, "rejected": _X, "shed": _X, "turns_held": _X, "turns_abandoned": _X,
    "event": _D, "detail": _X, "passed": _X,
}  # fmt: skip

#: Columns left out of diffs and goldens unless named: row positions shift when one event is
#: inserted, and the window histograms are summarised by their count / mean / p50 / p99 columns.
NOT_COMPARED: tuple[str, ...] = ("seq", "ttft_hist", "itl_hist")

#: Row kinds by class: a ``scale``/``cap``/``sweep`` row present on one side only is a changed
#: decision, a ``fault`` row a changed circumstance, an ``assertion`` row a changed verdict.
KIND_CLASSES: dict[str, ColumnClass] = {
    "tick": _D, "scale": _D, "cap": _D, "sweep": _D, "fault": _O, "assertion": _X,
}  # fmt: skip


def _spec(name: str, entry: ColumnClass | tuple[ColumnClass, Tolerance]) -> ColumnSpec:
    cls, tol = entry if isinstance(entry, tuple) else (entry, CLASS_TOLERANCE[entry])
    return ColumnSpec(cls=cls, tolerance=tol, compared=name not in NOT_COMPARED)


#: The resolved spec of every declared column (class default filled in).
COLUMN_SPECS: dict[str, ColumnSpec] = {name: _spec(name, entry) for name, entry in COLUMN_CLASSES.items()}


def column_spec(name: str) -> ColumnSpec:
    """The spec of ``name``; a column the schema does not declare (a foreign frame's) is an
    outcome: reported, never judged unless asked for."""
    spec = COLUMN_SPECS.get(name)
    return spec if spec is not None else ColumnSpec(cls=ColumnClass.OUTCOME, tolerance=CLASS_TOLERANCE[ColumnClass.OUTCOME])


def columns_of(cls: ColumnClass) -> tuple[str, ...]:
    """The schema's columns of one class, in column order."""
    return tuple(f for f in FIELDS if f in COLUMN_SPECS and COLUMN_SPECS[f].cls is cls)

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
