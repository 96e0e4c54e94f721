"""What the benchmarks share: where the repository and the shared traces are, and how a
child process reads its own peak memory (Linux VmHWM, which exec resets)."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_TRACES = os.path.join(ROOT, "..", "shared", "traces")

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
