"""The tick loop that wires the fleet, the power overlay, faults, the planner and the recorder."""

from replaylib.adapter.loop import AssertionResult, ReplayInterrupted, ReplayResult, planner_context, replay, sha256_file

__all__ = ["AssertionResult", "ReplayInterrupted", "ReplayResult", "planner_context", "replay", "sha256_file"]
