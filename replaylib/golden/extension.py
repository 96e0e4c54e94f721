"""A syrupy extension storing golden decision logs under the top-level ``goldens/``.

Each golden is one text file ``goldens/<test module>/<test name>.golden`` (see
:mod:`replaylib.golden.text`) — syrupy's own single-file layout, so syrupy can
relate every golden to its test: a golden whose test was skipped is not
mistaken for an unused one, and one whose test is gone is reported unused.  On a mismatch the failure shows the first
diverging tick with expected and actual values (from the diff engine), not a
wall of text.  ``pytest --snapshot-update`` rewrites goldens; goldens no test
asked for are reported as unused, as syrupy does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

if TYPE_CHECKING:
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializableData, SerializedData

GOLDENS_DIRNAME = "goldens"


def goldens_dir(start: Path) -> Path:
    """The ``goldens/`` folder of the project that holds ``start`` (found via pyproject.toml)."""
    for d in (start, *start.parents):
        if (d / "pyproject.toml").exists():
            return d / GOLDENS_DIRNAME
    return start.parent / GOLDENS_DIRNAME


class GoldenExtension(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "golden"

    def serialize(self, data: SerializableData, **kwargs: object) -> SerializedData:
        if not isinstance(data, str):
            raise TypeError(f"a golden is text made by replaylib.golden.golden_text, got {type(data).__name__}")
        return data

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """``goldens/<test module>/``: syrupy's single-file layout, rooted at the project's goldens/."""
        root = goldens_dir(Path(test_location.filepath).resolve().parent)
        return str(root / test_location.basename)

    def diff_lines(self, serialized_data: SerializedData, snapshot_data: SerializedData) -> Iterator[str]:
        """First divergence and per-column counts instead of a line-by-line text diff."""
        from replaylib.golden.text import parse_golden

        try:
            from replaylib.diff import diff_frames, format_text

            report = diff_frames(parse_golden(str(snapshot_data)), parse_golden(str(serialized_data)))
            summary = format_text(report, labels=("golden", "replay"))
        except Exception as exc:  # noqa: BLE001 - a failure report must never crash
            summary = f"(could not summarise the difference: {type(exc).__name__}: {exc})"
        yield "replay differs from its golden (run pytest --snapshot-update to accept the new behaviour):"
        yield from summary.splitlines()
