"""YAML loading with ``extends:``, duplicate-key detection and key provenance.

A scenario file may name a parent with ``extends: path`` (or a list of paths,
merged left to right, the child last).  Maps deep-merge, every other value —
lists included — is replaced by the child's.  Cycles and missing parents are
errors.  Each leaf remembers the file it came from, so a validation error can
name the file that really holds the bad key.

Values of keys listed in ``path_keys`` are file paths relative to the file that
declares them; they are rewritten relative to the *top* file's directory, so a
template in ``_base/`` can name a trace and a child elsewhere still finds it.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from replaylib.errors import ReplaylibError
from replaylib.limits import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

KeyPath = tuple[str, ...]


class ScenarioError(ReplaylibError):
    """A scenario or systems file that cannot be used: names file, key path and what was expected."""

    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.message = message
        super().__init__(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")


#: libyaml's parser when PyYAML was built with it (its wheels are): the same documents and values, parsed in
#: C — a shipped systems file of aiconfigurator tables takes ~0.2 s to parse in pure Python, ~0.05 s in C.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """A safe loader that refuses duplicate keys, recursive aliases and alias bombs.

    The document's node graph is measured before any Python object is built:
    a node reached again through an alias counts again, so a "billion laughs"
    document (a few lines whose aliases expand exponentially) is refused by
    its expanded size, in time linear in the file, not by a timeout.
    """

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


class _Refused(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.problem_mark = mark
        self.problem = problem


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a cycle (``&x [*x]``), more than MAX_YAML_NODES expanded nodes or nesting deeper than MAX_YAML_DEPTH.

    A scalar (most of a document's nodes) counts 1 and is 1 high where its parent is measured: only
    collections are walked, each one's children listed once."""
    measured: dict[int, tuple[int, int]] = {}  # id(collection node) -> (expanded size, height)
    open_: set[int] = set()  # collections whose subtree is being measured: the path from the root
    scalar = yaml.ScalarNode
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, kids = stack.pop()
        key = id(node)
        if kids is not None:  # every child collection is measured: close this one
            open_.discard(key)
            size, deepest = 1, 0  # deepest: the highest child (a scalar is 1 high)
            for k in kids:
                if isinstance(k, scalar):
                    size += 1
                    if deepest < 1:
                        deepest = 1
                else:
                    k_size, k_height = measured[id(k)]
                    size += k_size
                    if k_height > deepest:
                        deepest = k_height
            height = 1 + deepest
            if size > MAX_YAML_NODES:
                raise _Refused(node.start_mark, f"with its aliases expanded the document holds more than {MAX_YAML_NODES:,} "
                               "values (replaylib.limits.MAX_YAML_NODES): an alias bomb?")
            if height > MAX_YAML_DEPTH:
                raise _Refused(node.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels (replaylib.limits.MAX_YAML_DEPTH)")
            measured[key] = (size, height)
            continue
        if isinstance(node, scalar):  # a scalar root
            continue
        if key in measured:
            continue
        if key in open_:
            raise _Refused(node.start_mark, "a recursive alias (an anchor used inside its own value)")
        open_.add(key)
        children = _children(node)
        stack.append((node, children))
        for kid in children:
            if isinstance(kid, scalar):
                continue
            k = id(kid)
            if k in open_:
                raise _Refused(kid.start_mark, "a recursive alias (an anchor used inside its own value)")
            if k not in measured:
                stack.append((kid, None))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"a key must be a plain value, got a {type(key).__name__}",
                                                    mark) from None
        if key in out:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str) -> Any:
    """Parse one YAML file strictly and safely; errors name the file and line.

    Refused with a :class:`ScenarioError`: a file over MAX_YAML_BYTES, bytes
    that are not UTF-8, syntax errors, duplicate keys, recursive aliases and
    alias expansion past MAX_YAML_NODES (``replaylib.limits``).
    """
    try:
        if os.path.isdir(path):
            raise ScenarioError(path, None, "is a folder, expected a YAML file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(path, None, f"cannot open: {exc.strerror or exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ScenarioError(path, None, f"larger than {MAX_YAML_BYTES:,} bytes (replaylib.limits.MAX_YAML_BYTES); "
                            "is this a scenario file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(path, None, f"line {line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(path, None, f"invalid YAML: {where}{problem}") from None
    except RecursionError:
        raise ScenarioError(path, None, f"invalid YAML: nested too deeply (more than {MAX_YAML_DEPTH} levels allowed)") from None


class Merged:
    """The merged document, which file each key path came from, and the chain of files."""

    def __init__(self, data: dict, provenance: dict[KeyPath, str], files: list[str]) -> None:
        self.data = data
        self.provenance = provenance
        self.files = files

    def file_of(self, keys: KeyPath) -> str:
        """The file that declared ``keys`` (or its nearest declared ancestor)."""
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.provenance:
                return self.provenance[keys[:n]]
        return self.files[-1]


def load_with_extends(path: str, *, path_keys: frozenset[KeyPath] = frozenset()) -> Merged:
    """Load ``path`` and its ``extends:`` chain into one merged mapping."""
    top = os.path.abspath(path)
    return _load(top, os.path.dirname(top), path_keys, stack=())


def _load(path: str, top_dir: str, path_keys: frozenset[KeyPath], stack: tuple[str, ...]) -> Merged:
    if path in stack:
        chain = " -> ".join(os.path.relpath(p, top_dir) for p in (*stack, path))
        raise ScenarioError(stack[-1], "extends", f"extends cycle: {chain}")
    doc = read_yaml(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ScenarioError(path, None, f"expected a mapping at the top level, got {type(doc).__name__}")
    parents = doc.pop("extends", None)
    if parents is None:
        parents = []
    elif isinstance(parents, str):
        parents = [parents]
    elif not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
        raise ScenarioError(path, "extends", "expected a file path or a list of file paths")

    here = os.path.dirname(path)
    data: dict = {}
    provenance: dict[KeyPath, str] = {}
    files: list[str] = []
    for parent in parents:
        parent_path = os.path.normpath(os.path.join(here, parent))
        if not os.path.exists(parent_path):
            raise ScenarioError(path, "extends", f"parent file not found: {parent} (looked for {parent_path})")
        if not os.path.isfile(parent_path):
            raise ScenarioError(path, "extends", f"{parent} is not a file ({parent_path}); expected a scenario YAML file")
        base = _load(parent_path, top_dir, path_keys, (*stack, path))
        _merge_into(data, base.data, provenance, base.provenance, ())
        files.extend(f for f in base.files if f not in files)
    own = _rebase_paths(doc, here, top_dir, path_keys, ())
    _merge_into(data, own, provenance, _provenance_of(own, path, ()), ())
    files.append(path)
    return Merged(data, provenance, files)


def _merge_into(dst: dict, src: dict, dst_prov: dict, src_prov: dict, at: KeyPath) -> None:
    """Deep-merge ``src`` into ``dst``: maps merge key by key, anything else is replaced."""
    for key, value in src.items():
        keys = (*at, str(key))
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            dst_prov[keys] = src_prov[keys]
            _merge_into(dst[key], value, dst_prov, src_prov, keys)
            continue
        for old in [k for k in dst_prov if k[: len(keys)] == keys]:
            del dst_prov[old]
        dst[key] = copy_tree(value)
        dst_prov.update({k: f for k, f in src_prov.items() if k[: len(keys)] == keys})


def _provenance_of(value: Any, path: str, at: KeyPath) -> dict[KeyPath, str]:
    out: dict[KeyPath, str] = {}
    if isinstance(value, dict):
        for key, sub in value.items():
            keys = (*at, str(key))
            out[keys] = path
            out.update(_provenance_of(sub, path, keys))
    return out


def copy_tree(value: Any) -> Any:
    """A deep copy of a parsed YAML tree (its maps and lists)."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    return value


def _rebase_paths(doc: dict, here: str, top_dir: str, path_keys: frozenset[KeyPath], at: KeyPath) -> dict:
    out: dict = {}
    for key, value in doc.items():
        keys = (*at, str(key))
        if keys in path_keys and isinstance(value, str) and _looks_like_path(value) and not os.path.isabs(value):
            value = os.path.relpath(os.path.normpath(os.path.join(here, value)), top_dir).replace(os.sep, "/")
        elif isinstance(value, dict):
            value = _rebase_paths(value, here, top_dir, path_keys, keys)
        out[key] = value
    return out


def _looks_like_path(value: str) -> bool:
    """A bare name such as ``h100_sxm`` is looked up by the caller, not rebased."""
    return "/" in value or os.sep in value or "." in os.path.basename(value)
