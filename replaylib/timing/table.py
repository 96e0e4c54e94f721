"""``table``: timing from measured or estimated points (``timing.model: table``).

Prefill — telescoping chunk costs
    Each prefill curve gives the time ``S_c(n)`` of one pass of ``n`` new tokens
    after ``c`` tokens already in KV; a curve at ``context: 0`` (fresh prompts) is
    required.  With ``h`` the per-pass overhead (``pass_overhead_ms``; default:
    the context-0 curve's first interval extended to 0 tokens, kept within
    ``[0, S_0(first point)]``), a curve's **cumulative cost** is
    ``G_c(x) = S_c(x) − h``, read piecewise linearly over the points
    ``(0, 0), (n_1, S_c(n_1) − h), …`` and continued beyond the last point with the
    last interval's slope.  A chunk of ``n`` tokens at context ``c`` costs

        cost(n, c) = G_k(c − c_k + n) − G_k(c − c_k)           (c_k the curve at or below c)

    blended linearly towards ``G_{k+1}(n)`` as ``c`` approaches the next curve's
    context (exact at every curve), and never below 0.  A pass costs
    ``(h + Σ cost(n_i, c_i)) / speed``.  With one curve this telescopes: a prompt
    prefilled alone in ``k`` chunks costs exactly ``S_0(isl) + (k − 1) · h``, and one
    pass of a prompt costs exactly its measured point.

    ``measured_max_num_batched_tokens: M`` says the curves were measured on an
    engine that chunks prompts at ``M`` tokens: a point of ``n > M`` tokens took
    ``ceil(n / M)`` passes, so its single-pass time is ``S(n) − (ceil(n / M) − 1) · h``.
    A fleet chunking at ``M`` then reproduces the measured points exactly, and a
    fleet with a larger budget saves the overheads it no longer pays.

Decode — piecewise linear in batch and context
    Each decode curve gives the step time ``f_c(b)`` of ``b`` running sequences
    holding ``c`` KV tokens each (mean).  ``f_c`` is read piecewise linearly in
    ``b``, flat beyond the curve's first and last batch; between two curves the
    step time is linear in the context, flat below the lowest and above the
    highest curve.  A decode run at batch ``b`` grows every sequence's context by
    one token per step, so between two curve contexts the step time is linear in
    the step number: the fleet sums each stretch in closed form and starts a new
    run where the context crosses a curve (at most one extra boundary per curve
    crossed), so decode stays O(events).

Out of range
    Every lookup outside the measured points (tokens beyond a curve's last point
    or short of its first, batches or contexts beyond the curves) is counted;
    :meth:`TableTiming.range_report` says how many, and the replay summary prints it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replaylib.timing.analytic import LinearTransfer
from replaylib.timing.interp import interp_flat, interp_slope
from replaylib.timing.protocol import UNBOUNDED_STEPS, RangeReport, TimingSpecError

if TYPE_CHECKING:
    from replaylib.scenario.system import System, TableTiming as TableTimingSpec


def default_pass_overhead_ms(tokens: Sequence[float], pass_ms: Sequence[float]) -> float:
    """The context-0 curve's first interval extended to 0 tokens, within ``[0, pass_ms[0]]``."""
    slope = (pass_ms[1] - pass_ms[0]) / (tokens[1] - tokens[0])
    return min(max(pass_ms[0] - slope * tokens[0], 0.0), pass_ms[0])


def single_pass_ms(tokens: Sequence[int], pass_ms: Sequence[float], overhead_ms: float, measured_budget: int | None) -> list[float]:
    """The measured points as single passes: ``S(n) − (ceil(n / M) − 1) · h`` above the budget ``M``."""
    if measured_budget is None:
        return list(pass_ms)
    return [t - (max(1, math.ceil(n / measured_budget)) - 1) * overhead_ms for n, t in zip(tokens, pass_ms, strict=True)]


def telescoped(xs: Sequence[float], gs: Sequence[float], n: float, ctx: float) -> float:
    """The cumulative cost ``G`` (points ``xs -> gs``) of tokens ``ctx .. ctx + n``: ``G(ctx + n) − G(ctx)``."""
    cost = interp_slope(xs, gs, ctx + n)
    return cost - interp_slope(xs, gs, ctx) if ctx > 0 else cost


def line_between(xa: Sequence[float], ya: Sequence[float], xb: Sequence[float], yb: Sequence[float],
                 c_lo: float, c_hi: float, b: float) -> tuple[float, float]:
    """At batch ``b``, the step time's line in the context between the curves at ``c_lo`` and ``c_hi``:
    ``(step time at c_lo, growth per context token)``."""
    fa = interp_flat(xa, ya, b)
    return fa, (interp_flat(xb, yb, b) - fa) / (c_hi - c_lo)


def on_line(fa: float, slope: float, c_lo: float, c_hi: float, c: float) -> tuple[float, float, int]:
    """That line at context ``c``: ``(value, growth per context token, steps until the context reaches c_hi)``."""
    return fa + slope * (c - c_lo), slope, max(1, math.ceil(c_hi - c))


def between(xa: Sequence[float], ya: Sequence[float], xb: Sequence[float], yb: Sequence[float],
            c_lo: float, c_hi: float, b: float, c: float) -> tuple[float, float, int]:
    """Step time at batch ``b`` and context ``c`` between the curves at ``c_lo`` and ``c_hi``:
    ``(value, growth per context token, steps until the context reaches c_hi)``."""
    return on_line(*line_between(xa, ya, xb, yb, c_lo, c_hi, b), c_lo, c_hi, c)


def _finite_positive(values: Sequence[float], key: str, what: str) -> None:
    for i, v in enumerate(values):
        if not (math.isfinite(v) and v > 0):
            raise TimingSpecError(f"{key}[{i}]", f"expected a finite {what} > 0, got {v!r}")


def _increasing(values: Sequence[float], key: str, what: str) -> None:
    for i in range(1, len(values)):
        if not values[i] > values[i - 1]:
            raise TimingSpecError(f"{key}[{i}]", f"expected strictly increasing {what}: {values[i]:g} after {values[i - 1]:g}")


def _check_curve(key: str, x_name: str, xs: Sequence[float], y_name: str, ys: Sequence[float],
                 thpt: Sequence[float] | None) -> None:
    """One curve: at least two points, strictly increasing axis, one finite time > 0 per point."""
    if len(xs) < 2:
        raise TimingSpecError(f"{key}.{x_name}", f"expected at least two points, got {len(xs)}")
    if len(ys) != len(xs):
        raise TimingSpecError(f"{key}.{y_name}", f"expected {len(xs)} values (one per {x_name} point), got {len(ys)}")
    if thpt is not None and len(thpt) != len(xs):
        raise TimingSpecError(f"{key}.thpt_per_gpu", f"expected {len(xs)} values, got {len(thpt)}")
    _finite_positive(xs, f"{key}.{x_name}", x_name)
    _increasing(xs, f"{key}.{x_name}", "batch sizes" if x_name == "batch" else x_name)
    _finite_positive(ys, f"{key}.{y_name}", "time (ms)")


def validate_table(spec: TableTimingSpec) -> None:
    """Axes strictly increasing, lengths equal, times finite and > 0 (noisy, non-monotone times are accepted)."""
    p = spec.prefill
    if not p.curves:
        raise TimingSpecError("timing.prefill.curves", "expected at least one curve")
    contexts = [c.context for c in p.curves]
    _increasing(contexts, "timing.prefill.curves[*].context", "contexts")
    if contexts[0] != 0:
        raise TimingSpecError("timing.prefill.curves[0].context", f"expected a curve at context 0 (fresh prompts), got {contexts[0]}")
    for k, c in enumerate(p.curves):
        _check_curve(f"timing.prefill.curves[{k}]", "tokens", c.tokens, "pass_ms", c.pass_ms, c.thpt_per_gpu)
    first = p.curves[0]
    h = p.pass_overhead_ms if p.pass_overhead_ms is not None else default_pass_overhead_ms(first.tokens, first.pass_ms)
    if not math.isfinite(h):
        raise TimingSpecError("timing.prefill.pass_overhead_ms", f"expected a finite number, got {h!r}")
    for k, c in enumerate(p.curves):
        if h > c.pass_ms[0]:
            raise TimingSpecError("timing.prefill.pass_overhead_ms",
                                  f"{h:g} ms is more than a whole pass of the curve at context {c.context} "
                                  f"({c.pass_ms[0]:g} ms at {c.tokens[0]} tokens)")
    d = spec.decode
    if not d.curves:
        raise TimingSpecError("timing.decode.curves", "expected at least one curve")
    _increasing([c.context for c in d.curves], "timing.decode.curves[*].context", "contexts")
    for j, c in enumerate(d.curves):
        key = f"timing.decode.curves[{j}]"
        if not math.isfinite(c.context):
            raise TimingSpecError(f"{key}.context", f"expected a finite context, got {c.context!r}")
        _check_curve(key, "batch", c.batch, "step_ms", c.step_ms, c.thpt_per_gpu)


class TableTiming(LinearTransfer):
    """The ``table`` timing model (see the module docstring)."""

    name = "table"

    def __init__(self, system: System) -> None:
        super().__init__(system)
        spec = system.timing
        validate_table(spec)  # type: ignore[arg-type]
        p = spec.prefill  # type: ignore[union-attr]
        first = p.curves[0]
        h = p.pass_overhead_ms if p.pass_overhead_ms is not None else default_pass_overhead_ms(first.tokens, first.pass_ms)
        self.pass_overhead_ms = h
        self._p_ctx = [float(c.context) for c in p.curves]
        self._p_xs: list[list[float]] = []
        self._p_gs: list[list[float]] = []
        for c in p.curves:
            single = single_pass_ms(c.tokens, c.pass_ms, h, p.measured_max_num_batched_tokens)
            self._p_xs.append([0.0, *map(float, c.tokens)])
            self._p_gs.append([0.0, *(s - h for s in single)])
        self._p_single = len(self._p_ctx) == 1
        self._p_first = self._p_xs[0][1]  # the context-0 curve's first and last measured tokens
        self._p_last = self._p_xs[0][-1]
        d = spec.decode  # type: ignore[union-attr]
        self._d_ctx = [float(c.context) for c in d.curves]
        self._d_b = [list(c.batch) for c in d.curves]
        self._d_t = [list(c.step_ms) for c in d.curves]
        #: (curve j, batch) -> (f_j(batch), growth per context token to curve j + 1, below, above): decode runs
        #: repeat their batch sizes, and both lookups of ``between`` depend on nothing else
        self._d_memo: dict[tuple[int, int], tuple[float, float, bool, bool]] = {}
        # out-of-range counters (the flags note one lookup's reads)
        self._flag_below = self._flag_above = False
        self._p_n = self._p_below = self._p_above = self._p_max = 0
        self._d_n = self._d_bb = self._d_ba = self._d_cb = self._d_ca = 0
        self._d_max_b = self._d_max_c = 0.0

    # -- prefill ------------------------------------------------------------------------------

    def _note(self, k: int, x: float) -> None:
        """Notes a read of curve ``k`` at ``x`` tokens for the range report."""
        xs = self._p_xs[k]
        if x > xs[-1]:
            self._flag_above = True
        elif 0.0 < x < xs[1]:
            self._flag_below = True
        if x > self._p_max:
            self._p_max = int(x)

    def _chunk_cost(self, n: float, c: float) -> float:
        ctxs = self._p_ctx
        k = bisect.bisect_right(ctxs, c) - 1
        off = c - ctxs[k]
        self._note(k, off + n)
        if off > 0.0:
            self._note(k, off)
        cost = telescoped(self._p_xs[k], self._p_gs[k], n, off)
        if k + 1 < len(ctxs) and off > 0.0:
            w = off / (ctxs[k + 1] - ctxs[k])
            self._note(k + 1, n)
            cost = (1.0 - w) * cost + w * telescoped(self._p_xs[k + 1], self._p_gs[k + 1], n, 0.0)
        return cost if cost > 0.0 else 0.0

    def _count_pass(self) -> None:
        self._p_n += 1
        if self._flag_below:
            self._p_below += 1
        if self._flag_above:
            self._p_above += 1

    def prefill_pass_ms(self, chunks: Sequence[tuple[int, int]], speed: float) -> float:
        if not self._p_single:
            # _chunk_cost per chunk and _count_pass, with the range notes kept in locals (the fleet's per-pass call)
            ctxs, xss, gss = self._p_ctx, self._p_xs, self._p_gs
            last = len(ctxs) - 1
            below = above = False
            big = 0.0
            total = self.pass_overhead_ms
            for n, c in chunks:
                k = bisect.bisect_right(ctxs, c) - 1
                off = c - ctxs[k]
                xs = xss[k]
                x = off + n
                if x > xs[-1]:
                    above = True
                elif 0.0 < x < xs[1]:
                    below = True
                if x > big:  # x = off + n is the largest token count the chunk notes
                    big = x
                if off > 0.0:
                    if off > xs[-1]:
                        above = True
                    elif off < xs[1]:
                        below = True
                cost = telescoped(xs, gss[k], n, off)
                if k < last and off > 0.0:
                    w = off / (ctxs[k + 1] - ctxs[k])
                    xs = xss[k + 1]
                    if n > xs[-1]:
                        above = True
                    elif 0.0 < n < xs[1]:
                        below = True
                    cost = (1.0 - w) * cost + w * telescoped(xs, gss[k + 1], n, 0.0)
                if cost > 0.0:
                    total += cost
            self._flag_below, self._flag_above = below, above
            self._p_n += 1
            if below:
                self._p_below += 1
            if above:
                self._p_above += 1
            if big > self._p_max:
                self._p_max = int(big)
            return total / speed
        # one curve (the common case): the same costs with the range notes kept in locals (the fleet's per-pass call)
        xs, gs = self._p_xs[0], self._p_gs[0]
        lo = self._p_first
        total = self.pass_overhead_ms
        below = False
        top = 0  # the largest ctx + n (the multi-curve branch's big and x are floats)
        for n, ctx in chunks:
            end = ctx + n
            if end > top:
                top = end
            if end < lo or 0 < ctx < lo:
                below = True
            cost = telescoped(xs, gs, n, ctx)
            if cost > 0.0:
                total += cost
        self._p_n += 1
        if below:
            self._p_below += 1
        if top > self._p_last:
            self._p_above += 1
        if top > self._p_max:
            self._p_max = top
        return total / speed

    def prefill_request_ms(self, new_tokens: float, cached_tokens: float, max_batched_tokens: int, speed: float) -> float:
        self._flag_below = self._flag_above = False
        h = self.pass_overhead_ms
        left, ctx, total = max(new_tokens, 1.0), max(cached_tokens, 0.0), 0.0
        while True:
            n = min(left, float(max_batched_tokens))
            total += h + self._chunk_cost(n, ctx)
            left -= n
            ctx += n
            if left <= 1e-9:
                break
        self._count_pass()
        return total / speed

    def prefill_tokens_per_s(self, isl: float, max_batched_tokens: int, speed: float) -> float:
        """A saturated worker: each prompt costs its tokens' telescoped cost plus its share
        ``isl / B`` of the per-pass overheads."""
        self._flag_below = self._flag_above = False
        isl = max(isl, 1.0)
        work = self._chunk_cost(isl, 0.0) + self.pass_overhead_ms * isl / max_batched_tokens
        self._count_pass()
        return 1000.0 * isl / (work / speed)

    # -- decode -------------------------------------------------------------------------------

    def _batch_step(self, j: int, b: float) -> float:
        self._note_batch(j, b)
        return interp_flat(self._d_b[j], self._d_t[j], b)

    def _note_batch(self, j: int, b: float) -> None:
        xs = self._d_b[j]
        if b < xs[0]:
            self._flag_below = True
        elif b > xs[-1]:
            self._flag_above = True

    def _begin_decode(self, b: float, c: float) -> None:
        self._flag_below = self._flag_above = False
        self._d_n += 1
        if b > self._d_max_b:
            self._d_max_b = b
        if c > self._d_max_c:
            self._d_max_c = c

    def _end_decode(self, context_flag: int) -> None:
        if self._flag_below:
            self._d_bb += 1
        if self._flag_above:
            self._d_ba += 1
        if context_flag < 0:
            self._d_cb += 1
        elif context_flag > 0:
            self._d_ca += 1

    def _step(self, b: float, c: float) -> tuple[float, float, int, int]:
        """``(f(b, c), growth per context token, steps to the next curve, context flag)``."""
        ctxs = self._d_ctx
        j = bisect.bisect_right(ctxs, c) - 1
        if j < 0:
            return self._batch_step(0, b), 0.0, max(1, math.ceil(ctxs[0] - c)), -1
        if j == len(ctxs) - 1:
            return self._batch_step(j, b), 0.0, UNBOUNDED_STEPS, 1 if c > ctxs[j] else 0
        self._note_batch(j, b)
        self._note_batch(j + 1, b)
        value, slope, steps = between(self._d_b[j], self._d_t[j], self._d_b[j + 1], self._d_t[j + 1], ctxs[j], ctxs[j + 1], b, c)
        return value, slope, steps, 0

    def _step_time(self, b: float, c: float) -> float:
        """``f(b, c)``: the step time alone (a method, not a closure: a compiled build refuses the closure)."""
        return self._step(b, c)[0]

    def decode_step_ms(self, batch: float, kv_tokens: float, speed: float) -> float:
        c = kv_tokens / batch if batch > 0 else 0.0
        self._begin_decode(batch, c)
        value, _, _, flag = self._step(batch, c)
        self._end_decode(flag)
        return value / speed

    def decode_run(self, batch: int, kv_tokens: int, speed: float) -> tuple[float, float, int]:
        c = kv_tokens / batch
        ctxs = self._d_ctx
        j = bisect.bisect_right(ctxs, c) - 1
        if j < 0 or j == len(ctxs) - 1:  # outside the curves' contexts: flat (rare; the general path counts it)
            self._begin_decode(batch, c)
            value, slope, steps, flag = self._step(batch, c)
            self._end_decode(flag)
            return value / speed, slope / speed, steps
        # between two curves (the common case): the range notes kept in locals (the fleet's per-run call)
        self._d_n += 1
        if batch > self._d_max_b:
            self._d_max_b = float(batch)
        if c > self._d_max_c:
            self._d_max_c = c
        hit = self._d_memo.get((j, batch))
        if hit is None:  # between()'s two lookups, memoised
            xa, xb = self._d_b[j], self._d_b[j + 1]
            fa, slope = line_between(xa, self._d_t[j], xb, self._d_t[j + 1], ctxs[j], ctxs[j + 1], batch)
            hit = (fa, slope, batch < xa[0] or batch < xb[0], batch > xa[-1] or batch > xb[-1])
            self._d_memo[(j, batch)] = hit
        fa, slope, below, above = hit
        if below:
            self._d_bb += 1
        if above:
            self._d_ba += 1
        value, slope, steps = on_line(fa, slope, ctxs[j], ctxs[j + 1], c)
        return value / speed, slope / speed, steps

    def decode_max_batch(self, itl_ms: float, context: float, speed: float, limit: int) -> int:
        """Largest integer ``b ≤ limit`` with ``f(b, context) / speed ≤ itl_ms`` (the step time need
        not grow with the batch: every linear stretch is searched, highest first)."""
        if limit < 1:
            return 0
        target = itl_ms * speed
        ctxs = self._d_ctx
        j = bisect.bisect_right(ctxs, context) - 1
        used = [0] if j < 0 else [j] if j == len(ctxs) - 1 else [j, j + 1]
        flag = -1 if j < 0 else (1 if j == len(ctxs) - 1 and context > ctxs[j] else 0)

        cuts: list[float] = sorted({1.0, float(limit), *(x for k in used for x in self._d_b[k] if 1.0 < x < limit)})
        answer = 1 if len(cuts) == 1 and self._step_time(1.0, context) <= target else 0  # limit == 1: no stretch to search
        for x0, x1 in zip(reversed(cuts[:-1]), reversed(cuts[1:])):
            lo, hi = max(1, math.ceil(x0)), min(limit, math.floor(x1))
            if lo > hi:
                continue
            g_lo, g_hi = self._step_time(lo, context), self._step_time(hi, context)
            if g_hi <= target:
                answer = hi
                break
            if g_lo > target:
                continue  # linear on the stretch: nothing in between fits either
            b = lo + int((target - g_lo) / (g_hi - g_lo) * (hi - lo))
            while b < hi and self._step_time(b + 1, context) <= target:
                b += 1
            while b > lo and self._step_time(b, context) > target:
                b -= 1
            answer = b
            break
        self._begin_decode(float(max(answer, 1)), context)
        for k in used:
            self._batch_step(k, float(max(answer, 1)))
        self._end_decode(flag)
        return answer

    # -- range ----------------------------------------------------------------------------------

    def range_report(self) -> RangeReport:
        return RangeReport(
            model=self.name,
            prefill_lookups=self._p_n, prefill_below=self._p_below, prefill_above=self._p_above,
            prefill_max_tokens=self._p_max,
            decode_lookups=self._d_n, decode_batch_below=self._d_bb, decode_batch_above=self._d_ba,
            decode_context_below=self._d_cb, decode_context_above=self._d_ca,
            decode_max_batch=self._d_max_b, decode_max_context=self._d_max_c,
        )


__all__ = ["TableTiming", "between", "default_pass_overhead_ms", "single_pass_ms", "telescoped", "validate_table"]
