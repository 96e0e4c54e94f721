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
    fields: list[FieldDiff]  #: the differing compared columns, in schema order
    columns: list[str]  #: the columns the context shows: those of ``fields`` (capped), or defaults
    context: list[ContextRow]


class ColumnCount(msgspec.Struct, frozen=True, kw_only=True):
    column: str
    ticks: int  #: aligned tick rows where this column differs


class TickSpan(msgspec.Struct, frozen=True, kw_only=True):
    """Tick rows present on one side only."""

    count: int
    first: int | None
    last: int | None


class EventDiff(msgspec.Struct, frozen=True, kw_only=True):
    """One non-tick event that differs (aligned by its occurrence within its kind)."""

    kind: str
    index: int  #: 0-based occurrence within the kind
    only_in: str | None
    tick_a: int | None
    tick_b: int | None
    fields: list[FieldDiff]


class KindDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Non-tick events of one kind."""

    kind: str
    count_a: int
    count_b: int
    differing: int  #: aligned events that differ
    only_a: int
    only_b: int
    first: EventDiff | None


class KpiRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    label: str
    style: str
    a: int | float | None
    b: int | float | None
    delta: int | float | None  #: b - a


class DiffReport(msgspec.Struct, frozen=True, kw_only=True):
    identical: bool  #: the compared events are the same (metadata differences do not count)
    path_a: str | None = None
    path_b: str | None = None
    planner_a: str | None = None
    planner_b: str | None = None
    metadata: list[MetaDiff] = []
    forced: bool = False
    tolerance: float = 0.0
    columns: list[str] = []  #: compared columns, in schema order
    columns_only_a: list[str] = []  #: columns one frame lacks (a difference)
    columns_only_b: list[str] = []
    ticks_a: int = 0
    ticks_b: int = 0
    ticks_differing: int = 0  #: aligned tick rows with at least one differing column
    first_divergence: Divergence | None = None
    column_counts: list[ColumnCount] = []
    only_a: TickSpan = msgspec.field(default_factory=lambda: TickSpan(count=0, first=None, last=None))
    only_b: TickSpan = msgspec.field(default_factory=lambda: TickSpan(count=0, first=None, last=None))
    events: list[KindDiff] = []
    kpis_a: Kpis | None = None
    kpis_b: Kpis | None = None
    kpis: list[KpiRow] = []


class CompareReport(msgspec.Struct, frozen=True, kw_only=True):
    """``compare``: one scenario replayed under several planners."""

    scenario: str
    seed: int | None
    planners: list[str]
    recordings: list[str]
    diffs: list[DiffReport]  #: planner i (i >= 1) against planner 0
    kpis: list[Kpis]


__all__ = [
    "ColumnCount",
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
