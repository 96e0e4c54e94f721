"""Systems files made by importers: rebuilding one from its own provenance, and the aiconfigurator extra's marker."""

from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import Path
from typing import Any, TypeVar

import pytest

from replaylib.cli import build_parser
from replaylib.scenario import load_system
from replaylib.timing.importers import importers, render_system

HAVE_AIC = importlib.util.find_spec("aiconfigurator") is not None
#: Set by CI's aiconfigurator step: a missing extra fails the ``aic`` tests instead of skipping them.
REQUIRE_AIC = os.environ.get("REPLAYLIB_REQUIRE_AIC") == "1"

F = TypeVar("F")


def needs_aic(test: F) -> F:
    """Mark ``aic`` (``-m aic`` selects it); skip with the reason when the extra is not installed."""
    marked: Any = pytest.mark.aic(test)
    if REQUIRE_AIC:
        return marked
    return pytest.mark.skipif(not HAVE_AIC, reason="aiconfigurator is not installed (pip install 'replaylib[aic]')")(marked)


def rebuild_from_provenance(path: Path) -> str:
    """Parse the file's own ``provenance.call`` with the CLI's parser and build the file again (not written).

    Run it from the directory the call's paths are relative to (the repository root for shipped files)."""
    call = load_system(path).provenance.call
    argv = shlex.split(call)
    assert argv[:5] == ["python", "-m", "replaylib", "systems", "import"], call
    args = build_parser().parse_args(argv[3:])
    importer = importers()[args.importer]
    return render_system(importer.build(args.source, args.out, **importer.options(args)))
