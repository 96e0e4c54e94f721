"""replaylib: record-and-replay traces with golden files for LLM-serving planners.

Replay a request trace through a simulated disaggregated prefill/decode fleet,
let a planner act every tick under a GPU power budget, record every decision as
Arrow events and compare recordings against golden files or other planner
versions.  See ``DESIGN.md`` in the shared folder for the module contracts.
"""

__version__ = "0.1.0"

from replaylib.errors import ReplaylibError

__all__ = ["ReplaylibError", "__version__"]
