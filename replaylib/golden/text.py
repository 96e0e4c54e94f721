"""The golden text format: one recorded event per line, readable and diffable.

A golden starts with one ``#`` header line (scenario, planner, seed, trace
hash, precision), then one JSON object per event in recording order.  Each
object lists the event's non-null columns in schema order; floats are rounded
to ``SIGNIFICANT_DIGITS`` significant digits; the per-window latency
histograms are left out (their counts and percentiles are kept).  A changed
decision therefore shows up as a one-line change in review.  Nothing in a
recording depends on the wall clock, and metadata that varies by machine or
release (trace path, replaylib version) is not part of the golden.
"""

from __future__ import annotations

import math

import msgspec
import polars as pl

from replaylib.record.reader import RecordingMeta
from replaylib.record.schema import ARROW_SCHEMA, FIELDS

SIGNIFICANT_DIGITS = 6
EXCLUDED = ("ttft_hist", "itl_hist")
COLUMNS: tuple[str, ...] = tuple(f for f in FIELDS if f not in EXCLUDED)
FORMAT_VERSION = 1

_encode = msgspec.json.Encoder().encode


def _round(x: float) -> float:
    if not math.isfinite(x) or x == 0.0:
        return x
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def header(meta: RecordingMeta) -> str:
    return (
        f"# replaylib golden v{FORMAT_VERSION} | scenario {meta.scenario_name} | planner {meta.planner} | "
        f"seed {meta.seed} | system {meta.system_name} | trace sha256 {meta.trace_sha256[:16]} | "
        f"floats to {SIGNIFICANT_DIGITS} significant digits | histograms omitted"
    )


def golden_text(df: pl.DataFrame, meta: RecordingMeta) -> str:
    """The golden text of a recording."""
    lines = [header(meta)]
    for row in df.select(COLUMNS).iter_rows(named=True):
        obj = {}
        for k, v in row.items():
            if v is None:
                continue
            obj[k] = _round(v) if isinstance(v, float) else v
        lines.append(_encode(obj).decode())
    return "\n".join(lines) + "\n"


def _polars_schema() -> pl.Schema:
    empty = ARROW_SCHEMA.empty_table().select(list(COLUMNS))
    return pl.from_arrow(empty).schema  # type: ignore[union-attr]


def parse_golden(text: str) -> pl.DataFrame:
    """A golden's events back as a DataFrame (columns as in the schema, minus histograms)."""
    rows = [msgspec.json.decode(line) for line in text.splitlines() if line and not line.startswith("#")]
    return pl.from_dicts(rows, schema=_polars_schema())
