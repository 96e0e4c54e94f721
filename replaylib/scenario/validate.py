"""Turn a plain mapping into typed structs, with errors that name file and key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from replaylib.scenario.yamlio import KeyPath, ScenarioError

T = TypeVar("T")


def convert(doc: Any, typ: type[T], file_of: Callable[[KeyPath], str]) -> T:
    """``msgspec.convert`` with a :class:`ScenarioError` naming file, ``a.b[2].c`` and the expectation."""
    try:
        return msgspec.convert(doc, typ, strict=False)
    except msgspec.ValidationError as exc:
        raise _error(str(exc), doc, file_of) from None


def _error(text: str, doc: Any, file_of: Callable[[KeyPath], str]) -> ScenarioError:
    message, _, where = text.partition(" - at `$")
    where = where.rstrip("`")
    keys = _parse_path(where)
    if message.startswith("Object contains unknown field `"):
        name = message.split("`")[1]
        keys = (*keys, name)
        message = "unknown key (check the spelling; see the scenario reference in README.md)"
    elif message.startswith("Object missing required field `"):
        name = message.split("`")[1]
        keys = (*keys, name)
        message = "required key is missing"
    else:
        value = _lookup(doc, keys)
        if value is not _MISSING:
            message = f"{_soften(message)}, got {value!r}"
        else:
            message = _soften(message)
    dotted = _dotted(keys) or None
    return ScenarioError(file_of(tuple(k for k in keys if not k.startswith("["))), dotted, message)


_MISSING = object()


def _parse_path(where: str) -> tuple[str, ...]:
    keys: list[str] = []
    for part in where.replace("[", ".[").split("."):
        if part:
            keys.append(part)
    return tuple(keys)


def _dotted(keys: tuple[str, ...]) -> str:
    out = ""
    for k in keys:
        out += k if k.startswith("[") or not out else "." + k
    return out


def _lookup(doc: Any, keys: tuple[str, ...]) -> Any:
    cur = doc
    for k in keys:
        try:
            cur = cur[int(k[1:-1])] if k.startswith("[") else cur[k]
        except (KeyError, IndexError, TypeError, ValueError):
            return _MISSING
    return cur


def _soften(message: str) -> str:
    """msgspec's 'Expected `int` >= 1' -> 'expected int >= 1'."""
    return message.replace("`", "").replace("Expected", "expected", 1)
