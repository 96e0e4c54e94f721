"""Request traces: the typed row, streaming reader, writer, statistics and generators."""

from replaylib.trace.model import ALIASES, Request, TraceError
from replaylib.trace.reader import read_trace
from replaylib.trace.writer import atomic_output, write_trace

__all__ = ["ALIASES", "Request", "TraceError", "atomic_output", "read_trace", "write_trace"]
