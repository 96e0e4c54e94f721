"""Golden decision logs: the text format, the syrupy extension and the pytest plugin."""

from replaylib.golden.extension import GoldenExtension, goldens_dir
from replaylib.golden.text import SIGNIFICANT_DIGITS, golden_text, parse_golden

__all__ = ["SIGNIFICANT_DIGITS", "GoldenExtension", "golden_text", "goldens_dir", "parse_golden"]
