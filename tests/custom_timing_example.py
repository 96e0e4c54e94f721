"""User timing / power models loaded by import path in tests/test_timing.py (``tests.custom_timing_example:Class``)."""

from __future__ import annotations

import msgspec

from replaylib.scenario.system import PowerModel
from replaylib.timing import UNBOUNDED_STEPS, RangeReport
from replaylib.timing.power import AnalyticPower


class FlatTiming:
    """Every pass costs ``pass_ms`` plus ``ms_per_token`` per new token; every step ``step_ms``; hand-off free.

    Its keys come from the systems YAML: ``timing: {model: tests.custom_timing_example:FlatTiming, pass_ms: …}``."""

    name = "flat"

    def __init__(self, system) -> None:  # noqa: ANN001
        p = system.timing.params
        self.pass_ms, self.ms_per_token, self.step_ms = float(p["pass_ms"]), float(p["ms_per_token"]), float(p["step_ms"])
        self.calls = 0

    def prefill_pass_ms(self, chunks, speed: float) -> float:  # noqa: ANN001
        self.calls += 1
        return (self.pass_ms + self.ms_per_token * sum(n for n, _ in chunks)) / speed

    def prefill_request_ms(self, new_tokens: float, cached_tokens: float, max_batched_tokens: int, speed: float) -> float:
        return (self.pass_ms + self.ms_per_token * new_tokens) / speed

    def prefill_tokens_per_s(self, isl: float, max_batched_tokens: int, speed: float) -> float:
        return 1000.0 * isl / self.prefill_request_ms(isl, 0.0, max_batched_tokens, speed)

    def decode_step_ms(self, batch: float, kv_tokens: float, speed: float) -> float:
        return self.step_ms / speed

    def decode_run(self, batch: int, kv_tokens: int, speed: float) -> tuple[float, float, int]:
        self.calls += 1
        return self.step_ms / speed, 0.0, UNBOUNDED_STEPS

    def decode_max_batch(self, itl_ms: float, context: float, speed: float, limit: int) -> int:
        return limit if self.step_ms / speed <= itl_ms else 0

    def kv_transfer_end_ms(self, start_ms: float, isl: int) -> float:
        return start_ms

    def range_report(self) -> RangeReport:
        return RangeReport(model=self.name)


class DoubleDrawPower(AnalyticPower):
    """The analytic power model with every busy draw doubled (still never above the cap).

    Its keys are the analytic model's (``power_model: {model: …, prefill: {uncapped_w: …}, …}``),
    found in ``system.power_model.params``."""

    name = "double"

    def __init__(self, system) -> None:  # noqa: ANN001
        spec = msgspec.convert(system.power_model.params, PowerModel)
        super().__init__(msgspec.structs.replace(system, power_model=spec))

    def busy_draw_w(self, role, cap_w: float, load: float) -> float:  # noqa: ANN001
        return min(2.0 * super().busy_draw_w(role, 1e9, load), self._clamp_cap(cap_w))


class NotAModel:
    def __init__(self, system) -> None:  # noqa: ANN001
        pass
