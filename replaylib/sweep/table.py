"""The sweep's results table: one row per run, written as Parquet with polars.

Columns, in order:

- ``run`` (its index in the matrix), ``key`` (sha256 of its inputs),
  ``scenario``, ``scenario_file`` (relative to the sweep file), ``planner``
  (the spec as given), ``planner_version`` (``name@version`` that ran), ``seed``;
- one ``override.<key path>`` column per overridden key (typed when every value
  is a scalar of one kind, else JSON text; null where a run does not set it),
  and ``overrides`` (the run's overrides as canonical JSON);
- ``status`` (``passed`` / ``failed`` = an assertion failed / ``error`` = the
  run did not finish), ``error``, ``assertions``, ``assertions_failed``,
  ``failed_assertions`` (their verdict lines);
- every KPI of :class:`~replaylib.record.kpis.Kpis` (null for a run in error);
- ``recording`` (relative to the output folder) and ``sha256``.

The table holds nothing about how or where the runs executed (no timings, no
host names), so the same sweep gives the same table whichever executor ran it
and whether runs were replayed or reused.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import msgspec
import polars as pl

from replaylib.record.kpis import Kpis
from replaylib.sweep.plan import PlannedRun
from replaylib.sweep.storage import Store
from replaylib.sweep.task import RunOutcome

#: The table's file in the output folder.
TABLE_NAME = "sweep.parquet"

_KPI_FIELDS = msgspec.structs.fields(Kpis)


def _dtype(annotation: Any) -> pl.DataType:
    text = str(annotation)
    return pl.Int64() if "int" in text else pl.Float64()


def results_table(runs: Sequence[PlannedRun], outcomes: dict[int, RunOutcome], store: Store, override_keys: Sequence[str]) -> pl.DataFrame:
    """The table of ``runs`` (in index order) with their ``outcomes`` (by index; a missing one is an error row)."""
    cols: dict[str, list[Any]] = {name: [] for name in (
        "run", "key", "scenario", "scenario_file", "planner", "planner_version", "seed", "overrides",
        "status", "error", "assertions", "assertions_failed", "failed_assertions", "recording", "sha256",
    )}  # fmt: skip
    kpis: dict[str, list[Any]] = {f.name: [] for f in _KPI_FIELDS}
    overrides: dict[str, list[Any]] = {k: [] for k in override_keys}
    for run in sorted(runs, key=lambda r: r.index):
        out = outcomes.get(run.index) or RunOutcome(index=run.index, key=run.key, error="not run (the sweep was interrupted)")
        ok = out.error is None
        failed = [f"[{a.index}] {a.description} -- {a.evidence}" for a in out.assertions if not a.passed]
        values = {
            "run": run.index, "key": run.key, "scenario": run.scenario, "scenario_file": run.scenario_file,
            "planner": run.planner_spec, "planner_version": run.planner, "seed": run.seed,
            "overrides": msgspec.json.encode(run.overrides, order="sorted").decode(),
            "status": out.status, "error": out.error,
            "assertions": len(out.assertions) if ok else None, "assertions_failed": len(failed) if ok else None,
            "failed_assertions": failed, "recording": store.relative(run.task.dest) if ok else None,
            "sha256": out.sha256,
        }  # fmt: skip
        for name, value in values.items():
            cols[name].append(value)
        for f in _KPI_FIELDS:
            kpis[f.name].append(getattr(out.kpis, f.name) if out.kpis is not None else None)
        for k in override_keys:
            overrides[k].append(run.overrides.get(k))
    schema: dict[str, Any] = {
        "run": pl.Int64, "key": pl.String, "scenario": pl.String, "scenario_file": pl.String, "planner": pl.String,
        "planner_version": pl.String, "seed": pl.Int64,
    }  # fmt: skip
    columns: list[pl.Series] = [pl.Series(name, cols[name], dtype=schema[name]) for name in schema]
    columns += [_override_column(f"override.{k}", v) for k, v in overrides.items()]
    columns += [
        pl.Series("overrides", cols["overrides"], dtype=pl.String),
        pl.Series("status", cols["status"], dtype=pl.String),
        pl.Series("error", cols["error"], dtype=pl.String),
        pl.Series("assertions", cols["assertions"], dtype=pl.Int64),
        pl.Series("assertions_failed", cols["assertions_failed"], dtype=pl.Int64),
        pl.Series("failed_assertions", cols["failed_assertions"], dtype=pl.List(pl.String)),
    ]
    columns += [pl.Series(f.name, kpis[f.name], dtype=_dtype(f.type)) for f in _KPI_FIELDS]
    columns += [pl.Series("recording", cols["recording"], dtype=pl.String), pl.Series("sha256", cols["sha256"], dtype=pl.String)]
    return pl.DataFrame(columns)


def _override_column(name: str, values: list[Any]) -> pl.Series:
    """Typed when every value is a scalar of one kind (ints and floats mix as floats), else canonical JSON text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {bool}:
        return pl.Series(name, values, dtype=pl.Boolean)
    if kinds and kinds <= {int}:
        return pl.Series(name, values, dtype=pl.Int64)
    if kinds and kinds <= {int, float}:
        return pl.Series(name, [None if v is None else float(v) for v in values], dtype=pl.Float64)
    if kinds and kinds <= {str}:
        return pl.Series(name, values, dtype=pl.String)
    return pl.Series(name, [None if v is None else msgspec.json.encode(v, order="sorted").decode() for v in values], dtype=pl.String)


def write_table(table: pl.DataFrame, store: Store) -> str:
    """Write ``table`` to the store's :data:`TABLE_NAME`, whole (temporary name, then renamed); returns its location."""
    buf = io.BytesIO()
    table.write_parquet(buf, statistics=False)
    location = store.join(TABLE_NAME)
    store.write_bytes(location, buf.getvalue())
    return location


__all__ = ["TABLE_NAME", "results_table", "write_table"]
