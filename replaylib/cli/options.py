"""Command-line options several verbs share."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replaylib.data import SearchPath


def add_search_options(p: argparse.ArgumentParser) -> None:
    """``--scenario-dir`` / ``--system-dir`` / ``--trace-dir DIR`` (repeatable), searched before the bundled folders."""
    from replaylib.data import ENV_VARS, FLAGS, KINDS  # here, not at the top: the verb list (--help) needs none

    for kind in KINDS:
        p.add_argument(FLAGS[kind], action="append", default=[], metavar="DIR", dest=f"{kind}_dirs", type=folder,
                       help=f"also look for {kind} in DIR (repeatable; before ${ENV_VARS[kind]} and the bundled {kind})")


def search_path(args: argparse.Namespace) -> SearchPath:
    """The search path of the parsed flags, then of the environment."""
    from replaylib.data import SearchPath

    return SearchPath.from_env(
        scenarios=getattr(args, "scenarios_dirs", []),
        systems=getattr(args, "systems_dirs", []),
        traces=getattr(args, "traces_dirs", []),
    )


def epilog(*examples: str, exits: str) -> str:
    """A verb's ``--help`` epilog: examples, then what the exit statuses mean."""
    lines = ["examples:", *(f"  {e}" for e in examples), "", exits]
    return "\n".join(lines)


def _at_least(parse: type, noun: str, low: float, strict: bool, high: float = math.inf) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, then require a finite value above ``low`` (``strict``) or at least
    ``low``, and at most ``high``."""

    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low) or value > high:
            top = f" and at most {high:,}" if high < math.inf else ""
            raise argparse.ArgumentTypeError(f"expected {noun} {'more than' if strict else 'at least'} {low:g}{top}, got {text}")
        return value

    return check


positive_int = _at_least(int, "a whole number", 1, strict=False)
positive_float = _at_least(float, "a number of seconds", 0, strict=True)
#: A seed: what a scenario's ``seed:`` accepts (a whole number, 0 up to a signed 64-bit value).
seed_int = _at_least(int, "a whole number", 0, strict=False, high=(1 << 63) - 1)


def folder(text: str) -> str:
    """An argparse type: an existing folder."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: not a folder" if os.path.exists(text) else f"{text}: no such folder")
    return text
