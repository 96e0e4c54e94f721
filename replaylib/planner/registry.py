"""Finding planners: built-ins by ``name@version``, user planners by import path.

Specs accepted by :func:`load_planner`:

* ``name@version`` — a built-in at that version (``sla@1``, ``power@1``, ``aic@1``, ``aic@2``);
* ``name`` — the built-in's latest version (``aic`` is ``aic@2``);
* ``pkg.module:Class`` — ``Class(ctx)`` imported from ``pkg.module`` (``Class`` may be a
  dotted attribute path); the object must have a ``name`` (str), an integer ``version``
  and a callable ``on_tick``.

Everything that goes wrong — an unknown name or version, a module that does
not import, a missing attribute, a constructor that raises, an object that is
not a planner — is a :class:`~replaylib.planner.protocol.PlannerError` whose
message says what is available.

Built-ins are listed in :data:`BUILTINS` (a table keyed by each class's own
``name`` and ``version``); :func:`available_planners` returns them sorted by
name, then version.  A built-in whose module needs an optional dependency is
registered by import path instead (:func:`register_planner`), so that listing
and resolving names imports nothing until the planner is constructed;
:func:`planner_entries` lists both kinds with one line each (``list planners``).  Versioning rule: any intentional change of a built-in's
decisions is a new version, registered next to the old one, which stays
unchanged so the two can be diffed.
"""

from __future__ import annotations

import importlib
from typing import Any

import msgspec

from replaylib.planner.aic import AicPlanner, AicPlannerV2
from replaylib.planner.power import PowerPlanner
from replaylib.planner.protocol import Planner, PlannerContext, PlannerError
from replaylib.planner.sla import SlaPlanner

_BUILTIN_CLASSES: tuple[type, ...] = (SlaPlanner, PowerPlanner, AicPlanner, AicPlannerV2)


def _table(classes: tuple[type, ...]) -> dict[tuple[str, int], type]:
    table: dict[tuple[str, int], type] = {}
    for cls in classes:
        key = (cls.name, cls.version)  # type: ignore[attr-defined]
        if key in table:
            raise RuntimeError(f"two built-in planners claim {key[0]}@{key[1]}: {table[key].__name__}, {cls.__name__}")
        table[key] = cls
    return dict(sorted(table.items()))


#: ``(name, version) -> class`` for every built-in planner, sorted.
BUILTINS: dict[tuple[str, int], type] = _table(_BUILTIN_CLASSES)


class PlannerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One built-in planner as listed: ``name@version``, where it lives and what it does."""

    name: str
    version: int
    target: str  #: ``pkg.module:Class``
    summary: str  #: one line
    extra: str | None = None  #: the optional dependency (``pip install 'replaylib[extra]'``) it needs, if any

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


#: ``(name, version) -> entry`` of the built-ins registered by import path (imported when constructed).
LAZY: dict[tuple[str, int], PlannerEntry] = {}


def register_planner(name: str, version: int, target: str, summary: str, *, extra: str | None = None) -> None:
    """Register a built-in by import path ``pkg.module:Class`` without importing it."""
    key = (name, version)
    if key in BUILTINS or key in LAZY:
        raise RuntimeError(f"two built-in planners claim {name}@{version}")
    LAZY[key] = PlannerEntry(name=name, version=version, target=target, summary=summary, extra=extra)


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def planner_entries() -> list[PlannerEntry]:
    """Every built-in planner, sorted by name then version (nothing is imported for the lazy ones)."""
    entries = [
        PlannerEntry(name=n, version=v, target=f"{cls.__module__}:{cls.__qualname__}", summary=_summary(cls))
        for (n, v), cls in BUILTINS.items()
    ]
    entries += LAZY.values()
    return sorted(entries, key=lambda e: (e.name, e.version))


def available_planners() -> list[str]:
    """Every built-in as ``name@version``, sorted by name then version."""
    return [e.spec for e in planner_entries()]


def resolve_spec(spec: str) -> str:
    """The ``name@version`` a spec names, without constructing the planner: ``aic`` and ``aic@2`` give ``aic@2``;
    an import path gives its class's ``name@version`` when the class declares them, else the path itself."""
    spec = spec.strip()
    if ":" not in spec:
        key = _builtin_key(spec)
        return f"{key[0]}@{key[1]}"
    obj = _import_class(spec)
    name, version = getattr(obj, "name", None), getattr(obj, "version", None)
    if isinstance(name, str) and isinstance(version, int) and not isinstance(version, bool):
        return f"{name}@{version}"
    return spec


def _available() -> str:
    return ", ".join(available_planners()) + " (a bare name means its latest version), or an import path pkg.module:Class"


def _builtin_key(spec: str) -> tuple[str, int]:
    name, sep, version_text = spec.partition("@")
    versions = sorted(v for n, v in (*BUILTINS, *LAZY) if n == name)
    if not name or not versions:
        raise PlannerError(f"unknown planner {name!r} in {spec!r}; available: {_available()}")
    if not sep:
        return name, versions[-1]
    if not (version_text.isascii() and version_text.isdigit()):
        raise PlannerError(f"bad planner version {version_text!r} in {spec!r}: expected a positive integer, as in {name}@{versions[-1]}")
    version = int(version_text)
    if version not in versions:
        have = ", ".join(f"{name}@{v}" for v in versions)
        raise PlannerError(f"planner {name!r} has no version {version}; available: {have}")
    return name, version


def _builtin_class(spec: str) -> Any:
    key = _builtin_key(spec)
    if key in BUILTINS:
        return BUILTINS[key]
    entry = LAZY[key]
    try:
        return _import_class(entry.target)
    except PlannerError as exc:
        hint = f"; install it with pip install 'replaylib[{entry.extra}]'" if entry.extra else ""
        raise PlannerError(f"planner {entry.spec} is not available: {exc}{hint}") from None


def _import_class(spec: str) -> Any:
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path or ":" in attr_path:
        raise PlannerError(f"bad planner import path {spec!r}: expected pkg.module:Class")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise PlannerError(f"cannot import module {module_name!r} for planner {spec!r}: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr_path.split("."):
        if not part or not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            raise PlannerError(
                f"module {module_name!r} has no attribute {attr_path!r} (planner {spec!r}); it defines: {', '.join(public) or 'nothing public'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise PlannerError(f"{spec!r} is a {type(obj).__name__}, not a class that can be constructed as Class(ctx)")
    return obj


def _check_planner(obj: Any, spec: str) -> None:
    problems: list[str] = []
    if not isinstance(getattr(obj, "name", None), str):
        problems.append("a str 'name'")
    version = getattr(obj, "version", None)
    if isinstance(version, bool) or not isinstance(version, int):
        problems.append("an int 'version'")
    if not callable(getattr(obj, "on_tick", None)):
        problems.append("a callable 'on_tick(obs) -> Decision'")
    if problems:
        raise PlannerError(f"planner {spec!r} built a {type(obj).__name__} without {', '.join(problems)}")


def load_planner(spec: str, ctx: PlannerContext) -> Planner:
    """The planner ``spec`` names, constructed with ``ctx`` (see the module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise PlannerError(f"empty planner spec; available: {_available()}")
    spec = spec.strip()
    cls = _import_class(spec) if ":" in spec else _builtin_class(spec)
    try:
        planner = cls(ctx)
    except PlannerError as exc:
        raise PlannerError(f"planner {spec!r} rejected its configuration: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a user constructor may raise anything
        raise PlannerError(f"constructing planner {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    _check_planner(planner, spec)
    return planner  # type: ignore[no-any-return]


__all__ = ["BUILTINS", "LAZY", "PlannerEntry", "available_planners", "load_planner", "planner_entries", "register_planner", "resolve_spec"]
