#!/usr/bin/env python3
"""A systems file against aiconfigurator: the fleet's own pass and step times over the estimator's.

For each system file (default the analytic ``systems/h1x0_sxm_analytic.yaml`` and the shipped, aiconfigurator-made ``systems/h1x0_sxm.yaml``)
the simulated fleet itself is timed — nothing re-derives its formulas:

- prefill: one request of ISL ``x`` (one pass) on an idle fleet; its time to
  first token is the pass time;
- decode: ``b`` requests of context ``c`` running exactly one decode step
  together (the KV capacity is raised so they fit): the window's ITL mean.

Both through :mod:`replaylib.sim.calibration`, as the docs' table of systems.

and divided by aiconfigurator's estimate at the same point (``estimate_tables``
of ``replaylib.timing.aiconfigurator``: static_ctx context latency, static_gen
single-step latency) for the system's aiconfigurator counterpart (Llama-3.1-70B,
TP 2, FP8 GEMM and KV, trtllm, its default database).  Prints a Markdown table.
Needs the ``aic`` extra.

Usage: ``python tools/compare_aic.py [SYSTEM.yaml:AIC_SYSTEM ...]``
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from replaylib.scenario.system import load_system  # noqa: E402
from replaylib.sim.calibration import decode_step_ms, prefill_ttft_ms  # noqa: E402
from replaylib.timing.aiconfigurator import estimate_tables  # noqa: E402

PREFILL_ISL = (512, 2048, 8192, 32768)
DECODE_BATCHES = (1, 8, 32, 128)
DECODE_CONTEXTS = (2048, 8192)
DEFAULT = ("systems/h100_sxm_analytic.yaml:h100_sxm", "systems/h200_sxm_analytic.yaml:h200_sxm",
           "systems/h100_sxm.yaml:h100_sxm", "systems/h200_sxm.yaml:h200_sxm")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="*", default=list(DEFAULT), metavar="SYSTEM.yaml:AIC_SYSTEM")
    args = ap.parse_args()
    print("| system | point | replaylib ms | aiconfigurator ms | replaylib / aiconfigurator |")
    print("|---|---|---:|---:|---:|")
    for pair in args.pairs:
        path, _, aic_system = pair.rpartition(":")
        system = load_system(os.path.join(ROOT, path) if not os.path.isabs(path) else path)
        tables = estimate_tables(system=aic_system, prefill_tokens=list(PREFILL_ISL), prefill_contexts=[0],
                                 decode_batches=list(DECODE_BATCHES), decode_contexts=list(DECODE_CONTEXTS))
        for isl, aic_ms in zip(PREFILL_ISL, tables.prefill[0].pass_ms):
            ours = prefill_ttft_ms(system, isl, isl)  # one pass
            print(f"| {system.name} | prefill ISL {isl} | {ours:.2f} | {aic_ms:.2f} | {ours / aic_ms:.2f} |")
        for curve in tables.decode:
            for b, aic_ms in zip(curve.batch, curve.step_ms):
                ours = decode_step_ms(system, b, curve.context)
                print(f"| {system.name} | decode batch {b}, context {curve.context} | {ours:.2f} | {aic_ms:.2f} | {ours / aic_ms:.2f} |")
        print(f"| {system.name} | aiconfigurator | | | {tables.provenance.database} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
