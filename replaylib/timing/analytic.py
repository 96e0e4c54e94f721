"""``analytic``: today's datasheet formulas (``timing:`` with ``base_ms`` / ``per_*`` coefficients).

With ``T`` the ``timing`` section of the systems YAML and ``s`` the speed::

    pass_ms  = (T.prefill.base + T.prefill.per_token · Σn + T.prefill.per_token_context · Σ n·(ctx + n/2)) / s
    step_ms  = (T.decode.base + T.decode.per_seq · b + T.decode.per_kv_token · kv) / s
    hand-off = T.kv_transfer.base + T.kv_transfer.per_token · isl

``Σ n·(ctx + n/2)`` is the attention work of a chunk of ``n`` new tokens after
``ctx`` tokens already in KV.  A decode run at batch ``b`` grows the KV by ``b``
per step, so its step time grows by exactly ``T.decode.per_kv_token · b / s``
per step, forever: one run per batch, summed in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replaylib.timing.protocol import UNBOUNDED_STEPS, RangeReport

if TYPE_CHECKING:
    from replaylib.scenario.system import System

#: Slack when flooring or ceiling a count, so that an exact fit counts.
_EPS = 1e-9


class LinearTransfer:
    """The KV hand-off of every built-in model: ``kv_transfer.base_ms + kv_transfer.per_token_ms · isl``."""

    def __init__(self, system: System) -> None:
        x = system.timing.kv_transfer  # type: ignore[union-attr]
        self._x_base, self._x_tok = x.base_ms, x.per_token_ms

    def kv_transfer_end_ms(self, start_ms: float, isl: int) -> float:
        return start_ms + self._x_base + self._x_tok * isl


class AnalyticTiming(LinearTransfer):
    """The ``analytic`` timing model (see the module docstring)."""

    name = "analytic"

    def __init__(self, system: System) -> None:
        super().__init__(system)
        t = system.timing
        self._p_base, self._p_tok, self._p_ctx = t.prefill.base_ms, t.prefill.per_token_ms, t.prefill.per_token_context_ms
        self._d_base, self._d_seq, self._d_kv = t.decode.base_ms, t.decode.per_seq_ms, t.decode.per_kv_token_ms

    # -- prefill ------------------------------------------------------------------------------

    def prefill_pass_ms(self, chunks: Sequence[tuple[int, int]], speed: float) -> float:
        total = 0
        pairs = 0.0
        for n, ctx in chunks:
            total += n
            pairs += n * (ctx + n / 2.0)
        return (self._p_base + self._p_tok * total + self._p_ctx * pairs) / speed

    def prefill_request_ms(self, new_tokens: float, cached_tokens: float, max_batched_tokens: int, speed: float) -> float:
        """``k = ceil(new / B)`` passes; the chunks' ``Σ n·(ctx + n/2)`` is exactly ``new · cached + new²/2``."""
        new, cached = new_tokens, cached_tokens
        passes = max(1, math.ceil(new / max_batched_tokens - _EPS))
        work = passes * self._p_base + self._p_tok * new + self._p_ctx * (new * cached + new * new / 2.0)
        return work / speed

    def prefill_tokens_per_s(self, isl: float, max_batched_tokens: int, speed: float) -> float:
        """Full passes of ``B`` tokens whose attended context averages half the ISL."""
        b = float(max_batched_tokens)
        attended = b * max(isl, 0.0) / 2.0
        return 1000.0 * b / ((self._p_base + self._p_tok * b + self._p_ctx * attended) / speed)

    # -- decode -------------------------------------------------------------------------------

    def decode_step_ms(self, batch: float, kv_tokens: float, speed: float) -> float:
        return (self._d_base + self._d_seq * batch + self._d_kv * kv_tokens) / speed

    def decode_run(self, batch: int, kv_tokens: int, speed: float) -> tuple[float, float, int]:
        first = (self._d_base + self._d_seq * batch + self._d_kv * kv_tokens) / speed
        return first, self._d_kv * batch / speed, UNBOUNDED_STEPS

    def decode_max_batch(self, itl_ms: float, context: float, speed: float, limit: int) -> int:
        """``floor((itl · s − base) / (per_seq + per_kv_token · context))``, at most ``limit``."""
        per_seq = self._d_seq + self._d_kv * context
        room = itl_ms * speed - self._d_base
        if room < 0.0:
            return 0
        if per_seq <= 0.0:
            return limit
        return min(math.floor(room / per_seq + _EPS), limit)

    def range_report(self) -> RangeReport:
        return RangeReport(model=self.name)


__all__ = ["AnalyticTiming", "LinearTransfer"]
