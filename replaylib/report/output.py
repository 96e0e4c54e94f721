"""Writing a report, picture or export: checked first, then atomically (all or nothing)."""

from __future__ import annotations

import os

from replaylib.errors import ReplaylibError


class OutputError(ReplaylibError):
    """An output path that cannot be written."""


def check_output(path: str, *, create_folders: bool = False) -> None:
    """Raise :class:`OutputError` unless a file can be written at ``path``.

    ``create_folders``: a missing folder is fine (the writer creates it) as long as
    the nearest existing one is writable; otherwise the folder must exist.
    """
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a folder; expected a file path such as {os.path.join(path, 'out' + _ext(path))}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        if not create_folders:
            raise OutputError(f"{path}: cannot write there: the folder {folder} does not exist")
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        if not os.path.isdir(folder):
            raise OutputError(f"{path}: cannot write there: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write there: the folder {folder} is not writable")
    if os.path.exists(path) and not os.path.isfile(path):
        raise OutputError(f"{path}: cannot write there: it exists and is not a regular file (a device, a pipe, a "
                          "socket); writing would replace it")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: cannot write there: the file is read-only")


def _ext(path: str) -> str:
    return os.path.splitext(path)[1]


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, renamed over it when complete."""
    from replaylib.trace.writer import atomic_output

    check_output(path)
    try:
        with atomic_output(path, gzip_output=False) as fh:
            fh.write(data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
