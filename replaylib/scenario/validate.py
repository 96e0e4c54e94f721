"""Turn a plain mapping into typed structs, with errors that name file, key path and expectation."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

from replaylib.scenario.yamlio import KeyPath, ScenarioError, copy_tree

T = TypeVar("T")
_MISSING = object()
_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true or false",
               "object": "a mapping", "array": "a list", "null": "null"}


#: At most this many errors are gathered from one document (the rest are likely consequences).
MAX_ERRORS = 25


def convert(doc: Any, typ: type[T], file_of: Callable[[KeyPath], str]) -> T:
    """``msgspec.convert`` with a :class:`ScenarioError` naming file, ``a.b[2].c`` and the expectation.

    Every error is reported, not only the first (a :class:`ScenarioErrors` when there are several):
    each field of a struct and each element of a list is checked on its own, and a bad key is set
    aside to look for the next one (see :func:`collect_errors`).
    """
    try:
        return msgspec.convert(doc, typ, strict=False)
    except msgspec.ValidationError as exc:
        first = _error(str(exc), doc, typ, file_of)[0]
    errors = collect_errors(doc, typ, file_of)
    raise ScenarioErrors.of(errors or [first]) from None


def collect_errors(doc: Any, typ: Any, file_of: Callable[[KeyPath], str], at: tuple[str, ...] = ()) -> list[ScenarioError]:
    """The validation errors of ``doc`` as ``typ``: a struct's fields one by one (unknown and missing keys
    too), a list's elements one by one, anything else converted whole with its bad keys set aside in turn."""
    info = _unwrap(mi.type_info(typ), doc)
    if isinstance(info, mi.StructType) and isinstance(doc, dict) and not info.tag_field:
        errors: list[ScenarioError] = []
        fields = {f.encode_name: f for f in info.fields}
        for key in doc:
            if key not in fields and info.forbid_unknown_fields:
                errors.append(_unknown_key(str(key), list(fields), at, file_of))
        for name, f in fields.items():
            if name in doc:
                errors.extend(collect_errors(doc[name], _hint(typ, f.name), file_of, (*at, name)))
            elif f.required:
                errors.append(ScenarioError(file_of(at), _dotted((*at, name)), "required key is missing"))
        return errors[:MAX_ERRORS]
    if isinstance(info, (mi.ListType, mi.VarTupleType)) and isinstance(doc, list):
        item = _hint_item(typ)
        if item is not None and (info.max_length is None or len(doc) <= info.max_length):
            errors = []
            for i, value in enumerate(doc):
                errors.extend(collect_errors(value, item, file_of, (*at, f"[{i}]")))
                if len(errors) >= MAX_ERRORS:
                    break
            return errors[:MAX_ERRORS]
    return _errors_of_one(doc, typ, file_of, at)


def _errors_of_one(doc: Any, typ: Any, file_of: Callable[[KeyPath], str], at: tuple[str, ...]) -> list[ScenarioError]:
    """Convert ``doc`` whole; after each error drop the key it names (never a list element) and try again."""
    work = copy_tree(doc)
    errors: list[ScenarioError] = []
    dropped: set[tuple[str, ...]] = set()
    while len(errors) < MAX_ERRORS:
        try:
            msgspec.convert(work, typ, strict=False)
            break
        except msgspec.ValidationError as exc:
            err, keys = _error(str(exc), work, typ, file_of, at)
            if keys in dropped:  # the consequence of a key set aside: not a new error
                break
            errors.append(err)
            if not keys or keys[-1].startswith("[") or not _drop(work, keys):
                break
            dropped.add(keys)
    return errors


def _drop(doc: Any, keys: tuple[str, ...]) -> bool:
    parent = _lookup(doc, keys[:-1])
    if isinstance(parent, dict) and keys[-1] in parent:
        del parent[keys[-1]]
        return True
    return False


def _unknown_key(key: str, known: list[str], at: tuple[str, ...], file_of: Callable[[KeyPath], str]) -> ScenarioError:
    return ScenarioError(file_of(at), _dotted((*at, key)), "unknown key" + _suggest(key, known))


def _suggest(key: str, known: list[str]) -> str:
    """'; expected one of ...; did you mean 'x'?' for a misspelt key."""
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; expected one of {', '.join(known)}" + (f"; did you mean {near[0]!r}?" if near else "")


def _hint(typ: Any, attr: str) -> Any:
    """The annotated type of ``typ``'s field ``attr`` (the struct class behind Optional/Annotated)."""
    cls = _struct_class(typ)
    return typing.get_type_hints(cls, include_extras=True)[attr]


def _struct_class(typ: Any) -> Any:
    info = mi.type_info(typ)
    while isinstance(info, mi.UnionType):
        info = next(t for t in info.types if not isinstance(t, mi.NoneType))
    return info.cls  # type: ignore[union-attr]


def _hint_item(typ: Any) -> Any:
    """The element type of a list annotation (through Annotated), or None."""
    while typing.get_origin(typ) is typing.Annotated:
        typ = typing.get_args(typ)[0]
    if typing.get_origin(typ) in (list, tuple):
        args = typing.get_args(typ)
        return args[0] if args else None
    return None


class ScenarioErrors(ScenarioError):
    """Several problems in one scenario: each is a :class:`ScenarioError` (``errors``), one line each."""

    def __init__(self, errors: list[ScenarioError]) -> None:
        first = errors[0]
        self.errors = list(errors)
        self.path, self.key, self.message = first.path, first.key, first.message
        lines = "\n".join(f"  {e}" for e in self.errors)
        Exception.__init__(self, f"{len(self.errors)} problems:\n{lines}")

    @staticmethod
    def of(errors: list[ScenarioError]) -> ScenarioError:
        """One error as itself, several as a :class:`ScenarioErrors` (nested ones flattened)."""
        flat: list[ScenarioError] = []
        for e in errors:
            flat.extend(e.errors if isinstance(e, ScenarioErrors) else [e])
        return flat[0] if len(flat) == 1 else ScenarioErrors(flat)


def _error(text: str, doc: Any, typ: type, file_of: Callable[[KeyPath], str],
           at: tuple[str, ...] = ()) -> tuple[ScenarioError, tuple[str, ...]]:
    """The :class:`ScenarioError` for msgspec's message about ``doc`` (found at key path ``at``), and the
    key path (relative to ``doc``) it is about."""
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
        message = "unknown key" + (_suggest(keys[-1], expected.split(", ")) if expected else "")
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
    elif message.startswith("Invalid value") and keys:  # the tag of a tagged union (an event's type)
        tags = _tags(_type_at(mi.type_info(typ), keys[:-1], _MISSING), keys[-1])
        message = (f"expected one of {', '.join(repr(t) for t in tags)}" if tags else "invalid value") + _got(doc, keys)
    else:
        message = _soften(message) + _got(doc, keys)
    full = (*at, *keys)
    dotted = _dotted(full) or None
    return ScenarioError(file_of(tuple(k for k in full if not k.startswith("["))), dotted, message), keys


def _tags(info: Any, field: str) -> list[str]:
    """The tags of a tagged union whose tag field is ``field`` (sorted), else []."""
    members = info.types if isinstance(info, mi.UnionType) else [info]
    return sorted(str(t.tag) for t in members if isinstance(t, mi.StructType) and t.tag_field == field)


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
