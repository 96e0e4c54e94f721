"""``dynamo``: NVIDIA Dynamo's pre-deployment profile (``raw_data.npz``) → a table-timed system.

Input: a profile folder holding the prefill and decode ``raw_data.npz`` of
Dynamo's profiler, either as ``prefill_raw_data.npz`` / ``decode_raw_data.npz``
or in the profiler's own ``selected_prefill_interpolation/raw_data.npz`` /
``selected_decode_interpolation/raw_data.npz`` layout, and optionally the
deployment it was taken on (``disagg.yaml``: model name, GPUs per worker,
Dynamo version).

* prefill: ``prefill_isl`` (tokens, strictly increasing) and ``prefill_ttft``
  (ms) become one prefill curve at context 0; ``prefill_thpt_per_gpu`` is kept.
  The profile times single prompts on an engine with chunked prefill, so a
  prompt longer than the engine's ``max_num_batched_tokens`` was measured as
  several passes: ``--profile-max-num-batched-tokens`` (default 8192, vLLM's
  default for its OpenAI server on a GPU with at least 70 GiB) is written as
  ``measured_max_num_batched_tokens`` so the table model removes the extra
  passes' overhead (0: the profile was not chunked).
* decode: Dynamo sweeps, per context length ``y_context_length`` (mean KV tokens
  per sequence, ``isl + osl/2``), the number of concurrent requests and reports
  the KV usage ``x_kv_usage = context · requests / max_kv_tokens`` and the mean
  ITL ``z_itl``.  Each context becomes one decode curve with
  ``batch = x_kv_usage · max_kv_tokens / context``; ``z_thpt_per_gpu`` is kept.
  The points are not monotone (measurement noise): they are kept as measured.
* ``kv.capacity_tokens`` = ``max_kv_tokens``; ``model`` from ``disagg.yaml`` (or
  ``--model-name`` / ``--gpus-per-worker``).
* The GPU, its cap → speed curves, the power model, the start-up delay and the
  KV hand-off are not in a profile: they are copied from ``--gpu-from
  SYSTEM.yaml`` and may be overridden with ``--set key.path=value``; the file's
  ``provenance.assumptions`` says so in words (add your own with ``--assume``).

Bad input (a missing file or array, arrays of different lengths, NaN or
non-increasing grid points, negative times, KV usage outside (0, 1]) is a
:class:`~replaylib.timing.importers.SystemsImportError` naming the file, the
array and the offending point; nothing is written.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from typing import Any

import yaml

from replaylib.timing.importers import ImportedSystem, Importer, SystemsImportError
from replaylib.timing.importers.base_system import (
    COPIED,
    add_common_arguments,
    apply_sets,
    canonical_command,
    common_options,
    load_base,
    num as _num,
    parse_set,
    set_notes,
    sha256_of,
)

TOOL = "dynamo-profiler"
#: vLLM's default max_num_batched_tokens for its OpenAI-compatible server on a GPU with >= 70 GiB.
DEFAULT_PROFILE_BUDGET = 8192
_LAYOUTS = (("prefill_raw_data.npz", "decode_raw_data.npz"),
            (os.path.join("selected_prefill_interpolation", "raw_data.npz"), os.path.join("selected_decode_interpolation", "raw_data.npz")))
_PREFILL_ARRAYS = ("prefill_isl", "prefill_ttft")
_DECODE_ARRAYS = ("x_kv_usage", "y_context_length", "z_itl", "max_kv_tokens")


def _numpy() -> Any:
    try:
        import numpy
    except ModuleNotFoundError:
        raise SystemsImportError("reading a Dynamo profile needs numpy: pip install 'replaylib[profiles]'") from None
    return numpy


# -- reading the arrays -------------------------------------------------------------------------


def _load_npz(path: str, required: tuple[str, ...]) -> dict[str, list[float]]:
    np = _numpy()
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise SystemsImportError(f"{path}: not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise SystemsImportError(f"{path}: not a readable NPZ file ({type(exc).__name__}: {exc})") from None
    for name in required:
        if name not in arrays:
            raise SystemsImportError(f"{path}: missing array {name!r} (it has: {', '.join(sorted(arrays)) or 'none'})")
    out: dict[str, list[float]] = {}
    for name, a in arrays.items():
        if a.dtype.kind not in "iuf":
            raise SystemsImportError(f"{path}: array {name!r}: expected numbers, got dtype {a.dtype}")
        if a.ndim != 1:
            raise SystemsImportError(f"{path}: array {name!r}: expected one dimension, got shape {a.shape}")
        out[name] = [float(v) for v in a.tolist()]
    return out


def _check_finite_positive(path: str, name: str, values: list[float], what: str) -> None:
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise SystemsImportError(f"{path}: {name}[{i}] = {v}: expected a finite {what}")
        if v <= 0:
            raise SystemsImportError(f"{path}: {name}[{i}] = {v:g}: expected a {what} > 0")


def _same_length(path: str, arrays: dict[str, list[float]], names: tuple[str, ...]) -> None:
    n = len(arrays[names[0]])
    for name in names[1:]:
        if len(arrays[name]) != n:
            raise SystemsImportError(f"{path}: array {name!r} has {len(arrays[name])} points, {names[0]!r} has {n}")


def read_prefill(path: str) -> dict[str, list[float]]:
    """The validated prefill arrays (``prefill_thpt_per_gpu`` kept when present)."""
    a = _load_npz(path, _PREFILL_ARRAYS)
    names = _PREFILL_ARRAYS + (("prefill_thpt_per_gpu",) if "prefill_thpt_per_gpu" in a else ())
    _same_length(path, a, names)
    if len(a["prefill_isl"]) < 2:
        raise SystemsImportError(f"{path}: prefill_isl: expected at least two points, got {len(a['prefill_isl'])}")
    isl = a["prefill_isl"]
    _check_finite_positive(path, "prefill_isl", isl, "prompt length (tokens)")
    for i, v in enumerate(isl):
        if not v.is_integer():
            raise SystemsImportError(f"{path}: prefill_isl[{i}] = {v:g}: expected a whole number of tokens")
        if i and v <= isl[i - 1]:
            raise SystemsImportError(f"{path}: prefill_isl[{i}] = {v:g} after {isl[i - 1]:g}: expected strictly increasing prompt lengths")
    _check_finite_positive(path, "prefill_ttft", a["prefill_ttft"], "time (ms)")
    if "prefill_thpt_per_gpu" in a:
        _check_finite_positive(path, "prefill_thpt_per_gpu", a["prefill_thpt_per_gpu"], "throughput")
    return a


def read_decode(path: str) -> tuple[dict[str, list[float]], int]:
    """The validated decode arrays and ``max_kv_tokens``."""
    a = _load_npz(path, _DECODE_ARRAYS)
    names = _DECODE_ARRAYS[:3] + (("z_thpt_per_gpu",) if "z_thpt_per_gpu" in a else ())
    _same_length(path, a, names)
    kv = a["max_kv_tokens"]
    if len(kv) != 1 or not math.isfinite(kv[0]) or kv[0] < 1 or not kv[0].is_integer():
        raise SystemsImportError(f"{path}: max_kv_tokens: expected one whole number of tokens >= 1, got {kv}")
    x, y = a["x_kv_usage"], a["y_context_length"]
    if not x:
        raise SystemsImportError(f"{path}: x_kv_usage: no points")
    for i, v in enumerate(x):
        if not math.isfinite(v):
            raise SystemsImportError(f"{path}: x_kv_usage[{i}] = {v}: expected a finite KV usage")
        if not 0 < v <= 1:
            raise SystemsImportError(f"{path}: x_kv_usage[{i}] = {v:g}: KV usage is a fraction of max_kv_tokens, expected in (0, 1]")
    _check_finite_positive(path, "y_context_length", y, "context length (tokens)")
    _check_finite_positive(path, "z_itl", a["z_itl"], "time (ms)")
    if "z_thpt_per_gpu" in a:
        _check_finite_positive(path, "z_thpt_per_gpu", a["z_thpt_per_gpu"], "throughput")
    return a, int(kv[0])


def decode_curves(path: str, a: dict[str, list[float]], max_kv: int) -> list[dict[str, Any]]:
    """One curve per context, in context order; within a context the KV usage must increase."""
    x, y, itl = a["x_kv_usage"], a["y_context_length"], a["z_itl"]
    thpt = a.get("z_thpt_per_gpu")
    groups: dict[float, list[int]] = {}
    for i, ctx in enumerate(y):
        groups.setdefault(ctx, []).append(i)
    curves = []
    for ctx in sorted(groups):
        idx = groups[ctx]
        if len(idx) < 2:
            raise SystemsImportError(f"{path}: y_context_length {ctx:g} has one point (index {idx[0]}): a decode curve needs at least two")
        batch: list[float | int] = []
        for n, i in enumerate(idx):
            if n and x[i] <= x[idx[n - 1]]:
                raise SystemsImportError(f"{path}: x_kv_usage[{i}] = {x[i]:g} after x_kv_usage[{idx[n - 1]}] = {x[idx[n - 1]]:g} "
                                         f"at y_context_length {ctx:g}: expected increasing KV usage within a context")
            b = x[i] * max_kv / ctx
            nearest = round(b)
            b = nearest if abs(b - nearest) <= 1e-6 * max(b, 1.0) else round(b, 6)
            if b < 1:
                raise SystemsImportError(f"{path}: x_kv_usage[{i}] = {x[i]:g} at y_context_length {ctx:g} is {b:g} sequences "
                                         f"of max_kv_tokens {max_kv}: a decode point needs at least one")
            batch.append(b)
        curve: dict[str, Any] = {"context": _num(ctx), "batch": [_num(b) for b in batch], "step_ms": [_num(itl[i]) for i in idx]}
        if thpt is not None:
            curve["thpt_per_gpu"] = [_num(thpt[i]) for i in idx]
        curves.append(curve)
    return curves


# -- the deployment -----------------------------------------------------------------------------


def read_deployment(path: str) -> dict[str, Any]:
    """Model name, GPUs per worker (prefill and decode must agree) and the Dynamo version of ``disagg.yaml``."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise SystemsImportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SystemsImportError(f"{path}: invalid YAML: {exc}") from None
    services = ((doc or {}).get("spec") or {}).get("services") or {}
    found: dict[str, dict[str, Any]] = {}
    versions: set[str] = set()
    for name, svc in sorted(services.items()):
        if not isinstance(svc, dict):
            continue
        container = ((svc.get("extraPodSpec") or {}).get("mainContainer") or {})
        image = str(container.get("image") or "")
        m = re.search(r"ai-dynamo/[\w.-]+:(\d+\.\d+\.\d+\S*)$", image)
        if m:
            versions.add(m.group(1))
        if svc.get("componentType") != "worker":
            continue
        args = " ".join(str(a) for a in (container.get("args") or []))
        role = "prefill" if re.search(r"--disaggregation-mode\s+prefill|--is-prefill-worker", args) or "prefill" in name.lower() else "decode"
        resources = svc.get("resources") or {}
        gpu = (resources.get("limits") or {}).get("gpu") or (resources.get("requests") or {}).get("gpu")
        tp = re.search(r"--tensor-parallel-size\s+(\d+)", args)
        model = re.search(r"--model(?:-path)?\s+(\S+)", args)
        found[role] = {"gpus": int(tp.group(1)) if tp else (int(gpu) if gpu is not None else None),
                       "model": model.group(1) if model else None, "service": name}
    return {"roles": found, "version": sorted(versions)[0] if len(versions) == 1 else None, "versions": sorted(versions)}


# -- options ------------------------------------------------------------------------------------


def _find_profile(profile_dir: str) -> tuple[str, str]:
    if not os.path.isdir(profile_dir):
        raise SystemsImportError(f"{profile_dir}: not a folder (expected a Dynamo profile folder)")
    for pre, dec in _LAYOUTS:
        p, d = os.path.join(profile_dir, pre), os.path.join(profile_dir, dec)
        if os.path.exists(p) or os.path.exists(d):
            return p, d
    names = " or ".join(f"{a} + {b}" for a, b in _LAYOUTS)
    raise SystemsImportError(f"{profile_dir}: no Dynamo profile here (looked for {names})")


def canonical_call(profile_dir: str, out: str, *, name: str | None, description: str | None, gpu_from: str,
                   profile_max_num_batched_tokens: int, pass_overhead_ms: float | None, model_name: str | None,
                   gpus_per_worker: int | None, tool_version: str | None, sets: tuple[str, ...],
                   assumptions: tuple[str, ...]) -> str:
    """The command line that makes this file: the options given (None: derived), in a fixed order."""
    argv: list[str] = []
    for flag, value in (("--model-name", model_name), ("--gpus-per-worker", gpus_per_worker),
                        ("--tool-version", tool_version), ("--pass-overhead-ms", pass_overhead_ms)):
        if value is not None:
            argv += [flag, str(value)]
    if profile_max_num_batched_tokens != DEFAULT_PROFILE_BUDGET:
        argv += ["--profile-max-num-batched-tokens", str(profile_max_num_batched_tokens)]
    return canonical_command("dynamo", profile_dir, out, argv, name=name, description=description, gpu_from=gpu_from,
                             sets=sets, assumptions=assumptions)


def build(
    profile_dir: str,
    out: str,
    *,
    gpu_from: str | None = None,
    name: str | None = None,
    description: str | None = None,
    profile_max_num_batched_tokens: int = DEFAULT_PROFILE_BUDGET,
    pass_overhead_ms: float | None = None,
    model_name: str | None = None,
    gpus_per_worker: int | None = None,
    tool_version: str | None = None,
    sets: tuple[str, ...] | list[str] = (),
    assumptions: tuple[str, ...] | list[str] = (),
) -> ImportedSystem:
    """The systems document for ``profile_dir`` (see the module docstring); writes nothing."""
    from replaylib.timing.table import default_pass_overhead_ms

    sets, assumptions = tuple(sets), tuple(assumptions)
    call = canonical_call(profile_dir, out, name=name, description=description, gpu_from=gpu_from or "",
                          profile_max_num_batched_tokens=profile_max_num_batched_tokens, pass_overhead_ms=pass_overhead_ms,
                          model_name=model_name, gpus_per_worker=gpus_per_worker, tool_version=tool_version,
                          sets=sets, assumptions=assumptions)
    base = load_base(gpu_from, "a Dynamo profile measures no GPU power")
    base_system = base.system
    if profile_max_num_batched_tokens < 0:
        raise SystemsImportError(f"--profile-max-num-batched-tokens: expected 0 (not chunked) or a token budget, got {profile_max_num_batched_tokens}")
    if pass_overhead_ms is not None and not (math.isfinite(pass_overhead_ms) and pass_overhead_ms >= 0):
        raise SystemsImportError(f"--pass-overhead-ms: expected a number >= 0, got {pass_overhead_ms}")
    parsed_sets = [parse_set(s) for s in sets]
    prefill_path, decode_path = _find_profile(profile_dir)
    pre = read_prefill(prefill_path)
    dec, max_kv = read_decode(decode_path)
    curves = decode_curves(decode_path, dec, max_kv)

    deployment_path = os.path.join(profile_dir, "disagg.yaml")
    deployment = read_deployment(deployment_path) if os.path.exists(deployment_path) else None
    roles = deployment["roles"] if deployment else {}
    if model_name is None:
        names = {r["model"] for r in roles.values() if r["model"]}
        if len(names) != 1:
            raise SystemsImportError(f"{deployment_path}: {'no' if not names else 'more than one'} served model found "
                                     f"({', '.join(sorted(names))}); give --model-name")
        model_name = names.pop()
    if gpus_per_worker is None:
        counts = {role: r["gpus"] for role, r in roles.items() if r["gpus"] is not None}
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none found"
            raise SystemsImportError(f"{deployment_path}: GPUs per worker ({detail}): a replaylib system has one count for "
                                     f"both roles; give --gpus-per-worker")
        gpus_per_worker = counts.popitem()[1]
    if gpus_per_worker < 1:
        raise SystemsImportError(f"--gpus-per-worker: expected >= 1, got {gpus_per_worker}")
    if tool_version is None:
        if deployment is None or deployment["version"] is None:
            found = ", ".join(deployment["versions"]) if deployment else "no disagg.yaml"
            raise SystemsImportError(f"{profile_dir}: cannot tell the Dynamo version ({found}); give --tool-version")
        tool_version = deployment["version"]

    tokens = [int(v) for v in pre["prefill_isl"]]
    pass_ms = [_num(v) for v in pre["prefill_ttft"]]
    overhead = pass_overhead_ms if pass_overhead_ms is not None else default_pass_overhead_ms(tokens, [float(v) for v in pass_ms])
    prefill_curve: dict[str, Any] = {"context": 0, "tokens": tokens, "pass_ms": pass_ms}
    if "prefill_thpt_per_gpu" in pre:
        prefill_curve["thpt_per_gpu"] = [_num(v) for v in pre["prefill_thpt_per_gpu"]]
    prefill: dict[str, Any] = {"curves": [prefill_curve], "pass_overhead_ms": _num(overhead)}
    if profile_max_num_batched_tokens:
        prefill["measured_max_num_batched_tokens"] = profile_max_num_batched_tokens

    out_name = name or os.path.splitext(os.path.basename(out))[0]
    gpu_model = base_system.gpu.model
    tp_text = f"TP{gpus_per_worker} per worker"
    inputs = [prefill_path, decode_path] + ([deployment_path] if deployment else []) + [gpu_from]
    source = "; ".join(f"{p} sha256:{sha256_of(p)}" for p in inputs)
    notes = [
        f"gpu, speed_curve, power_model, startup_delay_ms and timing.kv_transfer are copied from {gpu_from} "
        f"({base_system.name}: {base_system.description or base_system.model.name}); the profile measures none of them",
        f"timing.prefill.pass_overhead_ms = {_num(overhead)} ms is "
        + ("given on the command line" if pass_overhead_ms is not None else
           f"the profile's first interval ({tokens[0]} -> {tokens[1]} tokens) extended to 0 tokens")
        + ": the per-pass cost a chunked prompt pays once per extra pass",
    ]
    if profile_max_num_batched_tokens:
        notes.append(f"the prefill points were measured on an engine chunking prompts at {profile_max_num_batched_tokens} tokens "
                     "(--profile-max-num-batched-tokens; vLLM's default on a GPU with >= 70 GiB): a point above it was "
                     "several passes")
    notes.append("decode batch = x_kv_usage x max_kv_tokens / y_context_length (Dynamo's own definition of the KV usage)")
    notes += set_notes(parsed_sets, assumptions)

    doc: dict[str, Any] = {
        "name": out_name,
        "description": description or f"{gpu_model}, {model_name}, {tp_text} (Dynamo profile)",
        "provenance": {"tool": TOOL, "version": str(tool_version), "call": call, "source": source, "assumptions": notes},
        "gpu": base.doc["gpu"],
        "model": {"name": model_name, "gpus_per_worker": gpus_per_worker},
        "timing": {
            "model": "table",
            "prefill": prefill,
            "decode": {"curves": curves},
            "kv_transfer": base.kv_transfer(),
        },
        "kv": {"capacity_tokens": max_kv},
    }
    for section in COPIED[1:]:
        doc[section] = base.doc[section]
    apply_sets(doc, parsed_sets)
    header = (
        f"{doc['description']}",
        "Generated by `python -m replaylib systems import dynamo`; provenance.call is the exact call.",
        "Do not edit by hand: change the call (or the profile) and run it again; provenance says where every number comes from.",
    )
    return ImportedSystem(doc=doc, header=header)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--profile-max-num-batched-tokens", type=int, default=DEFAULT_PROFILE_BUDGET, metavar="N",
                   help=f"the profiled engine's chunk budget (default {DEFAULT_PROFILE_BUDGET}; 0: prompts were not chunked)")
    p.add_argument("--pass-overhead-ms", type=float, metavar="MS",
                   help="per-pass prefill overhead (default: the first profile interval extended to 0 tokens)")
    p.add_argument("--model-name", help="served model (default: from disagg.yaml)")
    p.add_argument("--gpus-per-worker", type=int, metavar="N", help="GPUs per worker (default: from disagg.yaml)")
    p.add_argument("--tool-version", metavar="V", help="Dynamo version (default: from disagg.yaml's images)")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        **common_options(args),
        "profile_max_num_batched_tokens": args.profile_max_num_batched_tokens, "pass_overhead_ms": args.pass_overhead_ms,
        "model_name": args.model_name, "gpus_per_worker": args.gpus_per_worker, "tool_version": args.tool_version,
    }


IMPORTER = Importer(
    name="dynamo",
    help="a Dynamo profiler output folder (prefill/decode raw_data.npz, disagg.yaml) -> a table-timed system",
    add_arguments=_add_arguments,
    options=_options,
    build=build,
)


def import_dynamo_profile(profile_dir: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> str:
    """Library call: write the systems file for a Dynamo profile (options as :func:`build`)."""
    from replaylib.timing.importers import import_system

    return import_system("dynamo", profile_dir, out, **options)


__all__ = ["DEFAULT_PROFILE_BUDGET", "IMPORTER", "build", "import_dynamo_profile"]
