"""The request row every replaylib component speaks, and the trace error type."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from replaylib.errors import ReplaylibError

Millis = Annotated[int, Meta(ge=0)] | Annotated[float, Meta(ge=0)]
TokenCount = Annotated[int, Meta(ge=1)]
BlockId = Annotated[int, Meta(ge=0)]

#: Upstream spellings accepted for the canonical Mooncake fields.
ALIASES: dict[str, str] = {
    "input_tokens": "input_length",
    "output_tokens": "output_length",
    "created_time": "timestamp",
    "delay_ms": "delay",
}

#: What a valid value of each field looks like, for error messages.
EXPECTED: dict[str, str] = {
    "timestamp": "a finite number of milliseconds >= 0",
    "input_length": "an integer >= 1",
    "output_length": "an integer >= 1",
    "hash_ids": "a list of integers >= 0",
    "session_id": "a string or an integer",
    "delay": "a finite number of milliseconds >= 0",
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
    hash_ids: list[BlockId]
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
