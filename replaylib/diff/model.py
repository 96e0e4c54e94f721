"""The diff report: msgspec Structs that encode to JSON and decode back equal.

Cell values are plain JSON scalars (or a list of ints for a histogram column);
a non-finite float is carried as the string ``"nan"``, ``"inf"`` or ``"-inf"``
so that the JSON form round-trips exactly.
"""

from __future__ import annotations

import msgspec

from replaylib.errors import ReplaylibError
from replaylib.record.kpis import Kpis

#: One cell of a recording as the report carries it.
Value = int | float | str | bool | list[int] | None


class DiffError(ReplaylibError):
    """A diff that cannot be made: bad input, unknown column, refused metadata mismatch."""


class MetadataMismatch(DiffError):
    """Recordings of different traces or scenarios (refused unless forced)."""


class MetaDiff(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    a: str
    b: str


class FieldDiff(msgspec.Struct, frozen=True, kw_only=True):
    column: str
    a: Value
    b: Value


class ContextRow(msgspec.Struct, frozen=True, kw_only=True):
    """One tick around the first divergence: the shown columns' values on each side."""

    tick: int
    in_a: bool
    in_b: bool
    a: list[Value]  #: values of ``Divergence.columns`` (all null when not in A)
    b: list[Value]
    differs: list[str]  #: which of the columns differ at this tick


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """The first tick where the recordings part."""

    tick: int
    only_in: str | None  #: "a" / "b" when that tick exists on one side only
    now_ms_a: float | None
    now_ms_b: float | None
    fields: list[FieldDiff]  #: the differing judged columns, in schema order
    columns: list[str]  #: the columns the context shows: those of ``fields`` (capped), or defaults
    context: list[ContextRow]
    others: list[str] = []  #: columns that also differ at this tick but are not judged (summarised)


class ColumnCount(msgspec.Struct, frozen=True, kw_only=True):
    """How one column differs over the aligned tick rows."""

    column: str
    ticks: int  #: aligned tick rows where this column differs beyond its tolerance
    cls: str = "outcome"  #: its class (decision / observation / outcome)
    judged: bool = True  #: its differences count (else they are summarised)
    within: int = 0  #: aligned tick rows where it differs but within its tolerance
    max_abs: float | None = None  #: largest |a - b| (numbers only)
    max_rel: float | None = None  #: largest |a - b| / max(|a|, |b|)


class ClassCount(msgspec.Struct, frozen=True, kw_only=True):
    """Aligned tick rows where at least one column of a class differs beyond its tolerance."""

    cls: str
    judged: bool
    ticks: int


class ColumnTolerance(msgspec.Struct, frozen=True, kw_only=True):
    """The tolerance a judged float column was compared with (ints, booleans and strings: exact)."""

    column: str
    rel: float
    abs: float


class TickSpan(msgspec.Struct, frozen=True, kw_only=True):
    """Tick rows present on one side only."""

    count: int
    first: int | None
    last: int | None


class EventDiff(msgspec.Struct, frozen=True, kw_only=True):
    """One non-tick event that differs (aligned by its occurrence within its kind)."""

    kind: str
    index: int  #: 0-based occurrence within its tick and kind (assertions: within the kind)
    only_in: str | None
    tick_a: int | None
    tick_b: int | None
    fields: list[FieldDiff]
    judged: bool = True  #: this difference counts (else it is summarised)


class KindDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Non-tick events of one kind."""

    kind: str
    count_a: int
    count_b: int
    differing: int  #: aligned events whose judged columns differ
    only_a: int
    only_b: int
    first: EventDiff | None  #: the first judged difference, else the first difference of any column
    cls: str = "decision"  #: the kind's class: one-sided events count when it is judged
    judged: bool = True
    differing_any: int = 0  #: aligned events with any compared column differing

    @property
    def judged_differences(self) -> int:
        return self.differing + ((self.only_a + self.only_b) if self.judged else 0)


class KpiRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    label: str
    style: str
    a: int | float | None
    b: int | float | None
    delta: int | float | None  #: b - a


class DiffReport(msgspec.Struct, frozen=True, kw_only=True):
    identical: bool  #: no judged difference (metadata and summarised classes do not count)
    exact: bool = False  #: nothing compared differs at all, judged or not
    #: the judged classes (``--only``); ``["columns"]`` when columns were named
    only: list[str] = msgspec.field(default_factory=lambda: ["decisions"])
    path_a: str | None = None
    path_b: str | None = None
    planner_a: str | None = None
    planner_b: str | None = None
    metadata: list[MetaDiff] = []
    forced: bool = False
    columns: list[str] = []  #: compared columns, in schema order
    judged_columns: list[str] = []  #: the compared columns whose differences count
    tolerances: list[ColumnTolerance] = []  #: the judged float columns' tolerances
    class_ticks: list[ClassCount] = []  #: per class, aligned ticks that differ
    columns_only_a: list[str] = []  #: columns one frame lacks (a difference)
    columns_only_b: list[str] = []
    ticks_a: int = 0
    ticks_b: int = 0
    ticks_differing: int = 0  #: aligned tick rows with at least one judged column differing
    first_divergence: Divergence | None = None
    column_counts: list[ColumnCount] = []
    only_a: TickSpan = msgspec.field(default_factory=lambda: TickSpan(count=0, first=None, last=None))
    only_b: TickSpan = msgspec.field(default_factory=lambda: TickSpan(count=0, first=None, last=None))
    events: list[KindDiff] = []
    kpis_a: Kpis | None = None
    kpis_b: Kpis | None = None
    kpis: list[KpiRow] = []


class AssertionVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """One scenario assertion's verdict in one replay (full description and evidence)."""

    index: int
    description: str
    passed: bool
    evidence: str


class CompareReport(msgspec.Struct, frozen=True, kw_only=True):
    """``compare``: one scenario replayed under several planners."""

    scenario: str
    seed: int | None
    planners: list[str]
    recordings: list[str]  #: kept recordings (``out_dir``); empty when they were temporary
    diffs: list[DiffReport]  #: planner i (i >= 1) against planner 0
    kpis: list[Kpis]
    assertions: list[list[AssertionVerdict]] = []  #: per planner, the scenario assertions' verdicts

    @property
    def passed(self) -> bool:
        """Every planner passed every scenario assertion."""
        return all(v.passed for verdicts in self.assertions for v in verdicts)

    @property
    def same(self) -> bool:
        """Every planner decided as the first one did."""
        return all(d.identical for d in self.diffs)


__all__ = [
    "AssertionVerdict",
    "ClassCount",
    "ColumnCount",
    "ColumnTolerance",
    "CompareReport",
    "ContextRow",
    "DiffError",
    "DiffReport",
    "Divergence",
    "EventDiff",
    "FieldDiff",
    "KindDiff",
    "KpiRow",
    "MetaDiff",
    "MetadataMismatch",
    "TickSpan",
    "Value",
]
