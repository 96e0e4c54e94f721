"""Power models: per-GPU watts from load, busy time and cap, and the cap → speed curve.

Common to every built-in power model (constants from the systems YAML):

* ``speed(role, cap)`` — the ``speed_curve.<role>`` points, read piecewise
  linearly and flat beyond the ends, at the cap clamped to the settable range;
* a ready worker busy a fraction ``busy`` of the time at busy draw ``d`` draws
  ``idle + busy · (max(d, idle) − idle)``; a starting worker draws ``idle``;
* a reading is kept within ``[idle_w, cap]``;
* provisioned watts = GPUs per worker × Σ workers × their role's cap.

``analytic`` (``power_model`` with ``uncapped_w``, ``base_fraction`` and a
saturation load): the busy draw is ``base_fraction · tdp`` rising linearly to
``uncapped_w`` as the load (prefill: batched tokens per pass; decode: KV tokens
in use) approaches ``saturation_tokens`` / ``hbm_saturation_kv_tokens``, never
above the cap.  A saturated worker draws ``min(uncapped_w, cap)``.

``table`` (``power_model: {model: table, prefill: {load, draw_w, source}, …}``):
the busy draw is the measured ``draw_w`` at that load, piecewise linear and flat
beyond the ends, never above the cap; a saturated worker draws the last point's
draw (or the cap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replaylib.timing.interp import interp_flat
from replaylib.timing.protocol import Role

if TYPE_CHECKING:
    from replaylib.scenario.system import System


class _PowerBase:
    name = ""

    def __init__(self, system: System) -> None:
        g = system.gpu
        self.idle_w = g.idle_w
        self._tdp = g.tdp_w
        self._min_cap, self._max_cap = g.min_cap_w, g.max_cap_w
        self._gpus = system.model.gpus_per_worker
        curves = system.speed_curve
        self._speed_xy = {
            "prefill": ([p[0] for p in curves.prefill.points], [p[1] for p in curves.prefill.points]),
            "decode": ([p[0] for p in curves.decode.points], [p[1] for p in curves.decode.points]),
        }

    def _clamp_cap(self, cap_w: float) -> float:
        return min(max(cap_w, self._min_cap), self._max_cap)

    def speed(self, role: Role, cap_w: float) -> float:
        xs, ys = self._speed_xy[role]
        return interp_flat(xs, ys, self._clamp_cap(cap_w))

    def busy_draw_w(self, role: Role, cap_w: float, load: float) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def worker_w(self, role: Role, cap_w: float, load: float, busy: float) -> float:
        busy = min(max(busy, 0.0), 1.0)
        return self.busy_mix_w(self.busy_draw_w(role, cap_w, load), busy)

    def busy_mix_w(self, draw_w: float, busy: float) -> float:
        idle = self.idle_w
        return idle + busy * (max(draw_w, idle) - idle)

    def clamp_w(self, watts: float, cap_w: float) -> float:
        return min(max(watts, self.idle_w), cap_w)

    def provisioned_w(self, n_prefill: float, n_decode: float, cap_prefill_w: float, cap_decode_w: float) -> float:
        return self._gpus * (n_prefill * cap_prefill_w + n_decode * cap_decode_w)

    def worker_provisioned_w(self, cap_w: float) -> float:
        return cap_w * self._gpus


class AnalyticPower(_PowerBase):
    """The ``analytic`` power model (module docstring)."""

    name = "analytic"

    def __init__(self, system: System) -> None:
        super().__init__(system)
        pm = system.power_model
        tdp = system.gpu.tdp_w
        self._uncapped = {"prefill": pm.prefill.uncapped_w, "decode": pm.decode.uncapped_w}
        self._base = {"prefill": pm.prefill.base_fraction * tdp, "decode": pm.decode.base_fraction * tdp}
        self._saturation = {"prefill": pm.prefill.saturation_tokens, "decode": pm.decode.hbm_saturation_kv_tokens}

    def busy_draw_w(self, role: Role, cap_w: float, load: float) -> float:
        base = self._base[role]
        fraction = min(1.0, max(load, 0.0) / self._saturation[role])
        return min(base + (self._uncapped[role] - base) * fraction, self._clamp_cap(cap_w))

    def saturated_w(self, role: Role, cap_w: float) -> float:
        return min(self._uncapped[role], self._clamp_cap(cap_w))


class TablePower(_PowerBase):
    """The ``table`` power model (module docstring)."""

    name = "table"

    def __init__(self, system: System) -> None:
        super().__init__(system)
        pm = system.power_model
        self._draw = {"prefill": (list(pm.prefill.load), list(pm.prefill.draw_w)),
                      "decode": (list(pm.decode.load), list(pm.decode.draw_w))}

    def busy_draw_w(self, role: Role, cap_w: float, load: float) -> float:
        xs, ys = self._draw[role]
        return min(interp_flat(xs, ys, load), self._clamp_cap(cap_w))

    def saturated_w(self, role: Role, cap_w: float) -> float:
        return min(self._draw[role][1][-1], self._clamp_cap(cap_w))


__all__ = ["AnalyticPower", "TablePower"]
