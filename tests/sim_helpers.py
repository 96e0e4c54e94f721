"""Small systems and traces for fleet tests."""

from __future__ import annotations

from pathlib import Path

import msgspec

from replaylib.scenario import FleetConfig, System, load_system
from replaylib.scenario.system import DecodeTiming, KvSpec, PrefillTiming, Timing, TransferTiming
from replaylib.trace import Request

REPO = Path(__file__).resolve().parents[1]


def h100() -> System:
    return load_system(REPO / "systems" / "h100_sxm_analytic.yaml")


def tiny_system(
    *,
    kv_tokens: int = 100_000,
    startup_ms: float = 1000.0,
    prefill=(5.3, 0.11, 0.0),  # noqa: ANN001 - (base, per_token, per_token_context)
    decode=(7.7, 0.13, 0.0011),  # noqa: ANN001 - (base, per_seq, per_kv_token)
    transfer=(0.9, 0.0),  # noqa: ANN001
) -> System:
    """The h100 system with small, non-round numbers that are easy to reason about."""
    base = h100()
    t = base.timing
    timing = msgspec.structs.replace(
        t,
        prefill=msgspec.structs.replace(t.prefill, base_ms=prefill[0], per_token_ms=prefill[1], per_token_context_ms=prefill[2]),
        decode=msgspec.structs.replace(t.decode, base_ms=decode[0], per_seq_ms=decode[1], per_kv_token_ms=decode[2]),
        kv_transfer=msgspec.structs.replace(t.kv_transfer, base_ms=transfer[0], per_token_ms=transfer[1]),
    )
    return msgspec.structs.replace(
        base,
        timing=timing,
        kv=msgspec.structs.replace(base.kv, capacity_tokens=kv_tokens),
        startup_delay_ms=startup_ms,
    )


def hand_system(capacity_tokens: int = 10_000, startup_delay_ms: float = 1000.0) -> System:
    """Round numbers for hand-computed expectations (the reference stepper's unit tests):
    pass = 10 + 0.5 sum(n) + 0.001 sum(n (ctx + n/2)); step = 5 + 0.25 b + 0.01 used;
    hand-off = 2 + 0.1 isl."""
    base = h100()
    return msgspec.structs.replace(
        base,
        timing=Timing(
            prefill=PrefillTiming(base_ms=10.0, per_token_ms=0.5, per_token_context_ms=0.001),
            decode=DecodeTiming(base_ms=5.0, per_seq_ms=0.25, per_kv_token_ms=0.01),
            kv_transfer=TransferTiming(base_ms=2.0, per_token_ms=0.1),
        ),
        kv=KvSpec(capacity_tokens=capacity_tokens),
        startup_delay_ms=startup_delay_ms,
    )


def fleet_config(**kw: object) -> FleetConfig:
    defaults: dict[str, object] = {"prefill_workers": 1, "decode_workers": 1, "router": "round_robin"}
    defaults.update(kw)
    return FleetConfig(**defaults)  # type: ignore[arg-type]


def req(ts: float, isl: int, osl: int, ids: list[int] | None = None) -> Request:
    return Request(timestamp=ts, input_length=isl, output_length=osl, hash_ids=ids if ids is not None else [])
