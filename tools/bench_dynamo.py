#!/usr/bin/env python3
"""Dynamo bridge benchmark: what the bridge adds per tick on top of Dynamo's own planner.

Replays ``scenarios/dynamo_mooncake.yaml`` (real Mooncake traffic) once under
``dynamo`` and keeps every tick's Observation and the snapshot the bridge fed
Dynamo.  Then, in the same process, alternately and ``--repeat`` times each:

* **Dynamo alone**: a fresh ``create_replay_planner_adapter`` (same config and
  capabilities, ``capture_details=True`` as the bridge uses it) fed the recorded
  snapshots;
* **bridge + Dynamo**: a fresh ``DynamoPlanner`` fed the recorded Observations
  (snapshot mapping, Dynamo's tick, decision mapping, logging guard, stand-in check).

Both paths run the same Dynamo ticks on the same inputs, so the difference of
their per-tick times (best of N) is the bridge's overhead; the bridge's mapping
alone (snapshot and decision, no Dynamo) is timed too, as it is free of the
noise of Dynamo's own asyncio tick.  Needs Dynamo
(``python -m replaylib.planner.dynamo.install``).

Usage: ``python tools/bench_dynamo.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from replaylib.adapter import replay  # noqa: E402
from replaylib.planner import Decision, Observation, PlannerContext  # noqa: E402
from replaylib.planner.dynamo import unavailable_reason  # noqa: E402
from replaylib.scenario import load_scenario  # noqa: E402

SCENARIO = os.path.join(ROOT, "scenarios", "dynamo_mooncake.yaml")


class Capture:
    """A DynamoPlanner that keeps the Observations it is given and the snapshots it sends."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.version = inner.name, inner.version
        self.initial_tick_s = inner.initial_tick_s
        self.observations: list[Observation] = []
        self.snapshots: list[dict[str, Any]] = []
        feed = inner.adapter.on_tick

        def on_tick(snapshot: dict[str, Any]) -> dict[str, Any]:
            self.snapshots.append(copy.deepcopy(snapshot))
            return feed(snapshot)

        inner.adapter.on_tick = on_tick

    def on_tick(self, obs: Observation) -> Decision:
        self.observations.append(obs)
        return self.inner.on_tick(obs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from replaylib.planner.dynamo.bridge import DynamoPlanner
    from replaylib.planner.dynamo.loader import import_dynamo, logging_guard

    loaded = load_scenario(SCENARIO)
    sc = loaded.scenario
    ctx = PlannerContext(config=sc.planner, system=loaded.system, initial_prefill=sc.fleet.prefill_workers,
                         initial_decode=sc.fleet.decode_workers, fleet=sc.fleet, seed=sc.seed)
    capture = Capture(DynamoPlanner(ctx))
    with tempfile.TemporaryDirectory() as tmp:
        replay(loaded, out=os.path.join(tmp, "r.arrow"), planner=capture)
    capture.inner.close()
    n = len(capture.observations)
    api = import_dynamo()

    def dynamo_alone() -> float:
        snapshots = copy.deepcopy(capture.snapshots)  # outside the timing: each run gets fresh dicts
        adapter = api.create_replay_planner_adapter(capture.inner.setup.config, capture.inner.setup.capabilities,
                                                    capture_details=True)
        with logging_guard():
            adapter.start()
            t = time.perf_counter()
            for snapshot in snapshots:
                adapter.on_tick(snapshot)
            elapsed = time.perf_counter() - t
            adapter.close()
        return elapsed

    def bridged() -> float:
        planner = DynamoPlanner(ctx)
        t = time.perf_counter()
        for obs in capture.observations:
            planner.on_tick(obs)
        elapsed = time.perf_counter() - t
        planner.close()
        return elapsed

    from replaylib.planner.dynamo.snapshot import dynamo_snapshot, to_decision

    answers = [{"target_prefill": None, "target_decode": 3, "next_tick_ms": o.now_ms + 5000.0} for o in capture.observations]
    diagnostics = {"load_decision_reason": "scale_up", "load_decision_reason_prefill": "no_change",
                   "load_decision_reason_decode": "scale_up"}

    def mapping_only() -> float:
        t = time.perf_counter()
        for obs, answer in zip(capture.observations, answers):
            dynamo_snapshot(obs)
            to_decision(answer, obs, diagnostics, 180.0)
        return time.perf_counter() - t

    alone, bridge, mapping = [], [], []
    for _ in range(args.repeat):
        alone.append(dynamo_alone())
        bridge.append(bridged())
        mapping.append(mapping_only())
    best_a, best_b = min(alone) / n * 1e3, min(bridge) / n * 1e3
    med_a, med_b = statistics.median(alone) / n * 1e3, statistics.median(bridge) / n * 1e3
    print(f"{n} ticks of {sc.name} (Dynamo {api.version}), best of {args.repeat}:")
    print(f"  Dynamo's adapter alone   {best_a:7.3f} ms/tick (median {med_a:.3f})")
    print(f"  bridge + Dynamo          {best_b:7.3f} ms/tick (median {med_b:.3f})")
    print(f"  bridge overhead          {best_b - best_a:7.3f} ms/tick ({(best_b - best_a) / best_a:+.1%})")
    print(f"  of which mapping         {min(mapping) / n * 1e3:7.3f} ms/tick (snapshot + decision, no Dynamo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
