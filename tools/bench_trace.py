#!/usr/bin/env python3
"""Trace I/O benchmarks against the targets in DESIGN.md.

(a) ``read_trace`` throughput on the real Mooncake conversation trace
    (``../shared/traces/mooncake_conversation_trace.jsonl``), best of N, in MB/s
    of uncompressed JSONL; target >= 100 MB/s.
(b) Peak-memory growth of streaming a 1,000,000-request generated trace through
    ``read_trace``, measured in a fresh subprocess as peak RSS (ru_maxrss and
    /proc/self/status VmHWM) after the whole file minus after
    ``import replaylib.trace``; target <= 50 MB.  The verdict uses VmHWM, which
    exec resets; ru_maxrss carries over the forking parent's peak, so its
    baseline can already exceed what the child ever uses.  The generator's own peak
    growth while writing that trace is reported too (it must be flat).

Usage: ``python tools/bench_trace.py [--repeat N] [--rows N] [--skip-memory]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchutil import ROOT, SHARED_TRACES, VMHWM_SOURCE

sys.path.insert(0, ROOT)

MOONCAKE = os.path.join(SHARED_TRACES, "mooncake_conversation_trace.jsonl")
READ_TARGET_MB_S = 100.0
RSS_TARGET_MB = 50.0

# Run in a child so that the parent's imports and allocations do not count.
_CHILD = VMHWM_SOURCE + r"""
import json, resource, sys

def peak_mb():
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"ru_maxrss_mb": ru, "vmhwm_mb": vmhwm_mb()}

import replaylib.trace as T
base = peak_mb()
mode, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "read":
    n = 0
    for _ in T.read_trace(path):
        n += 1
else:
    from replaylib.trace.generate import Poisson
    cfg = T.GeneratorConfig(seed=0, duration_s=None, requests=rows, arrivals=Poisson(rate=500.0))
    n = T.write_trace(path, T.generate_trace(cfg))
print(json.dumps({"rows": n, "base": base, "after": peak_mb()}))
"""


def _child(mode: str, path: str, rows: int) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, path, str(rows)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def _delta(res: dict) -> str:
    parts = []
    for key, label in (("ru_maxrss_mb", "ru_maxrss"), ("vmhwm_mb", "VmHWM")):
        if res["base"][key] is not None:
            parts.append(
                f"{label} {res['base'][key]:.1f} -> {res['after'][key]:.1f} MB "
                f"(+{res['after'][key] - res['base'][key]:.1f} MB)"
            )
    return "; ".join(parts)


def bench_read(repeat: int) -> None:
    from replaylib.trace import read_trace

    if not os.path.exists(MOONCAKE):
        print(f"read throughput: skipped, {os.path.normpath(MOONCAKE)} is absent")
        return
    import msgspec

    size_mb = os.path.getsize(MOONCAKE) / 1e6
    with open(MOONCAKE, "rb") as fh:
        data = fh.read()
    raw = msgspec.json.Decoder()
    best = best_raw = float("inf")
    n = 0
    for _ in range(repeat):  # interleaved, so machine noise hits both alike
        t0 = time.perf_counter()
        n = sum(1 for _ in read_trace(MOONCAKE))
        best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        raw.decode_lines(data)
        best_raw = min(best_raw, time.perf_counter() - t0)
    rate = size_mb / best
    verdict = "OK" if rate >= READ_TARGET_MB_S else "BELOW TARGET"
    print(
        f"read throughput: {rate:,.1f} MB/s best of {repeat} ({n:,} rows, {size_mb:.2f} MB in {best * 1000:.1f} ms)"
        f"  target >= {READ_TARGET_MB_S:.0f} MB/s  [{verdict}]"
    )
    print(
        f"  same run: untyped msgspec decode of the bytes already in memory {size_mb / best_raw:,.1f} MB/s; "
        f"read_trace (file I/O, typed validation, order check) runs at {best_raw / best:.0%} of it"
    )


def bench_memory(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="replaylib-bench-") as tmp:
        path = os.path.join(tmp, "big.jsonl")
        t0 = time.perf_counter()
        gen = _child("generate", path, rows)
        gen_s = time.perf_counter() - t0
        size_mb = os.path.getsize(path) / 1e6
        print(f"generate {gen['rows']:,} rows: {size_mb:,.1f} MB in {gen_s:.1f} s; peak RSS {_delta(gen)}")
        t0 = time.perf_counter()
        read = _child("read", path, rows)
        read_s = time.perf_counter() - t0
        # VmHWM starts afresh at exec; ru_maxrss keeps the forking parent's peak, so it can hide growth.
        key = "vmhwm_mb" if read["base"]["vmhwm_mb"] is not None else "ru_maxrss_mb"
        growth = read["after"][key] - read["base"][key]
        verdict = "OK" if growth <= RSS_TARGET_MB else "ABOVE TARGET"
        print(
            f"stream {read['rows']:,} rows through read_trace in {read_s:.1f} s: peak RSS {_delta(read)}"
            f"  target <= +{RSS_TARGET_MB:.0f} MB  [{verdict}]"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="read-throughput repetitions (best is kept)")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated trace for the memory test")
    p.add_argument("--skip-memory", action="store_true", help="only measure read throughput")
    args = p.parse_args()
    bench_read(args.repeat)
    if not args.skip_memory:
        bench_memory(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
