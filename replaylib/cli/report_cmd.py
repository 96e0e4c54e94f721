"""``report REC.arrow [--against OTHER.arrow] -o report.html|md``: KPIs, verdicts, plots, first divergence."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "write a report of a recording (HTML, one self-contained file, or Markdown for a pull request)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help=HELP,
        description="Write a report of a recording: the one-line verdict, metadata, the KPI table against the SLA, "
        "every assertion's verdict with its evidence and the plots; with --against, the KPIs side by side with their "
        "delta and the first diverging tick. HTML is one file (CSS and plots inline); Markdown writes the plots to "
        "<report>.png beside it.",
        epilog=epilog(
            "python -m replaylib report recordings/default__aic_v2.arrow -o default.html",
            "python -m replaylib report new.arrow --against golden.arrow -o pr-comment.md",
            exits="exit status: 0 written, 2 bad input (missing, truncated or non-recording file, unwritable output, "
            "unknown output extension, recordings of different traces without --force)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recording", metavar="REC.arrow")
    p.add_argument("--against", metavar="OTHER.arrow", help="compare with this recording (KPIs side by side, first divergence)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.html|OUT.md", help="the report (format by extension)")
    p.add_argument("--no-plots", action="store_true", help="leave the plots out (they need matplotlib)")
    p.add_argument("--force", action="store_true", help="compare recordings of different traces or scenarios anyway")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.report.document import write_report

    try:
        written = write_report(args.recording, args.output, against=args.against, plots=not args.no_plots, force=args.force)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(written))
    return 0
