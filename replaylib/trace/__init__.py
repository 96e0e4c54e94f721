"""Request traces: the typed row, streaming reader, writer, statistics and generators."""

from replaylib.trace.generate import GeneratorConfig, GeneratorConfigError, generate_trace, load_generator_config
from replaylib.trace.model import ALIASES, Request, TraceError
from replaylib.trace.reader import read_trace
from replaylib.trace.writer import atomic_output, write_trace

__all__ = [
    "ALIASES",
    "GeneratorConfig",
    "GeneratorConfigError",
    "Request",
    "TraceError",
    "atomic_output",
    "generate_trace",
    "load_generator_config",
    "read_trace",
    "write_trace",
]
