#!/usr/bin/env python3
"""Time the stress-testbed catalog (``scenarios/testbed/``, issue 12) against its target.

Replays every testbed scenario once, in this process, under its own planner
(the default, aic@2) with ``replaylib.adapter.replay`` — loading the scenario,
reading the trace, simulating, planning, recording and checking assertions —
and prints each scenario's CPU time (``time.process_time``) and the total.
Target: the whole catalog under 60 s of CPU on one core.  Exits 1 when the
total misses the target or a scenario's assertions fail.

Usage: ``python tools/bench_catalog.py [--json]``
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

from benchutil import ROOT

sys.path.insert(0, ROOT)

TARGET_S = 60.0
SCENARIOS = sorted(glob.glob(os.path.join(ROOT, "scenarios", "testbed", "*.yaml")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the timings as one JSON object")
    args = ap.parse_args()

    from replaylib.adapter import replay
    from replaylib.scenario import load_scenario

    rows: list[dict[str, object]] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in SCENARIOS:
            name = os.path.splitext(os.path.basename(path))[0]
            t0 = time.process_time()
            loaded = load_scenario(path)
            result = replay(loaded, out=os.path.join(tmp, f"{name}.arrow"))
            cpu = time.process_time() - t0
            ok = all(a.passed for a in result.assertions)
            if not ok:
                failed.append(name)
            rows.append({"scenario": name, "cpu_s": round(cpu, 3), "assertions_pass": ok})
    total = sum(float(r["cpu_s"]) for r in rows)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"scenarios": rows, "total_cpu_s": round(total, 3), "target_s": TARGET_S}))
    else:
        width = max(len(str(r["scenario"])) for r in rows) if rows else 10
        for r in rows:
            print(f"{r['scenario']:<{width}}  {r['cpu_s']:7.3f} s  {'ok' if r['assertions_pass'] else 'ASSERTIONS FAIL'}")
        verdict = "PASS" if total < TARGET_S else "FAIL"
        print(f"{'total':<{width}}  {total:7.3f} s CPU for {len(rows)} scenarios; target < {TARGET_S:g} s on one core: {verdict}")
    if failed:
        print(f"assertions failed: {', '.join(failed)}", file=sys.stderr)
    return 0 if total < TARGET_S and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
