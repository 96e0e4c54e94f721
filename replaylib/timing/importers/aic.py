"""``aiconfigurator``: NVIDIA's estimator swept over a grid → a table-timed system (extra ``aic``).

``python -m replaylib systems import aiconfigurator MODEL -o OUT.yaml --system
h100_sxm --gpu-from BASE.yaml [--backend trtllm] [--tp 2] [--gemm-quant fp8]
[--kv-quant fp8] ...`` runs :func:`replaylib.timing.aiconfigurator.estimate_tables`
(one static prefill estimate per (context, new tokens), one decode step per
(context, batch); ``docs/aiconfigurator.md`` says what the numbers are) and
writes its curves as ``timing.model: table``.

The estimator prices GPU kernels only: the GPU's power limits, the cap → speed
curves, the power model, the start-up delay, the KV hand-off, the KV capacity
and the model's context window are copied from ``--gpu-from`` (a systems file
for the same GPU, model and tensor parallelism), and the file's
``provenance.assumptions`` says so.  ``provenance`` also holds the
aiconfigurator version, the database (mode, system, backend, version and its
content hash), the exact replaylib call (``call``) and the estimator calls
behind every point (``source``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from replaylib.timing.importers import ImportedSystem, Importer, SystemsImportError
from replaylib.timing.importers.base_system import (
    add_common_arguments,
    apply_sets,
    canonical_command,
    common_options,
    load_base,
    num,
    parse_set,
    set_notes,
    sha256_of,
)

TOOL = "aiconfigurator"
#: (option, flag) of the grids; a grid is written into the call only when it is not the default.
_GRIDS = (("prefill_tokens", "--prefill-tokens"), ("prefill_contexts", "--prefill-contexts"),
          ("decode_batches", "--decode-batches"), ("decode_contexts", "--decode-contexts"))


def _defaults() -> dict[str, tuple[int, ...]]:
    from replaylib.timing import aiconfigurator as aic

    return {"prefill_tokens": aic.DEFAULT_PREFILL_TOKENS, "prefill_contexts": aic.DEFAULT_PREFILL_CONTEXTS,
            "decode_batches": aic.DEFAULT_DECODE_BATCHES, "decode_contexts": aic.DEFAULT_DECODE_CONTEXTS}


def canonical_call(model: str, out: str, *, system: str, backend: str, backend_version: str | None, tp: int,
                   gemm_quant: str, kv_quant: str, database_mode: str, grids: dict[str, tuple[int, ...] | None],
                   name: str | None, description: str | None, gpu_from: str | None,
                   sets: tuple[str, ...], assumptions: tuple[str, ...]) -> str:
    """The command line that makes this file, with every estimator choice spelled out (defaults too)."""
    argv = ["--system", system, "--backend", backend]
    if backend_version is not None:
        argv += ["--backend-version", backend_version]
    argv += ["--tp", str(tp), "--gemm-quant", gemm_quant, "--kv-quant", kv_quant, "--database-mode", database_mode]
    for option, flag in _GRIDS:
        if grids.get(option) is not None:
            argv += [flag, ",".join(str(v) for v in grids[option])]  # type: ignore[union-attr]
    return canonical_command("aiconfigurator", model, out, argv, name=name, description=description, gpu_from=gpu_from,
                             sets=sets, assumptions=assumptions)


def build(
    model: str,
    out: str,
    *,
    system: str | None = None,
    backend: str = "trtllm",
    backend_version: str | None = None,
    tp: int = 2,
    gemm_quant: str = "fp8",
    kv_quant: str = "fp8",
    database_mode: str = "SILICON",
    prefill_tokens: Sequence[int] | None = None,
    prefill_contexts: Sequence[int] | None = None,
    decode_batches: Sequence[int] | None = None,
    decode_contexts: Sequence[int] | None = None,
    gpu_from: str | None = None,
    name: str | None = None,
    description: str | None = None,
    sets: tuple[str, ...] | list[str] = (),
    assumptions: tuple[str, ...] | list[str] = (),
) -> ImportedSystem:
    """The systems document for ``model`` on aiconfigurator's ``system`` (see the module docstring); writes nothing.

    ``backend_version`` None pins the estimator's latest database for the system
    and backend — the call in the file names the version it used, so running it
    again gives the same file even after a newer database ships.  A grid left
    None is aiconfigurator's sample points (``replaylib.timing.aiconfigurator``'s
    ``DEFAULT_*``).
    """
    from replaylib.timing.aiconfigurator import estimate_tables

    sets, assumptions = tuple(sets), tuple(assumptions)
    if not system:
        raise SystemsImportError("--system: give aiconfigurator's system name (e.g. h100_sxm, h200_sxm)")
    parsed_sets = [parse_set(s) for s in sets]
    base = load_base(gpu_from, "aiconfigurator estimates GPU kernel time only, no power, KV capacity or start-up")
    if base.system.model.gpus_per_worker != tp:
        raise SystemsImportError(
            f"--tp {tp}: --gpu-from {gpu_from} describes TP{base.system.model.gpus_per_worker} workers (its kv capacity, "
            "power model and KV hand-off are per worker); give a base system of the same parallelism"
        )
    given = {"prefill_tokens": prefill_tokens, "prefill_contexts": prefill_contexts,
             "decode_batches": decode_batches, "decode_contexts": decode_contexts}
    defaults = _defaults()
    grids = {k: (tuple(v) if v is not None else defaults[k]) for k, v in given.items()}
    tables = estimate_tables(model, system, backend, backend_version, tp=tp, gemm_quant=gemm_quant, kv_quant=kv_quant,
                             database_mode=database_mode, **grids)
    # the file's call pins the database version it was made from, and names only the grids that differ
    written_grids = {k: (v if v != defaults[k] else None) for k, v in grids.items()}
    call = canonical_call(model, out, system=system, backend=backend, backend_version=tables.backend_version, tp=tp,
                          gemm_quant=gemm_quant, kv_quant=kv_quant, database_mode=database_mode, grids=written_grids,
                          name=name, description=description, gpu_from=gpu_from, sets=sets, assumptions=assumptions)

    timing = tables.to_builtins()["timing"]
    timing["prefill"]["pass_overhead_ms"] = num(tables.pass_overhead_ms)
    for section in ("prefill", "decode"):
        for curve in timing[section]["curves"]:
            key = "pass_ms" if section == "prefill" else "step_ms"
            curve[key] = [num(v) for v in curve[key]]
    timing["kv_transfer"] = base.kv_transfer()

    out_name = name or os.path.splitext(os.path.basename(out))[0]
    model_doc = dict(base.doc["model"])
    model_doc["gpus_per_worker"] = tp
    notes = [
        f"gpu, startup_delay_ms, speed_curve, power_model, kv, model and timing.kv_transfer are copied from {gpu_from} "
        f"({base.system.name}); aiconfigurator prices GPU kernels only and says none of them",
        f"the timing is kernel time only (no framework, scheduling or sampling overhead); {tables.silicon_share:.0%} of "
        "the summed latency comes from measured database rows, the rest from its formula fallbacks",
        f"timing.prefill.pass_overhead_ms = {num(tables.pass_overhead_ms)} ms is fitted to aiconfigurator's batched prefill "
        f"passes; the per-prompt telescoping rule is off by up to {tables.pass_overhead_error:.0%} on them "
        "(worst at 256-512 tokens a prompt, a few percent from 1k tokens up)",
    ]
    notes += set_notes(parsed_sets, assumptions)
    doc: dict[str, Any] = {
        "name": out_name,
        "description": description or f"{base.system.gpu.model}, {model}, TP{tp} per worker ({TOOL} {tables.provenance.version})",
        "provenance": {
            "tool": TOOL,
            "version": tables.provenance.version,
            "database": tables.provenance.database,
            "call": call,
            "source": f"{tables.provenance.source}; estimator call: {tables.provenance.call}; base system: "
                      f"{gpu_from} sha256:{sha256_of(base.path)}",
            "assumptions": notes,
        },
        "gpu": base.doc["gpu"],
        "model": model_doc,
        "timing": timing,
        "kv": base.doc["kv"],
    }
    for section in ("startup_delay_ms", "speed_curve", "power_model"):
        doc[section] = base.doc[section]
    apply_sets(doc, parsed_sets)
    header = (
        f"{doc['description']}",
        "Generated by `python -m replaylib systems import aiconfigurator`; provenance.call is the exact call.",
        "Do not edit by hand: change the call and run it again (pip install 'replaylib[aic]'); provenance says where "
        "every number comes from.",
    )
    return ImportedSystem(doc=doc, header=header)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, e.g. 1,8,32,128; got {text!r}") from None


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--system", help="aiconfigurator's system name, e.g. h100_sxm, h200_sxm (required)")
    p.add_argument("--backend", default="trtllm", help="aiconfigurator backend (default trtllm)")
    p.add_argument("--backend-version", metavar="V", help="its database version (default: the latest it ships)")
    p.add_argument("--tp", type=int, default=2, metavar="N", help="tensor parallelism per worker (default 2)")
    p.add_argument("--gemm-quant", default="fp8", help="GEMM quantisation (default fp8)")
    p.add_argument("--kv-quant", default="fp8", help="KV-cache quantisation (default fp8)")
    p.add_argument("--database-mode", default="SILICON", help="estimator database mode (default SILICON: measured kernels)")
    for option, flag in _GRIDS:
        p.add_argument(flag, type=_int_list, dest=option, metavar="N,N,...",
                       help=f"grid of {option.replace('_', ' ')} (default: aiconfigurator's sample points)")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        **common_options(args),
        "system": args.system, "backend": args.backend, "backend_version": args.backend_version, "tp": args.tp,
        "gemm_quant": args.gemm_quant, "kv_quant": args.kv_quant, "database_mode": args.database_mode,
        **{option: getattr(args, option) for option, _ in _GRIDS},
    }


IMPORTER = Importer(
    name="aiconfigurator",
    help="NVIDIA aiconfigurator's estimator (MODEL: a model it knows, or a folder with config.json) -> a table-timed "
         "system; needs pip install 'replaylib[aic]'",
    add_arguments=_add_arguments,
    options=_options,
    build=build,
    source_help="the model: a name aiconfigurator ships a config for (e.g. meta-llama/Meta-Llama-3.1-70B) or a folder "
                "with its config.json",
)


def import_aiconfigurator(model: str, out: str | os.PathLike[str], **options: Any) -> str:
    """Library call: write the systems file for ``model`` estimated by aiconfigurator (options as :func:`build`)."""
    from replaylib.timing.importers import import_system

    return import_system("aiconfigurator", model, out, **options)


__all__ = ["IMPORTER", "build", "import_aiconfigurator"]
