"""Recordings: the Arrow event schema, the incremental writer, reading back with polars."""

from replaylib.record.reader import RecordingError, RecordingMeta, read_metadata, read_recording, recording_metadata
from replaylib.record.schema import ARROW_SCHEMA, ASSERTABLE, FIELDS, KINDS, EventRow
from replaylib.record.writer import RecordingWriter, partial_path

__all__ = [
    "ARROW_SCHEMA",
    "ASSERTABLE",
    "FIELDS",
    "KINDS",
    "EventRow",
    "RecordingError",
    "RecordingMeta",
    "RecordingWriter",
    "partial_path",
    "read_metadata",
    "read_recording",
    "recording_metadata",
]
