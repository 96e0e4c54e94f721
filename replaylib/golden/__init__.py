"""Golden decision logs: the text format, the syrupy extension and the pytest plugin."""

from replaylib.golden.extension import GoldenExtension, encode_name, goldens_dir
from replaylib.golden.text import FORMAT_VERSION, SIGNIFICANT_DIGITS, Golden, GoldenFormatError, golden_text, parse_golden

__all__ = [
    "FORMAT_VERSION",
    "SIGNIFICANT_DIGITS",
    "Golden",
    "GoldenExtension",
    "GoldenFormatError",
    "encode_name",
    "golden_text",
    "goldens_dir",
    "parse_golden",
]
