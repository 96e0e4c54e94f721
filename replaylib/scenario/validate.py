"""Turn a plain mapping into typed structs, with errors that name file, key path and expectation."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

from replaylib.scenario.yamlio import KeyPath, ScenarioError

T = TypeVar("T")
_MISSING = object()
_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true or false",
               "object": "a mapping", "array": "a list", "null": "null"}


def convert(doc: Any, typ: type[T], file_of: Callable[[KeyPath], str]) -> T:
    """``msgspec.convert`` with a :class:`ScenarioError` naming file, ``a.b[2].c`` and the expectation."""
    try:
        return msgspec.convert(doc, typ, strict=False)
    except msgspec.ValidationError as exc:
        raise _error(str(exc), doc, typ, file_of) from None


def _error(text: str, doc: Any, typ: type, file_of: Callable[[KeyPath], str]) -> ScenarioError:
    message, _, where = text.partition(" - at ")
    bad_key = None
    m = re.fullmatch(r"`key` in `\$(.*)`", where)
    if m:  # an invalid key of a mapping
        where, bad_key = m.group(1), True
    else:
        where = where.strip("`").removeprefix("$")
    keys = _resolve_wildcards(_parse_path(where), doc, typ)
    info = _type_at(mi.type_info(typ), keys, doc)

    if message.startswith("Object contains unknown field `"):
        keys = (*keys, message.split("`")[1])
        expected = _field_names(info)
        message = "unknown key" + (f"; expected one of {expected}" if expected else "")
    elif message.startswith("Object missing required field `"):
        keys = (*keys, message.split("`")[1])
        message = "required key is missing"
    elif bad_key:
        bad = re.search(r"'(.*)'", message)
        options = _options(info.key_type) if isinstance(info, mi.DictType) else None
        message = f"unknown key {bad.group(0) if bad else ''}".strip()
        if options:
            message += f"; expected one of {options}"
    elif message.startswith("Invalid enum value"):
        options = _options(info)
        message = f"expected one of {options}" if options else "invalid value"
        message += _got(doc, keys)
    else:
        message = _soften(message) + _got(doc, keys)
    dotted = _dotted(keys) or None
    return ScenarioError(file_of(tuple(k for k in keys if not k.startswith("["))), dotted, message)


def _got(doc: Any, keys: tuple[str, ...]) -> str:
    value = _lookup(doc, keys)
    return "" if value is _MISSING else f", got {value!r}"


def _soften(message: str) -> str:
    """msgspec's 'Expected `float` > 0.0, got `str`' -> 'expected a number > 0.0'."""
    message = re.sub(r", got `[^`]*`$", "", message)

    def word(m: re.Match[str]) -> str:
        parts = [p.strip() for p in m.group(1).split("|")]
        return " or ".join(_TYPE_WORDS.get(p, p) for p in parts)

    message = re.sub(r"`([^`]*)`", word, message)
    message = re.sub(r" [<>]= -?1\.7976931348623157e\+308", "", message).replace("a number", "a finite number", 1) \
        if "1.7976931348623157e+308" in message else message  # the model's "finite" bound, in words
    return message[:1].lower() + message[1:]


def _parse_path(where: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\[[^\]]*\]|[^.\[\]]+", where))


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


def _resolve_wildcards(keys: tuple[str, ...], doc: Any, typ: type) -> tuple[str, ...]:
    """Replace msgspec's ``[...]`` (some dict value) by the key whose value is invalid."""
    if "[...]" not in keys:
        return keys
    i = keys.index("[...]")
    head, tail = keys[:i], keys[i + 1 :]
    node = _lookup(doc, head)
    if isinstance(node, dict):
        for k, v in node.items():
            sub = (*head, str(k), *tail)
            try:
                msgspec.convert(v, _py_type(_type_at(mi.type_info(typ), (*head, str(k)), doc)), strict=False)
            except (msgspec.ValidationError, TypeError):
                return _resolve_wildcards(sub, doc, typ)
        if node:
            return _resolve_wildcards((*head, str(next(iter(node))), *tail), doc, typ)
    return keys


def _py_type(info: Any) -> Any:
    if isinstance(info, mi.StructType):
        return info.cls
    raise TypeError("not a struct")


def _type_at(info: Any, keys: tuple[str, ...], doc: Any) -> Any:
    node = doc
    for k in keys:
        info = _unwrap(info, node)
        if isinstance(info, mi.StructType):
            info = next((f.type for f in info.fields if f.encode_name == k), None)
        elif isinstance(info, (mi.ListType, mi.TupleType, mi.VarTupleType)) and k.startswith("["):
            info = info.item_type if not isinstance(info, mi.TupleType) else None
        elif isinstance(info, mi.DictType):
            info = info.value_type
        else:
            return None
        node = _lookup(node, (k,)) if node is not _MISSING else _MISSING
    return _unwrap(info, node)


def _unwrap(info: Any, node: Any) -> Any:
    """Pick the member of a (tagged) union that applies to ``node``."""
    if isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if structs and isinstance(node, dict) and structs[0].tag_field:
            tag = node.get(structs[0].tag_field)
            return next((s for s in structs if s.tag == tag), structs[0])
        non_null = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return non_null[0] if len(non_null) == 1 else info
    return info


def _options(info: Any) -> str | None:
    if isinstance(info, mi.LiteralType):
        return ", ".join(repr(v) for v in info.values)
    return None


def _field_names(info: Any) -> str | None:
    if isinstance(info, mi.StructType):
        return ", ".join(f.encode_name for f in info.fields)
    return None
