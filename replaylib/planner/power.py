"""``power@1``: ``sla@1`` plus the power-budget clamp.

Caps are always asked for explicitly: ``default_cap_*_w`` if configured, else
the SKU's ``gpu.max_cap_w`` — and the sizing assumes those caps.

After ``sla@1``'s sizing, damping and GPU limit, the provisioned power::

    projected_w = (n_p · cap_p + n_d · cap_d) · gpus_per_worker

must not exceed ``obs.budget_w`` (when not ``None``).  While it does, one
replica at a time is removed from the role with **more latency headroom** —
the role that would still cover the larger share of its predicted need after
the cut, ``(n − 1) / need`` (ties cut decode; see
:func:`~replaylib.planner.common.cut_to_fit`) — never below ``min_endpoint``.
The reason says what was cut: ``budget_cut_prefill``, ``budget_cut_decode``
or ``budget_cut_both``.  If ``min_endpoint`` replicas of each role still exceed
the budget at these caps, the planner keeps them and says ``budget_floor``
(the adapter's budget clamp then lowers the caps).  The cut is applied to the
decision only: the damped SLA targets are kept, so when the budget rises
again the planner returns to them at once.
"""

from __future__ import annotations

from replaylib.planner.common import cut_to_fit
from replaylib.planner.protocol import Observation
from replaylib.planner.sla import SlaPlanner


class PowerPlanner(SlaPlanner):
    """sla@1 plus the power-budget clamp: explicit caps, replicas cut until provisioned watts fit the budget.

    ``power@1`` — see the module docstring.
    """

    name: str = "power"
    version: int = 1

    def default_caps(self) -> tuple[float, float]:
        """``default_cap_*_w`` (clamped) where configured, else the SKU's max cap."""
        p, d = self.configured_caps()
        top = self.system.gpu.max_cap_w
        return (p if p is not None else top, d if d is not None else top)

    def assumed_caps(self, obs: Observation) -> tuple[float, float]:
        return self.default_caps()

    def decision_caps(self, obs: Observation) -> tuple[float | None, float | None]:
        return self.assumed_caps(obs)

    def fit_budget(
        self, n_p: int, n_d: int, caps: tuple[float, float], needs: tuple[float, float], budget_w: float | None
    ) -> tuple[int, int, str | None]:
        if budget_w is None:
            return n_p, n_d, None
        fit = cut_to_fit(
            n_p, n_d,
            cost_prefill=self.models.power.worker_provisioned_w(caps[0]),
            cost_decode=self.models.power.worker_provisioned_w(caps[1]), limit=budget_w,
            need_prefill=needs[0], need_decode=needs[1], floor=self.config.min_endpoint,
        )
        if not fit.feasible:
            return fit.n_prefill, fit.n_decode, "budget_floor"
        if fit.cut_prefill and fit.cut_decode:
            return fit.n_prefill, fit.n_decode, "budget_cut_both"
        if fit.cut_prefill:
            return fit.n_prefill, fit.n_decode, "budget_cut_prefill"
        if fit.cut_decode:
            return fit.n_prefill, fit.n_decode, "budget_cut_decode"
        return n_p, n_d, None


__all__ = ["PowerPlanner"]
