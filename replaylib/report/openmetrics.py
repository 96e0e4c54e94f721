"""A recording as an OpenMetrics text exposition, with timestamps (``export --format openmetrics``).

Every numeric or boolean column of the tick rows is one metric family (a
gauge); a column that names a role (``prefill_active``, ``cap_decode_w``,
``c_power_p`` ...) becomes one family with a ``role`` label, so
``prefill_active`` and ``decode_active`` are the two series of
``replaylib_active{role=...}``.  A unit suffix becomes the OpenMetrics unit
(``_w`` -> ``_watts``, ``_ms`` -> ``_milliseconds``); the values are written
exactly as recorded (``repr`` of the float), so they round-trip bit for bit.
Each sample's timestamp is the tick's ``now_ms`` (simulated time) in seconds
after ``start`` (default: the Unix epoch, so the output is deterministic; give
the replay a real start time to browse it next to live data).  Every series is
labelled ``scenario``, ``planner`` and ``seed``, so several exports can share one
TSDB.  A null reading has no sample.  Not exported: the clock columns (the
timestamp is the clock), text columns (``reason``, ``actuation``) and the
latency histograms.

Import the file with ``promtool tsdb create-blocks-from openmetrics FILE DIR``;
``grafana/replaylib_dashboard.json`` charts the series.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec

from replaylib.record.schema import ARROW_SCHEMA, EventRow

if TYPE_CHECKING:
    import polars as pl

    from replaylib.record.reader import RecordingMeta

PREFIX = "replaylib_"
#: Tick columns that are not metrics: identity and clocks (the timestamp carries the clock).
NOT_METRICS = frozenset({"seq", "tick", "now_ms", "t_sched_ms", "fleet_ms"})
_UNITS = (("_ms", "milliseconds"), ("_w", "watts"), ("_s", "seconds"))
_ROLE_TOKENS = {"prefill": "prefill", "decode": "decode"}
#: Role-stripped names that need a noun: prefill_active -> workers_active{role="prefill"}.
_BARE = {"active": "workers_active", "starting": "workers_starting", "draining": "workers_draining", "target": "target_workers"}
_SHORT_ROLE = re.compile(r"^(?P<base>.+)_(?P<r>[pd])$")  # c_power_p / c_power_d


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """How one column is exported."""

    column: str
    family: str  #: the metric family name (with its unit suffix)
    unit: str  #: "" when none
    role: str | None
    help: str


def _split_role(column: str) -> tuple[str, str | None]:
    parts = column.split("_")
    roles = [p for p in parts if p in _ROLE_TOKENS]
    if len(roles) == 1:
        return "_".join(p for p in parts if p not in _ROLE_TOKENS), roles[0]
    m = _SHORT_ROLE.match(column)
    if m and column.startswith("c_"):
        return m.group("base"), {"p": "prefill", "d": "decode"}[m.group("r")]
    return column, None


def _unit(base: str) -> tuple[str, str]:
    for suffix, unit in _UNITS:
        if base.endswith(suffix):
            return base[: -len(suffix)] + "_" + unit, unit
    return base, ""


def series() -> list[Series]:
    """Every exported column, in schema order."""
    import pyarrow as pa

    from replaylib.record.columns import COLUMNS

    out = []
    for field in ARROW_SCHEMA:
        if field.name in NOT_METRICS or not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
                                             or pa.types.is_boolean(field.type)):
            continue
        base, role = _split_role(field.name)
        base = _BARE.get(base, base)
        family, unit = _unit(base)
        out.append(Series(column=field.name, family=PREFIX + family, unit=unit, role=role,
                          help=_help(field.name, COLUMNS)))
    return out


def _help(column: str, docs: dict) -> str:
    doc = docs.get(column)
    if doc is None:
        return f"the recording's {column} column"
    return f"{column}: {doc.meaning}" + (f" ({doc.unit})" if doc.unit else "")


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    f = float(value)  # type: ignore[arg-type]
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return repr(f)


def _timestamp(now_ms: float, start_s: float) -> str:
    return repr(start_s + now_ms / 1000.0)


def exposition(df: pl.DataFrame, meta: RecordingMeta, *, start_s: float = 0.0) -> Iterator[str]:
    """The lines of the exposition (each ending in a newline), ``# EOF`` last."""
    import polars as pl

    ticks = df.filter(pl.col("kind") == "tick")
    now = ticks["now_ms"].to_list()
    base_labels = f'scenario="{_label_value(meta.scenario_name)}",planner="{_label_value(meta.planner)}",seed="{meta.seed}"'
    families: dict[str, list[Series]] = {}
    for s in series():
        families.setdefault(s.family, []).append(s)
    for family, members in families.items():
        samples = []
        for s in members:
            labels = base_labels + (f',role="{s.role}"' if s.role else "")
            samples += [f"{family}{{{labels}}} {_number(value)} {_timestamp(t, start_s)}\n"
                        for t, value in zip(now, ticks[s.column].to_list(), strict=True) if value is not None]
        if not samples:  # a column tick rows never fill (an assertion's verdict): no family
            continue
        yield f"# TYPE {family} gauge\n"
        if members[0].unit:
            yield f"# UNIT {family} {members[0].unit}\n"
        yield f"# HELP {family} {_label_value(' / '.join(sorted({m.help for m in members})))}\n"
        yield from samples
    for name, value in (("ttft_target", meta.ttft_target_ms), ("itl_target", meta.itl_target_ms)):
        family = f"{PREFIX}{name}_milliseconds"  # the SLA targets (metadata), as series to chart the latencies against
        yield f"# TYPE {family} gauge\n# UNIT {family} milliseconds\n# HELP {family} the scenario's {name.replace('_', ' ')}\n"
        yield from (f"{family}{{{base_labels}}} {_number(value)} {_timestamp(t, start_s)}\n" for t in now)
    yield "# EOF\n"


def export_openmetrics(path: str | os.PathLike[str], out: str | os.PathLike[str], *, start_s: float = 0.0) -> int:
    """Write the exposition of the recording ``path`` to ``out`` (atomically); returns the number of samples."""
    from replaylib.report.output import write_text
    from replaylib.report.summary import load_complete

    df, meta = load_complete(os.fspath(path))
    lines = list(exposition(df, meta, start_s=start_s))
    write_text(os.fspath(out), "".join(lines))
    return sum(1 for line in lines if not line.startswith("#"))


#: Export formats by name: ``exporter(recording, out, start_s=...) -> samples written``.
EXPORTERS = {"openmetrics": export_openmetrics}

assert all(name in EventRow.__struct_fields__ for name in NOT_METRICS)

__all__ = ["EXPORTERS", "NOT_METRICS", "PREFIX", "Series", "export_openmetrics", "exposition", "series"]
