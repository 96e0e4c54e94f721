"""What a comparison judges and how closely: column classes (``only``) and tolerances.

The schema (:mod:`replaylib.record.schema`) declares each column's class and default
tolerance.  A comparison then

- *judges* the columns of the classes named by ``only`` (default: decisions) — their
  differences make two recordings (or a replay and its golden) different — and
  *summarises* the others (counted and shown, never failing);
- compares every number within a tolerance, ``|a - b| <= max(abs, rel * max(|a|, |b|))``
  (floats only; ints, booleans and strings compare exactly).

Tolerances come in layers, each overriding the one before: the schema's defaults, then a
scenario's ``golden: {tolerance: ...}``, then a test's ``replay_golden(tolerance=...)`` or the
command line's ``--tolerance``.  Within a layer a key is ``all`` (every column), a class
(``decision``/``observation``/``outcome``, plural accepted) or a column, applied in that
order, so ``{all: 0, c_ttft: 0.1}`` means "exact, except c_ttft within 10%".  A value is a
relative tolerance (a number) or ``{rel: R, abs: A}`` (either may be left out: 0).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from replaylib.diff.model import DiffError
from replaylib.record.schema import COLUMN_SPECS, FIELDS, ColumnClass, Tolerance, column_spec


class ToleranceError(DiffError):
    """A tolerance or ``only`` that names an unknown column or class, or a negative/non-finite number."""


#: ``only=`` choices (a comma-separated combination of the first three is accepted too).
ONLY_CHOICES: tuple[str, ...] = ("decisions", "observations", "outcomes", "all")
DEFAULT_ONLY: tuple[ColumnClass, ...] = (ColumnClass.DECISION,)

_CLASS_NAMES: dict[str, ColumnClass] = {
    **{c.value: c for c in ColumnClass},
    **{c.value + "s": c for c in ColumnClass},
}
ALL = "all"

#: One user tolerance: a relative tolerance, or a mapping with ``rel`` and/or ``abs``.
ToleranceValue = float | int | Tolerance | Mapping[str, float | int]
#: What ``tolerance=`` accepts: one value for every column, or a mapping of key -> value.
ToleranceSpec = ToleranceValue | Mapping[str, ToleranceValue]
#: A parsed layer: (key, tolerance) pairs in application order (all, classes, columns).
Layer = tuple[tuple[str, Tolerance], ...]


class ComparePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The judged classes and the tolerance layers of one comparison."""

    judged: tuple[ColumnClass, ...] = DEFAULT_ONLY
    layers: tuple[Layer, ...] = ()

    def tolerance(self, column: str) -> Tolerance:
        """The tolerance of ``column``: its schema default, then every layer in order."""
        spec = column_spec(column)
        tol = spec.tolerance
        for layer in self.layers:
            for key, value in layer:
                if key in (ALL, spec.cls.value, column):
                    tol = value
        return tol

    def judges(self, column: str) -> bool:
        return column_spec(column).cls in self.judged

    def judges_class(self, cls: ColumnClass) -> bool:
        return cls in self.judged

    @property
    def only(self) -> list[str]:
        """The judged classes by their ``only=`` names, in class order."""
        return [c.value + "s" for c in ColumnClass if c in self.judged]


def parse_only(value: str | Sequence[str] | None, *, where: str = "only") -> tuple[ColumnClass, ...]:
    """``decisions`` / ``observations`` / ``outcomes`` / ``all`` or a combination (``decisions,outcomes``)."""
    if value is None:
        return DEFAULT_ONLY
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(p).strip() for p in value]
    items = [p for p in items if p]
    if not items:
        raise ToleranceError(f"{where}: expected one of {', '.join(ONLY_CHOICES)}, got nothing")
    chosen: set[ColumnClass] = set()
    for item in items:
        if item == ALL:
            chosen.update(ColumnClass)
        elif item in _CLASS_NAMES:
            chosen.add(_CLASS_NAMES[item])
        else:
            raise ToleranceError(f"{where}: unknown column class {item!r}{_hint(item, ONLY_CHOICES)} "
                                 f"(expected {', '.join(ONLY_CHOICES)} or a comma-separated combination)")
    return tuple(c for c in ColumnClass if c in chosen)


def _hint(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToleranceError(f"{where}: expected a number >= 0, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise ToleranceError(f"{where}: a tolerance must be a finite number >= 0, got {value!r}")
    return x


def parse_value(value: Any, *, where: str) -> Tolerance:
    """One tolerance: a number (relative), a :class:`Tolerance`, or ``{rel: R, abs: A}``."""
    if isinstance(value, Tolerance):
        return Tolerance(rel=_number(value.rel, f"{where}.rel"), abs=_number(value.abs, f"{where}.abs"))
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in ("rel", "abs")]
        if unknown:
            raise ToleranceError(f"{where}: unknown key {unknown[0]!r} (a tolerance has rel and/or abs)")
        if not value:
            raise ToleranceError(f"{where}: empty tolerance (give rel and/or abs)")
        return Tolerance(rel=_number(value.get("rel", 0.0), f"{where}.rel"), abs=_number(value.get("abs", 0.0), f"{where}.abs"))
    return Tolerance(rel=_number(value, where))


def _rank(key: str) -> int:
    return 0 if key == ALL else 1 if key in ColumnClass._value2member_map_ else 2


def _key(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise ToleranceError(f"{where}: keys name a column or a column class, got {name!r}")
    if name == ALL:
        return ALL
    if name in _CLASS_NAMES:
        return _CLASS_NAMES[name].value
    if name in COLUMN_SPECS:
        return name
    choices = [ALL, *_CLASS_NAMES, *FIELDS]
    raise ToleranceError(
        f"{where}: unknown column or column class {name!r}{_hint(name, choices)} "
        f"(classes: decision, observation, outcome; or any recording column)"
    )


def parse_tolerance(spec: ToleranceSpec | None, *, where: str = "tolerance") -> Layer:
    """A user's tolerance as one validated layer."""
    if spec is None:
        return ()
    if isinstance(spec, Mapping) and not (spec and set(spec) <= {"rel", "abs"}):
        pairs = [(_key(k, where), parse_value(v, where=f"{where}.{k}")) for k, v in spec.items()]
    else:
        pairs = [(ALL, parse_value(spec, where=where))]
    return tuple(sorted(pairs, key=lambda p: _rank(p[0])))  # stable: all, then classes, then columns


def parse_tolerance_arg(text: str) -> Layer:
    """The command line form: ``[KEY=]VALUE`` where VALUE is ``R``, ``rel:R``, ``abs:A`` or ``rel:R,abs:A``."""
    where = f"--tolerance {text!r}"
    key, sep, rest = text.partition("=")
    if not sep:
        key, rest = ALL, text
    value: dict[str, float] = {}
    parts = [p.strip() for p in rest.split(",")]
    for part in parts:
        name, colon, number = part.partition(":")
        if not colon:
            name, number = "rel", part
        if name not in ("rel", "abs"):
            raise ToleranceError(f"{where}: expected R, rel:R, abs:A or rel:R,abs:A, got {part!r}")
        try:
            value[name] = float(number)
        except ValueError:
            raise ToleranceError(f"{where}: expected a number, got {number!r}") from None
    return parse_tolerance({key.strip(): value}, where="--tolerance")


def make_policy(
    only: str | Sequence[str] | None = None,
    tolerance: ToleranceSpec | None = None,
    *,
    layers: Sequence[Layer] = (),
) -> ComparePolicy:
    """``layers`` (already parsed, e.g. a scenario's) come first, then ``tolerance``."""
    extra = parse_tolerance(tolerance)
    return ComparePolicy(judged=parse_only(only), layers=tuple(layer for layer in (*layers, extra) if layer))


def scenario_policy(
    scenario: Any,
    *,
    only: str | Sequence[str] | None = None,
    tolerance: ToleranceSpec | None = None,
) -> ComparePolicy:
    """The policy for a scenario's replays: its ``golden:`` block (``only``, ``tolerance``), then the
    caller's ``only`` (replacing the scenario's) and ``tolerance`` (layered over it)."""
    golden = scenario.golden
    tol = golden.tolerance
    if isinstance(tol, Mapping):
        tol = {k: (msgspec.structs.asdict(v) if isinstance(v, msgspec.Struct) else v) for k, v in tol.items()}
    layers = [parse_tolerance(tol, where="tolerance")] if tol is not None else []
    return make_policy(only if only is not None else golden.only, tolerance, layers=layers)


def describe_tolerance(tol: Tolerance) -> str:
    if tol.rel == 0 and tol.abs == 0:
        return "exact"
    parts = ([f"rel {tol.rel:g}"] if tol.rel else []) + ([f"abs {tol.abs:g}"] if tol.abs else [])
    return " or ".join(parts)


__all__ = [
    "ALL",
    "DEFAULT_ONLY",
    "ONLY_CHOICES",
    "ComparePolicy",
    "Layer",
    "ToleranceError",
    "ToleranceSpec",
    "describe_tolerance",
    "make_policy",
    "parse_only",
    "parse_tolerance",
    "parse_tolerance_arg",
    "parse_value",
    "scenario_policy",
]
