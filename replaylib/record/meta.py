"""A recording's typed metadata and the recording error (a light module: no polars, no pyarrow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from replaylib.errors import ReplaylibError
from replaylib.record.schema import METADATA_KEYS, OPTIONAL_METADATA_KEYS, PLANNER_METADATA_PREFIX


class RecordingError(ReplaylibError):
    """A file that is not a replaylib recording, or a damaged one."""


class RecordingMeta(msgspec.Struct, frozen=True, kw_only=True):
    replaylib_version: str
    schema_version: int
    planner_name: str
    planner_version: int
    scenario_name: str
    scenario_hash: str
    trace_path: str
    trace_sha256: str
    systems_sha256: str
    system_name: str
    seed: int
    ttft_target_ms: float
    itl_target_ms: float
    gpus_per_worker: int
    #: the scenario keys a sweep overrode (dotted key path -> value); empty for a plain replay
    overrides: dict[str, Any] = {}
    #: the planner's own metadata (keys without the ``planner.`` prefix), sorted; empty for planners without any
    planner_metadata: dict[str, str] = {}
    #: "open_loop" | "closed_loop" (absent from recordings made before closed-loop replay existed)
    trace_mode: str = "open_loop"

    @property
    def planner(self) -> str:
        return f"{self.planner_name}@{self.planner_version}"


def parse_metadata(raw: Mapping[str, str], path: str) -> RecordingMeta:
    """The typed metadata from the raw utf-8 key/value pairs of a recording's schema."""
    missing = [k for k in METADATA_KEYS if k not in raw]
    if missing:
        raise RecordingError(f"{path}: recording metadata lacks {', '.join(missing)}")
    doc: dict[str, Any] = {k: raw[k] for k in METADATA_KEYS}
    doc["planner_metadata"] = {k[len(PLANNER_METADATA_PREFIX):]: raw[k] for k in sorted(raw) if k.startswith(PLANNER_METADATA_PREFIX)}
    try:
        if "overrides" in raw:
            doc["overrides"] = msgspec.json.decode(raw["overrides"])
        if "trace_mode" in raw:
            doc["trace_mode"] = raw["trace_mode"]
        return msgspec.convert(doc, RecordingMeta, strict=False)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise RecordingError(f"{path}: bad recording metadata: {exc}") from None


def encode_overrides(overrides: Mapping[str, Any]) -> str:
    """The ``overrides`` metadata value: canonical JSON (sorted keys), ``{}`` when none."""
    return msgspec.json.encode(dict(overrides), order="sorted").decode()


assert OPTIONAL_METADATA_KEYS == ("overrides", "trace_mode")  # parse_metadata knows how to read each
