"""The golden text format (v2): a block per tick, one ``column: value`` line per column.

A golden reads top to bottom like the replay it records::

    # replaylib golden v2 (docs/goldens.md); rewrite with: python -m pytest --snapshot-update
    metadata
      planner_name: "aic"
      planner_version: "2"
      ...

    tick 0 @ 60568.1 ms
      decision:
        t_sched_ms: 60000.0
        target_prefill: 2
        ...
      observation:
        prefill_active: 2
        ...
      outcome:
        fleet_ms: 60568.1
        ...
      cap event:
        cap_prefill_w: 700.0
        ...

Every tick row becomes a ``tick N @ NOW ms`` header and its non-null columns,
grouped by their class (decision, observation, outcome: declared in
:mod:`replaylib.record.schema`) in column order; the tick's other events
(``scale``, ``cap``, ``fault``, ``sweep``, ``assertion``) follow as
``<kind> event:`` blocks.  Values are JSON (strings quoted, ``true``/``false``,
``NaN``/``Infinity`` for non-finite floats); floats are rounded to six
significant digits but never coarser than 0.1 (so clocks in ms keep a decimal).
Nulls, row positions (``seq``) and the window histograms are left out.  One
changed decision is therefore a one-line change in ``git diff``.  The metadata
block holds the recording's metadata except what varies by machine or release
(trace path, replaylib version); any key a newer writer adds appears on its own.
Nothing depends on the wall clock or the platform: the same recording gives
the same bytes everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec
import polars as pl

from replaylib.errors import ReplaylibError
from replaylib.record.reader import RecordingMeta
from replaylib.record.schema import ARROW_SCHEMA, COLUMN_SPECS, FIELDS, NOT_COMPARED, ColumnClass

SIGNIFICANT_DIGITS = 6
FORMAT_VERSION = 2
MAGIC = "# replaylib golden v"
HEADER = f"{MAGIC}{FORMAT_VERSION} (docs/goldens.md); rewrite with: python -m pytest --snapshot-update"
UPDATE_HINT = "python -m pytest --snapshot-update"

#: Columns a golden leaves out: row positions and raw histograms (the schema's NOT_COMPARED).
EXCLUDED: tuple[str, ...] = NOT_COMPARED
#: Columns a golden holds, in schema order.
COLUMNS: tuple[str, ...] = tuple(f for f in FIELDS if f not in EXCLUDED)
#: Metadata keys left out of a golden: they vary by machine or release, not by behaviour.
META_EXCLUDED: tuple[str, ...] = ("trace_path", "replaylib_version")

_KEYS = ("kind", "tick", "now_ms")  # in the block header, not in the block
_SECTIONS: tuple[ColumnClass, ...] = tuple(ColumnClass)
_BY_CLASS: dict[ColumnClass, tuple[str, ...]] = {
    cls: tuple(c for c in COLUMNS if c not in _KEYS and COLUMN_SPECS[c].cls is cls) for cls in ColumnClass
}
_EVENT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != "kind")

_encode = msgspec.json.Encoder().encode
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

_TICK_RE = re.compile(r"^tick (-?\d+) @ (\S+) ms$")
_SECTION_RE = re.compile(r"^  (decision|observation|outcome):$")
_EVENT_RE = re.compile(r"^  ([a-z_]+) event:$")
_FIELD_RE = re.compile(r"^    ([A-Za-z_][A-Za-z0-9_]*): (.+)$")
_META_RE = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_.-]*): (.+)$")


class GoldenFormatError(ReplaylibError):
    """A golden file that this version cannot read: old format, damaged, or not a golden."""


class Golden(msgspec.Struct, frozen=True, kw_only=True):
    """A golden read back: its events as a DataFrame (recording columns) and its metadata."""

    frame: pl.DataFrame
    metadata: dict[str, str]


# -- writing ------------------------------------------------------------------------------------


def round_float(x: float) -> float:
    """Six significant digits, never coarser than 0.1."""
    if not math.isfinite(x) or x == 0.0:
        return x
    if abs(x) >= 1e5:
        return round(x, 1)
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def value_text(value: Any) -> str:
    """One value as golden text (JSON, floats rounded)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return _encode(round_float(value)).decode()
    return _encode(value).decode()


def _meta_dict(meta: Mapping[str, str] | RecordingMeta) -> dict[str, str]:
    raw = msgspec.structs.asdict(meta) if isinstance(meta, RecordingMeta) else dict(meta)
    return {k: str(raw[k]) for k in sorted(raw) if k not in META_EXCLUDED}


def golden_text(df: pl.DataFrame, meta: Mapping[str, str] | RecordingMeta) -> str:
    """The golden text of a recording (``meta``: its raw metadata, or the typed one)."""
    lines = [HEADER, "metadata"]
    lines += [f"  {k}: {_encode(v).decode()}" for k, v in _meta_dict(meta).items()]
    present = [c for c in COLUMNS if c in df.columns]
    missing = [c for c in ("kind", "tick", "now_ms") if c not in present]
    if missing:
        raise GoldenFormatError(f"not a recording: no {', '.join(missing)} column")
    frame = df.sort("seq", maintain_order=True) if "seq" in df.columns and not df["seq"].is_sorted() else df
    tick: int | None = None
    now: float | None = None
    before_first_tick = False
    for row in frame.select(present).iter_rows(named=True):
        if row["kind"] == "tick":
            tick, now = row["tick"], row["now_ms"]
            lines += ["", f"tick {tick} @ {value_text(now)} ms"]
            for cls in _SECTIONS:
                body = [f"    {c}: {value_text(row[c])}" for c in _BY_CLASS[cls] if row.get(c) is not None]
                if body:
                    lines += [f"  {cls.value}:", *body]
            continue
        if tick is None and not before_first_tick:
            lines.append("")  # events before the first tick (a fault at at_s 0): a blank line ends the metadata block
            before_first_tick = True
        lines.append(f"  {row['kind']} event:")
        for c in _EVENT_COLUMNS:
            v = row.get(c)
            if v is None or (c == "tick" and v == tick) or (c == "now_ms" and v == now and tick is not None):
                continue
            lines.append(f"    {c}: {value_text(v)}")
    return "\n".join(lines) + "\n"


# -- reading ------------------------------------------------------------------------------------


def _polars_schema() -> pl.Schema:
    empty = ARROW_SCHEMA.empty_table().select(["seq", *COLUMNS])
    return pl.from_arrow(empty).schema  # type: ignore[union-attr]


_SCHEMA = _polars_schema()


def _where(source: str, lineno: int) -> str:
    return f"{source}:{lineno}"


def _decode(text: str, where: str) -> Any:
    if text in _NONFINITE:
        return _NONFINITE[text]
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise GoldenFormatError(f"{where}: cannot read value {text!r} (expected JSON)") from None


def _typed(column: str, value: Any, where: str) -> Any:
    dtype = _SCHEMA[column]
    ok = (
        (dtype == pl.Boolean and isinstance(value, bool))
        or (dtype.is_integer() and isinstance(value, int) and not isinstance(value, bool))
        or (dtype.is_float() and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (dtype == pl.String and isinstance(value, str))
    )
    if not ok:
        raise GoldenFormatError(f"{where}: column {column!r} expects {dtype}, got {value!r}")
    return float(value) if dtype.is_float() else value


def _old_format(source: str) -> GoldenFormatError:
    return GoldenFormatError(
        f"{source}: a golden in the old v1 format (one JSON object per event); this replaylib reads "
        f"v{FORMAT_VERSION}. Rewrite it with `{UPDATE_HINT}` and review the diff"
    )


def parse_golden(text: str, *, source: str = "golden") -> Golden:
    """A golden's events (as a DataFrame with the recording's columns) and metadata.

    Raises :class:`GoldenFormatError` naming ``source`` and the line for an old-format,
    damaged or foreign file.
    """
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if first.startswith(MAGIC):
        version = first[len(MAGIC) :].split(" ", 1)[0]
        if version == "1":
            raise _old_format(source)
        if version != str(FORMAT_VERSION):
            raise GoldenFormatError(
                f"{source}: golden format v{version} is not known to this replaylib (it reads v{FORMAT_VERSION}); "
                f"upgrade replaylib, or rewrite the golden with `{UPDATE_HINT}`"
            )
    elif first.startswith("{"):
        raise _old_format(source)
    else:
        raise GoldenFormatError(f"{source}:1: not a replaylib golden (expected a first line starting {MAGIC!r})")
    metadata: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    row: dict[str, Any] | None = None
    tick: int | None = None
    now: float | None = None
    in_meta = False
    section: str | None = None
    for lineno, line in enumerate(lines[1:], start=2):
        where = _where(source, lineno)
        if not line.strip():
            in_meta = False
            continue
        if line == "metadata" and not rows:
            in_meta = True
            continue
        if in_meta:
            m = _META_RE.match(line)
            if not m:
                raise GoldenFormatError(f"{where}: expected '  key: value' in the metadata block, got {line!r}")
            value = _decode(m.group(2), where)
            metadata[m.group(1)] = value if isinstance(value, str) else m.group(2)
            continue
        if m := _TICK_RE.match(line):
            tick = int(m.group(1))
            now = float(_typed("now_ms", _decode(m.group(2), where), where))
            row = {"kind": "tick", "tick": tick, "now_ms": now}
            rows.append(row)
            section = None
            continue
        if m := _SECTION_RE.match(line):
            if row is None or row["kind"] != "tick":
                raise GoldenFormatError(f"{where}: a {m.group(1)} section belongs to a tick block")
            section = m.group(1)
            continue
        if m := _EVENT_RE.match(line):
            row = {"kind": m.group(1), "tick": tick, "now_ms": now}
            rows.append(row)
            section = "event"
            continue
        if m := _FIELD_RE.match(line):
            column = m.group(1)
            if row is None or section is None:
                raise GoldenFormatError(f"{where}: a field outside any tick section or event block: {line!r}")
            if column not in _SCHEMA or column == "kind" or column == "seq":
                raise GoldenFormatError(
                    f"{where}: unknown column {column!r} (a golden of another schema version? rewrite it with `{UPDATE_HINT}`)"
                )
            if section != "event" and COLUMN_SPECS[column].cls.value != section:
                raise GoldenFormatError(f"{where}: column {column!r} is a {COLUMN_SPECS[column].cls.value}, listed under {section}")
            if column in row and not (section == "event" and column in ("tick", "now_ms")):
                raise GoldenFormatError(f"{where}: column {column!r} given twice")
            row[column] = _typed(column, _decode(m.group(2), where), where)
            continue
        raise GoldenFormatError(f"{where}: cannot read {line!r} (expected a 'tick N @ T ms' header, a section, an event or a field)")
    for i, r in enumerate(rows):
        if r["tick"] is None or r["now_ms"] is None:
            raise GoldenFormatError(f"{source}: the {r['kind']} event #{i} comes before any tick and names no tick/now_ms")
        r["seq"] = i
    frame = pl.from_dicts(rows, schema=_SCHEMA) if rows else pl.DataFrame(schema=_SCHEMA)
    return Golden(frame=frame, metadata=metadata)


__all__ = [
    "COLUMNS",
    "EXCLUDED",
    "FORMAT_VERSION",
    "SIGNIFICANT_DIGITS",
    "UPDATE_HINT",
    "Golden",
    "GoldenFormatError",
    "golden_text",
    "parse_golden",
    "round_float",
    "value_text",
]
