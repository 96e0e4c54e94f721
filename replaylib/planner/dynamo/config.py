"""From a scenario to Dynamo's own configuration: its ``PlannerConfig`` and ``WorkerCapabilities``.

``PlannerConfig`` is built from, in increasing precedence:

1. replay defaults (:data:`REPLAY_DEFAULTS`): a replay writes no HTML reports
   and opens no ports unless the scenario asks for them;
2. the scenario's planner keys (:data:`SCENARIO_KEYS`): ``adjustment_interval_s``
   (whole seconds), ``ttft_ms``, ``itl_ms``, ``predictor`` (``constant`` and
   ``kalman``; replaylib's ``moving_average`` has no Dynamo counterpart and
   leaves Dynamo's default), ``min_endpoint``, ``max_gpu_budget``, and the
   system's GPUs per worker as ``prefill_engine_num_gpu``/``decode_engine_num_gpu``;
3. the scenario's ``planner.dynamo:`` block: any ``PlannerConfig`` field (or
   alias), passed through unchanged.

Dynamo's pydantic model validates the result; a field it rejects, or a key that
is not one of its fields (Dynamo itself would ignore it silently), is a
:class:`~replaylib.planner.protocol.PlannerError` naming the scenario key.

``WorkerCapabilities`` (what Dynamo's live planner reads from each worker's
model deployment card) come from the system and the fleet: GPUs per worker,
``max_num_batched_tokens``, ``max_num_seqs``, the model's ``context_length``
(``systems/*.yaml``: the engine's ``max_model_len``) and the KV capacity per
worker.  ``planner.dynamo.worker_capabilities`` — the one key of the block that
is not a ``PlannerConfig`` field — overrides any of Dynamo's
``EngineCapabilities`` fields, for both roles (flat) or per role
(``{prefill: {...}, decode: {...}}``).

Modes: Dynamo plans ``mode: disagg`` (both roles), ``prefill`` or ``decode``
(one role; the other keeps its workers).  ``agg`` plans aggregated workers,
which replaylib's fleet does not have.  ``optimization_target`` ``throughput``
(Dynamo's default), ``latency`` and ``load`` are Dynamo's load-based scaling on
per-worker forward-pass metrics; ``sla`` runs AISimulate's performance model
and fails at load when AISimulate is only stood in for (:mod:`.standins`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

import msgspec

from replaylib.planner.dynamo.loader import DynamoApi
from replaylib.planner.protocol import PlannerContext, PlannerError

#: ``planner:`` scenario key -> the Dynamo ``PlannerConfig`` field it sets.
SCENARIO_KEYS: tuple[tuple[str, str], ...] = (
    ("adjustment_interval_s", "load_adjustment_interval_seconds"),
    ("ttft_ms", "ttft_ms"),
    ("itl_ms", "itl_ms"),
    ("predictor", "load_predictor"),
    ("min_endpoint", "min_endpoint"),
    ("max_gpu_budget", "max_gpu_budget"),
)
#: replaylib predictor -> Dynamo ``load_predictor`` (the others have no counterpart).
PREDICTORS: dict[str, str] = {"constant": "constant", "kalman": "kalman"}
#: What a replay sets unless the ``planner.dynamo:`` block says otherwise: no report files, no ports.
REPLAY_DEFAULTS: dict[str, Any] = {
    "report_interval_hours": None,
    "live_dashboard_port": 0,
    "metric_reporting_prometheus_port": 0,
    "control_api_port": 0,
}
#: The block key that is not a PlannerConfig field: overrides of Dynamo's EngineCapabilities.
CAPABILITIES_KEY = "worker_capabilities"
#: Dynamo modes replaylib's disaggregated fleet can host.
MODES: tuple[str, ...] = ("disagg", "prefill", "decode")
#: Optimisation targets that run without AISimulate (Dynamo's load-based scaling).
TARGETS_WITHOUT_AISIMULATE: tuple[str, ...] = ("throughput", "latency", "load")
_ROLES = ("prefill", "decode")
_REDACTED = "<redacted>"


class DynamoSetup(msgspec.Struct, frozen=True, kw_only=True):
    """What the bridge hands Dynamo, and its canonical JSON for the recording's metadata."""

    config: Any  #: Dynamo's PlannerConfig
    capabilities: Any  #: Dynamo's WorkerCapabilities
    config_json: str  #: the full PlannerConfig (secrets redacted), keys sorted
    capabilities_json: str


def build_setup(api: DynamoApi, ctx: PlannerContext) -> DynamoSetup:
    """Dynamo's PlannerConfig and WorkerCapabilities for the scenario in ``ctx`` (see the module docstring)."""
    block = dict(ctx.config.dynamo)
    overrides = block.pop(CAPABILITIES_KEY, None)
    _check_fields(api, block)
    values: dict[str, Any] = dict(REPLAY_DEFAULTS)
    origin: dict[str, str] = {}
    for key, field in SCENARIO_KEYS:
        value = _scenario_value(key, getattr(ctx.config, key))
        if value is not None:
            values[field] = value
            origin[field] = f"planner.{key}"
    gpus = ctx.system.model.gpus_per_worker
    for field in ("prefill_engine_num_gpu", "decode_engine_num_gpu"):
        values[field] = gpus
        origin[field] = "system model.gpus_per_worker"
    fields = _field_names(api)
    for key, value in block.items():
        field = fields[key]
        if key != field:  # an alias: it must win over a value mapped onto the field's own name
            values.pop(field, None)
        values[key] = value
        origin[field] = origin[key] = f"planner.dynamo.{key}"
    config = _validate(api, values, origin)
    _check_supported(api, config)
    capabilities = _capabilities(api, ctx, overrides)
    return DynamoSetup(
        config=config,
        capabilities=capabilities,
        config_json=msgspec.json.encode(_redact(config.model_dump(mode="json")), order="sorted").decode(),
        capabilities_json=msgspec.json.encode(dataclasses.asdict(capabilities), order="sorted").decode(),
    )


def _scenario_value(key: str, value: Any) -> Any:
    if key == "adjustment_interval_s":
        if float(value) != int(value):
            raise PlannerError(
                f"planner.adjustment_interval_s: {value!r} s; Dynamo's load_adjustment_interval_seconds takes whole seconds"
            )
        return int(value)
    if key == "predictor":
        return PREDICTORS.get(value)  # moving_average: no Dynamo counterpart, Dynamo's default stays
    return value


def _field_names(api: DynamoApi) -> dict[str, str]:
    """Every name Dynamo's PlannerConfig accepts (fields and their aliases) -> its field."""
    names: dict[str, str] = {}
    for name, info in api.PlannerConfig.model_fields.items():
        names[name] = name
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if isinstance(alias, str):
            names[alias] = name
        elif choices:
            names.update((c, name) for c in choices if isinstance(c, str))
    return names


def _check_fields(api: DynamoApi, block: dict[str, Any]) -> None:
    known = set(_field_names(api))
    for key in block:
        if not isinstance(key, str) or key not in known:
            near = difflib.get_close_matches(str(key), sorted(known | {CAPABILITIES_KEY}), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise PlannerError(f"planner.dynamo.{key}: not a field of Dynamo's PlannerConfig (Dynamo {api.version}){hint}")


def _validate(api: DynamoApi, values: dict[str, Any], origin: dict[str, str]) -> Any:
    from pydantic import ValidationError  # Dynamo's dependency: importable once Dynamo is

    try:
        return api.PlannerConfig.model_validate(values)
    except ValidationError as exc:
        raise PlannerError(f"Dynamo's PlannerConfig rejects {_describe(exc, origin)}") from None


def _describe(exc: Any, origin: dict[str, str]) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        loc = tuple(err.get("loc", ()))
        if not loc:
            parts.append(f"the configuration: {msg}")
            continue
        field = str(loc[0])
        where = origin.get(field, f"planner.dynamo.{field}")
        path = where + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in loc[1:])
        if not where.startswith("planner.dynamo."):
            path += f" (Dynamo's {'.'.join(str(p) for p in loc)})"
        parts.append(f"{path}: {msg} (got {err.get('input')!r})")
    return "; ".join(parts)


def _check_supported(api: DynamoApi, config: Any) -> None:
    if config.mode not in MODES:
        raise PlannerError(
            f"planner.dynamo.mode: {config.mode!r} plans aggregated workers, and replaylib's fleet is disaggregated "
            f"(prefill and decode workers); use one of {', '.join(MODES)}"
        )
    if config.optimization_target not in TARGETS_WITHOUT_AISIMULATE and api.stood_in:
        raise PlannerError(
            f"planner.dynamo.optimization_target: {config.optimization_target!r} runs Dynamo's AISimulate performance "
            "model (throughput scaling and SLA load scaling), and AISimulate is not installed — its registry wheel only "
            "downloads the real one from another index, and aisimulate_core is not published. Without it Dynamo's "
            f"load-based scaling runs: optimization_target {', '.join(TARGETS_WITHOUT_AISIMULATE)}"
        )
    roles = _ROLES if config.mode == "disagg" else (config.mode,)
    for role in roles:
        floor = config.effective_prefill_min_endpoint if role == "prefill" else config.effective_decode_min_endpoint
        if floor < 1:
            raise PlannerError(
                f"planner.dynamo: min_endpoint {floor} lets Dynamo scale {role} to zero workers; "
                "replaylib's fleet keeps at least one worker per role (set min_endpoint >= 1)"
            )


def _capabilities(api: DynamoApi, ctx: PlannerContext, overrides: Any) -> Any:
    fields = {f.name for f in dataclasses.fields(api.EngineCapabilities)}
    gpus = ctx.system.model.gpus_per_worker
    derived: dict[str, Any] = {
        "num_gpu": gpus,
        "gpu_cost_per_replica": gpus,
        "max_num_batched_tokens": ctx.fleet.max_num_batched_tokens,
        "max_num_seqs": ctx.fleet.max_num_seqs,
        "context_length": ctx.system.model.context_length,
        "max_kv_tokens": ctx.system.kv.capacity_tokens,
    }
    per_role = {role: dict(derived) for role in _ROLES}
    if overrides is not None:
        where = f"planner.dynamo.{CAPABILITIES_KEY}"
        if not isinstance(overrides, Mapping):
            raise PlannerError(f"{where}: expected a mapping of Dynamo EngineCapabilities fields, got {type(overrides).__name__}")
        for key, value in overrides.items():
            if key in _ROLES:
                if not isinstance(value, Mapping):
                    raise PlannerError(f"{where}.{key}: expected a mapping of EngineCapabilities fields, got {type(value).__name__}")
                for sub, v in value.items():
                    per_role[key][sub] = _capability(f"{where}.{key}.{sub}", sub, v, fields)
            else:
                v = _capability(f"{where}.{key}", key, value, fields)
                for role in _ROLES:
                    per_role[role][key] = v
    return api.WorkerCapabilities(
        prefill=api.EngineCapabilities(**per_role["prefill"]), decode=api.EngineCapabilities(**per_role["decode"])
    )


def _capability(where: str, name: Any, value: Any, fields: set[str]) -> int | None:
    if name not in fields:
        near = difflib.get_close_matches(str(name), sorted(fields), n=1)
        raise PlannerError(
            f"{where}: not a field of Dynamo's EngineCapabilities" + (f"; did you mean {near[0]!r}?" if near else "")
            + f" (fields: {', '.join(sorted(fields))})"
        )
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise PlannerError(f"{where}: {value!r}; expected a whole number >= 1 (or null for unknown)")
    return value


def _redact(value: Any) -> Any:
    """The configuration without its secrets (registration shared secrets, plugin bearer tokens)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "static_secrets" and isinstance(v, dict):
                out[k] = {name: _REDACTED for name in v}
            elif k == "auth_token" and v:
                out[k] = _REDACTED
            else:
                out[k] = _redact(v)
        return out
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


__all__ = ["CAPABILITIES_KEY", "MODES", "REPLAY_DEFAULTS", "SCENARIO_KEYS", "DynamoSetup", "build_setup"]
