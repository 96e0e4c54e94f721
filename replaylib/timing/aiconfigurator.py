"""Timing tables from NVIDIA's aiconfigurator estimator (optional extra ``aic``).

:func:`estimate_tables` sweeps aiconfigurator's static estimator over a grid —
one prefill pass per (context, new tokens), one decode step per (context,
batch) — and returns :class:`AicTables`: the curves plus where every number
came from.  :meth:`AicTables.to_builtins` gives the ``timing:`` /
``provenance:`` structure a systems YAML holds.

What the numbers are (aiconfigurator 0.12, ``aiconfigurator.cli.api.cli_estimate``):

- **prefill** ``pass_ms`` at ``(context c, tokens n)``: ``mode="static_ctx"``,
  ``batch_size=1``, ``isl=c+n``, ``prefix=c`` (``c`` tokens already in the KV
  cache), its ``context_latency``: one forward pass over ``n`` new tokens of
  one sequence;
- **decode** ``step_ms`` at ``(context c, batch b)``: ``mode="static_gen"``,
  ``batch_size=b``, ``isl=c``, ``osl=2``, its ``generation_latency``: exactly
  one decode step of ``b`` sequences with ``c`` tokens each in the KV cache
  (aiconfigurator's ``tpot`` is ``generation_latency / (osl - 1)``, so this is
  its TPOT at that point).

Both are **sums of per-operation GPU kernel latencies** (GEMMs, attention,
norms, all-reduce) looked up in (and interpolated between the points of) the
chosen database: no framework or scheduling overhead, no sampling, no
queueing, no KV transfer.  The latency share that comes from measured rows
(``silicon``) rather than formula fallbacks is reported in ``source``.
Points where ``batch × context`` exceeds the GPU's KV memory are still
estimated (kernel time of a batch that would not fit).

``pass_overhead_ms`` (the per-pass cost of the table model's telescoping rule,
which prices a pass of several prompts) is fitted to aiconfigurator's own
batched prefill passes; a single-prompt curve cannot say it.  aiconfigurator
prices a batched pass close to one pass over the total tokens, so the rule's
error on such passes is sizeable (up to about a third at 256-512 tokens a
prompt; a few percent from 1k tokens up) and is reported.

aiconfigurator is imported lazily: without it, :func:`estimate_tables` raises
:class:`AicUnavailable` naming the extra (``pip install 'replaylib[aic]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from replaylib.errors import ReplaylibError

__all__ = [
    "DEFAULT_DECODE_BATCHES",
    "DEFAULT_DECODE_CONTEXTS",
    "DEFAULT_PREFILL_CONTEXTS",
    "DEFAULT_PREFILL_TOKENS",
    "AicError",
    "AicProvenance",
    "AicTables",
    "AicUnavailable",
    "DecodeCurve",
    "PrefillCurve",
    "estimate_tables",
]

#: New tokens per prefill pass.  aiconfigurator's GEMM tables are measured at
#: these token counts (and the next one: its kernels change tile at 512/513,
#: 1024/1025 ...), so the estimate is piecewise linear between them; above
#: 4353 the quadratic attention term needs the extra points.  Piecewise-linear
#: interpolation on this grid is within 1% of the estimator (tests/test_aic.py,
#: docs/fleet_model.md has the measured figures).
DEFAULT_PREFILL_TOKENS: tuple[int, ...] = (
    1, 2, 4, 8, 16, 17, 32, 33, 48, 49, 64, 65, 96, 97, 128, 129, 160, 161, 192, 193, 224, 225, 256, 257,
    512, 513, 768, 769, 1024, 1025, 1280, 1281, 1536, 1537, 1792, 1793, 2048, 2049, 2304, 2305,
    2560, 2561, 2816, 2817, 3072, 3073, 3328, 3329, 3584, 3585, 3840, 3841, 4096, 4097, 4352, 4353,
    5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768,
    40960, 49152, 65536, 81920, 98304, 114688, 131072,
)  # fmt: skip
#: Tokens already in the KV cache before the pass (0 = a fresh prompt).
DEFAULT_PREFILL_CONTEXTS: tuple[int, ...] = (0, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
#: Sequences in the decode batch: every batch to 17, then aiconfigurator's GEMM
#: rows (32/33, 48/49 ... 224/225) with the points just under a power of two
#: (31, 63, 127, 255) and between rows, where its attention term bends.
DEFAULT_DECODE_BATCHES: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20, 24, 28, 31, 32, 33, 40, 48, 49, 56,
    63, 64, 65, 72, 80, 81, 88, 96, 97, 104, 112, 113, 120, 127, 128, 129, 144, 160, 161, 176,
    192, 193, 208, 224, 225, 240, 255, 256,
)  # fmt: skip
#: Mean KV tokens per running sequence.
DEFAULT_DECODE_CONTEXTS: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192, 12288, 16384, 24576, 32768, 49152, 65536, 98304, 131072)

#: Prompts per pass and tokens per prompt of the batched prefill estimates that
#: fix ``pass_overhead_ms`` (at most 16,384 tokens per pass).
_OVERHEAD_BATCHES: tuple[int, ...] = (2, 4, 8, 16)
_OVERHEAD_TOKENS: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
_OVERHEAD_MAX_PASS = 16384

_EXTRA = "pip install 'replaylib[aic]'"


class AicError(ReplaylibError):
    """A call to :func:`estimate_tables` that cannot be answered (bad argument, estimator failure)."""


class AicUnavailable(AicError):
    """aiconfigurator is not installed."""


class PrefillCurve(msgspec.Struct, frozen=True, kw_only=True):
    context: int  #: tokens already in KV before the pass
    tokens: tuple[int, ...]  #: new tokens in the pass, strictly increasing
    pass_ms: tuple[float, ...]


class DecodeCurve(msgspec.Struct, frozen=True, kw_only=True):
    context: int  #: KV tokens per running sequence
    batch: tuple[int, ...]  #: strictly increasing
    step_ms: tuple[float, ...]


class AicProvenance(msgspec.Struct, frozen=True, kw_only=True):
    """Where the numbers come from, as a systems YAML records it."""

    tool: str  #: "aiconfigurator"
    version: str  #: aiconfigurator's version
    database: str  #: mode, system, backend and version of the perf database, and its content hash
    call: str  #: the replaylib call that made the tables (reproduces them)
    source: str  #: what the numbers are: the estimator calls behind each point and their meaning


class AicTables(msgspec.Struct, frozen=True, kw_only=True):
    """aiconfigurator's estimates on a grid, with their provenance."""

    model: str
    system: str
    backend: str
    backend_version: str
    tp: int
    gemm_quant: str
    kv_quant: str
    prefill: tuple[PrefillCurve, ...]
    decode: tuple[DecodeCurve, ...]
    provenance: AicProvenance
    #: latency share (0..1) of the estimate that came from measured database rows
    silicon_share: float
    #: the per-pass cost a pass of several prompts pays once (``timing.prefill.pass_overhead_ms``)
    pass_overhead_ms: float
    #: the largest relative error of that telescoping rule against aiconfigurator's batched passes
    pass_overhead_error: float

    def to_builtins(self) -> dict[str, Any]:
        """The systems-YAML structure: ``{"timing": {"model": "table", ...}, "provenance": {...}}``."""
        return {
            "timing": {
                "model": "table",
                "prefill": {
                    "curves": [
                        {"context": c.context, "tokens": list(c.tokens), "pass_ms": list(c.pass_ms)} for c in self.prefill
                    ],
                    "pass_overhead_ms": self.pass_overhead_ms,
                },
                "decode": {
                    "curves": [
                        {"context": c.context, "batch": list(c.batch), "step_ms": list(c.step_ms)} for c in self.decode
                    ]
                },
            },
            "provenance": msgspec.to_builtins(self.provenance),
        }

    def to_yaml(self) -> str:
        """:meth:`to_builtins` as YAML text (each list of numbers on one line)."""
        import yaml

        class _Dumper(yaml.SafeDumper):
            pass

        def _list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
            flat = not any(isinstance(x, (dict, list)) for x in data)  # numbers on one line, curves one per item
            return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

        _Dumper.add_representer(list, _list)
        return yaml.dump(self.to_builtins(), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


# -- the estimator ----------------------------------------------------------------------------


def estimate_tables(
    model: str = "meta-llama/Meta-Llama-3.1-70B",
    system: str = "h100_sxm",
    backend: str = "trtllm",
    backend_version: str | None = None,
    *,
    tp: int = 2,
    gemm_quant: str = "fp8",
    kv_quant: str = "fp8",
    prefill_tokens: Sequence[int] = DEFAULT_PREFILL_TOKENS,
    prefill_contexts: Sequence[int] = DEFAULT_PREFILL_CONTEXTS,
    decode_batches: Sequence[int] = DEFAULT_DECODE_BATCHES,
    decode_contexts: Sequence[int] = DEFAULT_DECODE_CONTEXTS,
    database_mode: str = "SILICON",
) -> AicTables:
    """Sweep aiconfigurator's estimator for one model / system / backend / parallelism / quantisation.

    ``backend_version`` defaults to aiconfigurator's latest database for the
    system and backend.  Grids must be strictly increasing integers (tokens and
    batches >= 1; prefill contexts start at 0, decode contexts >= 1) and stay
    within the model's context length (a prefill curve keeps the tokens for
    which context + tokens fit it, at least one).  Errors are :class:`AicError` naming the
    argument; nothing is downloaded (the model must be one aiconfigurator ships
    a config for, or a local folder with a ``config.json``).
    """
    grids = {
        "prefill_tokens": _grid("prefill_tokens", prefill_tokens, low=1),
        "prefill_contexts": _grid("prefill_contexts", prefill_contexts, low=0),
        "decode_batches": _grid("decode_batches", decode_batches, low=1),
        "decode_contexts": _grid("decode_contexts", decode_contexts, low=1),
    }
    if grids["prefill_contexts"][0] != 0:
        raise AicError(f"prefill_contexts: must start at 0 (a fresh prompt), got {list(grids['prefill_contexts'])}")
    if not isinstance(tp, int) or isinstance(tp, bool) or tp < 1:
        raise AicError(f"tp: expected an integer >= 1, got {tp!r}")
    api = _import()
    with _quiet():
        _check_choices(api, model, system, backend, gemm_quant, kv_quant, database_mode)
        limit = _max_context(api, model)
        # each prefill curve stops where context + tokens would pass the model's context window
        per_context = {c: tuple(n for n in grids["prefill_tokens"] if limit is None or c + n <= limit)
                       for c in grids["prefill_contexts"]}
        if limit is not None:
            for c, tokens in per_context.items():
                if not tokens:
                    raise AicError(
                        f"prefill_contexts: at context {c} none of prefill_tokens fits {model}'s context "
                        f"length {limit} (context + tokens <= {limit})"
                    )
            if grids["decode_contexts"][-1] > limit:
                raise AicError(f"decode_contexts: {grids['decode_contexts'][-1]} exceeds {model}'s context length {limit}")
        version = backend_version if backend_version is not None else _latest_version(api, system, backend)
        if version not in api.supported.get(system, {}).get(backend, ()):
            known = ", ".join(api.supported.get(system, {}).get(backend, ())) or "none"
            raise AicError(f"backend_version: {version!r} is not a {backend} database for {system} (known: {known})")
        common = dict(
            backend_name=backend, backend_version=version, database_mode=database_mode, tp_size=tp,
            gemm_quant_mode=gemm_quant, kvcache_quant_mode=kv_quant,
        )  # fmt: skip
        share = _Share()
        prefill = []
        for c in grids["prefill_contexts"]:
            ms = [share.add(_estimate(api, model, system, "static_ctx", isl=c + n, osl=1, batch_size=1, prefix=c, **common))
                  for n in per_context[c]]
            prefill.append(PrefillCurve(context=c, tokens=per_context[c], pass_ms=tuple(ms)))
        overhead, overhead_error = _pass_overhead(api, model, system, prefill, common)
        decode = []
        for c in grids["decode_contexts"]:
            ms = [share.add(_estimate(api, model, system, "static_gen", isl=c, osl=2, batch_size=b, prefix=0, **common))
                  for b in grids["decode_batches"]]
            decode.append(DecodeCurve(context=c, batch=grids["decode_batches"], step_ms=tuple(ms)))
    call = (
        f"replaylib.timing.aiconfigurator.estimate_tables(model={model!r}, system={system!r}, backend={backend!r}, "
        f"backend_version={version!r}, tp={tp}, gemm_quant={gemm_quant!r}, kv_quant={kv_quant!r}, "
        + ", ".join(f"{name}={list(values)}" for name, values in grids.items())
        + f", database_mode={database_mode!r})"
    )
    source = (
        f"aiconfigurator {api.version} (aiconfigurator-core {api.core_version}) static estimator, "
        f"aiconfigurator.cli.api.cli_estimate(model_path={model!r}, system_name={system!r}, backend_name={backend!r}, "
        f"backend_version={version!r}, database_mode={database_mode!r}, tp_size={tp}, gemm_quant_mode={gemm_quant!r}, "
        f"kvcache_quant_mode={kv_quant!r}, ...): prefill pass_ms = context_latency of mode='static_ctx', batch_size=1, "
        "isl=context+tokens, prefix=context; decode step_ms = generation_latency of mode='static_gen', batch_size=batch, "
        "isl=context, osl=2 (one step). Sums of per-op GPU kernel latencies: no framework/scheduling overhead, "
        f"no queueing, no KV transfer; {share.fraction:.1%} of the summed latency from measured (silicon) rows. "
        f"pass_overhead_ms = {overhead:.4g}: least-squares fit of P(b x n) = b*S(n) - (b-1)*h to static_ctx "
        f"passes of b = {list(_OVERHEAD_BATCHES)} prompts of n = {list(_OVERHEAD_TOKENS)} tokens "
        f"(<= {_OVERHEAD_MAX_PASS} per pass), capped at the cheapest one-token pass; worst error {overhead_error:.0%}"
    )
    provenance = AicProvenance(
        tool="aiconfigurator",
        version=api.version,
        database=f"{database_mode} {system}/{backend}/{version} (sha256 {_database_hash(api, system, backend, version)[:16]})",
        call=call,
        source=source,
    )
    return AicTables(
        model=model, system=system, backend=backend, backend_version=version, tp=tp,
        gemm_quant=gemm_quant, kv_quant=kv_quant, prefill=tuple(prefill), decode=tuple(decode),
        provenance=provenance, silicon_share=share.fraction, pass_overhead_ms=overhead, pass_overhead_error=overhead_error,
    )  # fmt: skip


# -- internals ----------------------------------------------------------------------------------


class _Api(msgspec.Struct, kw_only=True):
    """The parts of aiconfigurator this module uses (imported once, lazily)."""

    estimate: Any
    version: str
    core_version: str
    supported: dict[str, dict[str, list[str]]]
    latest: Any
    default_models: frozenset[str]
    model_config: Any
    gemm_modes: tuple[str, ...]
    kv_modes: tuple[str, ...]
    data_root: str


_API: _Api | None = None


def _import() -> _Api:
    global _API
    if _API is not None:
        return _API
    try:
        import importlib.metadata as md

        with _quiet():
            from aiconfigurator.cli.api import cli_estimate
            from aiconfigurator_core.sdk import common
            from aiconfigurator_core.sdk.perf_database import get_latest_database_version, get_supported_databases
            from aiconfigurator_core.sdk.utils import get_model_config_from_model_path
            import aiconfigurator_core

            supported = {s: {b: list(v) for b, v in bv.items()} for s, bv in get_supported_databases().items()}
    except ImportError as exc:
        raise AicUnavailable(f"aiconfigurator is not installed ({exc.name or exc}); install the extra: {_EXTRA}") from None
    _API = _Api(
        estimate=cli_estimate,
        version=md.version("aiconfigurator"),
        core_version=md.version("aiconfigurator-core"),
        supported=supported,
        latest=get_latest_database_version,
        default_models=frozenset(common.DefaultHFModels),
        model_config=get_model_config_from_model_path,
        gemm_modes=tuple(m.name for m in common.GEMMQuantMode),
        kv_modes=tuple(m.name for m in common.KVCacheQuantMode),
        data_root=os.path.join(os.path.dirname(aiconfigurator_core.__file__), "systems"),
    )
    return _API


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """aiconfigurator logs database-loading notes at WARNING; keep them off the user's terminal."""
    loggers = [logging.getLogger(name) for name in ("aiconfigurator", "aiconfigurator_core")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _grid(name: str, values: Sequence[int], *, low: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise AicError(f"{name}: expected a non-empty list of integers, got {values!r}")
    out: list[int] = []
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            raise AicError(f"{name}[{i}]: expected an integer, got {v!r}")
        if v < low:
            raise AicError(f"{name}[{i}]: expected an integer >= {low}, got {v}")
        if out and v <= out[-1]:
            raise AicError(f"{name}[{i}]: the grid must be strictly increasing, got {v} after {out[-1]}")
        out.append(v)
    return tuple(out)


def _check_choices(api: _Api, model: str, system: str, backend: str, gemm: str, kv: str, database_mode: str) -> None:
    if system not in api.supported:
        raise AicError(f"system: unknown system {system!r}; aiconfigurator knows {', '.join(sorted(api.supported))}")
    if backend not in api.supported[system]:
        raise AicError(f"backend: {backend!r} has no database for {system}; known: {', '.join(sorted(api.supported[system]))}")
    if model not in api.default_models and not os.path.isfile(os.path.join(model, "config.json")):
        llamas = sorted(m for m in api.default_models if "llama" in m.lower())
        raise AicError(
            f"model: {model!r} is neither a model aiconfigurator ships a config for (e.g. {', '.join(llamas[:4])}) "
            "nor a local folder with a config.json"
        )
    if gemm not in api.gemm_modes:
        raise AicError(f"gemm_quant: unknown mode {gemm!r}; expected one of {', '.join(api.gemm_modes)}")
    if kv not in api.kv_modes:
        raise AicError(f"kv_quant: unknown mode {kv!r}; expected one of {', '.join(api.kv_modes)}")
    if database_mode != "SILICON":
        raise AicError(f"database_mode: only 'SILICON' (measured data) is supported, got {database_mode!r}")


def _max_context(api: _Api, model: str) -> int | None:
    try:
        raw = api.model_config(model).get("raw_config", {})
    except Exception as exc:  # noqa: BLE001 - aiconfigurator raises several types here
        raise AicError(f"model: aiconfigurator cannot read {model!r}: {exc}") from None
    value = raw.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def _latest_version(api: _Api, system: str, backend: str) -> str:
    version = api.latest(system=system, backend=backend)
    if version is None:
        raise AicError(f"backend_version: aiconfigurator has no {backend} database for {system}")
    return str(version)


class _Share:
    """Accumulates the latency that came from measured database rows."""

    def __init__(self) -> None:
        self.silicon = 0.0
        self.total = 0.0

    def add(self, point: tuple[float, float]) -> float:
        ms, silicon = point
        self.total += ms
        self.silicon += silicon
        return ms

    @property
    def fraction(self) -> float:
        return self.silicon / self.total if self.total else 0.0


def _estimate(api: _Api, model: str, system: str, mode: str, **kw: Any) -> tuple[float, float]:
    """One estimator point: (latency ms, the part of it from silicon rows)."""
    try:
        result = api.estimate(model, system, mode=mode, **kw)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise AicError(f"aiconfigurator could not estimate {mode} for {model} on {system} with {kw}: {exc}") from None
    if mode == "static_ctx":
        ms = float(result.raw["context_latency"])
        ops, sources = result.summary.get_context_latency_dict(), result.summary.get_context_source_dict()
    else:
        ms = float(result.raw["generation_latency"])
        ops, sources = result.summary.get_generation_latency_dict(), result.summary.get_generation_source_dict()
    if not ms > 0:
        raise AicError(f"aiconfigurator returned a non-positive latency ({ms} ms) for {mode} with {kw}")
    silicon = sum(v for k, v in ops.items() if sources.get(k) == "silicon")
    return ms, silicon


def _pass_overhead(api: _Api, model: str, system: str, prefill: list[PrefillCurve], common: dict[str, Any]) -> tuple[float, float]:
    """The per-pass cost ``h`` of the table model's telescoping rule (docs/fleet_model.md, "Prefill:
    telescoping chunk costs"): a pass of ``b`` fresh prompts of ``n`` tokens costs ``b·S(n) − (b−1)·h``.

    aiconfigurator's single-prompt curve ``S`` is flat at small ``n`` (weight reads), and its batched
    pass is close to a single pass of the total tokens, so no constant ``h`` is exact; this is the
    least-squares fit in relative error to its batched passes, capped so that no curve's first point
    is below it (the loader's rule).  Returns ``(h, worst relative error at the fitted points)``.
    """
    single = {}
    rows = []
    for n in _OVERHEAD_TOKENS:
        single[n] = _estimate(api, model, system, "static_ctx", isl=n, osl=1, batch_size=1, prefix=0, **common)[0]
        for b in _OVERHEAD_BATCHES:
            if b * n <= _OVERHEAD_MAX_PASS:
                rows.append((b, single[n], _estimate(api, model, system, "static_ctx", isl=n, osl=1, batch_size=b, prefix=0, **common)[0]))
    # minimise sum(((b*S - (b-1)*h) / P - 1)^2): linear in h
    num = sum(((b * s) / p - 1.0) * ((b - 1) / p) for b, s, p in rows)
    den = sum(((b - 1) / p) ** 2 for b, s, p in rows)
    cap = min(c.pass_ms[0] for c in prefill)
    h = min(max(num / den, 0.0), cap)
    worst = max(abs((b * s - (b - 1) * h) / p - 1.0) for b, s, p in rows)
    return h, worst


def _database_hash(api: _Api, system: str, backend: str, version: str) -> str:
    """sha256 over the database files of ``system/*/backend/version`` (names and bytes, in sorted order)."""
    h = hashlib.sha256()
    root = os.path.join(api.data_root, "data", system)
    if not os.path.isdir(root):
        return "unknown"
    for family in sorted(os.listdir(root)):
        d = os.path.join(root, family, backend, version)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isfile(path):
                h.update(f"{family}/{name}\0".encode())
                with open(path, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()
