"""Does the fleet reproduce a table-timed system's own points?  (docs/fleet_model.md's table of systems.)

For every grid point of a ``timing.model: table`` system the real :class:`Fleet`
replays the smallest trace that lands on it, and the latency it measures is
compared with the point:

* prefill (context-0 curve): one request of ``tokens`` tokens arriving alone;
  its TTFT against ``pass_ms``, with the fleet's chunk budget at the curve's
  ``measured_max_num_batched_tokens`` (or one pass when none is given);
* decode: ``round(batch)`` requests of ``context − 1`` prompt tokens and 2
  output tokens prefilled in one pass, so they reach the decode worker together
  and run exactly one step at ``batch`` sequences of ``context`` KV tokens; the
  window's ITL against ``step_ms`` (the KV capacity is raised to fit the batch
  where a point holds more than the system's capacity).
"""

from __future__ import annotations


import msgspec

from replaylib.scenario.model import FleetConfig
from replaylib.scenario.system import System, TableTiming
from replaylib.sim.fleet import Fleet
from replaylib.trace.model import Request

#: "Run to the end" (advance_to(inf) is not supported by the fleet).
_END_MS = 1e15


class GridCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Worst relative error of the fleet against a system's grid points (None: not a table system)."""

    system: str
    timing: str
    prefill_points: int = 0
    prefill_max_error: float | None = None
    decode_points: int = 0
    decode_max_error: float | None = None


def prefill_ttft_ms(system: System, tokens: int, max_num_batched_tokens: int) -> float:
    """TTFT of one request of ``tokens`` tokens alone on the fleet."""
    fleet = Fleet(system, FleetConfig(prefill_workers=1, decode_workers=1, max_num_batched_tokens=max_num_batched_tokens),
                  [Request(timestamp=0, input_length=tokens, output_length=1, hash_ids=[])])
    mean = fleet.advance_to(_END_MS).window.ttft.mean
    assert mean is not None
    return mean


def _roomy(system: System, kv_tokens: int) -> System:
    """``system`` with room for ``kv_tokens`` of KV: an estimator prices any batch, even one that would not fit."""
    return msgspec.structs.replace(system, kv=msgspec.structs.replace(
        system.kv, capacity_tokens=max(system.kv.capacity_tokens, kv_tokens)))


def decode_step_ms(system: System, batch: int, context: int) -> float:
    """The fleet's one decode step of ``batch`` sequences of ``context`` KV tokens each."""
    reqs = [Request(timestamp=0, input_length=context - 1, output_length=2, hash_ids=[]) for _ in range(batch)]
    config = FleetConfig(prefill_workers=1, decode_workers=1, max_num_batched_tokens=batch * context, max_num_seqs=batch)
    mean = Fleet(_roomy(system, batch * (context + 2)), config, reqs).advance_to(_END_MS).window.itl.mean
    assert mean is not None
    return mean


def check_grid(system: System) -> GridCheck:
    spec = system.timing
    if not isinstance(spec, TableTiming):
        return GridCheck(system=system.name, timing=type(spec).__struct_config__.tag or "")
    first = spec.prefill.curves[0]
    budget = spec.prefill.measured_max_num_batched_tokens or max(first.tokens)
    p_err = max(abs(prefill_ttft_ms(system, n, budget) / t - 1.0) for n, t in zip(first.tokens, first.pass_ms, strict=True))
    d_err = 0.0
    d_n = 0
    for curve in spec.decode.curves:
        context = round(curve.context)
        for b, t in zip(curve.batch, curve.step_ms, strict=True):
            d_err = max(d_err, abs(decode_step_ms(system, round(b), context) / t - 1.0))
            d_n += 1
    return GridCheck(system=system.name, timing="table", prefill_points=len(first.tokens), prefill_max_error=p_err,
                     decode_points=d_n, decode_max_error=d_err)




def _fmt_error(points: int, error: float | None) -> str:
    if error is None:
        return "—"
    return f"{points} points, max {error * 100:.2g}%" if error >= 5e-5 else f"{points} points, max < 0.005%"


def render_systems_table(systems: list[tuple[str, System]]) -> str:
    """Markdown: each shipped system, its timing and where it comes from, and the fleet's error at its grid points."""
    lines = ["| systems file | model | timing | source | prefill: fleet vs points | decode: fleet vs points |",
             "|---|---|---|---|---|---|"]
    for path, system in systems:
        check = check_grid(system)
        if system.provenance is not None:
            source = f"{system.provenance.tool} {system.provenance.version}"
        else:
            source = "datasheet derivation (an assumption; the file shows it)"
        lines.append(f"| `{path}` | {system.model.name}, {system.model.gpus_per_worker} GPU/worker | {check.timing} | {source} | "
                     f"{_fmt_error(check.prefill_points, check.prefill_max_error)} | "
                     f"{_fmt_error(check.decode_points, check.decode_max_error)} |")
    return "\n".join(lines) + "\n"


__all__ = ["GridCheck", "check_grid", "decode_step_ms", "prefill_ttft_ms", "render_systems_table"]
