"""The reference pages, generated from the code's own schema: ``docs/scenario_reference.md``
(walking the msgspec scenario model), ``docs/recording_columns.md`` (the recording schema
and :mod:`replaylib.record.columns`) and ``docs/scenarios.md`` (the bundled scenario catalog).

``python -m replaylib.reference`` rewrites them; ``tests/test_reference_docs.py`` fails when the
committed pages differ from what this module generates, so a key or column added anywhere is
documented (or the test says which page to regenerate).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

import msgspec
from msgspec import inspect as mi

SCENARIO_PAGE = "docs/scenario_reference.md"
COLUMNS_PAGE = "docs/recording_columns.md"

_UNITS = (("_ms", "ms"), ("_s", "s (simulated)"), ("_w", "W per GPU"))
_TOTAL_W = ("total_gpu_power_limit_w",)


def _unit(name: str) -> str:
    if name in _TOTAL_W:
        return "W total (all GPUs)"
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _type(t: Any) -> str:
    """A type in words: ``number > 0``, ``one of 'a', 'b'``, ``list of integer``..."""
    if isinstance(t, mi.UnionType):
        parts = [_type(x) for x in t.types if not isinstance(x, mi.NoneType)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" or null" if any(isinstance(x, mi.NoneType) for x in t.types) else "")
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(f"`{v}`" for v in t.values)
    if isinstance(t, (mi.FloatType, mi.IntType)):
        word = "number" if isinstance(t, mi.FloatType) else "integer"
        finite = sys.float_info.max  # the models' bound for "finite", said in words
        if isinstance(t, mi.FloatType) and t.le == finite:
            word = "finite number"
        bounds = [f"{op} {v:g}" for op, v in ((">", t.gt), (">=", t.ge), ("<", t.lt), ("<=", t.le))
                  if v is not None and abs(v) != finite]
        return word + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.StrType):
        return "text"
    if isinstance(t, mi.DictType):
        return f"mapping {_type(t.key_type)} → {_type(t.value_type)}"
    if isinstance(t, (mi.ListType, mi.VarTupleType)):
        return f"list of {_type(t.item_type)}"
    if isinstance(t, mi.TupleType):
        return "[" + ", ".join(_type(x) for x in t.item_types) + "]"
    if isinstance(t, mi.StructType):
        return f"mapping ({t.cls.__name__})"
    if isinstance(t, mi.AnyType):
        return "any value"
    return type(t).__name__.removesuffix("Type").lower()


def _default(f: mi.Field) -> str:
    if f.required:
        return "required"
    value = f.default if f.default is not mi.NODEFAULT else f.default_factory()
    if isinstance(value, msgspec.Struct):
        return "(the defaults below)"
    return "`" + msgspec.json.encode(value).decode() + "`"


def _comments(cls: type) -> dict[str, str]:
    """``field: ... #: text`` comments of a struct's source."""
    out: dict[str, str] = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return out
    above: list[str] = []
    for line in source.splitlines():
        m = re.match(r"\s+(\w+): .*#: (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
        elif (c := re.match(r"\s+#: (.*)$", line)) is not None:
            above.append(c.group(1).strip())
            continue
        elif above and (f := re.match(r"\s+(\w+): ", line)) is not None:
            out[f.group(1)] = " ".join(above)
        above = []
    return out


def _doc(cls: type) -> str:
    return " ".join((inspect.getdoc(cls) or "").split())


def _struct_of(t: Any) -> Any:
    if isinstance(t, mi.StructType):
        return t
    if isinstance(t, mi.UnionType):
        structs = [x for x in t.types if isinstance(x, mi.StructType)]
        return structs[0] if len(structs) == 1 else None
    if isinstance(t, mi.DictType):
        return _struct_of(t.value_type)
    return None


# -- examples from the bundled catalog ----------------------------------------------------------------


def _catalog_examples() -> dict[str, tuple[str, Any]]:
    """``key path -> (file, value)``: the first bundled scenario (or template) that sets each key."""
    from replaylib.data import bundled_dir
    from replaylib.scenario.yamlio import read_yaml

    root = bundled_dir("scenarios")
    out: dict[str, tuple[str, Any]] = {}
    signal_maps = ("power.noise",)

    def walk(value: Any, path: str, name: str) -> None:
        for k, v in value.items():
            key = f"{path}.<signal>" if path in signal_maps else (f"{path}.{k}" if path else str(k))
            out.setdefault(key, (name, v))
            if isinstance(v, dict):
                walk(v, key, name)
            elif isinstance(v, list) and key in ("events", "assertions"):
                for item in v:
                    if isinstance(item, dict):
                        walk(item, f"events[{item.get('type')}]" if key == "events" else "assertions[]", name)

    for file in sorted(root.rglob("*.yaml")):
        doc = read_yaml(str(file))
        if isinstance(doc, dict):
            walk(doc, "", file.relative_to(root).as_posix())
    return out


def _example(key: str, examples: dict[str, tuple[str, Any]]) -> str:
    found = examples.get(key)
    if found is None:
        return ""
    text = msgspec.json.encode(found[1]).decode()
    if len(text) > 48:
        return f"see {found[0]}"
    return f"`{text}` ({found[0]})"


# -- the scenario page ---------------------------------------------------------------------------------


def scenario_reference() -> str:
    """The Markdown of ``docs/scenario_reference.md``."""
    from replaylib.scenario.model import Assertion, Scenario

    examples = _catalog_examples()
    lines = [
        "# Scenario reference",
        "",
        "<!-- Generated by `python -m replaylib.reference` from replaylib/scenario/model.py; do not edit by hand. -->",
        "",
        "Every key a scenario file can hold: its type, unit, default and an example from the bundled catalog. "
        "Times are seconds of simulated time (`*_s`), powers per-GPU watts (`*_w`) unless they say total. "
        "`extends:` (a file path or a list of them, relative to the file) merges parent files first: maps merge "
        "key by key, lists and scalars are replaced. Unknown keys are errors naming the file and key path.",
        "",
    ]
    top = mi.type_info(Scenario)
    lines += _section("Top level", "", top, examples, skip_structs=True)
    for f in top.fields:
        struct = _struct_of(f.type)
        if struct is None or f.name in ("events", "assertions"):
            continue
        lines += _section(f"`{f.name}:`", f.name, struct, examples)
        for sub in struct.fields:
            inner = _struct_of(sub.type)
            if inner is not None:
                lines += _section(f"`{f.name}.{sub.name}.<signal>:`", f"{f.name}.{sub.name}.<signal>", inner, examples)
    lines += ["## `events:`", "", "A list; each event is a mapping whose `type` picks one of the kinds below. "
              "Events fire at the first tick whose time is at or after `at_s` (ties in file order).", ""]
    events = next(f for f in top.fields if f.name == "events").type.item_type
    for member in events.types:
        lines += _section(f"`type: {member.tag}`", f"events[{member.tag}]", member, examples, level="###")
    lines += _section("`assertions:`", "assertions[]", mi.type_info(Assertion), examples)
    return "\n".join(lines).rstrip() + "\n"


def _section(title: str, path: str, struct: Any, examples: dict[str, tuple[str, Any]], *, skip_structs: bool = False,
             level: str = "##") -> list[str]:
    notes = _comments(struct.cls)
    out = [f"{level} {title}", ""]
    doc = _doc(struct.cls)
    if doc and not doc.startswith(("A base", "Struct")):
        out += [doc, ""]
    out += ["| key | type | unit | default | example | note |", "|---|---|---|---|---|---|"]
    for f in struct.fields:
        if f.name == struct.tag_field:
            continue
        listed = isinstance(f.type, mi.ListType) and not isinstance(f.type.item_type, (mi.StrType, mi.LiteralType))
        if skip_structs and (listed or _struct_of(f.type) is not None and not isinstance(f.type, mi.DictType)):
            kind = "list (below)" if listed else "mapping (below)"
            out.append(f"| `{f.encode_name}` | {kind} | | | | see `{f.encode_name}:` |")
            continue
        key = f"{path}.{f.encode_name}" if path else f.encode_name
        cell = _type(f.type).replace("|", "\\|")
        out.append(f"| `{f.encode_name}` | {cell} | {_unit(f.name)} | {_default(f)} | {_example(key, examples)} | "
                   f"{notes.get(f.name, '')} |")
    return [*out, ""]


# -- the columns page ------------------------------------------------------------------------------------


def columns_reference() -> str:
    """The Markdown of ``docs/recording_columns.md``."""
    from replaylib.diff.policy import describe_tolerance
    from replaylib.record import schema
    from replaylib.record.columns import COLUMNS

    specs = schema.COLUMN_SPECS  # each column's class and default tolerance (docs/goldens.md)
    lines = [
        "# Recording columns",
        "",
        "<!-- Generated by `python -m replaylib.reference` from replaylib/record/schema.py and "
        "replaylib/record/columns.py; do not edit by hand. -->",
        "",
        f"A recording is one Arrow IPC file (schema version {schema.SCHEMA_VERSION}); one row per event, "
        f"{len(schema.FIELDS)} columns. `kind` says which event a row is; a column that does not apply to a row "
        "is null (never a fake 0). Per-GPU powers are the mean over the role's GPUs. Read it with "
        "`replaylib.record.read_recording(path)` (a polars DataFrame) and its metadata with `recording_metadata(path)`.",
        "",
        "Each column's class — what the planner *decided*, what it *observed*, or the *outcome* — and its "
        "default tolerance decide how goldens and `diff` compare it (docs/goldens.md).",
        "",
        "| column | type | unit | rows | meaning | class | default tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for field in schema.ARROW_SCHEMA:
        doc = COLUMNS[field.name]
        spec = specs[field.name]
        tol = describe_tolerance(spec.tolerance) if spec.compared else "not compared unless named"
        row = f"| `{field.name}` | {field.type}{'' if field.nullable else ', not null'} | {doc.unit} | {doc.rows} | {doc.meaning} |"
        lines.append(row + f" {spec.cls.value} | {tol} |")
    lines += ["", "## Metadata", "", "The schema metadata (utf-8 strings) holds:", ""]
    lines += [f"- `{k}`" for k in schema.METADATA_KEYS]
    return "\n".join(lines) + "\n"


# -- the catalog page -----------------------------------------------------------------------------------

#: A testbed scenario's file name starts with its ID in NVIDIA Dynamo's power-planner testbed.
_TESTBED_ID = re.compile(r"([a-g]\d+)_")


def _event_text(ev: Any) -> str:
    """``bias_step at 300 s: power_bias_decode +40`` — an event in a few words."""
    fields = {k: v for k, v in msgspec.structs.asdict(ev).items() if k not in ("at_s",) and v is not None}
    what = ", ".join(f"{k} {'/'.join(map(str, v)) if isinstance(v, list) else v:g}" if isinstance(v, float)
                     else f"{k} {'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in fields.items())
    return f"{ev.__struct_config__.tag} at {ev.at_s:g} s" + (f" ({what})" if what else "")


def catalog_reference() -> str:
    """The Markdown of ``docs/scenarios.md``: every bundled scenario, what it injects and what it asserts."""
    from replaylib.data import bundled_dir
    from replaylib.scenario import load_scenario
    from replaylib.scenario.assertions import describe

    root = bundled_dir("scenarios")
    files = sorted(p for p in root.rglob("*.yaml") if "_base" not in p.relative_to(root).parts)
    lines = [
        "# Scenario catalog",
        "",
        "<!-- generated by `python -m replaylib.reference` from the bundled scenarios; tests/test_docs.py fails when stale -->",
        "",
        "Every scenario that ships, by the name `record --scenario NAME` takes: what it is about, the system and "
        "planner it replays, what it injects (its events, at simulated seconds) and what it asserts a correct planner "
        "does. Scenarios under `testbed/` are the counterparts of NVIDIA Dynamo's power-planner stress testbed "
        "(`components/src/dynamo/planner/tests/testbed/`), named by the testbed's IDs; each file's header says how "
        "its traffic was made.",
        "",
        "| scenario | testbed | about | system, planner | injects | asserts |",
        "|---|---|---|---|---|---|",
    ]
    for path in files:
        name = path.relative_to(root).with_suffix("").as_posix()
        s = load_scenario(path, check_trace=False).scenario
        tb = _TESTBED_ID.match(path.name) if name.startswith("testbed/") else None
        events = "<br>".join(_event_text(e) for e in s.events) or "—"
        asserts = "<br>".join(describe(a).replace("|", "\\|") for a in s.assertions) or "—"
        lines.append(f"| `{name}` | {tb.group(1).upper() if tb else ''} | {s.description.replace('|', '/')} | "
                     f"{s.system}, {s.planner.name} | {events} | {asserts} |")
    return "\n".join(lines) + "\n"


CATALOG_PAGE = "docs/scenarios.md"
PAGES = {SCENARIO_PAGE: scenario_reference, COLUMNS_PAGE: columns_reference, CATALOG_PAGE: catalog_reference}


def main(argv: list[str] | None = None) -> int:
    """Rewrite the reference pages under the repository root given (default: the checkout this module is in)."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    for page, make in PAGES.items():
        path = root / page
        os.makedirs(path.parent, exist_ok=True)
        path.write_text(make(), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
