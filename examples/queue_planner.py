"""A complete user planner: scale on queues and latency, hold the caps at a fixed fraction.

``docs/writing_a_planner.md`` walks through it; ``tests/test_example_planner.py`` replays it.
Run it on any scenario by import path (from the repository root, or with this folder's parent
on ``PYTHONPATH``)::

    python -m replaylib record --scenario default --planner examples.queue_planner:QueuePlanner
"""

from __future__ import annotations

from replaylib.planner import Decision, Observation, PlannerContext


class QueuePlanner:
    """Add a worker to a role whose queue or latency is over its limit, remove one that has been idle.

    Knobs (``planner.params`` in the scenario, all optional):

    * ``queue_per_worker`` (default 8): queued requests per prefill worker that trigger a scale-out;
    * ``idle_busy`` (default 0.3): a role busy less than this share of the window may shrink;
    * ``cap_fraction`` (default 0.9): caps at this fraction of the SKU's maximum cap.
    """

    name = "queue"
    version = 1

    def __init__(self, ctx: PlannerContext) -> None:
        params = ctx.config.params
        self.queue_per_worker = float(params.get("queue_per_worker", 8))
        self.idle_busy = float(params.get("idle_busy", 0.3))
        fraction = float(params.get("cap_fraction", 0.9))
        gpu = ctx.system.gpu
        self.cap_w = ctx.system.clamp_cap(gpu.max_cap_w * fraction)
        self.ttft_ms = ctx.config.ttft_ms
        self.itl_ms = ctx.config.itl_ms
        self.min_workers = ctx.config.min_endpoint
        self.max_gpus = ctx.config.max_gpu_budget
        self.gpus_per_worker = ctx.system.model.gpus_per_worker
        self.n_prefill = ctx.initial_prefill
        self.n_decode = ctx.initial_decode

    def on_tick(self, obs: Observation) -> Decision:
        p, d = obs.prefill, obs.decode
        reason = "hold"
        ttft = obs.ttft.mean_ms if obs.ttft is not None else None  # None: no reading (outage, no samples)
        itl = obs.itl.mean_ms if obs.itl is not None else None
        if p.queued_requests > self.queue_per_worker * max(p.active, 1) or (ttft is not None and ttft > self.ttft_ms):
            self.n_prefill += 1
            reason = "scale_out_prefill"
        elif p.busy_fraction < self.idle_busy and p.starting == 0 and self.n_prefill > self.min_workers:
            self.n_prefill -= 1
            reason = "scale_in_prefill"
        if itl is not None and itl > self.itl_ms or d.kv_tokens_used > 0.9 * max(d.kv_capacity_tokens, 1):
            self.n_decode += 1
            reason = "scale_out_decode" if reason == "hold" else reason + "+decode"
        elif d.busy_fraction < self.idle_busy and d.starting == 0 and self.n_decode > self.min_workers:
            self.n_decode -= 1
            reason = "scale_in_decode" if reason == "hold" else reason + "+decode"
        # never more GPUs than the scenario allows
        while (self.n_prefill + self.n_decode) * self.gpus_per_worker > self.max_gpus:
            if self.n_prefill >= self.n_decode and self.n_prefill > self.min_workers:
                self.n_prefill -= 1
            elif self.n_decode > self.min_workers:
                self.n_decode -= 1
            else:
                break
        # projected_w is left empty on purpose: the adapter fills it (projected_w_filled = true)
        return Decision(
            n_prefill=self.n_prefill,
            n_decode=self.n_decode,
            cap_prefill_w=self.cap_w,
            cap_decode_w=self.cap_w,
            reason=reason,
            predicted_rate=obs.request_rate,
        )
