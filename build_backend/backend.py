"""The build backend: setuptools' own, plus mypy as a build requirement for the compiled fleet (built by
default; not with ``REPLAYLIB_BUILD_NATIVE=0``, see ``setup.py``).  PEP 517 lets a backend add build
requirements at build time; this is the only thing it changes."""

import importlib.util
import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every hook not overridden below is setuptools' own

NATIVE_REQUIRES = ["mypy>=1.10"]
#: replaylib/native.py, loaded by path (the package's dependencies are not installed here): it reads the switch.
NATIVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "replaylib", "native.py")


def load_native():  # noqa: ANN201 - the module replaylib/native.py (setup.py loads it through here too)
    spec = importlib.util.spec_from_file_location("_replaylib_native", NATIVE)
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    return native


def native_mode() -> str:
    """``required``, ``off`` or ``auto``: ``replaylib.native.build_mode`` (REPLAYLIB_BUILD_NATIVE); a bad value
    stops the build with the accepted values named."""
    try:
        return load_native().build_mode()
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def _native() -> list[str]:
    return [] if native_mode() == "off" else NATIVE_REQUIRES


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001, ANN201
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_native()]


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001, ANN201
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_native()]
