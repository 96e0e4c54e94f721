"""User planners loaded by import path in tests/test_planners.py (``tests.custom_planner_example:Class``)."""

from __future__ import annotations

from replaylib.planner import Decision, Observation, PlannerContext

CONSTANT = 3  # not callable: loading it must fail


class FixedPlanner:
    """Always asks for the initial fleet plus ``params['extra_decode']`` decode workers."""

    name = "fixed"
    version = 7

    def __init__(self, ctx: PlannerContext) -> None:
        self.n_prefill = ctx.initial_prefill
        self.n_decode = ctx.initial_decode + int(ctx.config.params.get("extra_decode", 0))

    def on_tick(self, obs: Observation) -> Decision:
        return Decision(n_prefill=self.n_prefill, n_decode=self.n_decode, reason="fixed")


class Outer:
    class Inner(FixedPlanner):
        name = "inner"


class NoOnTick:
    name = "no_on_tick"
    version = 1

    def __init__(self, ctx: PlannerContext) -> None:
        pass


class BadVersion(FixedPlanner):
    version = "1"  # type: ignore[assignment]


class Exploding:
    name = "exploding"
    version = 1

    def __init__(self, ctx: PlannerContext) -> None:
        raise RuntimeError("boom in constructor")

    def on_tick(self, obs: Observation) -> Decision:  # pragma: no cover - never constructed
        raise AssertionError


class CrashingPlanner(FixedPlanner):
    """Holds the initial fleet, then raises at tick ``params['crash_at_tick']`` (default 2): a run that fails."""

    name = "crashing"
    version = 1

    def __init__(self, ctx: PlannerContext) -> None:
        super().__init__(ctx)
        self.crash_at = int(ctx.config.params.get("crash_at_tick", 2))

    def on_tick(self, obs: Observation) -> Decision:
        if obs.tick >= self.crash_at:
            raise RuntimeError(f"deliberate crash at tick {obs.tick}")
        return super().on_tick(obs)
