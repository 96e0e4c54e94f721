#!/usr/bin/env python3
"""Fleet benchmarks against the targets of the replay-core and recording issues.

(a) replay-only: stream ``../shared/traces/mooncake_conversation_trace.jsonl``
    through the default fleet of ``scenarios/mooncake_conversation.yaml``
    (6 prefill + 2 decode H100 SXM workers, kv_aware, the shipped aiconfigurator tables), calling ``advance_to``
    every 60 simulated seconds until done — reading the trace included.
    Target: <= 1.0 s wall on one core.  Also prints the calibration: TTFT/ITL
    distribution and per-role utilisation.
(b) record: the same trace and fleet end to end (read, simulate, plan, record) with
    ``replaylib.adapter.replay``: ``scenarios/real_traces/mooncake_conversation_1h.yaml``, which is
    (a)'s scenario on the whole hour (the scenario itself ships a 10-minute excerpt); measured in the
    same run; target: <= 1.5x (a).
(c) memory: a generated 1,000,000-request trace replayed in a fresh subprocess;
    peak RSS (VmHWM) growth over the interpreter with the package imported.
    Target: <= 150 MB.  Also the child's CPU time for the whole replay (reading
    the trace included) and its absolute peak RSS, against issue 16's figures:
    <= 25 s CPU and <= 200 MB peak (the issue's baseline: 60.7 s, 202 MB).
(d) table timing: (a)'s replay on the analytic ``systems/h100_sxm_analytic.yaml``
    and on its table twin, timing given as a ``timing.model: table`` sampled from
    its own formulas (a prefill curve of 14 points, decode curves at 7 contexts x
    9 batches: the same machine, so the same events plus the runs' splits at grid
    points), in the same run.  Target: twin <= 1.2x analytic.  (c), (e) and (f) run
    on the analytic system too (as the issues stated them); (e) and (f) also on
    the shipped table system.

(e) the event-loop floor (issue 16): the Mooncake hour's fleet CPU time against a bare ``heapq`` loop
    pushing and popping as many events as the fleet's event heap pops (5-tuples shaped like the fleet's,
    a working set of 64), in the same run.  Target: <= 15x.
(f) fleet size (issue 16): CPU per request of the first 10,000 Mooncake requests on 512 workers
    (256 + 256) against 8 (4 + 4), kv_aware routing, in the same run.  Target: <= 1.3x.

Usage: ``python tools/bench_fleet.py [--repeat N] [--rows N] [--skip-memory] [--skip-table] [--skip-scaling]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from benchutil import ROOT, SHARED_TRACES, VMHWM_SOURCE

# pyarrow (imported with the scenario and record modules) loads numpy, whose OpenBLAS starts a thread per core
# that can spin in the background; process_time counts them too, in runs that do no linear algebra at all.
# One BLAS thread (this process and its children) leaves the figures the replay's own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, ROOT)

MOONCAKE = os.path.join(SHARED_TRACES, "mooncake_conversation_trace.jsonl")
SCENARIO = os.path.join(ROOT, "scenarios", "mooncake_conversation.yaml")
#: (b): SCENARIO on the whole hour that (a) replays (its trace found on the trace search path, ../shared/traces).
RECORD_SCENARIO = os.path.join(ROOT, "scenarios", "real_traces", "mooncake_conversation_1h.yaml")
#: The datasheet H100 (analytic timing): (d)'s baseline, and the system of (c), (e), (f) as the issues stated them.
ANALYTIC = os.path.join(ROOT, "systems", "h100_sxm_analytic.yaml")
REPLAY_TARGET_S = 1.0
RECORD_RATIO_TARGET = 1.5
RSS_TARGET_MB = 150.0
BIG_CPU_TARGET_S = 25.0  # issue 16: the 1M replay's CPU time
BIG_PEAK_TARGET_MB = 200.0  # issue 16: the 1M replay's absolute peak RSS
TABLE_RATIO_TARGET = 1.2

_CHILD = VMHWM_SOURCE + r"""
import json, sys, time
from replaylib.trace import read_trace
from replaylib.scenario import FleetConfig, load_system
from replaylib.sim import Fleet
base = vmhwm_mb()
cpu0 = time.process_time()
fleet = Fleet(load_system(sys.argv[2]), FleetConfig(prefill_workers=4, decode_workers=2), read_trace(sys.argv[1]))
t = 0.0
peak_in_flight = 0
while True:
    t += 60_000.0
    snap = fleet.advance_to(t)
    peak_in_flight = max(peak_in_flight, snap.in_flight)
    if snap.done:
        break
cpu = time.process_time() - cpu0
print(json.dumps({"base_mb": base, "peak_mb": vmhwm_mb(), "cpu_s": cpu, "requests": snap.arrived, "completed": snap.completed,
                  "sim_hours": snap.now_ms / 3.6e6, "peak_in_flight": peak_in_flight}))
"""


def table_twin(system):  # noqa: ANN001, ANN201 - the benchmark's own helper
    """``system`` with its analytic timing sampled into a ``table`` (same machine, table lookups)."""
    import msgspec

    from replaylib.scenario.system import DecodeCurve, DecodeTable, PrefillCurve, PrefillTable, TableTiming
    from replaylib.timing import timing_model

    t = timing_model(system)
    tokens = [128 * 2**i for i in range(14)]  # 128 ... 1M
    prefill = PrefillCurve(context=0, tokens=tokens, pass_ms=[t.prefill_pass_ms([(n, 0)], 1.0) for n in tokens])
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    curves = [DecodeCurve(context=c, batch=batches, step_ms=[t.decode_step_ms(b, b * c, 1.0) for b in batches])
              for c in (256, 1024, 4096, 16384, 32768, 65536, 131072)]
    spec = TableTiming(prefill=PrefillTable(curves=[prefill], pass_overhead_ms=system.timing.prefill.base_ms),
                       decode=DecodeTable(curves=curves), kv_transfer=system.timing.kv_transfer)
    return msgspec.structs.replace(system, timing=spec)


def replay_only(system_file: str | None = None, table: bool = False) -> tuple[float, dict]:
    """The Mooncake hour through the scenario's fleet on its own system, or on ``system_file``
    (``table``: that system's table twin)."""
    from replaylib.scenario import load_scenario, load_system
    from replaylib.sim import Fleet, LatencyStats
    from replaylib.trace import read_trace

    loaded = load_scenario(SCENARIO)
    system = load_system(system_file) if system_file else loaded.system
    system = table_twin(system) if table else system
    start = time.perf_counter()
    fleet = Fleet(system, loaded.scenario.fleet, read_trace(MOONCAKE), block_size=loaded.scenario.trace.block_size)
    snaps = []
    t = 0.0
    while True:
        t += 60_000.0
        snaps.append(fleet.advance_to(t))
        if snaps[-1].done:
            break
    elapsed = time.perf_counter() - start
    ttft, itl = LatencyStats(), LatencyStats()
    busy: dict[str, float] = {"prefill": 0.0, "decode": 0.0}
    n: dict[str, int] = {"prefill": 0, "decode": 0}
    for s in snaps:
        ttft.merge(s.window.ttft)
        itl.merge(s.window.itl)
        for w in s.workers:
            busy[w.role] += w.busy_ms
    horizon = snaps[-1].now_ms
    for w in snaps[0].workers:
        n[w.role] += 1
    calib = {
        "requests": snaps[-1].completed,
        "sim_minutes": horizon / 60000,
        "ttft_ms": {"mean": ttft.mean, "p50": ttft.p50, "p99": ttft.p99},
        "itl_ms": {"mean": itl.mean, "p50": itl.p50, "p99": itl.p99},
        "utilisation": {r: busy[r] / (n[r] * horizon) for r in busy},
        "fleet": f"{n['prefill']} prefill + {n['decode']} decode",
        "timing_outside_range": fleet.timing.range_report().outside,
    }
    return elapsed, calib


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def record_once(out: str) -> float:
    from replaylib.adapter import replay
    from replaylib.scenario import load_scenario

    start = time.perf_counter()
    replay(load_scenario(RECORD_SCENARIO), out=out)
    return time.perf_counter() - start


FLOOR_TARGET = 15.0
SIZE_RATIO_TARGET = 1.3


def fleet_cpu(rows: list, fleet_config: object, system: object, count: bool = False) -> tuple[float, int]:
    """CPU seconds to replay ``rows`` (already in memory) with ``advance_to`` every 60 s, and (``count``) the
    events its event heap popped — counted through a wrapper around ``heapq.heappop``, which costs a Python call
    per pop, so a counting run is not timed (the replay is deterministic: every run pops the same events)."""
    import heapq

    from replaylib.sim import Fleet
    from replaylib.sim import fleet as fleet_mod

    popped = 0
    events: list = []

    class Counting:  # heapq with the pops of the fleet's event heap counted, seen only by the fleet module
        heappush = staticmethod(heapq.heappush)

        @staticmethod
        def heappop(heap: list) -> object:
            nonlocal popped
            if heap is events:
                popped += 1
            return heapq.heappop(heap)

    real = fleet_mod.heapq
    if count and not str(fleet_mod.__file__).endswith(".py"):
        raise RuntimeError("counting events needs the pure-Python fleet (REPLAYLIB_PURE_PYTHON=1): see event_count")
    if count:
        fleet_mod.heapq = Counting  # type: ignore[assignment]
    try:
        start = time.process_time()
        fleet = Fleet(system, fleet_config, iter(rows), block_size=512)  # type: ignore[arg-type]
        events = fleet._events  # the event heap (arrivals come from the trace, outside it)
        t = 0.0
        while not fleet.advance_to(t).done:
            t += 60_000.0
        return time.process_time() - start, popped
    finally:
        fleet_mod.heapq = real


def event_count(label: str) -> int:
    """The events the Mooncake hour pops on system ``label``, counted (``fleet_cpu(count=True)``) in a child
    running the pure-Python fleet: the counting hook wraps the module's ``heapq``, which a compiled fleet
    does not look up (both builds pop the same events: tests/test_native.py)."""
    from replaylib import native

    env = {**os.environ, native.PURE_ENV: "1"}
    out = subprocess.run([sys.executable, __file__, "--count-events", label], capture_output=True, text=True, check=True,
                         cwd=ROOT, env=env)
    return int(out.stdout)


def _count_events(label: str) -> int:
    from replaylib.scenario import load_scenario, load_system
    from replaylib.trace import read_trace

    loaded = load_scenario(SCENARIO)
    system = load_system(ANALYTIC) if label == "analytic" else loaded.system
    return fleet_cpu(list(read_trace(MOONCAKE)), loaded.scenario.fleet, system, count=True)[1]


def heapq_floor(n_events: int) -> float:
    """CPU seconds of a bare heapq loop: ``n_events`` pushes and pops of fleet-shaped tuples, times ascending."""
    import heapq
    import random

    rng = random.Random(0)
    times = sorted(rng.random() * 3.6e6 for _ in range(n_events))
    payload = object()
    start = time.process_time()
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    for i, t in enumerate(times):
        push(heap, (t, 1, i, 0, payload))
        if len(heap) > 64:  # a working set about the fleet's (workers x a few pending events)
            pop(heap)
    while heap:
        pop(heap)
    return time.process_time() - start


def _interleaved(repeat: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[float, float, float]:
    """``repeat`` runs of ``a`` and of ``b`` (CPU seconds each returns), run alternately: the best of each (the
    verdicts' ratio), and the median of the pairs' ratios ``a / b``, printed beside it as a check on noise.

    This VM's speed drifts over tens of seconds (the same heapq loop has measured 0.026 s and 0.049 s in
    one run): the best ``a`` and the best ``b`` can come from different spells, while the two runs of a pair
    see the same machine but not its best moments.  Where the two figures differ much, the run was noisy."""
    runs = [(a(), b()) for _ in range(repeat)]
    return min(x for x, _ in runs), min(y for _, y in runs), statistics.median(x / y for x, y in runs)


def scaling_figures(repeat: int) -> None:
    """(e) and (f) on the analytic H100 (the system the issue's figures were stated on) and on the shipped,
    aiconfigurator-timed one (a table: other events, and a lookup per pass and step)."""
    from replaylib.scenario import FleetConfig, load_scenario, load_system
    from replaylib.trace import read_trace

    loaded = load_scenario(SCENARIO)
    rows = list(read_trace(MOONCAKE))
    first = rows[:10_000]
    for label, system in (("analytic", load_system(ANALYTIC)), ("shipped", loaded.system)):
        name = f"{system.name} ({label})"
        events = event_count(label)
        # Each pair of figures is measured interleaved (a, b, a, b, ...), best of each: a machine whose
        # speed drifts during the run moves both alike, not one block of repeats more than the other.
        fleet_s, floor_s, pairs = _interleaved(repeat, lambda: fleet_cpu(rows, loaded.scenario.fleet, system)[0],
                                               lambda: heapq_floor(events))
        print(f"(e) event-loop floor, {name}: fleet {fleet_s:.3f} s CPU for {events:,} events ({1e6 * fleet_s / events:.1f} "
              f"us/event); bare heapq {floor_s:.4f} s -> {fleet_s / floor_s:.1f}x (target <= {FLOOR_TARGET:.0f}x) -> "
              f"{'PASS' if fleet_s / floor_s <= FLOOR_TARGET else 'FAIL'}; median of the pairs {pairs:.1f}x")
        big, small, pairs = _interleaved(
            repeat, lambda: fleet_cpu(first, FleetConfig(prefill_workers=256, decode_workers=256, router="kv_aware"), system)[0],
            lambda: fleet_cpu(first, FleetConfig(prefill_workers=4, decode_workers=4, router="kv_aware"), system)[0])
        size_ratio = big / small
        print(f"(f) fleet size, {name}: 10,000 requests on 8 workers {small:.3f} s, on 512 workers {big:.3f} s CPU -> "
              f"{size_ratio:.2f}x (target <= {SIZE_RATIO_TARGET}x) -> {'PASS' if size_ratio <= SIZE_RATIO_TARGET else 'FAIL'}; "
              f"median of the pairs {pairs:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-table", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--count-events", choices=("analytic", "shipped"), help=argparse.SUPPRESS)  # event_count's child
    args = ap.parse_args()
    if args.count_events:
        print(_count_events(args.count_events))
        return 0
    from replaylib import native

    print(f"fleet build: {native.BUILD} (the install compiles it unless REPLAYLIB_BUILD_NATIVE=0; REPLAYLIB_PURE_PYTHON=1 runs the sources)")
    if not os.path.exists(MOONCAKE):
        print(f"skip (a)/(b): {MOONCAKE} not found")
    else:
        replay_times, record_times, analytic_times, table_times = [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeat):  # interleaved so machine noise hits all alike
                t, calib = replay_only()
                replay_times.append(t)
                record_times.append(record_once(os.path.join(tmp, f"r{i}.arrow")))
                if not args.skip_table:
                    analytic_times.append(replay_only(ANALYTIC)[0])
                    t, table_calib = replay_only(ANALYTIC, table=True)
                    table_times.append(t)
        best, best_rec = min(replay_times), min(record_times)
        print(f"(a) replay-only, Mooncake conversation ({calib['fleet']}): best {best:.3f} s of {args.repeat} "
              f"(target <= {REPLAY_TARGET_S} s) -> {'PASS' if best <= REPLAY_TARGET_S else 'FAIL'}")
        print(f"    calibration: {json.dumps(_rounded(calib))}")
        ratio = best_rec / best
        print(f"(b) record end to end: best {best_rec:.3f} s -> {ratio:.2f}x replay-only "
              f"(target <= {RECORD_RATIO_TARGET}x) -> {'PASS' if ratio <= RECORD_RATIO_TARGET else 'FAIL'}")
        if table_times:
            analytic = min(analytic_times)
            t_ratio = min(table_times) / analytic
            print(f"(d) replay-only on {os.path.basename(ANALYTIC)}: best {analytic:.3f} s; on its table twin "
                  f"{min(table_times):.3f} s -> {t_ratio:.2f}x the analytic system (target <= {TABLE_RATIO_TARGET}x) -> "
                  f"{'PASS' if t_ratio <= TABLE_RATIO_TARGET else 'FAIL'}")
            print(f"    calibration: {json.dumps(_rounded(table_calib))}")
            print(f"    (a)'s shipped system (aiconfigurator tables, another machine: other events) against the analytic "
                  f"one: {best / analytic:.2f}x")
        if not args.skip_scaling:
            scaling_figures(args.repeat)
    if not args.skip_memory:
        from replaylib.trace import GeneratorConfig, generate_trace, write_trace
        from replaylib.trace.generate import Poisson

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "big.jsonl")
            cfg = GeneratorConfig(seed=0, duration_s=None, requests=args.rows, arrivals=Poisson(rate=2.0))
            write_trace(path, generate_trace(cfg))
            system = ANALYTIC  # the system the figures were stated on
            out = subprocess.run([sys.executable, "-c", _CHILD, path, system], capture_output=True, text=True, check=True, cwd=ROOT)
            m = json.loads(out.stdout)
        grow = m["peak_mb"] - m["base_mb"]
        print(f"(c) {m['requests']:,} requests ({m['sim_hours']:.0f} simulated hours, peak {m['peak_in_flight']} in flight): "
              f"peak RSS +{grow:.1f} MB over {m['base_mb']:.1f} MB baseline (target <= {RSS_TARGET_MB} MB) "
              f"-> {'PASS' if grow <= RSS_TARGET_MB else 'FAIL'}")
        ok = m["cpu_s"] <= BIG_CPU_TARGET_S and m["peak_mb"] <= BIG_PEAK_TARGET_MB
        print(f"    issue 16: {m['cpu_s']:.1f} s CPU (target <= {BIG_CPU_TARGET_S:.0f} s), peak RSS {m['peak_mb']:.1f} MB "
              f"(target <= {BIG_PEAK_TARGET_MB:.0f} MB) -> {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
