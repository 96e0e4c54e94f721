"""Where a sweep's recordings and table go: a local (or shared) folder, or any fsspec URL.

A location with ``://`` (``s3://bucket/sweeps/x``, ``gcs://…``, ``file:///mnt/x``)
goes through fsspec (installed with ``replaylib[dask]``, or on its own); anything
else is a path on the file system, which every worker must reach at the same
path (a shared mount) when runs execute on several machines.

Files are published whole: written under a temporary name next to their
destination and then moved into place, so a reader (or a resumed sweep) never
sees half a recording.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

from replaylib.errors import ReplaylibError


class StorageError(ReplaylibError):
    """The output location cannot be used."""


def is_url(location: str) -> bool:
    return "://" in location


class Store:
    """A folder (path or URL) that holds a sweep's outputs.  Picklable: it keeps only its location."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = os.fspath(location)
        self.url = is_url(self.location)
        if not self.url:
            self.location = os.path.abspath(self.location)

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Store, (self.location,))

    # -- names -----------------------------------------------------------------------------

    def join(self, *parts: str) -> str:
        return posixpath.join(self.location, *parts) if self.url else os.path.join(self.location, *parts)

    def relative(self, location: str) -> str:
        """``location`` relative to this store (as recorded in the sweep table)."""
        if self.url:
            return location[len(self.location.rstrip("/")) + 1 :] if location.startswith(self.location.rstrip("/") + "/") else location
        return os.path.relpath(location, self.location).replace(os.sep, "/")

    # -- file system -----------------------------------------------------------------------

    def _remote(self, location: str) -> tuple[Any, str]:
        """The fsspec filesystem of ``location`` (a URL) and the path within it."""
        try:
            import fsspec
        except ImportError:
            raise StorageError(
                f"{self.location}: a URL output needs fsspec: pip install 'replaylib[dask]' (or fsspec and the "
                "filesystem's own package, such as s3fs)"
            ) from None
        try:
            return fsspec.core.url_to_fs(location)  # type: ignore[no-any-return]
        except (ImportError, ValueError) as exc:
            raise StorageError(f"{location}: cannot open this URL with fsspec: {exc}") from None

    def exists(self, location: str) -> bool:
        if not self.url:
            return os.path.exists(location)
        fs, remote = self._remote(location)
        return bool(fs.exists(remote))

    def makedirs(self, *parts: str) -> None:
        """Create the store's folder (and ``parts`` below it); check that it can be written."""
        target = self.join(*parts) if parts else self.location
        if not self.url:
            try:
                os.makedirs(target, exist_ok=True)
                fd, probe = tempfile.mkstemp(prefix=".replaylib-probe-", dir=target)
                os.close(fd)
                os.remove(probe)
            except OSError as exc:
                raise StorageError(f"{target}: cannot write the sweep's output here: {exc.strerror or exc}") from None
            return
        fs, remote = self._remote(target)
        try:
            fs.makedirs(remote, exist_ok=True)
            probe = posixpath.join(remote, ".replaylib-probe")
            fs.pipe_file(probe, b"")
            fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - every fsspec backend raises its own errors
            raise StorageError(f"{target}: cannot write the sweep's output here: {type(exc).__name__}: {exc}") from None

    def publish(self, local_path: str, location: str) -> None:
        """Move (local) or upload (URL) the finished file ``local_path`` to ``location``, whole."""
        if not self.url:
            os.replace(local_path, location)
            return
        fs, remote = self._remote(location)
        partial = remote + ".partial"
        fs.put_file(local_path, partial)
        fs.mv(partial, remote)
        os.remove(local_path)

    def fetch(self, location: str, local_path: str) -> str:
        """A local copy of ``location`` (the file itself when local)."""
        if not self.url:
            return location
        fs, remote = self._remote(location)
        fs.get_file(remote, local_path)
        return local_path

    def write_bytes(self, location: str, data: bytes) -> None:
        """Write ``data`` to ``location`` atomically (a temporary file renamed into place)."""
        if not self.url:
            directory = os.path.dirname(location)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, location)
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
            return
        fs, remote = self._remote(location)
        fs.pipe_file(remote + ".partial", data)
        fs.mv(remote + ".partial", remote)

    def scratch_dir(self, location: str) -> str:
        """A folder to write ``location``'s file in before publishing it: beside it (local), else a temporary one."""
        if not self.url:
            return os.path.dirname(location)
        return tempfile.mkdtemp(prefix="replaylib-run-")


__all__ = ["Store", "StorageError", "is_url"]
