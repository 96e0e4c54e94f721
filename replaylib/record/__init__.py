"""Recordings: the Arrow event schema, the incremental writer, reading back with polars.

Exports are imported on first use (:mod:`replaylib._lazy`), so importing
``replaylib.record.schema`` does not import polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replaylib._lazy import lazy_exports

if TYPE_CHECKING:
    from replaylib.record.meta import RecordingError, RecordingMeta
    from replaylib.record.reader import read_recording, recording_metadata
    from replaylib.record.schema import ARROW_SCHEMA, ASSERTABLE, FIELDS, KINDS, EventRow
    from replaylib.record.writer import RecordingWriter, partial_path

_EXPORTS = {
    "ARROW_SCHEMA": "replaylib.record.schema",
    "ASSERTABLE": "replaylib.record.schema",
    "FIELDS": "replaylib.record.schema",
    "KINDS": "replaylib.record.schema",
    "EventRow": "replaylib.record.schema",
    "RecordingError": "replaylib.record.meta",
    "RecordingMeta": "replaylib.record.meta",
    "RecordingWriter": "replaylib.record.writer",
    "partial_path": "replaylib.record.writer",
    "read_recording": "replaylib.record.reader",
    "recording_metadata": "replaylib.record.reader",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
