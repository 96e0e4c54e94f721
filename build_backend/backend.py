"""The build backend: setuptools' own, plus mypy as a build requirement for the compiled fleet (built by
default; not with ``REPLAYLIB_BUILD_NATIVE=0``, see ``setup.py``).  PEP 517 lets a backend add build
requirements at build time; this is the only thing it changes."""

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every hook not overridden below is setuptools' own

NATIVE_REQUIRES = ["mypy>=1.10"]


def _native() -> list[str]:
    return [] if os.environ.get("REPLAYLIB_BUILD_NATIVE") == "0" else NATIVE_REQUIRES


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001, ANN201
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_native()]


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001, ANN201
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_native()]
