"""replaylib: record-and-replay traces with golden files for LLM-serving planners.

Replay a request trace through a simulated disaggregated prefill/decode fleet,
let a planner act every tick under a GPU power budget, record every decision as
Arrow events and compare recordings against golden files or other planner
versions.  See ``DESIGN.md`` in the shared folder for the module contracts.
"""

__version__ = "0.1.0"

import os as _os

from replaylib import native as _native

_native.select(_os.path.dirname(__file__))  # the compiled build of the fleet's hot modules, or their sources

from replaylib.errors import ReplaylibError  # noqa: E402

__all__ = ["ReplaylibError", "__version__"]
