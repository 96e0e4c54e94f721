"""Scenario assertions: load-time checks and their verdict over the recorded ticks.

An assertion names a tick column (``field``), a comparison (``op``) and either a
literal ``value`` or a ``ref`` (``planner.<field>`` from the scenario's planner
section, ``system.<dotted.path>`` from the systems file), and exactly one of:

* ``at_tick: N`` — holds at tick N (fails if the replay never reaches it);
* ``always: true`` — holds at every tick;
* ``eventually_by_tick: N`` — holds at some tick ``<= N``.

``within`` means ``|field - target| <= tolerance``.  A tick where the field is
null fails ``at_tick``/``always`` and does not count for ``eventually``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from replaylib.scenario.model import Assertion, PlannerConfig, Scenario
from replaylib.scenario.system import System
from replaylib.scenario.yamlio import ScenarioError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def resolve_ref(ref: str, planner: PlannerConfig, system: System) -> float:
    """The number a ``ref`` names; raises ``KeyError`` with the reason when it names nothing."""
    root, _, rest = ref.partition(".")
    if root not in ("planner", "system") or not rest:
        raise KeyError("expected 'planner.<field>' or 'system.<dotted.field>'")
    node: Any = planner if root == "planner" else system
    for part in rest.split("."):
        if not isinstance(node, msgspec.Struct) or part not in node.__struct_fields__:
            options = ", ".join(node.__struct_fields__) if isinstance(node, msgspec.Struct) else ""
            raise KeyError(f"{root} has no field {rest!r}" + (f" (at {part!r}: expected one of {options})" if options else ""))
        node = getattr(node, part)
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise KeyError(f"{ref} is not a number (it is {type(node).__name__})")
    return float(node)


def check_assertions(
    scenario: Scenario,
    system: System,
    assertable: tuple[str, ...],
    string_fields: tuple[str, ...],
    file_of: Callable[[tuple[str, ...]], str],
) -> None:
    """Load-time validation: unknown fields, ambiguous predicates and bad refs are errors."""
    path = file_of(("assertions",))
    for i, a in enumerate(scenario.assertions):
        key = f"assertions[{i}]"
        modes = [m for m, on in (("at_tick", a.at_tick is not None), ("always", a.always), ("eventually_by_tick", a.eventually_by_tick is not None)) if on]
        if len(modes) != 1:
            what = "none" if not modes else ", ".join(modes)
            raise ScenarioError(path, key, f"expected exactly one of at_tick, always: true, eventually_by_tick; got {what}")
        if a.field not in assertable:
            raise ScenarioError(path, f"{key}.field", f"unknown field {a.field!r}; expected a tick column such as {', '.join(assertable[:8])} ...")
        if (a.value is None) == (a.ref is None):
            raise ScenarioError(path, key, "expected exactly one of value or ref")
        if a.op == "within" and a.tolerance is None:
            raise ScenarioError(path, f"{key}.tolerance", "op 'within' needs a tolerance")
        if a.op != "within" and a.tolerance is not None:
            raise ScenarioError(path, f"{key}.tolerance", f"tolerance only applies to op 'within', not {a.op!r}")
        is_text = a.field in string_fields
        if is_text and (a.ref is not None or not isinstance(a.value, str) or a.op not in ("==", "!=")):
            raise ScenarioError(path, key, f"{a.field} is text: expected op '==' or '!=' with a string value")
        if not is_text and isinstance(a.value, str):
            raise ScenarioError(path, f"{key}.value", f"{a.field} is a number or flag, got the string {a.value!r}")
        if a.ref is not None:
            try:
                resolve_ref(a.ref, scenario.planner, system)
            except KeyError as exc:
                raise ScenarioError(path, f"{key}.ref", f"bad ref {a.ref!r}: {exc.args[0]}") from None


def describe(a: Assertion) -> str:
    """A one-line human description, e.g. ``always: replicas budget_clamped == False``."""
    when = f"at tick {a.at_tick}" if a.at_tick is not None else ("always" if a.always else f"by tick {a.eventually_by_tick}")
    target = a.ref if a.ref is not None else repr(a.value)
    tol = f" ± {a.tolerance:g}" if a.op == "within" else ""
    return a.description or f"{when}: {a.field} {a.op} {target}{tol}"


class AssertionCheck:
    """Evaluates one assertion incrementally, one tick row at a time (flat memory)."""

    def __init__(self, assertion: Assertion, target: float | int | bool) -> None:
        self.assertion = assertion
        self.target = target
        self._holds: bool | None = None  # final verdict once known
        self.evidence = "never evaluated"
        self._seen_ticks = 0
        if assertion.always:
            self._holds = True
            self.evidence = "no tick recorded"

    def _test(self, value: Any) -> bool:
        if value is None:
            return False
        a = self.assertion
        if a.op == "within":
            return abs(float(value) - float(self.target)) <= float(a.tolerance or 0.0)
        return bool(_OPS[a.op](value, self.target))

    def feed(self, tick: int, row: Mapping[str, Any]) -> None:
        a = self.assertion
        self._seen_ticks += 1
        value = row.get(a.field)
        if a.at_tick is not None:
            if tick == a.at_tick:
                self._holds = self._test(value)
                self.evidence = f"tick {tick}: {a.field} = {value!r}"
        elif a.always:
            if self._holds and not self._test(value):
                self._holds = False
                self.evidence = f"first failed at tick {tick}: {a.field} = {value!r}"
            elif self._holds:
                self.evidence = f"held at all {self._seen_ticks} ticks"
        elif self._holds is not True and a.eventually_by_tick is not None and tick <= a.eventually_by_tick:
            if self._test(value):
                self._holds = True
                self.evidence = f"held at tick {tick}: {a.field} = {value!r}"

    def verdict(self) -> tuple[bool, str]:
        a = self.assertion
        if self._holds is None:
            if a.at_tick is not None:
                return False, f"the replay ended before tick {a.at_tick}"
            return False, f"never held up to tick {a.eventually_by_tick}"
        return self._holds, self.evidence
