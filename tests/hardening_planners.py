"""Planners for tests/test_hardening.py and tests/test_faults.py (``tests.hardening_planners:Class``).

``BadAnswer`` answers well until tick ``params.at`` and then returns the bad answer named by
``params.case``; ``Blocking`` answers like ``Steady`` but at tick ``params.block_at`` writes the file
``params.marker`` and waits until ``params.release`` exists (or is killed), so that a test can act
on a replay at a known point of it.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from replaylib.planner import Decision, Observation, PlannerContext

#: The bad answers, by case name: the Decision's fields (or, for "not_a_decision", what is returned).
BAD_ANSWERS: dict[str, dict[str, Any]] = {
    "huge_prefill": {"n_prefill": 10**7},
    "zero_decode": {"n_decode": 0},
    "negative_prefill": {"n_prefill": -2},
    "fractional_decode": {"n_decode": 2.5},
    "bool_prefill": {"n_prefill": True},
    "string_count": {"n_decode": "3"},
    "string_cap": {"cap_prefill_w": "300"},
    "nan_caps": {"cap_prefill_w": math.nan, "cap_decode_w": math.nan},
    "inf_cap": {"cap_decode_w": math.inf},
    "negative_cap": {"cap_prefill_w": -100.0},
    "absurd_cap": {"cap_decode_w": 1e9},
    "inf_next_tick": {"next_tick_s": math.inf},
    "zero_next_tick": {"next_tick_s": 0.0},
    "tiny_next_tick": {"next_tick_s": 1e-9},
    "nan_diagnostic": {"predicted_rate": math.nan},
    "list_diagnostic": {"c_ttft": [1.0]},
    "reason_not_text": {"reason": 7},
    "reason_an_essay": {"reason": "because " * 100},
    "zero_admission": {"admission_rps": 0.0},
    "nan_admission": {"admission_rps": math.nan},
}


class Steady:
    name = "steady"
    version = 1

    def __init__(self, ctx: PlannerContext) -> None:
        self.params = ctx.config.params

    def on_tick(self, obs: Observation) -> Any:
        return Decision(n_prefill=1, n_decode=1, reason="steady")


class BadAnswer(Steady):
    name = "bad_answer"

    def on_tick(self, obs: Observation) -> Any:
        if obs.tick < int(self.params.get("at", 2)):
            return super().on_tick(obs)
        case = self.params["case"]
        if case == "not_a_decision":
            return {"n_prefill": 1, "n_decode": 1}
        if case == "raises":
            raise RuntimeError("the planner's own bug")
        if case == "exits":
            raise SystemExit(0)
        return Decision(**{"n_prefill": 1, "n_decode": 1, **BAD_ANSWERS[case]})


class Blocking(Steady):
    name = "blocking"

    def on_tick(self, obs: Observation) -> Any:
        if obs.tick == int(self.params.get("block_at", -1)):
            with open(self.params["marker"], "w") as fh:
                fh.write(str(obs.tick))
            release = self.params.get("release")
            deadline = time.monotonic() + 120.0
            while not (release and os.path.exists(release)):
                if time.monotonic() > deadline:
                    raise TimeoutError("nobody released the blocking planner")
                time.sleep(0.02)
        return super().on_tick(obs)
