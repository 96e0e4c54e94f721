"""``python -m replaylib <verb>``: thin argument handling over library calls.

Each verb lives in its own module exposing ``register(subparsers)`` (adds its
parser and sets ``func``) and the function that runs it.  Errors derived from
:class:`~replaylib.errors.ReplaylibError` are printed as one line on stderr;
the verb decides the exit status (usage errors are always 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from replaylib import __version__

#: Verb modules in the order ``--help`` lists them.
VERBS: tuple[str, ...] = (
    "record", "list", "show", "plot", "report", "export", "validate", "generate", "import", "diff", "compare", "sweep",
    "systems", "sensitivity",
)


class _Parser(argparse.ArgumentParser):
    """argparse that prints the usage line and exits 2 on any usage error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m replaylib",
        description="Replay LLM request traces through a simulated fleet, record planner decisions, diff them.",
    )
    parser.add_argument("--version", action="version", version=f"replaylib {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for verb in VERBS:
        importlib.import_module(f"replaylib.cli.{verb}_cmd").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
