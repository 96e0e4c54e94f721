"""Finding planners: built-ins by ``name@version``, user planners by import path.

Specs accepted by :func:`load_planner`:

* ``name@version`` — a built-in at that version (``sla@1``, ``power@1``, ``aic@1``, ``aic@2``);
* ``name`` — the built-in's latest version (``aic`` is ``aic@2``);
* ``pkg.module:Class`` — ``Class(ctx)`` imported from ``pkg.module`` (``Class`` may be a
  dotted attribute path); the object must have a ``name`` (str), an integer ``version``
  and a callable ``on_tick``;
* ``name`` / ``name@version`` of an external planner (:data:`EXTERNAL`: ``dynamo``, NVIDIA
  Dynamo's own planner) — code outside replaylib, imported only when asked for, so that
  nothing of it loads with the CLI.  Its factory reads ``version`` itself.

Everything that goes wrong — an unknown name or version, a module that does
not import, a missing attribute, a constructor that raises, an object that is
not a planner — is a :class:`~replaylib.planner.protocol.PlannerError` whose
message says what is available.

Built-ins are listed in :data:`BUILTINS` (a table keyed by each class's own
``name`` and ``version``); :func:`available_planners` returns them sorted by
name, then version; :func:`planner_entries` lists them and the external
planners with one line each (``list planners``), importing nothing of the
external ones.  Versioning rule: any intentional change of a built-in's
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


class ExternalPlanner(msgspec.Struct, frozen=True, kw_only=True):
    """A planner family that lives outside replaylib, loaded on demand by import path."""

    factory: str  #: ``module:function``; ``function(version: str | None, ctx) -> Planner``
    availability: str  #: ``module:function``; ``function() -> str | None``: why it cannot load here (cheap: no import of it)
    about: str  #: one line for listings and errors


#: External planners by name.  Their modules are imported only by :func:`load_planner` and
#: :func:`unavailable_reason`, never when this registry is imported.
EXTERNAL: dict[str, ExternalPlanner] = {
    "dynamo": ExternalPlanner(
        factory="replaylib.planner.dynamo:load_planner",
        availability="replaylib.planner.dynamo:unavailable_reason",
        about="NVIDIA Dynamo's own planner (dynamo, dynamo@<ai-dynamo version>; `python -m replaylib.planner.dynamo.install`)",
    ),
}


def _resolve(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def unavailable_reason(spec: str) -> str | None:
    """Why the planner ``spec`` names cannot load here (an external planner not installed), else None."""
    name = spec.strip().partition("@")[0]
    if ":" in spec or name not in EXTERNAL:
        return None
    return _resolve(EXTERNAL[name].availability)()  # type: ignore[no-any-return]


class PlannerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One planner as listed: its spec, where it lives and what it does."""

    name: str
    version: int | None  #: None for an external planner (its version is that of the installed package)
    target: str  #: ``pkg.module:Class`` (built-ins) or the factory ``module:function`` (external)
    summary: str  #: one line

    @property
    def spec(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def planner_entries() -> list[PlannerEntry]:
    """Every built-in planner, sorted by name then version, then the external ones (nothing of those is imported)."""
    entries = [
        PlannerEntry(name=n, version=v, target=f"{cls.__module__}:{cls.__qualname__}", summary=_summary(cls))
        for (n, v), cls in BUILTINS.items()
    ]
    entries += [PlannerEntry(name=n, version=None, target=e.factory, summary=e.about) for n, e in sorted(EXTERNAL.items())]
    return entries


def available_planners() -> list[str]:
    """Every built-in as ``name@version``, sorted by name then version."""
    return [f"{name}@{version}" for name, version in BUILTINS]


def resolve_spec(spec: str) -> str:
    """The ``name@version`` a spec names, without constructing the planner: ``aic`` and ``aic@2`` give ``aic@2``;
    an import path gives its class's ``name@version`` when the class declares them, else the path itself."""
    spec = spec.strip()
    if spec.partition("@")[0] in EXTERNAL:
        return spec  # its version is the installed package's: known only once it is loaded
    if ":" not in spec:
        key = _builtin_key(spec)
        return f"{key[0]}@{key[1]}"
    obj = _import_class(spec)
    name, version = getattr(obj, "name", None), getattr(obj, "version", None)
    if isinstance(name, str) and isinstance(version, int) and not isinstance(version, bool):
        return f"{name}@{version}"
    return spec


def _available() -> str:
    external = "; ".join(f"{name}: {e.about}" for name, e in EXTERNAL.items())
    return (", ".join(available_planners()) + " (a bare name means its latest version), an import path pkg.module:Class, "
            f"or an external planner ({external})")


def _builtin_key(spec: str) -> tuple[str, int]:
    name, sep, version_text = spec.partition("@")
    versions = sorted(v for n, v in BUILTINS if n == name)
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


def _builtin_class(spec: str) -> type:
    return BUILTINS[_builtin_key(spec)]


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


def _load_external(name: str, version: str | None, spec: str, ctx: PlannerContext) -> Any:
    try:
        return _resolve(EXTERNAL[name].factory)(version, ctx)
    except PlannerError as exc:
        raise PlannerError(f"planner {spec!r}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - external code may raise anything
        raise PlannerError(f"constructing planner {spec!r} failed: {type(exc).__name__}: {exc}") from exc


def load_planner(spec: str, ctx: PlannerContext) -> Planner:
    """The planner ``spec`` names, constructed with ``ctx`` (see the module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise PlannerError(f"empty planner spec; available: {_available()}")
    spec = spec.strip()
    name, sep, version_text = spec.partition("@")
    if ":" not in spec and name in EXTERNAL:
        planner = _load_external(name, version_text if sep else None, spec, ctx)
    else:
        cls = _import_class(spec) if ":" in spec else _builtin_class(spec)
        try:
            planner = cls(ctx)
        except PlannerError as exc:
            raise PlannerError(f"planner {spec!r} rejected its configuration: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a user constructor may raise anything
            raise PlannerError(f"constructing planner {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    _check_planner(planner, spec)
    return planner  # type: ignore[no-any-return]


__all__ = ["BUILTINS", "EXTERNAL", "ExternalPlanner", "PlannerEntry", "available_planners", "load_planner", "planner_entries",
           "resolve_spec", "unavailable_reason"]
