"""The ``dynamo`` planner: NVIDIA Dynamo's own planner, driven tick by tick from replaylib's loop.

:class:`DynamoPlanner` builds Dynamo's ``PlannerConfig`` and
``WorkerCapabilities`` from the scenario (:mod:`.config`), creates the adapter
Dynamo ships for offline replay
(``dynamo.planner.offline.replay_adapter.create_replay_planner_adapter`` with
``capture_details=True``, so each tick's diagnostics — the reasons — are kept),
and then per tick hands it the snapshot its replay runtime would send
(:mod:`.snapshot`) and turns its answer into a :class:`Decision`.  Dynamo's
first tick (``initial_tick_s``) and every next tick come from Dynamo's own
schedule.

Dynamo's adapter keeps one record per tick for its end-of-replay report; the
bridge takes each record off (``_ticks``, the adapter's list) as soon as it has
read the tick's diagnostics, so memory stays flat over a long trace.

The recording's metadata (``metadata()``) names Dynamo's version, a digest of
its planner sources (an edited checkout differs from the release), the full
PlannerConfig and the worker capabilities, and which AISimulate packages were
stood in for — so ``diff`` of two recordings shows what changed on Dynamo's side.
"""

from __future__ import annotations

from typing import Any

from replaylib.planner.dynamo import standins
from replaylib.planner.dynamo.config import DynamoSetup, build_setup
from replaylib.planner.dynamo.loader import DynamoApi, import_dynamo, logging_guard
from replaylib.planner.dynamo.snapshot import dynamo_snapshot, to_decision
from replaylib.planner.protocol import Decision, Observation, PlannerContext, PlannerError


class DynamoPlanner:
    """NVIDIA Dynamo's planner behind replaylib's planner protocol (see the module docstring)."""

    name = "dynamo"
    #: The bridge's own version: bumped when the bridge's mapping changes Dynamo's decisions.
    version = 1

    def __init__(self, ctx: PlannerContext, *, version: str | None = None) -> None:
        api = import_dynamo()
        _check_version(version, api, self.version)
        self.api: DynamoApi = api
        self.setup: DynamoSetup = build_setup(api, ctx)
        standins.reset_calls()
        with logging_guard():
            try:
                self.adapter: Any = api.create_replay_planner_adapter(
                    self.setup.config, self.setup.capabilities, capture_details=True
                )
                self.adapter.start()
                first_ms = float(self.adapter.initial_tick_ms())
            except Exception as exc:  # noqa: BLE001 - Dynamo may raise anything while it sets up
                self._check_standins("while setting up")
                raise PlannerError(f"Dynamo's planner failed to set up: {type(exc).__name__}: {exc}") from exc
        self._check_standins("while setting up")
        #: Dynamo's first tick, in simulated seconds (the tick loop's optional hook)
        self.initial_tick_s = first_ms / 1000.0
        self._throughput_interval_s = float(self.setup.config.throughput_adjustment_interval_seconds)
        self._stopped = False

    def on_tick(self, obs: Observation) -> Decision:
        if self._stopped:  # Dynamo scheduled no further tick: hold what there is
            return Decision(n_prefill=obs.prefill.active + obs.prefill.starting,
                            n_decode=obs.decode.active + obs.decode.starting, reason="dynamo_stopped")
        snapshot = dynamo_snapshot(obs)
        with logging_guard():
            try:
                answer = self.adapter.on_tick(snapshot)
            except Exception as exc:  # noqa: BLE001 - Dynamo's own failure, reported with its tick
                self._check_standins(f"at tick {obs.tick}")
                raise PlannerError(f"Dynamo's planner raised at tick {obs.tick} (t={obs.now_ms / 1000:g} s): "
                                   f"{type(exc).__name__}: {exc}") from exc
        self._check_standins(f"at tick {obs.tick}")
        if not isinstance(answer, dict) or not {"target_prefill", "target_decode", "next_tick_ms"} <= answer.keys():
            raise PlannerError(f"Dynamo's planner answered {answer!r} at tick {obs.tick}; expected "
                               "{target_prefill, target_decode, next_tick_ms}")
        if answer["next_tick_ms"] is None:
            self._stopped = True
        return to_decision(answer, obs, self._take_diagnostics(), self._throughput_interval_s)

    def metadata(self) -> dict[str, str]:
        api = self.api
        return {
            "dynamo_version": api.version,
            "dynamo_planner_sha256": api.planner_sha256,
            "dynamo_config": self.setup.config_json,
            "dynamo_capabilities": self.setup.capabilities_json,
            "dynamo_standins": ",".join(api.stood_in) or "none",
        }

    def close(self) -> None:
        """Shut Dynamo's adapter down (its plugin transports and event loop); idempotent."""
        with logging_guard():
            self.adapter.close()

    # -- internals -------------------------------------------------------------------------

    def _take_diagnostics(self) -> dict[str, Any] | None:
        """This tick's diagnostics from the record Dynamo's adapter just kept, which is then dropped."""
        ticks = getattr(self.adapter, "_ticks", None)
        if not isinstance(ticks, list) or not ticks:
            return None
        record = ticks.pop()
        ticks.clear()
        effects = record.get("effects") if isinstance(record, dict) else None
        diagnostics = effects.get("diagnostics") if isinstance(effects, dict) else None
        return diagnostics if isinstance(diagnostics, dict) else None

    def _check_standins(self, when: str) -> None:
        called = standins.calls()
        if called:
            standins.reset_calls()
            raise PlannerError(
                f"Dynamo's planner called AISimulate's {called[0]} {when}, and AISimulate is not installed "
                "(only stood in for); this configuration needs it — see `optimization_target` in the README's "
                "Dynamo section for what runs without it"
            )


def _check_version(wanted: str | None, api: DynamoApi, bridge_version: int) -> None:
    if wanted is None:
        return
    if wanted.isascii() and wanted.isdigit():
        if int(wanted) != bridge_version:
            raise PlannerError(f"the dynamo bridge has version {bridge_version}, not {wanted}; use dynamo, "
                               f"dynamo@{bridge_version} or dynamo@<ai-dynamo version> (installed: {api.version})")
        return
    if wanted != api.version:
        raise PlannerError(f"dynamo@{wanted} asks for ai-dynamo {wanted}, and ai-dynamo {api.version} is installed")


__all__ = ["DynamoPlanner"]
