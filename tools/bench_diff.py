#!/usr/bin/env python3
"""Diff benchmark: two 100,000-tick recordings, ``diff_recordings`` end to end.

Writes two recordings with every column filled the way a replay fills it
(replicas, caps, power, load, latency with window histograms of a few dozen
buckets, cumulative counters, plus scale / cap / fault / sweep / assertion
rows), differing in a few hundred ticks and a few events, then times reading
both + diffing + KPIs + the text report, best of N.  Target: <= 2 s.

Usage: ``python tools/bench_diff.py [--ticks N] [--diffs N] [--repeat N] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time

import msgspec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from replaylib.diff import diff_recordings, format_text  # noqa: E402
from replaylib.record import EventRow, RecordingWriter  # noqa: E402
from replaylib.sim.metrics import GAMMA  # noqa: E402

TARGET_S = 2.0
INTERVAL_MS = 10_000.0
LOG_GAMMA = math.log(GAMMA)


def metadata(planner_version: int) -> dict[str, str]:
    return {
        "replaylib_version": "0.1.0", "schema_version": "1", "planner_name": "sla",
        "planner_version": str(planner_version), "scenario_name": "bench_diurnal", "scenario_hash": "c" * 64,
        "trace_path": "../traces/diurnal_40min.jsonl.gz", "trace_sha256": "a" * 64, "systems_sha256": "b" * 64,
        "system_name": "h100_sxm", "seed": "0", "ttft_target_ms": "2000.0", "itl_target_ms": "50.0",
        "gpus_per_worker": "2",
    }  # fmt: skip


def _hist(rng: random.Random, center_ms: float, spread: int, samples: int) -> list[int]:
    """A window histogram around ``center_ms``: ``spread`` consecutive buckets."""
    first = math.ceil(math.log(center_ms) / LOG_GAMMA) - spread // 2
    counts = [rng.randint(1, max(1, 2 * samples // spread)) for _ in range(spread)]
    return [v for b, n in zip(range(first, first + spread), counts, strict=True) for v in (b, n)]


def tick_row(i: int, rng: random.Random, seq: int) -> EventRow:
    phase = math.sin(i / 500.0)
    n_p, n_d = 2 + int(2 + 2 * phase), 4 + int(3 + 3 * phase)
    gpus = 2 * (n_p + n_d)
    rate = 4.0 + 3.0 * phase + rng.random()
    ttft = _hist(rng, 400.0 + 200.0 * phase, 24, 40)
    itl = _hist(rng, 25.0 + 5.0 * phase, 16, 400)
    ttft_count, itl_count = sum(ttft[1::2]), sum(itl[1::2])
    power_p, power_d = 480.0 + 40.0 * rng.random(), 380.0 + 30.0 * rng.random()
    now = (i + 1) * INTERVAL_MS
    return EventRow(
        kind="tick", seq=seq, tick=i, now_ms=now, t_sched_ms=now, fleet_ms=now + rng.random() * 20.0,
        prefill_active=n_p, prefill_starting=0, prefill_draining=0, decode_active=n_d, decode_starting=0,
        decode_draining=0, target_prefill=n_p, target_decode=n_d,
        cap_prefill_w=700.0, cap_decode_w=600.0, target_cap_prefill_w=700.0, target_cap_decode_w=600.0,
        power_prefill_w=power_p, power_decode_w=power_d, obs_power_prefill_w=power_p + 1.0,
        obs_power_decode_w=power_d - 1.0, power_total_w=2 * (n_p * power_p + n_d * power_d),
        projected_w=2 * (n_p * 700.0 + n_d * 600.0), budget_w=12_000.0, budget_clamped=False, gpus=gpus,
        arrivals=int(rate * 10), request_rate=rate, mean_isl=2048.0 + rng.random() * 100, mean_osl=256.0,
        predicted_rate=rate * 1.05, predicted_isl=2048.0, predicted_osl=256.0, prefix_hit_rate=0.4 + 0.1 * phase,
        c_ttft=1.0 + 0.01 * phase, c_itl=1.0, c_power_p=1.0, c_power_d=1.0,
        ttft_mean_ms=400.0 + 200.0 * phase, ttft_p50_ms=390.0, ttft_p99_ms=900.0, ttft_count=ttft_count,
        ttft_within_sla=ttft_count, itl_mean_ms=25.0, itl_p50_ms=24.0, itl_p99_ms=40.0, itl_count=itl_count,
        itl_within_sla=itl_count - 3, ttft_hist=ttft, itl_hist=itl, obs_ttft_ms=401.0, obs_itl_ms=25.2,
        ttft_violation=False, itl_violation=False, reason="steady", actuation="ok",
        arrived=40 * (i + 1), completed=40 * i, dropped=0, in_flight=40, preemptions=0,
    )  # fmt: skip


def write(path: str, ticks: int, changed: set[int], planner_version: int) -> None:
    rng = random.Random(0)  # same stream on both sides: only the changed ticks differ
    with RecordingWriter(path, metadata(planner_version)) as w:
        for i in range(ticks):
            row = tick_row(i, rng, w.next_seq())
            if i in changed:
                row = msgspec.structs.replace(row, target_decode=(row.target_decode or 0) + 1,
                                              power_total_w=(row.power_total_w or 0.0) * 1.01, reason="sla_breach")
            w.append(row)
            now = row.now_ms
            if i % 250 == 0:
                w.append(EventRow(kind="scale", seq=w.next_seq(), tick=i, now_ms=now, event="scale_out",
                                  target_prefill=row.target_prefill, target_decode=row.target_decode, detail="prefill 3->4"))
            if i % 1000 == 0:
                w.append(EventRow(kind="cap", seq=w.next_seq(), tick=i, now_ms=now, event="cap",
                                  cap_prefill_w=650.0, cap_decode_w=550.0, detail="prefill 700->650 W"))
            if i % 5000 == 0 and not (planner_version == 2 and i == ticks // 2):  # B lacks one fault
                w.append(EventRow(kind="fault", seq=w.next_seq(), tick=i, now_ms=now, event="prom_outage", detail="events[2]"))
        w.append(EventRow(kind="assertion", seq=w.next_seq(), tick=ticks - 1, now_ms=ticks * INTERVAL_MS,
                          event="ttft_p99_ms", detail="ttft_p99_ms <= 2000", passed=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--diffs", type=int, default=300, help="ticks that differ between the two recordings")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="write the recordings here and keep them")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or tmp
        os.makedirs(directory, exist_ok=True)
        a, b = os.path.join(directory, "bench_a.arrow"), os.path.join(directory, "bench_b.arrow")
        changed = set(random.Random(1).sample(range(args.ticks), args.diffs))
        t0 = time.perf_counter()
        write(a, args.ticks, set(), 1)
        write(b, args.ticks, changed, 2)
        print(f"wrote 2 x {args.ticks:,} ticks ({os.path.getsize(a) / 1e6:.1f} MB each) in {time.perf_counter() - t0:.1f} s")

        times = []
        report = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = diff_recordings(a, b)
            text = format_text(report)
            times.append(time.perf_counter() - t0)
        assert report is not None
        best = min(times)
        print(next(line for line in text.splitlines() if line.startswith(("DIFFERENT", "IDENTICAL"))))
        assert report.ticks_differing == len(changed), (report.ticks_differing, len(changed))
        assert report.first_divergence is not None and report.first_divergence.tick == min(changed)
        print(f"diff_recordings + text report: best {best:.3f} s of {args.repeat} ({', '.join(f'{t:.3f}' for t in times)})"
              f"  target <= {TARGET_S:.1f} s: {'OK' if best <= TARGET_S else 'MISSED'}")
    return 0 if best <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
