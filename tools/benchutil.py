"""What the benchmarks share: where the repository and the shared traces are, and how a
child process reads its own peak memory (Linux VmHWM, which exec resets)."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real traces are found like the tests find them: on the trace search path
# (REPLAYLIB_TRACE_PATH), ../shared/traces beside the repository when it is unset.
os.environ.setdefault("REPLAYLIB_TRACE_PATH", os.path.join(ROOT, "..", "shared", "traces"))
SHARED_TRACES = os.environ["REPLAYLIB_TRACE_PATH"].split(os.pathsep)[0]

#: Source of ``vmhwm_mb()`` for the ``python -c`` children that measure memory.
VMHWM_SOURCE = r'''
def vmhwm_mb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
'''
