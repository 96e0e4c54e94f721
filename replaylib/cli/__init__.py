"""``python -m replaylib <verb>``: thin argument handling over library calls.

Each verb lives in its own module exposing ``register(subparsers)`` (adds its
parser and sets ``func``) and the function that runs it.  Errors derived from
:class:`~replaylib.errors.ReplaylibError` are printed as one line on stderr;
the verb decides the exit status (usage errors are always 2).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
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


def build_parser(only: str | None = None, *, summaries: bool = False) -> argparse.ArgumentParser:
    """The whole command line; ``only``: just that verb's parser (what running one verb needs — building the
    others imports their registries, e.g. every systems and trace importer, for nothing); ``summaries``: every
    verb with its one-line ``HELP`` and no arguments (what the top-level ``--help`` and a mistyped verb need)."""
    parser = _Parser(
        prog="python -m replaylib",
        description="Replay LLM request traces through a simulated fleet, record planner decisions, diff them.",
    )
    parser.add_argument("--version", action="version", version=f"replaylib {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for verb in VERBS if only is None else (only,):
        module = importlib.import_module(f"replaylib.cli.{verb}_cmd")
        if summaries:
            sub.add_parser(verb, help=module.HELP)
        else:
            module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it ends like Ctrl-C: outputs kept intact, exit 143."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # a run of one verb builds that verb's parser alone; anything else (--help, --version, a typo) just the list
    # of verbs, each with its one line
    verb = words[0] if words and words[0] in VERBS else None
    parser = build_parser(verb, summaries=verb is None)
    args = parser.parse_args(words)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # a replay's own (ReplayInterrupted) says where its events are
        terminated = any(isinstance(e, Terminated) for e in (exc, exc.__cause__, exc.__context__))
        word, detail = ("terminated" if terminated else "interrupted"), str(exc)
        print(f"{word}: {detail}" if detail else word, file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
