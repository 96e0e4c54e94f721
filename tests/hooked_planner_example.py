"""A planner with every optional hook of the protocol (loaded by import path in test_dynamo_bridge.py)."""

from __future__ import annotations

import json
from typing import Any

from replaylib.planner import Decision, Observation, PlannerContext

DEFAULT_META = {"engine_version": "9.1", "config": json.dumps({"a": 1, "nested": {"b": 2}})}


class HookedPlanner:
    """Its own first tick (2.5 s), a fixed 7 s step, metadata() and close()."""

    name = "hooked"
    version = 3
    #: every instance built, newest last; ``next_meta`` is what the next instance's metadata() returns
    instances: list[HookedPlanner] = []
    next_meta: Any = DEFAULT_META

    def __init__(self, ctx: PlannerContext) -> None:
        self.ctx = ctx
        self.initial_tick_s = 2.5
        self.closed = 0
        self.meta = HookedPlanner.next_meta
        self.saw_workers: list[tuple[str, ...]] = []
        HookedPlanner.instances.append(self)

    def on_tick(self, obs: Observation) -> Decision:
        self.saw_workers.append(tuple(sorted({w.role for w in obs.workers})))
        return Decision(n_prefill=1, n_decode=1, next_tick_s=7.0)

    def metadata(self) -> Any:
        return self.meta

    def close(self) -> None:
        self.closed += 1
