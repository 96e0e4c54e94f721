"""Overriding scenario keys by dotted path (``power.total_gpu_power_limit_w``, ``events[1].at_s``).

An override replaces the value at its key path in the merged scenario
document (after ``extends:``, before validation); a map value replaces the
map at that key, it does not merge into it.  The key path must name a key of
the scenario model — a field of a struct, a key of a map (``planner.params.x``,
``power.bias.power_bias_decode``) or an existing list item (``events[0]``) —
or :func:`check_override_key` / :func:`apply_overrides` raise a
:class:`ScenarioError` naming the file that declared the override.  File paths
(``trace.path``, ``system``) are relative to the file that declares the
override, like every path in a scenario.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from msgspec import inspect as mi

from replaylib.scenario.model import Scenario
from replaylib.scenario.yamlio import KeyPath, Merged, ScenarioError, _rebase_paths

_NAME = r"[^.\[\]\s]+"
_KEY = re.compile(rf"{_NAME}(?:\.{_NAME}|\[\d+\])*")
_PART = re.compile(rf"({_NAME})|\[(\d+)\]")
_MISSING = object()

#: Keys whose values are file paths, relative to the file that declares them.
PATH_KEYS: frozenset[KeyPath] = frozenset({("trace", "path"), ("system",)})


def parse_key(key: str) -> tuple[str | int, ...]:
    """``"events[1].at_s"`` -> ``("events", 1, "at_s")``; raises ValueError on a malformed path."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"malformed key path {key!r}: expected dotted keys such as power.total_gpu_power_limit_w or events[0].at_s")
    return tuple(m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PART.finditer(key))


def check_override_key(key: str, *, declared_in: str, doc: Mapping[str, Any] | None = None) -> tuple[str | int, ...]:
    """The parsed key path, checked against the scenario model (list indices against ``doc`` when given)."""
    try:
        parts = parse_key(key)
    except ValueError as exc:
        raise ScenarioError(declared_in, f"overrides.{key}", str(exc)) from None
    info: Any = mi.type_info(Scenario)
    node: Any = doc if doc is not None else _MISSING
    walked = ""
    for part in parts:
        info = _unwrap(info, node)
        where = walked or "the scenario"
        if isinstance(info, mi.AnyType):  # free-form (planner.params.*): any key below
            break
        if isinstance(part, int):
            if not isinstance(info, mi.ListType):
                raise ScenarioError(declared_in, f"overrides.{key}", f"not a scenario key: {where} is not a list")
            if doc is not None and not (isinstance(node, list) and part < len(node)):
                size = len(node) if isinstance(node, list) else 0
                raise ScenarioError(declared_in, f"overrides.{key}", f"not a scenario key: {walked} has {size} item(s), no [{part}]")
            info = info.item_type
            walked += f"[{part}]"
        elif isinstance(info, mi.StructType):
            names = [f.encode_name for f in info.fields]
            if part not in names:
                raise ScenarioError(declared_in, f"overrides.{key}", f"not a scenario key: {where} has no key {part!r}; expected one of {', '.join(names)}")
            info = next(f.type for f in info.fields if f.encode_name == part)
            walked += ("." if walked else "") + part
        elif isinstance(info, mi.DictType):
            options = _literal_values(info.key_type)
            if options is not None and part not in options:
                raise ScenarioError(declared_in, f"overrides.{key}", f"not a scenario key: {walked} takes one of {', '.join(map(str, options))}, not {part!r}")
            info = info.value_type
            walked += "." + part
        else:
            raise ScenarioError(declared_in, f"overrides.{key}", f"not a scenario key: {where} is a value, it has no key {part!r}")
        node = _child(node, part)
    if parts in (("seed",), ("planner", "name")):
        axis = "seeds" if parts == ("seed",) else "planners"
        raise ScenarioError(declared_in, f"overrides.{key}", f"set it with the sweep's {axis}: list, not as an override")
    return parts


def apply_overrides(merged: Merged, overrides: Mapping[str, Any], *, declared_in: str) -> None:
    """Set each key path of ``overrides`` in ``merged`` (in place), recording ``declared_in`` as its file."""
    top_dir = os.path.dirname(os.path.abspath(merged.files[-1]))
    here = os.path.dirname(os.path.abspath(declared_in))
    for key, value in overrides.items():
        parts = check_override_key(key, declared_in=declared_in, doc=merged.data)
        names = tuple(str(p) for p in parts if isinstance(p, str))
        value = _rebase(names, value, here, top_dir) if not any(isinstance(p, int) for p in parts) else value
        node: Any = merged.data
        for part, nxt in zip(parts, parts[1:], strict=False):
            if isinstance(part, int):
                node = node[part]
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
        node[parts[-1]] = value
        prefix = tuple(str(p) for p in parts if isinstance(p, str)) if not any(isinstance(p, int) for p in parts) else (str(parts[0]),)
        for old in [k for k in merged.provenance if k[: len(prefix)] == prefix]:
            del merged.provenance[old]
        merged.provenance[prefix] = declared_in


def _rebase(keys: tuple[str, ...], value: Any, here: str, top_dir: str) -> Any:
    """Rewrite file paths in ``value`` (at ``keys``) from the declaring file's folder to the scenario's."""
    if keys in PATH_KEYS:
        return _rebase_paths({"v": value}, here, top_dir, frozenset({("v",)}), ())["v"]
    if isinstance(value, dict):
        inner = frozenset(k[len(keys):] for k in PATH_KEYS if k[: len(keys)] == keys and len(k) > len(keys))
        return _rebase_paths(value, here, top_dir, inner, ()) if inner else value
    return value


def _child(node: Any, part: str | int) -> Any:
    if node is _MISSING:
        return _MISSING
    try:
        return node[part]
    except (KeyError, IndexError, TypeError):
        return _MISSING


def _unwrap(info: Any, node: Any) -> Any:
    """``X | None`` -> X; a tagged union of structs -> the member ``node``'s tag selects (else the first)."""
    if isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if structs and structs[0].tag_field:
            tag = node.get(structs[0].tag_field) if isinstance(node, dict) else None
            return next((s for s in structs if s.tag == tag), structs[0])
        non_null = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return non_null[0] if len(non_null) == 1 else info
    return info


def _literal_values(info: Any) -> tuple[Any, ...] | None:
    return tuple(info.values) if isinstance(info, mi.LiteralType) else None


__all__ = ["PATH_KEYS", "apply_overrides", "check_override_key", "parse_key"]
