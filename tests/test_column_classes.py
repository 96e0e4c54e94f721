"""Every recording column declares its class and default tolerance, once, in the schema.

Other branches add columns: a column added to ``EventRow`` without an entry in
``replaylib.record.schema.COLUMN_CLASSES`` fails here, naming it.
"""

from __future__ import annotations

import math

from replaylib.record.schema import (
    CLASS_TOLERANCE,
    COLUMN_CLASSES,
    COLUMN_SPECS,
    FIELDS,
    KIND_CLASSES,
    KINDS,
    NOT_COMPARED,
    ColumnClass,
    column_spec,
    columns_of,
)


def test_every_column_has_a_class() -> None:
    undeclared = [f for f in FIELDS if f not in COLUMN_CLASSES]
    assert not undeclared, (
        f"columns without a class: {', '.join(undeclared)} -- add each to COLUMN_CLASSES in "
        "replaylib/record/schema.py as decision, observation or outcome (docs/goldens.md)"
    )
    stale = [c for c in COLUMN_CLASSES if c not in FIELDS]
    assert not stale, f"COLUMN_CLASSES names columns EventRow does not have: {', '.join(stale)}"
    assert list(COLUMN_SPECS) == list(COLUMN_CLASSES)


def test_tolerances_are_finite_and_non_negative() -> None:
    for name, spec in COLUMN_SPECS.items():
        assert isinstance(spec.cls, ColumnClass), name
        for x in (spec.tolerance.rel, spec.tolerance.abs):
            assert math.isfinite(x) and x >= 0, name
    assert set(CLASS_TOLERANCE) == set(ColumnClass)


def test_the_decisions_are_what_the_planner_decided() -> None:
    decisions = set(columns_of(ColumnClass.DECISION))
    # targets, caps, reason, actuation, next tick, the planner's reasoning numbers
    assert {"target_prefill", "target_decode", "cap_prefill_w", "cap_decode_w", "target_cap_prefill_w",
            "target_cap_decode_w", "reason", "actuation", "t_sched_ms", "budget_clamped", "predicted_rate",
            "projected_w", "c_ttft"} <= decisions  # fmt: skip
    # what the planner saw, and what happened, are not decisions
    assert set(columns_of(ColumnClass.OBSERVATION)) >= {"obs_power_prefill_w", "obs_ttft_ms", "request_rate", "budget_w"}
    assert set(columns_of(ColumnClass.OUTCOME)) >= {"power_total_w", "ttft_p99_ms", "completed", "gpus", "now_ms"}
    assert decisions.isdisjoint(columns_of(ColumnClass.OBSERVATION))
    exact = [c for c in decisions if COLUMN_SPECS[c].tolerance.rel or COLUMN_SPECS[c].tolerance.abs]
    assert sorted(exact) == ["c_itl", "c_power_d", "c_power_p", "c_ttft"]  # only the noisy estimates have slack


def test_every_kind_has_a_class_and_ignored_columns_are_declared() -> None:
    assert set(KIND_CLASSES) == set(KINDS)
    assert all(c in COLUMN_SPECS and not COLUMN_SPECS[c].compared for c in NOT_COMPARED)
    assert column_spec("a_column_from_elsewhere").cls is ColumnClass.OUTCOME
