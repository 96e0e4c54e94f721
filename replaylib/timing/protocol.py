"""What a timing model and a power model are: the protocols the fleet, the overlay and the planners call.

A **timing model** answers, for one worker running at relative ``speed``
(the power model's cap → speed, 1.0 uncapped):

* ``prefill_pass_ms(chunks, speed)`` — one prefill pass; ``chunks`` holds one
  ``(new_tokens, context)`` pair per request in the pass, ``context`` being the
  tokens of that request already in KV before the pass (cached or computed by
  earlier chunks);
* ``prefill_request_ms(new_tokens, cached_tokens, max_batched_tokens, speed)`` —
  one request prefilled alone, chunked into passes of at most
  ``max_batched_tokens`` (the planners' unloaded TTFT);
* ``prefill_tokens_per_s(isl, max_batched_tokens, speed)`` — prompt tokens per
  second of a saturated worker serving prompts of ``isl`` tokens;
* ``decode_step_ms(batch, kv_tokens, speed)`` — one decode step of ``batch``
  sequences holding ``kv_tokens`` KV tokens (``kv_tokens / batch`` per sequence);
* ``decode_run(batch, kv_tokens, speed) -> (first_ms, growth_ms, steps)`` — what
  the event-skipping fleet sums in closed form: in a run of steps at a fixed
  batch, every step adds one token per sequence, so KV grows by ``batch`` per
  step; step ``i`` (0-based, ``i < steps``) lasts ``first_ms + growth_ms · i``.
  ``steps`` (≥ 1) is how far that linear form holds; the fleet starts a new run
  there.  The sums and their inverse are :func:`run_end` and :func:`run_steps_by`
  (:mod:`replaylib.timing.runs`);
* ``decode_max_batch(itl_ms, context, speed, limit)`` — the largest batch
  ``b ≤ limit`` whose step at ``context`` KV tokens per sequence takes at most
  ``itl_ms`` (0 when not even one sequence does);
* ``kv_transfer_end_ms(start_ms, isl)`` — when the KV hand-off of an ``isl``-token
  prompt that started at ``start_ms`` ends;
* ``range_report()`` — how many lookups fell outside the measured range
  (:class:`RangeReport`; all zero for a formula).

A **power model** answers, per GPU:

* ``speed(role, cap_w)`` — relative throughput (0, 1] at a cap (clamped to the
  settable range first);
* ``worker_w(role, cap_w, load, busy)`` — expected draw of a ready worker busy a
  fraction ``busy`` of the time at ``load`` (prefill: batched tokens per pass;
  decode: KV tokens in use), never above the cap;
* ``saturated_w(role, cap_w)`` — draw of a saturated worker at that cap;
* ``busy_mix_w(draw_w, busy)`` — idle draw plus the busy share of ``draw_w``;
* ``clamp_w(watts, cap_w)`` — a reading kept within ``[idle_w, cap]``;
* ``provisioned_w(n_prefill, n_decode, cap_prefill_w, cap_decode_w)`` and
  ``worker_provisioned_w(cap_w)`` — what a fleet provisions: every GPU at its cap;
* ``idle_w`` — the draw of an idle or starting GPU.

Both are built from a :class:`~replaylib.scenario.system.System` by
:func:`replaylib.timing.timing_model` / :func:`replaylib.timing.power_model`,
which pick the class the systems YAML names (``timing.model`` /
``power_model.model``: ``analytic``, ``table`` or ``pkg.module:Class``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import msgspec

Role = Literal["prefill", "decode"]

#: ``steps`` of a run whose linear form never ends (a formula, or beyond the last table point).
UNBOUNDED_STEPS = 1 << 62


class TimingSpecError(Exception):
    """A timing or power section a model cannot use: the key (``timing.decode.curves[2].batch[3]``),
    what is wrong, and the file when it is not the systems YAML itself (a CSV, a profile)."""

    def __init__(self, key: str | None, message: str, path: str | None = None) -> None:
        self.key = key
        self.message = message
        self.path = path
        super().__init__(f"{key}: {message}" if key else message)


class RangeReport(msgspec.Struct, frozen=True, kw_only=True):
    """Lookups a table model answered outside its measured range (clamped or extended)."""

    model: str = ""
    prefill_lookups: int = 0  #: prefill passes / request times computed
    prefill_below: int = 0  #: ... reading the curve below its first measured point
    prefill_above: int = 0  #: ... reading the curve above its last measured point
    prefill_max_tokens: int = 0  #: the largest context + new tokens a pass read
    decode_lookups: int = 0  #: decode runs / steps computed
    decode_batch_below: int = 0
    decode_batch_above: int = 0
    decode_context_below: int = 0
    decode_context_above: int = 0
    decode_max_batch: float = 0.0
    decode_max_context: float = 0.0

    @property
    def outside(self) -> int:
        """Lookups with at least one axis outside the measured range."""
        return (self.prefill_below + self.prefill_above + self.decode_batch_below + self.decode_batch_above
                + self.decode_context_below + self.decode_context_above)

    def describe(self) -> str:
        """One line for a replay summary (empty when every lookup was inside the range)."""
        if not self.outside:
            return ""
        parts = []
        if self.prefill_below or self.prefill_above:
            parts.append(f"prefill {self.prefill_below + self.prefill_above:,} of {self.prefill_lookups:,} passes "
                         f"({self.prefill_below:,} below, {self.prefill_above:,} above the measured tokens; "
                         f"largest {self.prefill_max_tokens:,})")
        if self.decode_batch_below or self.decode_batch_above or self.decode_context_below or self.decode_context_above:
            parts.append(f"decode of {self.decode_lookups:,} runs: batch {self.decode_batch_below:,} below / "
                         f"{self.decode_batch_above:,} above (largest {self.decode_max_batch:g}), context "
                         f"{self.decode_context_below:,} below / {self.decode_context_above:,} above "
                         f"(largest {self.decode_max_context:,.0f})")
        return "; ".join(parts)


@runtime_checkable
class TimingModel(Protocol):
    """Pass, step and hand-off times of one worker (see the module docstring)."""

    name: str

    def prefill_pass_ms(self, chunks: Sequence[tuple[int, int]], speed: float) -> float: ...

    def prefill_request_ms(self, new_tokens: float, cached_tokens: float, max_batched_tokens: int, speed: float) -> float: ...

    def prefill_tokens_per_s(self, isl: float, max_batched_tokens: int, speed: float) -> float: ...

    def decode_step_ms(self, batch: float, kv_tokens: float, speed: float) -> float: ...

    def decode_run(self, batch: int, kv_tokens: int, speed: float) -> tuple[float, float, int]: ...

    def decode_max_batch(self, itl_ms: float, context: float, speed: float, limit: int) -> int: ...

    def kv_transfer_end_ms(self, start_ms: float, isl: int) -> float: ...

    def range_report(self) -> RangeReport: ...


@runtime_checkable
class PowerModel(Protocol):
    """Per-GPU watts and the cap → speed curve (see the module docstring)."""

    name: str
    idle_w: float

    def speed(self, role: Role, cap_w: float) -> float: ...

    def worker_w(self, role: Role, cap_w: float, load: float, busy: float) -> float: ...

    def saturated_w(self, role: Role, cap_w: float) -> float: ...

    def busy_mix_w(self, draw_w: float, busy: float) -> float: ...

    def clamp_w(self, watts: float, cap_w: float) -> float: ...

    def provisioned_w(self, n_prefill: float, n_decode: float, cap_prefill_w: float, cap_decode_w: float) -> float: ...

    def worker_provisioned_w(self, cap_w: float) -> float: ...
