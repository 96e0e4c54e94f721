"""A syrupy extension for golden decision logs under the project's top-level ``goldens/``.

- Storage: one text file per golden, ``goldens/<test module>/<test name>.golden``
  (syrupy's single-file layout, so syrupy relates every golden to its test: one
  whose test was skipped is kept, one whose test is gone is reported unused).
  A parameter that cannot be part of a file name (``pkg.mod:Class``) is
  percent-encoded (``pkg.mod%3AClass``), so the name stays valid everywhere and
  still relates to its test.
- ``serialize``: a recording (its path, or a ``ReplayResult``) becomes golden
  text (:mod:`replaylib.golden.text`).
- ``matches``: by meaning, not by text — both sides are read back and diffed
  with the extension's :class:`~replaylib.diff.policy.ComparePolicy` (decisions
  exactly by default, the rest summarised).  Under ``--snapshot-update`` the
  text itself is compared, so every golden whose text changed is rewritten.
- ``diff_lines``: the first diverging tick with golden against replay for the
  judged columns only, a count of the rest, and how to accept the change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syrupy.extensions.base import AbstractSyrupyExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from replaylib.diff.policy import ComparePolicy

if TYPE_CHECKING:
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializableData, SerializedData, SnapshotIndex

    from replaylib.diff.model import DiffReport, MetaDiff

GOLDENS_DIRNAME = "goldens"

#: Characters a file name cannot hold on some platform (and ``%``, the escape itself).
_UNSAFE = frozenset('\\/?*:|"<>%')


def goldens_dir(start: Path) -> Path:
    """The ``goldens/`` folder of the project that holds ``start`` (found via pyproject.toml)."""
    for d in (start, *start.parents):
        if (d / "pyproject.toml").exists():
            return d / GOLDENS_DIRNAME
    return start.parent / GOLDENS_DIRNAME


def encode_name(name: str) -> str:
    """A golden's file name for a snapshot name: unsafe characters as ``%XX`` (UTF-8 bytes)."""
    out = []
    for ch in name:
        if ch in _UNSAFE or not ch.isprintable():
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


class GoldenExtension(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "golden"

    #: How ``matches`` judges (the ``replay_golden`` fixture sets it per test).
    policy: ComparePolicy = ComparePolicy()
    #: Compare the text itself (set under ``--snapshot-update``: rewrite whatever changed).
    compare_text: bool = False
    #: The command the failure message suggests.
    update_command: str = "python -m pytest --snapshot-update"
    #: How messages name the golden file.
    source: str = "golden"

    def __init__(self) -> None:
        super().__init__()
        self.last_report: DiffReport | None = None
        self.last_metadata: list[MetaDiff] = []
        self.last_error: str | None = None

    # -- serialisation ---------------------------------------------------------------------

    def serialize(self, data: SerializableData, **kwargs: Any) -> SerializedData:
        """Golden text of a recording: a path to it (``str``/``PathLike``) or a ``ReplayResult``."""
        from replaylib.golden.text import golden_text
        from replaylib.record import read_metadata, read_recording

        path = getattr(data, "path", data)
        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise TypeError(f"a golden is made from a recording: pass its path or a ReplayResult, got {type(data).__name__}")
        return golden_text(read_recording(path), read_metadata(path))

    # -- naming ----------------------------------------------------------------------------

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """``goldens/<test module>/``: syrupy's single-file layout, rooted at the project's goldens/."""
        root = goldens_dir(Path(test_location.filepath).resolve().parent)
        return str(root / test_location.basename)

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: SnapshotIndex = 0) -> str:
        name = AbstractSyrupyExtension.get_snapshot_name(test_location=test_location, index=index)
        return encode_name(name)[: cls._max_stem_length()]

    @classmethod
    def matches_test_location(cls, *, test_location: PyTestLocation, snapshot_location: str) -> bool:
        """A golden named by :func:`encode_name` belongs to the test whose id it encodes."""
        if super().matches_test_location(test_location=test_location, snapshot_location=snapshot_location):
            return True
        loc = Path(snapshot_location)
        stem = cls._snapshot_stem(loc.name)
        if stem is None or loc.parent.name != test_location.basename:
            return False
        own = encode_name(test_location.snapshot_name_parametrized)[: cls._max_stem_length()]
        return stem == own or stem.startswith(own + "[") or stem.startswith(own + ".")

    # -- comparison ------------------------------------------------------------------------

    def matches(self, *, serialized_data: SerializableData, snapshot_data: SerializableData) -> bool:
        """Decisions (or whatever the policy judges) equal within tolerance; any text under update."""
        self.last_report, self.last_metadata, self.last_error = None, [], None
        if self.compare_text:
            return serialized_data == snapshot_data
        from replaylib.diff import compare_metadata, diff_frames
        from replaylib.golden.text import GoldenFormatError, parse_golden

        try:
            golden = parse_golden(str(snapshot_data), source=self.source)
        except GoldenFormatError as exc:
            self.last_error = str(exc)
            return False
        replay = parse_golden(str(serialized_data), source="replay")
        self.last_report = diff_frames(golden.frame, replay.frame, policy=self.policy, kpis=False)
        self.last_metadata = compare_metadata(golden.metadata, replay.metadata)
        return self.last_report.identical

    def diff_lines(self, serialized_data: SerializedData, snapshot_data: SerializedData) -> Iterator[str]:
        """What differs, for a reviewer: first diverging tick, judged columns only, the rest counted."""
        if not snapshot_data:
            yield f"no golden yet: run `{self.update_command}` to write it from this replay"
            return
        if self.last_report is None and self.last_error is None:  # called without matches (syrupy's own paths)
            self.matches(serialized_data=serialized_data, snapshot_data=snapshot_data)
        if self.last_error is not None:
            yield self.last_error
            return
        from replaylib.golden.failure import failure_lines

        if self.last_report is None:  # compare_text mode: the texts differ
            yield "the golden's text differs from the replay's"
        else:
            yield from failure_lines(self.last_report, self.last_metadata)
        yield f"to accept the replay as the new golden: {self.update_command}"


__all__ = ["GoldenExtension", "encode_name", "goldens_dir"]
