#!/usr/bin/env python3
"""Start-up benchmarks (issue 16), measured against each other in one run.

(a) ``python -m replaylib --help``: wall and CPU time of the whole command,
    next to a bare ``python -c pass`` for scale.  Target: <= 0.15 s.
(b) ``python -m replaylib record --quiet`` on the default scenario against the
    same replay in process (``replay(loaded, out=...)`` in this warm
    interpreter, the scenario already loaded): the command's overhead =
    command - in-process replay — interpreter start, imports, loading the
    scenario, the summary.  Target: <= 0.25 s.

Where numpy is installed (it is no dependency of replaylib's, and the README's install has none),
``import pyarrow`` imports it too and initialises pyarrow's numpy support, whichever verb runs: the
figure then includes that.  So the same run also times ``import pyarrow`` with numpy importable and with
it hidden, and prints the difference beside (b): what this environment adds to the overhead that an
install of replaylib alone does not have.

Every figure is the best (minimum) of ``--repeat`` runs, interleaved, so load
from other processes on the machine inflates them as little as possible; CPU
time (user + sys of the child, or of this process) is printed beside wall time
because on a loaded machine wall time includes waiting for a core.

The children run with bytecode caching on, as on a user's machine (an
installed package's modules are compiled once, to ``__pycache__``): a
``PYTHONDONTWRITEBYTECODE`` in this environment is dropped for them, and one
untimed warm-up run of each command writes the caches first.  Without that,
every child would compile the package's sources again (~0.1 s here).

Usage: ``python tools/bench_startup.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time

from benchutil import ROOT

sys.path.insert(0, ROOT)

HELP_TARGET_S = 0.15
RECORD_OVERHEAD_TARGET_S = 0.25
SCENARIO = os.path.join(ROOT, "scenarios", "default.yaml")


#: The children's environment: bytecode caching on (see the module docstring).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def child(argv: list[str]) -> tuple[float, float]:
    """(wall s, cpu s) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=CHILD_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_process(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    cpu0, start = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu0


def best(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return min(s[0] for s in samples), min(s[1] for s in samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    from replaylib.adapter import replay
    from replaylib.scenario import load_scenario

    loaded = load_scenario(SCENARIO)
    samples: dict[str, list[tuple[float, float]]] = {"pass": [], "help": [], "record": [], "replay": [],
                                                     "pyarrow": [], "pyarrow_no_numpy": []}
    has_numpy = importlib.util.find_spec("numpy") is not None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.arrow")
        replay(loaded, out=out)  # warm the in-process path once
        for argv in (["-m", "replaylib", "--help"], ["-m", "replaylib", "record", "--quiet", "--out", out]):
            child(argv)  # untimed: writes the bytecode caches a user's machine has after the first run
        for _ in range(args.repeat):  # interleaved: machine noise hits every figure alike
            samples["pass"].append(child(["-c", "pass"]))
            samples["help"].append(child(["-m", "replaylib", "--help"]))
            samples["record"].append(child(["-m", "replaylib", "record", "--quiet", "--out", out]))
            samples["replay"].append(in_process(lambda: replay(loaded, out=out)))
            if has_numpy:
                samples["pyarrow"].append(child(["-c", "import pyarrow"]))
                samples["pyarrow_no_numpy"].append(child(["-c", "import sys; sys.modules['numpy'] = None; import pyarrow"]))
    (p_wall, p_cpu), (h_wall, h_cpu) = best(samples["pass"]), best(samples["help"])
    (r_wall, r_cpu), (i_wall, i_cpu) = best(samples["record"]), best(samples["replay"])
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; best of {args.repeat}"
          f"; children with bytecode caching{' (PYTHONDONTWRITEBYTECODE dropped)' if 'PYTHONDONTWRITEBYTECODE' in os.environ else ''}")
    print(f"python -c pass:           wall {p_wall:.3f} s, cpu {p_cpu:.3f} s")
    print(f"(a) python -m replaylib --help: wall {h_wall:.3f} s, cpu {h_cpu:.3f} s "
          f"({h_wall - p_wall:+.3f} s over bare python; target <= {HELP_TARGET_S} s) "
          f"-> {'PASS' if h_wall <= HELP_TARGET_S else 'FAIL'}")
    over_wall, over_cpu = r_wall - i_wall, r_cpu - i_cpu
    print(f"(b) record command: wall {r_wall:.3f} s, cpu {r_cpu:.3f} s; in-process replay: wall {i_wall:.3f} s, cpu {i_cpu:.3f} s")
    print(f"    overhead: wall {over_wall:.3f} s, cpu {over_cpu:.3f} s (target <= {RECORD_OVERHEAD_TARGET_S} s) "
          f"-> {'PASS' if over_wall <= RECORD_OVERHEAD_TARGET_S else 'FAIL'}")
    if has_numpy:
        (a_wall, _), (b_wall, _) = best(samples["pyarrow"]), best(samples["pyarrow_no_numpy"])
        print(f"    numpy is installed here (no dependency of replaylib's): `import pyarrow` takes {a_wall:.3f} s with it, "
              f"{b_wall:.3f} s without; {a_wall - b_wall:+.3f} s of the overhead is numpy's, which an install of replaylib "
              f"alone does not load")
    else:
        print("    numpy is not installed here: pyarrow imports without it, as on the README's install")
    return 0


if __name__ == "__main__":
    sys.exit(main())
