"""Packaging: the metadata is in pyproject.toml; this file maps the data folders and, on request,
compiles the fleet's hot modules.

The top-level ``scenarios/``, ``systems/`` and ``traces/`` folders stay where the
repository keeps them and are installed as the data packages
``replaylib.data.<folder>`` (every file below them is package data, see
``[tool.setuptools.package-data]``), so a file added under them later ships with
no further edit.  The code packages are found automatically.

By default the install also compiles ``replaylib.native.MODULES`` with mypyc (the build backend,
``build_backend/backend.py``, asks for mypy as a build requirement), and falls back to the pure-Python
sources, with a warning, where that cannot be done (no C compiler, no Python headers, no mypyc in a build
without isolation).  ``REPLAYLIB_BUILD_NATIVE=1`` requires the compiled build (a compile that fails fails
the install: it never quietly installs something else); ``REPLAYLIB_BUILD_NATIVE=0`` skips it.  The
extensions are installed beside their sources, each with its source's sha256 (``<extension>.sha256``),
by which ``replaylib.native`` falls back to the sources when they changed after the build.
"""

import os
import sys
import warnings

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

DATA_FOLDERS = ("scenarios", "systems", "traces")
HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, "replaylib")
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


# The build backend's helpers (on the path already under a PEP 517 build; added for a direct ``setup.py`` run).
sys.path.insert(0, os.path.join(HERE, "build_backend"))
from backend import load_native, native_mode  # noqa: E402


def _fall_back(why: str) -> None:
    warnings.warn(f"replaylib: the fleet is not compiled ({why}); it runs as pure Python, 2-3x slower. "
                  "REPLAYLIB_BUILD_NATIVE=1 makes this an error, REPLAYLIB_BUILD_NATIVE=0 silences it.", stacklevel=2)


class BuildExtWithHashes(build_ext):
    """build_ext that writes, beside each compiled module, the sha256 of the source it was compiled from.

    In ``auto`` mode the extensions are optional: when any of them fails to compile, the ones that did are
    removed too (the modules are one mypyc group, useless apart) and the sources run."""

    def _hashed(self):  # (extension path, source path) of each compiled module
        native = load_native()
        return [(self.get_ext_fullpath(f"{native.PACKAGE}.{name}"), native.source_path(PACKAGE_DIR, name))
                for name in native.MODULES] if self.extensions else []

    def run(self):
        built = [self.get_ext_fullpath(ext.name) for ext in self.extensions]
        # An earlier build's files go first: an in-place (editable) rebuild whose compile fails must not leave
        # the old binaries beside sources they were not compiled from, nor hash those sources for them.
        for path in [*built, *(ext_path + load_native().HASH_SUFFIX for ext_path, _ in self._hashed())]:
            if os.path.exists(path):
                os.remove(path)
        super().run()
        if not self.extensions:
            return
        if not all(os.path.exists(path) for path in built):
            for path in built:
                if os.path.exists(path):
                    os.remove(path)
            _fall_back("a C extension failed to compile: see the compiler's message above")
            self.extensions = []
            return
        native = load_native()
        for ext_path, source in self._hashed():
            with open(ext_path + native.HASH_SUFFIX, "w", encoding="ascii") as f:
                f.write(native.source_sha256(source) + "\n")

    def get_outputs(self):
        outputs = [path for path in super().get_outputs() if os.path.exists(path)] if self.extensions else []
        return [*outputs, *(ext_path + load_native().HASH_SUFFIX for ext_path, _ in self._hashed())]


def native_extensions():
    mode = native_mode()
    if mode == "off":
        return []
    try:
        from mypyc.build import mypycify  # the backend adds mypy to the build requirements
    except ImportError:
        if not BUILD_COMMANDS.intersection(sys.argv[1:]):
            return []  # setuptools asking for the build requirements: mypy comes with them
        if mode == "auto":
            _fall_back("mypy (mypyc) is not installed in the build environment")
            return []
        raise SystemExit("REPLAYLIB_BUILD_NATIVE=1 asks for the compiled fleet, but mypy (mypyc) is not installed "
                         "in the build environment (a build without isolation needs `pip install mypy` first)") from None
    native = load_native()
    sources = [os.path.relpath(native.source_path(PACKAGE_DIR, name), HERE) for name in native.MODULES]
    # replaylib's own modules are type-checked with them; the installed packages (msgspec, ...) are not
    # looked at (--no-site-packages): their types are Any, so what is installed where it builds never
    # changes the compiled code.  group_name: mypyc's shared library (the code of all the modules) goes
    # inside the package (replaylib.native.GROUP + '__mypyc'), not beside it as a top-level module that an
    # editable install could not import from elsewhere.
    extensions = mypycify(["--follow-imports=silent", "--ignore-missing-imports", "--no-site-packages", *sources],
                          opt_level="3", group_name=native.GROUP)
    for ext in extensions:
        ext.optional = mode == "auto"  # build_ext then warns about a failed compile and goes on
    return extensions


setup(
    packages=[*find_packages(include=["replaylib", "replaylib.*"]), *(f"replaylib.data.{d}" for d in DATA_FOLDERS)],
    package_dir={f"replaylib.data.{d}": d for d in DATA_FOLDERS},
    ext_modules=native_extensions(),
    cmdclass={"build_ext": BuildExtWithHashes},
)
