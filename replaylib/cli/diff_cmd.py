"""``diff A.arrow B.arrow``: compare two recordings; exit 0 same, 1 different, 2 error (like ``diff``)."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError


def columns_arg(text: str) -> list[str]:
    """``c1,c2,...`` as a list (blank items dropped)."""
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise argparse.ArgumentTypeError("expected COLUMN[,COLUMN...]")
    return cols


def tolerance_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (0.0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def context_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of ticks, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected >= 0, got {value}")
    return value


def add_diff_options(p: argparse.ArgumentParser) -> None:
    """The comparison options ``diff`` and ``compare`` share."""
    from replaylib.diff.formats import FORMATS

    p.add_argument("--tolerance", type=tolerance_arg, default=0.0, metavar="REL",
                   help="floats equal within this relative difference (default 0: exact)")
    p.add_argument("--columns", type=columns_arg, default=None, metavar="C1,C2,...",
                   help="compare only these columns (default: all but seq and the histograms)")
    p.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    p.add_argument("--context", type=context_arg, default=2, metavar="N",
                   help="ticks of context either side of the first divergence (default 2)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two recordings tick by tick (exit 0 same, 1 different, 2 error)",
        description="Align two recordings by tick (other events by their order within their kind), print the "
        "metadata differences, the first diverging tick with context, per-column counts and KPIs side by side. "
        "Exit status 0 = same decisions, 1 = different, 2 = error.",
        epilog=epilog(
            "python -m replaylib diff recordings/default__aic_v1.arrow recordings/default__aic_v2.arrow",
            "python -m replaylib diff a.arrow b.arrow --tolerance 1e-6 --format markdown > diff.md",
            exits="exit status: 0 same decisions, 1 different, 2 bad input (missing or non-recording file, different traces without --force)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A.arrow")
    p.add_argument("b", metavar="B.arrow")
    add_diff_options(p)
    p.add_argument("--force", action="store_true", help="diff recordings of different traces or scenarios anyway")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.diff import diff_recordings, render

    try:
        report = diff_recordings(
            args.a, args.b, tolerance=args.tolerance, columns=args.columns, context=args.context, force=args.force
        )
        text = render(report, args.format)
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0 if report.identical else 1
