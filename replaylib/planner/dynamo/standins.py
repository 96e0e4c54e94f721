"""Stand-ins for AISimulate, which Dynamo imports at module load but the registry cannot install.

ai-dynamo declares ``aisimulate`` as a dependency, but its registry wheel is a
stub that fetches the real one from another index at build time, and
``aisimulate_core`` is not published at all.  Dynamo's planner nevertheless
imports both when its modules load (``dynamo/replay/config.py``,
``dynamo/planner/core/perf_model/ais_adapter.py`` and ``engine_query.py``),
while only its SLA target (``optimization_target: sla``: the AISimulate
performance model behind throughput scaling and SLA load scaling) ever *uses*
them.

:func:`install` puts one import finder on ``sys.meta_path`` for each of the two
packages that is not importable (a real installation always wins): the finder
answers ``import aisimulate...`` / ``import aisimulate_core...`` (any submodule)
with a stand-in module that the import system places in ``sys.modules``.
Every attribute of a stand-in module is a stand-in class; calling one,
instantiating one or calling anything reached through one raises
:class:`AISimulateUnavailable` naming what was called, and the call is recorded
(:func:`calls`).  Dynamo catches broad exceptions in places, so the bridge
checks :func:`calls` after every call into Dynamo and fails the replay when a
stand-in was touched, instead of letting Dynamo fall back silently.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, NoReturn

from replaylib.errors import ReplaylibError

#: The packages stood in for when they are absent.
PACKAGES: tuple[str, ...] = ("aisimulate", "aisimulate_core")

_calls: list[str] = []


class AISimulateUnavailable(ReplaylibError):
    """Something in Dynamo called AISimulate, which is not installed (only stood in for)."""


def _refuse(what: str) -> NoReturn:
    _calls.append(what)
    raise AISimulateUnavailable(
        f"{what} is part of AISimulate, which is not installed (replaylib stands in for it so Dynamo's planner "
        "imports); only Dynamo's SLA target (optimization_target: sla) needs it"
    )


class _StandInType(type):
    """Metaclass: instantiating a stand-in class, or using any attribute of it, refuses."""

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(cls.__qualname__)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _stand_in_class(f"{cls.__qualname__}.{name}", cls.__module__)


def _stand_in_class(qualname: str, module: str) -> type:
    cls = _StandInType(qualname.rpartition(".")[2], (), {"__module__": module, "__qualname__": qualname})
    return cls


class _StandInModule(types.ModuleType):
    """A stand-in module: any public attribute is a stand-in class (cached, so identity holds)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = _stand_in_class(f"{self.__name__}.{name}", self.__name__)
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.package and not fullname.startswith(self.package + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so that any submodule imports too
        module.__doc__ = "replaylib stand-in for an AISimulate module that is not installed: anything in it refuses to run"


def _is_real(package: str) -> bool:
    module = sys.modules.get(package)
    if module is not None:
        return not isinstance(module, _StandInModule)
    return importlib.util.find_spec(package) is not None


def install() -> tuple[str, ...]:
    """Stand in for each of :data:`PACKAGES` that is not importable; idempotent. Returns :func:`active`."""
    for package in PACKAGES:
        if package in active() or _is_real(package):
            continue
        sys.meta_path.append(_Finder(package))  # last: it can only answer what nothing else finds
    return active()


def active() -> tuple[str, ...]:
    """The packages currently stood in for."""
    return tuple(f.package for f in sys.meta_path if isinstance(f, _Finder))


def calls() -> tuple[str, ...]:
    """Every stand-in called since the last :func:`reset_calls`, in order."""
    return tuple(_calls)


def reset_calls() -> None:
    _calls.clear()


__all__ = ["PACKAGES", "AISimulateUnavailable", "active", "calls", "install", "reset_calls"]
