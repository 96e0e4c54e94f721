"""``export REC.arrow --format openmetrics -o OUT.om``: a recording for Prometheus/Grafana."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "export a recording as an OpenMetrics text exposition with timestamps (Prometheus, Grafana)"

FORMATS = ("openmetrics",)


def start_arg(text: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or an ISO time such as 2026-01-31T12:00:00Z, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help=HELP,
        description="Write the tick rows of a recording as an OpenMetrics text exposition: one gauge family per "
        "numeric column (labelled by role where the column names one, and by scenario, planner and seed), each "
        "sample timestamped with the tick's simulated time after --start. Import it with `promtool tsdb "
        "create-blocks-from openmetrics OUT.om DATA_DIR`; grafana/replaylib_dashboard.json charts it.",
        epilog=epilog(
            "python -m replaylib export recordings/default__aic_v2.arrow --format openmetrics -o default.om",
            "python -m replaylib export run.arrow --format openmetrics -o run.om --start 2026-01-31T12:00:00Z",
            exits="exit status: 0 written, 2 bad input (missing, truncated or non-recording file, unwritable output)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recording", metavar="REC.arrow")
    p.add_argument("--format", choices=FORMATS, default="openmetrics", help="export format (default openmetrics)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the exposition file ('-' for stdout)")
    p.add_argument("--start", type=start_arg, default=0.0, metavar="TIME",
                   help="wall-clock time of the replay's t=0: epoch seconds or ISO 8601 (default 0, the Unix epoch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.report.openmetrics import EXPORTERS, exposition
    from replaylib.report.summary import load_complete

    try:
        if args.output == "-":
            df, meta = load_complete(args.recording)
            sys.stdout.writelines(exposition(df, meta, start_s=args.start))
            return 0
        samples = EXPORTERS[args.format](args.recording, args.output, start_s=args.start)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {samples:,} samples", file=sys.stderr)
    return 0
