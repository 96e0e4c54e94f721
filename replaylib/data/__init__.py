"""The bundled catalog and the search paths that add a user's own folders.

The repository's top-level ``scenarios/``, ``systems/`` and ``traces/`` folders
are shipped inside the package as the data packages
``replaylib.data.scenarios``, ``replaylib.data.systems`` and
``replaylib.data.traces`` (``setup.py`` maps them; every file under them is
package data), so a wheel, an sdist and an editable install all find them with
:mod:`importlib.resources`.  Inside the package they keep their relative
layout, so a bundled scenario's ``../../traces/...`` and bare system names
resolve exactly as in a checkout.

A user adds folders of their own, searched before the bundled one (first match
wins), with a command-line flag (repeatable) or an environment variable
(``os.pathsep``-separated, like ``PATH``); the flags come first:

============  ==================  ==========================
kind          flag                environment variable
============  ==================  ==========================
scenarios     ``--scenario-dir``  ``REPLAYLIB_SCENARIO_PATH``
systems       ``--system-dir``    ``REPLAYLIB_SYSTEM_PATH``
traces        ``--trace-dir``     ``REPLAYLIB_TRACE_PATH``
============  ==================  ==========================

* A **scenario** is a file path, or a name: its path below a scenario folder
  without ``.yaml`` (``g1_decode_drift``, ``testbed/a1_burst``), or its bare
  file name when only one scenario has it.  Folders whose name starts with
  ``_`` or ``.`` (templates such as ``_base/``) hold no named scenarios.
* A bare **system** name (``system: h100_sxm``) is looked up in the system
  folders, then in the ``systems/`` folder nearest above the file that names it,
  then in the bundled systems.
* A **trace** path of a scenario (``trace.path``) is relative to the file that
  declares it; when no file is there, the same relative path is looked up in
  the trace folders, then in the bundled traces.  ``record --trace`` and
  ``validate trace`` accept such a name too.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from replaylib.errors import ReplaylibError

Kind = Literal["scenarios", "systems", "traces"]
KINDS: tuple[Kind, ...] = ("scenarios", "systems", "traces")
#: The environment variable that adds folders of each kind.
ENV_VARS: dict[str, str] = {
    "scenarios": "REPLAYLIB_SCENARIO_PATH",
    "systems": "REPLAYLIB_SYSTEM_PATH",
    "traces": "REPLAYLIB_TRACE_PATH",
}
#: The command-line flag that adds one folder of each kind.
FLAGS: dict[str, str] = {"scenarios": "--scenario-dir", "systems": "--system-dir", "traces": "--trace-dir"}
_SCENARIO_SUFFIXES = (".yaml", ".yml")
_MAX_LISTED = 40


class CatalogError(ReplaylibError):
    """A scenario, system or trace that no search path holds (the message lists what there is)."""


def bundled_dir(kind: Kind) -> Path:
    """The folder of the bundled ``kind`` (``scenarios``, ``systems`` or ``traces``).

    Found with :mod:`importlib.resources` (wheel, sdist and editable installs);
    a bare checkout on ``PYTHONPATH`` falls back to the top-level folder beside
    the package.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        found = importlib.resources.files(f"replaylib.data.{kind}")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / kind
    if not isinstance(found, Path):  # e.g. a zip import: the loaders need real files
        raise CatalogError(f"the bundled {kind} are not plain files ({found!r}); install replaylib unzipped")
    return found


class SearchPath(msgspec.Struct, frozen=True, kw_only=True):
    """The user's folders of each kind, searched in order before the bundled one."""

    scenarios: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    traces: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        scenarios: Iterable[str] = (),
        systems: Iterable[str] = (),
        traces: Iterable[str] = (),
    ) -> SearchPath:
        """The given folders (command-line flags) followed by those of the environment variables."""
        env = os.environ if environ is None else environ
        given = {"scenarios": scenarios, "systems": systems, "traces": traces}

        def folders(kind: str) -> tuple[str, ...]:
            from_env = [p for p in env.get(ENV_VARS[kind], "").split(os.pathsep) if p]
            return tuple(dict.fromkeys([*given[kind], *from_env]))

        return cls(scenarios=folders("scenarios"), systems=folders("systems"), traces=folders("traces"))

    def user_dirs(self, kind: Kind) -> list[Path]:
        return [Path(p).expanduser() for p in getattr(self, kind)]

    def dirs(self, kind: Kind) -> list[Path]:
        """The folders searched for ``kind``, in order: the user's, then the bundled one."""
        return [*self.user_dirs(kind), bundled_dir(kind)]

    def describe(self, kind: Kind) -> str:
        """The folders, for an error message, with how to add one."""
        where = ", ".join(str(d) for d in self.dirs(kind))
        return f"{where} (add a folder with {FLAGS[kind]} DIR or {ENV_VARS[kind]})"


def _search(search: SearchPath | None) -> SearchPath:
    return SearchPath.from_env() if search is None else search


# -- scenarios -----------------------------------------------------------------------------------


class CatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One named scenario, system or trace on the search path."""

    name: str  #: what resolves to it (``testbed/a1_burst``; a system's SKU name; a trace's file path below its folder)
    path: str  #: the file
    folder: str  #: the search-path folder that holds it
    bundled: bool
    description: str = ""


def _collect(search: SearchPath | None, kind: Kind, files: Callable[[Path], Iterable[tuple[str, Path]]],
             describe: Callable[[Path], str]) -> list[CatalogEntry]:
    """The entries ``files(folder)`` names in each folder of ``kind`` (an earlier folder's name wins), by name."""
    search = _search(search)
    bundled = bundled_dir(kind)
    seen: dict[str, CatalogEntry] = {}
    for folder in search.dirs(kind):
        if not folder.is_dir():
            continue
        for name, path in files(folder):
            if name not in seen:
                seen[name] = CatalogEntry(name=name, path=str(path), folder=str(folder), bundled=folder == bundled,
                                          description=describe(path))
    return [seen[n] for n in sorted(seen)]


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(("_", ".")) for p in parts)


def _scenario_files(folder: Path) -> list[tuple[str, Path]]:
    """``(name, file)`` of every scenario below ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.suffix in _SCENARIO_SUFFIXES and path.is_file() and not _is_hidden(rel.parts):
            out.append((rel.with_suffix("").as_posix(), path))
    return sorted(out)


def scenario_entries(search: SearchPath | None = None) -> list[CatalogEntry]:
    """Every named scenario on the search path (a name shadowed by an earlier folder is left out), by name."""
    return _collect(search, "scenarios", _scenario_files, _scenario_description)


def _scenario_description(path: Path) -> str:
    """The file's own ``description:`` key, else its first comment line (no ``extends:`` chain is read)."""
    from replaylib.scenario.yamlio import ScenarioError, read_yaml

    try:
        doc = read_yaml(str(path))
    except ScenarioError:
        return "(unreadable: run `validate scenario` on it)"
    if isinstance(doc, dict) and isinstance(doc.get("description"), str):
        return doc["description"]
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("#"):
                return line.lstrip("#").strip()
            if line.strip():
                break
    return ""


def find_scenario(spec: str | os.PathLike[str], search: SearchPath | None = None) -> str:
    """The scenario file ``spec`` names: an existing file, else a name on the scenario search path.

    Raises :class:`CatalogError` listing the known names and the nearest ones.
    """
    text = os.fspath(spec)
    if os.path.isfile(text):
        return text
    entries = scenario_entries(search)
    if text.endswith(_SCENARIO_SUFFIXES):
        stem = Path(text).stem
        hint = _nearest(stem, entries)
        raise CatalogError(f"{text}: no such scenario file" + (f"; did you mean the scenario named {hint}?" if hint else ""))
    name = text.strip("/")
    exact = [e for e in entries if e.name == name]
    if exact:
        return exact[0].path
    bare = [e for e in entries if e.name.rsplit("/", 1)[-1] == name]
    if len(bare) == 1:
        return bare[0].path
    if bare:
        raise CatalogError(f"scenario name {name!r} is ambiguous: {', '.join(e.name for e in bare)}; give one of these")
    raise CatalogError(_unknown("scenario", name, [e.name for e in entries], _search(search).describe("scenarios")))


def _nearest(name: str, entries: Sequence[CatalogEntry]) -> str:
    names = [e.name for e in entries]
    close = difflib.get_close_matches(name, names + [n.rsplit("/", 1)[-1] for n in names], n=1, cutoff=0.6)
    return close[0] if close else ""


def _unknown(what: str, name: str, known: Sequence[str], where: str) -> str:
    return f"unknown {what} {name!r}" + _known(name, known, where)


def _known(name: str, known: Sequence[str], where: str) -> str:
    """``; did you mean X? Known: a, b, c. Searched <where>`` (nearest names by similarity, also of bare names)."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    bare = {k.rsplit("/", 1)[-1]: k for k in known}
    close += [bare[c] for c in difflib.get_close_matches(name, list(bare), n=3, cutoff=0.5) if bare[c] not in close]
    listed = ", ".join(known[:_MAX_LISTED]) + (f", ... ({len(known)} in all)" if len(known) > _MAX_LISTED else "")
    hint = f"; did you mean {' or '.join(close[:3])}?" if close else "."
    return f"{hint} Known: {listed or 'none'}. Searched {where}"


# -- systems -------------------------------------------------------------------------------------


def system_entries(search: SearchPath | None = None) -> list[CatalogEntry]:
    """Every system (``<name>.yaml``) in the system folders and the bundled ones (first folder wins), by name."""
    return _collect(search, "systems", _system_files, _system_description)


def _system_files(folder: Path) -> list[tuple[str, Path]]:
    return [(p.stem, p) for p in sorted(folder.glob("*.yaml")) if not _is_hidden((p.name,))]


def _system_description(path: Path) -> str:
    from replaylib.scenario.yamlio import ScenarioError, read_yaml

    try:
        doc = read_yaml(str(path))
    except ScenarioError:
        return "(unreadable)"
    if not isinstance(doc, dict):
        return ""
    desc = doc.get("description")
    if isinstance(desc, str) and desc.strip():
        return desc.strip().splitlines()[0]
    gpu = doc.get("gpu") if isinstance(doc.get("gpu"), dict) else {}
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    return ", ".join(str(b) for b in (gpu.get("model"), model.get("name")) if b)


def find_system(name: str, nearest: Sequence[Path] = (), search: SearchPath | None = None) -> str | None:
    """The systems file of the bare SKU ``name``: the user's system folders, then ``nearest``
    (the ``systems/`` folders above the naming file), then the bundled ones; None when none has it."""
    search = _search(search)
    for folder in [*search.user_dirs("systems"), *nearest, bundled_dir("systems")]:
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return str(candidate)
    return None


def unknown_system(name: str, search: SearchPath | None = None) -> str:
    """The message for a bare system name that :func:`find_system` did not find."""
    search = _search(search)
    return _unknown("system", name, [e.name for e in system_entries(search)],
                    "the systems/ folders above the scenario and " + search.describe("systems"))


# -- traces --------------------------------------------------------------------------------------

#: File names that hold traces ``record`` / ``validate`` read (anything else is listed by nobody).
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def trace_entries(search: SearchPath | None = None) -> list[CatalogEntry]:
    """Every trace file below the trace folders (first folder wins), by name (its path below the folder)."""
    return _collect(search, "traces", _trace_files, _size)


def _trace_files(folder: Path) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.name.endswith(TRACE_SUFFIXES) and path.is_file() and not _is_hidden(rel.parts):
            out.append((rel.as_posix(), path))
    return out


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:,.1f} MB" if size >= 100_000 else f"{size / 1e3:,.1f} kB"


def find_trace(spec: str | os.PathLike[str], search: SearchPath | None = None) -> str | None:
    """The trace ``spec`` names: an existing file, else ``spec`` below a trace folder; None when none has it."""
    text = os.fspath(spec)
    if os.path.isfile(text):
        return text
    if os.path.isabs(text):
        return None
    for folder in _search(search).dirs("traces"):
        candidate = folder / text
        if candidate.is_file():
            return str(candidate)
    return None


def require_trace(spec: str | os.PathLike[str], search: SearchPath | None = None) -> str:
    """:func:`find_trace`, raising :class:`CatalogError` (with the known traces) when nothing is found."""
    found = find_trace(spec, search)
    if found is None:
        search = _search(search)
        text = os.fspath(spec)
        known = [e.name for e in trace_entries(search)]
        raise CatalogError(f"{text}: no such trace file" + _known(text, known, search.describe("traces")))
    return found


__all__ = [
    "ENV_VARS",
    "FLAGS",
    "KINDS",
    "TRACE_SUFFIXES",
    "CatalogEntry",
    "CatalogError",
    "SearchPath",
    "bundled_dir",
    "find_scenario",
    "find_system",
    "find_trace",
    "require_trace",
    "scenario_entries",
    "system_entries",
    "trace_entries",
    "unknown_system",
]
