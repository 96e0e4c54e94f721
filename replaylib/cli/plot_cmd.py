"""``plot REC.arrow [REC2.arrow ...] -o out.png|svg``: replicas, caps, power, latency and load over simulated time."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "draw recordings over simulated time (replicas, caps, power vs budget, TTFT/ITL vs SLA, load)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help=HELP,
        description="Draw one recording, or several overlaid for a visual diff, in six panels over simulated time: "
        "replicas (active vs target per role), per-GPU caps (applied vs asked), GPU power against the budget, TTFT "
        "and ITL against their targets, request rate; faults are grey lines, failed assertions red ones. "
        "Needs matplotlib: pip install 'replaylib[plot]'.",
        epilog=epilog(
            "python -m replaylib plot recordings/default__aic_v2.arrow -o default.png",
            "python -m replaylib plot a.arrow b.arrow -o a_vs_b.svg --title 'aic@1 vs aic@2'",
            exits="exit status: 0 drawn, 2 bad input (missing, truncated or non-recording file, unwritable output, "
            "unknown output extension, matplotlib missing)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recordings", nargs="+", metavar="REC.arrow")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png|OUT.svg", help="the picture (format by extension)")
    p.add_argument("--title", help="figure title (default: scenario and planners)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.report.output import check_output
    from replaylib.report.plot import output_format, plot_recordings

    try:
        output_format(args.output)
        check_output(args.output)
        plot_recordings(args.recordings, args.output, title=args.title)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0
