"""``sensitivity --scenario S --scale KNOB=F1,F2``: replay a scenario with a model knob scaled, KPIs side by side."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog, seed_int
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "replay a scenario with a timing/power knob scaled (e.g. a cap curve +-20%%) and print the KPI change"

def register(sub: argparse._SubParsersAction) -> None:
    from replaylib.timing.scaled import AUDIENCES, knobs

    names = ", ".join(knobs())
    p = sub.add_parser(
        "sensitivity",
        help=HELP,
        description="Replay the scenario as it is, then once per --scale factor with one model knob scaled, and print "
        f"KPIs and decisions side by side with each change against the base. Knobs: {names}.",
        epilog=epilog(
            "python -m replaylib sensitivity --scenario h200_llama8b_dynamo --scale speed_curve.prefill=0.8,1.2",
            "python -m replaylib sensitivity --scenario default --scale speed_curve.decode=0.9 --to fleet",
            exits="exit status: 0 done, 2 bad input",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", required=True, metavar="S.yaml", help="the scenario to replay")
    p.add_argument("--scale", action="append", required=True, metavar="KNOB=F1,F2", dest="scales",
                   help="a knob and its factors, e.g. speed_curve.prefill=0.8,1.2; repeatable")
    p.add_argument("--to", choices=AUDIENCES, default="both",
                   help="who sees the scaled model: both (default), fleet (the planner keeps the YAML's numbers) or planner")
    p.add_argument("--planner", default=None, metavar="SPEC", help="planner instead of the scenario's")
    p.add_argument("--seed", type=seed_int, default=None, help="seed for every replay (default: the scenario's)")
    p.add_argument("--out-dir", default=None, metavar="DIR", help="keep the recordings here (default: a temporary folder)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.diff.sensitivity import parse_scales, render_sensitivity, sensitivity

    try:
        scales = parse_scales(args.scales)
        report = sensitivity(args.scenario, scales, to=args.to, planner=args.planner, seed=args.seed, out_dir=args.out_dir,
                             log=lambda msg: print(msg, file=sys.stderr))
        text = render_sensitivity(report, args.format)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
