"""NVIDIA Dynamo's own planner, replayed in the loop: ``--planner dynamo``.

The bridge (:mod:`.bridge`) drives the planner Dynamo ships for offline replay
(``dynamo.planner.offline.replay_adapter``) from replaylib's tick loop: each
tick's :class:`~replaylib.planner.Observation` becomes the snapshot Dynamo's
replay runtime would send (:mod:`.snapshot`), Dynamo's answer becomes a
:class:`~replaylib.planner.Decision`, and the scenario's planner keys plus its
``planner.dynamo:`` block become Dynamo's own ``PlannerConfig`` (:mod:`.config`).
Dynamo's declared dependency AISimulate cannot be installed from the registry;
:mod:`.standins` stands in for it.  ``python -m replaylib.planner.dynamo.install``
installs Dynamo the way that works (:mod:`.install`).

Specs: ``dynamo`` (the installed Dynamo), ``dynamo@<ai-dynamo version>`` (fails
unless that version is installed) or ``dynamo@<bridge version>`` (``dynamo@1``,
the label recordings carry).

Nothing in this package imports Dynamo until a planner is constructed:
:func:`installed_version` and :func:`unavailable_reason` only read the
installed distributions' metadata.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replaylib.planner.protocol import Planner, PlannerContext

#: The distribution that holds ``dynamo.planner`` (its Rust half is ``ai-dynamo-runtime``).
DISTRIBUTION = "ai-dynamo"
#: The command that installs it (see :mod:`.install`).
INSTALL_HINT = "python -m replaylib.planner.dynamo.install"


def installed_version() -> str | None:
    """The installed ai-dynamo version (an editable checkout counts), or None."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def unavailable_reason() -> str | None:
    """Why ``--planner dynamo`` cannot run here (None when Dynamo is installed)."""
    if installed_version() is None:
        return f"NVIDIA Dynamo's planner is not installed (the {DISTRIBUTION} distribution is absent); install it with `{INSTALL_HINT}`"
    return None


def load_planner(version: str | None, ctx: PlannerContext) -> Planner:
    """The registry's factory: ``dynamo`` / ``dynamo@<version>`` constructed with ``ctx``."""
    from replaylib.planner.dynamo.bridge import DynamoPlanner

    return DynamoPlanner(ctx, version=version)


__all__ = ["DISTRIBUTION", "INSTALL_HINT", "installed_version", "load_planner", "unavailable_reason"]
