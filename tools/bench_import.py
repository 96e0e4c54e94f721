#!/usr/bin/env python3
"""Benchmark of the Azure CSV import path (issue 7) against its targets.

(a) Throughput: synthetic Azure-format CSVs (``TIMESTAMP,ContextTokens,GeneratedTokens``,
    7 fractional digits, one request every 0-40 ms, ContextTokens uniform in 1..4096 so
    the mean matches the real code trace's ~2,048) of 1M and 2M rows are generated in a
    temporary directory and imported with ``import_trace("azure", ...)`` to JSONL;
    rows/s = data rows / wall time of the import call, best of ``--repeat``.
    Target: >= 200,000 rows/s.  The real ``../shared/traces/azure_llm_2023_code.csv`` is
    timed too (8,819 rows: fixed costs dominate, so its rate is informational).
(b) Memory: each import runs in a fresh subprocess; peak RSS (VmHWM) is reported after
    the import and as growth over the peak after ``import replaylib.trace.importers``.
    Flat means the 2M-row import peaks no higher than the 1M-row one plus a small
    tolerance (``RSS_FLAT_TOLERANCE_MB``).

Usage: ``python tools/bench_import.py [--rows 1000000 2000000] [--repeat N] [--parquet] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchutil import ROOT, SHARED_TRACES, VMHWM_SOURCE

sys.path.insert(0, ROOT)

AZURE_REAL = os.path.join(SHARED_TRACES, "azure_llm_2023_code.csv")
TARGET_ROWS_S = 200_000.0
RSS_FLAT_TOLERANCE_MB = 25.0

# Runs in a child so that every measurement starts from a fresh interpreter.
_CHILD = VMHWM_SOURCE + r"""
import json, sys, time

from replaylib.trace.importers import import_trace
base = vmhwm_mb()
src, dst, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
best = float("inf")
for _ in range(repeat):
    began = time.perf_counter()
    report = import_trace("azure", src, dst)
    best = min(best, time.perf_counter() - began)
print(json.dumps({"rows": report.rows_read, "written": report.rows_written, "seconds": best,
                  "base_mb": base, "peak_mb": vmhwm_mb()}))
"""


def generate_azure_csv(path: str, rows: int) -> None:
    """A deterministic Azure-format CSV of ``rows`` data rows, built with polars (vectorised)."""
    import polars as pl

    i = pl.int_range(rows, dtype=pl.Int64)
    gap_ns = (i.hash(7) % 400_000).cast(pl.Int64) * 100  # 0 .. 40 ms in 100 ns steps
    first_ns = 1_700_158_623_979_960_000  # 2023-11-16 18:17:03.9799600
    frame = pl.select(
        TIMESTAMP=(pl.lit(first_ns) + gap_ns.cum_sum())
        .cast(pl.Datetime("ns"))
        .dt.strftime("%Y-%m-%d %H:%M:%S%.f")
        .str.slice(0, 27),  # 9 fractional digits -> Azure's 7
        ContextTokens=(i.hash(11) % 4096 + 1).cast(pl.Int64),
        GeneratedTokens=(i.hash(13) % 64 + 1).cast(pl.Int64),
    )
    frame.write_csv(path)


def _run(src: str, dst: str, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, src, dst, str(repeat)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def _line(label: str, res: dict) -> str:
    rate = res["rows"] / res["seconds"]
    return (
        f"{label:<28} {res['rows']:>10,} rows  {res['seconds']:7.2f} s  {rate:>10,.0f} rows/s  "
        f"peak RSS {res['peak_mb']:7.1f} MB (+{res['peak_mb'] - res['base_mb']:.1f} MB over import)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 2_000_000], help="synthetic sizes (default 1M 2M)")
    ap.add_argument("--repeat", type=int, default=2, help="imports per size, best time kept (default 2)")
    ap.add_argument("--parquet", action="store_true", help="write Parquet instead of JSONL")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep the files")
    args = ap.parse_args()

    ext = "parquet" if args.parquet else "jsonl"
    with tempfile.TemporaryDirectory(prefix="bench_import.") as tmp:
        where = args.keep or tmp
        os.makedirs(where, exist_ok=True)
        results = {}
        print(f"target: >= {TARGET_ROWS_S:,.0f} rows/s on the Azure CSV path; output .{ext}")
        for n in args.rows:
            src = os.path.join(where, f"azure_{n}.csv")
            if not os.path.exists(src):
                generate_azure_csv(src, n)
            results[n] = _run(src, os.path.join(where, f"azure_{n}.{ext}"), args.repeat)
            print(_line(f"synthetic {n:,} rows", results[n]))
        if os.path.exists(AZURE_REAL):
            print(_line("real azure_llm_2023_code", _run(AZURE_REAL, os.path.join(where, f"real.{ext}"), max(args.repeat, 3))))
        else:
            print(f"real trace not found at {AZURE_REAL}; skipped")

    ok = True
    for n, res in results.items():
        rate = res["rows"] / res["seconds"]
        verdict = "PASS" if rate >= TARGET_ROWS_S else "FAIL"
        ok &= rate >= TARGET_ROWS_S
        print(f"{verdict}  throughput {n:,} rows: {rate:,.0f} rows/s vs target {TARGET_ROWS_S:,.0f}")
    if len(results) >= 2:
        small, large = min(results), max(results)
        grow = results[large]["peak_mb"] - results[small]["peak_mb"]
        flat = grow <= RSS_FLAT_TOLERANCE_MB
        ok &= flat
        print(
            f"{'PASS' if flat else 'FAIL'}  memory: peak RSS {results[small]['peak_mb']:.1f} MB at {small:,} rows, "
            f"{results[large]['peak_mb']:.1f} MB at {large:,} rows ({grow:+.1f} MB; flat within {RSS_FLAT_TOLERANCE_MB:.0f} MB)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
