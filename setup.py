"""Packaging: the metadata is in pyproject.toml; this file only maps the data folders.

The top-level ``scenarios/``, ``systems/`` and ``traces/`` folders stay where the
repository keeps them and are installed as the data packages
``replaylib.data.<folder>`` (every file below them is package data, see
``[tool.setuptools.package-data]``), so a file added under them later ships with
no further edit.  The code packages are found automatically.
"""

from setuptools import find_packages, setup

DATA_FOLDERS = ("scenarios", "systems", "traces")

setup(
    packages=[*find_packages(include=["replaylib", "replaylib.*"]), *(f"replaylib.data.{d}" for d in DATA_FOLDERS)],
    package_dir={f"replaylib.data.{d}": d for d in DATA_FOLDERS},
)
