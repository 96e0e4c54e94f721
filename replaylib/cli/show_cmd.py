"""``show REC.arrow [--json]``: the metadata, KPIs and verdicts of an existing recording."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "summarise a recording: verdict, metadata, KPIs, assertion verdicts"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show",
        help=HELP,
        description="Print the summary `record` prints, for a recording made earlier: the one-line verdict, "
        "scenario/planner/seed, the KPIs against the SLA and each assertion's verdict with its evidence.",
        epilog=epilog(
            "python -m replaylib show recordings/default__aic_v2.arrow",
            "python -m replaylib show run.arrow --json | jq .kpis.sla_attainment",
            exits="exit status: 0 shown, 2 bad input (missing, truncated or non-recording file)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recording", metavar="REC.arrow")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (metadata, KPIs, verdicts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.report.summary import format_summary, summarize, to_json

    try:
        summary = summarize(args.recording)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(to_json(summary) if args.json else format_summary(summary))
    return 0
