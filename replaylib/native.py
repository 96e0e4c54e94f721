"""Which build of the fleet's hot modules runs: the pure-Python reference or its compiled twin.

``MODULES`` (the fleet's event loop, its prefix cache, the latency histogram's arithmetic, the
closed form of a run of decode steps and the built-in timing models, analytic and table) are compiled with mypyc at install time where the machine can
(``pip install -e .``; ``REPLAYLIB_BUILD_NATIVE=0`` skips it, ``=1`` requires it; see ``setup.py``): the same source files become C
extensions, installed next to them, which Python's import system then prefers.  The ``.py`` files stay
the reference: ``tests/test_native.py`` replays with both builds and compares the recordings byte for
byte.

:func:`select` runs when ``replaylib`` is imported (``replaylib/__init__.py``), before any of them can
be, and imports the sources instead of the extensions when

* ``REPLAYLIB_PURE_PYTHON=1`` asks for the reference, or
* the compiled build is stale or incomplete: the build writes each source's sha256 next to its
  extension (``<extension file>.sha256``), so an edited ``fleet.py`` is never shadowed by an older
  binary.

``REPLAYLIB_REQUIRE_NATIVE=1`` turns a missing or stale build into an ImportError (CI's native step).

This module imports only the standard library: ``setup.py`` loads it by path to learn ``MODULES``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

#: The modules compiled together (one mypyc group), relative to the package ``replaylib`` (a compiled module
#: calls a compiled one natively).  The timing models go together: ``TableTiming`` subclasses the analytic
#: module's ``LinearTransfer``, and a class compiled with mypyc can only subclass a compiled one.
MODULES = ("sim.fleet", "sim.prefix_cache", "sim.histogram", "timing.runs", "timing.interp", "timing.analytic", "timing.table")
PACKAGE = "replaylib"
#: mypyc's shared library holding the group's code (``<GROUP>__mypyc``): in the top package, whose
#: ``__init__`` is light (in ``replaylib.sim`` it would load the whole fleet for ``replaylib.timing.runs``).
GROUP = "replaylib.compiled"
PURE_ENV = "REPLAYLIB_PURE_PYTHON"
REQUIRE_ENV = "REPLAYLIB_REQUIRE_NATIVE"
HASH_SUFFIX = ".sha256"

#: The install's switch (``setup.py`` and ``build_backend/backend.py`` read it through :func:`build_mode`).
BUILD_ENV = "REPLAYLIB_BUILD_NATIVE"
_BUILD_MODES = {"1": "required", "0": "off", "": "auto"}

COMPILED = "compiled (mypyc)"
PURE = "pure Python"
PURE_ASKED = f"pure Python ({PURE_ENV}=1)"

#: What :func:`select` chose for this process (``COMPILED``, ``PURE``, ``PURE_ASKED`` or a stale-build reason).
BUILD = PURE


def build_mode() -> str:
    """How the install builds ``MODULES``: ``required`` (``REPLAYLIB_BUILD_NATIVE=1``: a failed compile fails the
    install), ``off`` (``=0``: the sources only) or ``auto`` (unset: compile where the machine can).  Any other
    value is a ValueError that names the accepted ones."""
    value = os.environ.get(BUILD_ENV, "")
    if value not in _BUILD_MODES:
        raise ValueError(f"{BUILD_ENV}={value!r}: expected 1 (require the compiled fleet), 0 (pure Python) "
                         "or unset (compile it where the machine can)")
    return _BUILD_MODES[value]


def source_sha256(path: str) -> str:
    import hashlib  # only when there is a build to check

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def source_path(package_dir: str, name: str) -> str:
    """The source of module ``name`` (``sim.fleet``) in the package directory ``package_dir``."""
    return os.path.join(package_dir, *name.split(".")) + ".py"


def extension_path(package_dir: str, name: str) -> str | None:
    """The compiled extension of module ``name`` in ``package_dir``, if one was built."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(package_dir, *name.split(".")) + suffix
        if os.path.exists(path):
            return path
    return None


def build_state(package_dir: str, modules: Sequence[str] = MODULES) -> str:
    """``COMPILED`` when every module has an extension whose recorded source hash matches its ``.py``;
    ``PURE`` when none has an extension; otherwise why the compiled build cannot be used."""
    extensions = {name: extension_path(package_dir, name) for name in modules}
    if not any(extensions.values()):
        return PURE
    for name, ext in extensions.items():
        if ext is None:
            return f"pure Python (the compiled build has no {name} extension)"
        try:
            with open(ext + HASH_SUFFIX, encoding="ascii") as f:
                recorded = f.read().strip()
        except OSError:
            return f"pure Python (no source hash beside {os.path.basename(ext)})"
        if recorded != source_sha256(source_path(package_dir, name)):
            return f"pure Python (the compiled build is older than {name}'s source; rebuild with pip install -e .)"
    return COMPILED


class _SourceFinder:
    """Finds ``MODULES`` as their ``.py`` sources, so an extension beside them is never loaded."""

    def __init__(self, package_dir: str) -> None:
        self.paths = {f"{PACKAGE}.{name}": source_path(package_dir, name) for name in MODULES}

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        source = self.paths.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def select(package_dir: str) -> str:
    """Decide, before ``MODULES`` are imported, which build this process runs; returns (and sets) ``BUILD``."""
    global BUILD
    state = build_state(package_dir)
    if os.environ.get(PURE_ENV) == "1":
        state = PURE_ASKED
    elif os.environ.get(REQUIRE_ENV) == "1" and state != COMPILED:
        raise ImportError(f"{REQUIRE_ENV}=1 but the fleet runs {state} (install with REPLAYLIB_BUILD_NATIVE=1 to see why the compile failed)")
    if state != COMPILED and any(extension_path(package_dir, name) for name in MODULES):
        if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceFinder(package_dir))
    BUILD = state
    return state
