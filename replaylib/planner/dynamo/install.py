"""Install NVIDIA Dynamo's planner for the ``dynamo`` bridge: ``python -m replaylib.planner.dynamo.install``.

Why not ``pip install 'replaylib[dynamo]'``: ``ai-dynamo`` declares
``aisimulate``, whose registry release is a stub wheel that downloads the real
one from another index while it builds, and ``aisimulate_core``, which is not
published at all — so no resolver can install ai-dynamo with its dependencies
from the registry, and neither could an extra that names it.  This command
does what works, into the running interpreter's environment:

1. ``pip install --no-deps ai-dynamo==V ai-dynamo-runtime==V`` (``--version V``,
   default :data:`TESTED_VERSION`; skipped with ``--deps-only``, e.g. for an
   editable Dynamo checkout you installed yourself);
2. ``pip install`` the modules Dynamo's planner imports on the bridge's path
   (:data:`PLANNER_IMPORTS`), each within the version range ai-dynamo or
   ai-dynamo-runtime declares for it, if any;
3. imports the planner in a fresh interpreter to check (AISimulate is stood in
   for: :mod:`replaylib.planner.dynamo.standins`).

How :data:`PLANNER_IMPORTS` was measured (ai-dynamo 1.6.1): importing
``dynamo.planner.offline.replay_adapter`` with the stand-ins installed fails
without each of them, one at a time — pydantic (``planner/config/defaults.py``),
numpy (``core/perf_model/agg.py``), scikit-learn (``core/perf_model/base.py``),
kubernetes (``connectors/global_planner.py``), plotly
(``monitoring/diagnostics_recorder.py``), prometheus-api-client
(``monitoring/traffic_metrics.py``), prometheus-client
(``monitoring/planner_metrics.py``), and pandas, pmdarima, filterpy and prophet
(``core/load/predictors.py``, imported at module load whatever predictor is
configured).  Everything else ai-dynamo declares (transformers, redis, pyzmq,
zstandard, ...) is not needed by the planner and is not installed.  ``pip check``
afterwards reports those as missing; that is expected.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence

from replaylib.planner.dynamo import DISTRIBUTION

#: The ai-dynamo release the bridge is tested against (CI installs it).
TESTED_VERSION = "1.6.1"
#: The Rust half of Dynamo, released in lockstep with ai-dynamo.
RUNTIME_DISTRIBUTION = "ai-dynamo-runtime"
#: Distributions Dynamo's planner imports on the bridge's path (measured: see the module docstring).
PLANNER_IMPORTS: tuple[str, ...] = (
    "pydantic",
    "numpy",
    "scikit-learn",
    "kubernetes",
    "plotly",
    "prometheus-api-client",
    "prometheus-client",
    "pandas",
    "pmdarima",
    "filterpy",
    "prophet",
)

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_ranges() -> dict[str, str]:
    """Version ranges the installed ai-dynamo and ai-dynamo-runtime declare, by normalized name.

    Requirements behind an ``extra`` or another environment marker are left out.
    """
    ranges: dict[str, str] = {}
    for dist in (DISTRIBUTION, RUNTIME_DISTRIBUTION):
        try:
            requirements = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requirements:
            m = _REQUIREMENT.match(text)
            if m is None or (m.group(4) or "").strip():
                continue
            if m.group(3):
                ranges.setdefault(_normalize(m.group(1)), m.group(3).replace(" ", ""))
    return ranges


def dependency_requirements() -> list[str]:
    """``PLANNER_IMPORTS`` as pip requirements, with Dynamo's declared ranges where it has them."""
    ranges = declared_ranges()
    return [name + ranges.get(_normalize(name), "") for name in PLANNER_IMPORTS]


def _run(cmd: Sequence[str], dry_run: bool) -> int:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    if dry_run:
        return 0
    return subprocess.call(list(cmd))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m replaylib.planner.dynamo.install",
        description="Install NVIDIA Dynamo's planner (ai-dynamo, ai-dynamo-runtime with --no-deps) and the modules "
        "its planner imports, into this interpreter's environment, for replaylib's `--planner dynamo`.",
    )
    parser.add_argument("--version", default=TESTED_VERSION, help=f"ai-dynamo release to install (default: {TESTED_VERSION}, the one the bridge is tested with)")
    parser.add_argument("--deps-only", action="store_true", help="keep the installed ai-dynamo (e.g. an editable checkout) and install only the planner's dependencies")
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands without running them")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", args.version):
        print(f"error: --version {args.version!r}: expected a release number such as {TESTED_VERSION}", file=sys.stderr)
        return 2
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    if not args.deps_only:
        status = _run([*pip, "--no-deps", f"{DISTRIBUTION}=={args.version}", f"{RUNTIME_DISTRIBUTION}=={args.version}"], args.dry_run)
        if status:
            print(f"error: installing {DISTRIBUTION} {args.version} failed (pip exit {status})", file=sys.stderr)
            return 1
    elif not args.dry_run and _installed(DISTRIBUTION) is None:
        print(f"error: --deps-only, but {DISTRIBUTION} is not installed", file=sys.stderr)
        return 2
    status = _run([*pip, *dependency_requirements()], args.dry_run)
    if status:
        print(f"error: installing the planner's dependencies failed (pip exit {status})", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    check = "from replaylib.planner.dynamo.loader import import_dynamo; d = import_dynamo(); print(d.version, ','.join(d.stood_in) or 'none')"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    if out.returncode:
        print(f"error: Dynamo's planner does not import after the install:\n{out.stderr.strip()}", file=sys.stderr)
        return 1
    version, stood_in = out.stdout.split()
    print(f"Dynamo's planner {version} imports; AISimulate stand-ins: {stood_in}. Replay it with `python -m replaylib record --planner dynamo`.")
    return 0


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
