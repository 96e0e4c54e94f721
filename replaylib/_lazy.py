"""Lazy package exports (PEP 562): a package's public names, imported from their submodule on first use.

A package ``__init__`` that re-exports names from heavy submodules (polars,
pyarrow) would make *every* import of the package — even of a light submodule
such as ``replaylib.record.schema`` — pay for them.  Declaring the exports
lazily keeps ``python -m replaylib --help`` and light imports cheap while
``from replaylib.record import read_recording`` works as before::

    __getattr__, __dir__ = lazy_exports(__name__, {"read_recording": "replaylib.record.reader", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to the module defining it."""
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        importlib.import_module(package).__dict__[name] = value  # later look-ups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(table))

    return __getattr__, __dir__
