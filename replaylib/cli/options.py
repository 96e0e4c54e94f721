"""Command-line options several verbs share."""

from __future__ import annotations

import argparse

from replaylib.data import ENV_VARS, FLAGS, KINDS, SearchPath


def add_search_options(p: argparse.ArgumentParser) -> None:
    """``--scenario-dir`` / ``--system-dir`` / ``--trace-dir DIR`` (repeatable), searched before the bundled folders."""
    for kind in KINDS:
        p.add_argument(FLAGS[kind], action="append", default=[], metavar="DIR", dest=f"{kind}_dirs",
                       help=f"also look for {kind} in DIR (repeatable; before ${ENV_VARS[kind]} and the bundled {kind})")


def search_path(args: argparse.Namespace) -> SearchPath:
    """The search path of the parsed flags, then of the environment."""
    return SearchPath.from_env(
        scenarios=getattr(args, "scenarios_dirs", []),
        systems=getattr(args, "systems_dirs", []),
        traces=getattr(args, "traces_dirs", []),
    )


def epilog(*examples: str, exits: str) -> str:
    """A verb's ``--help`` epilog: examples, then what the exit statuses mean."""
    lines = ["examples:", *(f"  {e}" for e in examples), "", exits]
    return "\n".join(lines)
