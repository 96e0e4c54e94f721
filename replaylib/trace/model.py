"""The request row every replaylib component speaks, and the trace error type."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from replaylib.errors import ReplaylibError
from replaylib.limits import MAX_HASH_ID, MAX_HASH_IDS, MAX_MILLIS, MAX_TOKENS

Millis = Annotated[int, Meta(ge=0, le=int(MAX_MILLIS))] | Annotated[float, Meta(ge=0, le=MAX_MILLIS)]
TokenCount = Annotated[int, Meta(ge=1, le=MAX_TOKENS)]
BlockId = Annotated[int, Meta(ge=0, le=MAX_HASH_ID)]
HashIds = Annotated[list[BlockId], Meta(max_length=MAX_HASH_IDS)]

#: Upstream spellings accepted for the canonical Mooncake fields.
ALIASES: dict[str, str] = {
    "input_tokens": "input_length",
    "output_tokens": "output_length",
    "created_time": "timestamp",
    "delay_ms": "delay",
}

#: What a valid value of each field looks like, for error messages.
EXPECTED: dict[str, str] = {
    "timestamp": f"a finite number of milliseconds, 0 to {MAX_MILLIS:.0f}",
    "input_length": f"an integer from 1 to {MAX_TOKENS:,} (replaylib.limits.MAX_TOKENS)",
    "output_length": f"an integer from 1 to {MAX_TOKENS:,} (replaylib.limits.MAX_TOKENS)",
    "hash_ids": f"a list of at most input_length integers, each 0 to {MAX_HASH_ID} (a signed 64-bit id)",
    "session_id": "a string or an integer",
    "delay": f"a finite number of milliseconds, 0 to {MAX_MILLIS:.0f}",
}


class Request(
    msgspec.Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    forbid_unknown_fields=True,
):
    """One request of a Mooncake-style trace.

    ``timestamp`` is the arrival time in milliseconds relative to the start of
    the trace; ``hash_ids`` holds one id per ``block_size`` tokens of input, and
    two requests whose leading ids are equal share that prefix.  ``session_id``
    and ``delay`` (milliseconds after the previous turn of the session completed) describe
    closed-loop multi-turn traces and are kept when present.

    ``timestamp`` keeps the JSON type it was read with (int or float) so that
    writing a trace back reproduces it byte for byte.
    """

    timestamp: Millis
    input_length: TokenCount
    output_length: TokenCount
    hash_ids: HashIds
    session_id: str | int | None = None
    delay: Millis | None = None


class TraceError(ReplaylibError):
    """A trace that cannot be read: names the file, the 1-based line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = message if field is None else f"field '{field}': {message}"
        super().__init__(f"{where}: {what}")
