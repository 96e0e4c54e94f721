"""``diff A B``: compare two recordings (or goldens); exit 0 same, 1 different, 2 error (like ``diff``)."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "compare two recordings (or goldens) tick by tick (exit 0 same, 1 different, 2 error)"


def columns_arg(text: str) -> list[str]:
    """``c1,c2,...`` as a list (blank items dropped)."""
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise argparse.ArgumentTypeError("expected COLUMN[,COLUMN...]")
    return cols


def tolerance_arg(text: str) -> tuple:
    """``[KEY=]VALUE`` as one parsed tolerance layer (unknown keys and negative numbers are usage errors)."""
    from replaylib.diff.policy import ToleranceError, parse_tolerance_arg

    try:
        return parse_tolerance_arg(text)
    except ToleranceError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--tolerance: ")) from None


def only_arg(text: str) -> str:
    from replaylib.diff.policy import ToleranceError, parse_only

    try:
        parse_only(text, where="--only")
    except ToleranceError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--only: ")) from None
    return text


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

    p.add_argument("--only", type=only_arg, default=None, metavar="CLASSES",
                   help="the column classes whose differences count: decisions (default), observations, outcomes, "
                        "all, or a comma-separated combination; the others are summarised")
    p.add_argument("--tolerance", type=tolerance_arg, action="append", default=[], metavar="[KEY=]TOL",
                   help="numbers equal within TOL: R (relative), rel:R, abs:A or rel:R,abs:A; KEY is a column, a "
                        "class (decision/observation/outcome) or all (the default); repeatable, later ones win "
                        "(default: the schema's, decisions exact)")
    p.add_argument("--columns", type=columns_arg, default=None, metavar="C1,C2,...",
                   help="compare and judge only these columns (instead of --only)")
    p.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    p.add_argument("--context", type=context_arg, default=2, metavar="N",
                   help="ticks of context either side of the first divergence (default 2)")


def policy_from(args: argparse.Namespace, scenario: object | None = None):  # noqa: ANN201 - ComparePolicy
    """The comparison policy of parsed ``--only`` / ``--tolerance`` (over a scenario's ``golden:`` block)."""
    from replaylib.diff.policy import ComparePolicy, parse_only, scenario_policy

    layers = tuple(layer for layer in args.tolerance if layer)
    if scenario is not None:
        base = scenario_policy(scenario, only=args.only)
        return ComparePolicy(judged=base.judged, layers=base.layers + layers)
    return ComparePolicy(judged=parse_only(args.only), layers=layers)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help=HELP,
        description="Align two recordings by tick (other events by tick, kind and order within the tick), print the "
        "metadata differences, the first tick where the judged columns (decisions, by default) diverge with "
        "context, per-column counts (the other classes summarised) and KPIs side by side. A side may be a "
        ".golden file. Exit status 0 = same decisions, 1 = different, 2 = error.",
        epilog=epilog(
            "python -m replaylib diff recordings/default__aic_v1.arrow recordings/default__aic_v2.arrow",
            "python -m replaylib diff a.arrow b.arrow --only all --tolerance observation=abs:5 --format markdown > diff.md",
            "python -m replaylib diff a.arrow 'goldens/test_goldens/test_golden[default].golden' --stat",
            exits="exit status: 0 same decisions, 1 different, 2 bad input (missing or non-recording file, old-format "
            "golden, unknown column or class, negative tolerance, different traces without --force)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A.arrow|A.golden")
    p.add_argument("b", metavar="B.arrow|B.golden")
    add_diff_options(p)
    p.add_argument("--force", action="store_true", help="diff recordings of different traces or scenarios anyway")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--stat", action="store_true", help="only the verdict and the per-column / per-kind counts")
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing; the exit status says it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.diff import diff_recordings, format_stat, render

    try:
        report = diff_recordings(
            args.a, args.b, policy=policy_from(args), columns=args.columns, context=args.context, force=args.force
        )
        text = "" if args.quiet else format_stat(report) if args.stat and args.format == "text" else render(report, args.format)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0 if report.identical else 1
