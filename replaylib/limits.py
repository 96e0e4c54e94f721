"""The resource limits replaylib enforces on its inputs, in one place.

Each bound is far above anything a real trace, scenario or planner needs and
low enough that crossing it fails fast with a clear error instead of hanging,
exhausting memory or overflowing an Arrow column.  README ("Limits and
guarantees") lists them; the modules that enforce them import them from here.
"""

from __future__ import annotations

from replaylib.errors import ReplaylibError

#: Tokens of one request's input or output (16 Mi: past the longest context windows served today).
MAX_TOKENS = 1 << 24
#: A hash id must fit a signed 64-bit Arrow / Parquet column.
MAX_HASH_ID = (1 << 63) - 1
#: Hash ids of one request (one per block of input, so never more than its input tokens either):
#: a MAX_TOKENS request at a block size of 16.
MAX_HASH_IDS = 1 << 20
#: Bytes of one trace line (a request with MAX_HASH_IDS ids of 20 digits fits); a longer one, or a
#: file with no line breaks (``/dev/zero``, a decompression bomb), is refused instead of read into memory.
MAX_LINE_BYTES = 32 << 20
#: A timestamp or session delay in ms (2**53: every value below is an exact float; ~285,000 years).
MAX_MILLIS = float(1 << 53)

#: Planner ticks of one replay (a day at a 0.5 s interval; a month at 15 s). ``ticks:`` caps a replay below it.
MAX_TICKS = 200_000
#: The shortest adjustment interval a scenario or a planner's ``next_tick_s`` may ask for.
MIN_TICK_INTERVAL_S = 0.01
#: Workers of one role a planner may ask for, or a scenario may start with.
MAX_WORKERS_PER_ROLE = 4096
#: Requests one ``generate`` may write (a month of traffic at 40 requests/s).
MAX_GENERATED_REQUESTS = 100_000_000
#: Requests a scenario's ``trace.limit`` may name (a signed 64-bit count).
MAX_REQUESTS = (1 << 63) - 1
#: Characters of a planner's ``reason`` (a short code, recorded on every tick).
MAX_REASON_CHARS = 200
#: A power cap in watts (per GPU) a planner may ask for; a system's own range clamps it further.
MAX_CAP_W = 100_000.0

#: Events of one scenario (each fires once, so this also bounds the event rows of any tick).
MAX_SCENARIO_EVENTS = 10_000
#: Bytes of one scenario or systems YAML file.
MAX_YAML_BYTES = 1 << 20
#: Nodes of one YAML document with every alias expanded (refuses "billion laughs" before building it).
MAX_YAML_NODES = 200_000
#: Nesting depth of one YAML document.
MAX_YAML_DEPTH = 64


class LimitError(ReplaylibError):
    """An input beyond one of the limits above; the message names it and where it was met."""
