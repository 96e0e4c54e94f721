"""Synthetic GPU power from the fleet's forward-pass metrics and applied caps."""

from replaylib.power.metrics_source import MetricsSource
from replaylib.power.overlay import Overlay, Readings
from replaylib.power.signals import Noise, bias_at, signal_rng

__all__ = ["MetricsSource", "Noise", "Overlay", "Readings", "bias_at", "signal_rng"]
