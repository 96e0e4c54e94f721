"""``compare --scenario S --planner P1 --planner P2 ...``: replay one scenario under each planner and diff them."""

from __future__ import annotations

import argparse
import sys

from replaylib.errors import ReplaylibError


def register(sub: argparse._SubParsersAction) -> None:
    from replaylib.cli.diff_cmd import add_diff_options
    from replaylib.cli.sweep_cmd import add_executor_options

    p = sub.add_parser(
        "compare",
        help="replay a scenario under several planners; diff each against the first, KPIs side by side",
        description="Replay the same scenario (same trace, same seed) once per --planner, print each planner's diff "
        "against the first one and one KPI table across all of them. Exit status 0 = done, 2 = error.",
    )
    p.add_argument("--scenario", required=True, metavar="S.yaml", help="the scenario to replay")
    p.add_argument("--planner", action="append", required=True, metavar="SPEC", dest="planners",
                   help="a planner: name@version (sla@1, aic@1 ...) or pkg.module:Class; give it twice or more")
    p.add_argument("--seed", type=int, default=None, help="seed for every replay (default: the scenario's)")
    p.add_argument("--out-dir", default=None, metavar="DIR", help="keep the recordings here (default: a temporary folder)")
    add_diff_options(p)
    add_executor_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.diff import compare_planners, render_compare

    if len(args.planners) < 2:
        print("error: compare needs at least two --planner", file=sys.stderr)
        return 2
    try:
        report = compare_planners(
            args.scenario,
            args.planners,
            seed=args.seed,
            out_dir=args.out_dir,
            tolerance=args.tolerance,
            columns=args.columns,
            context=args.context,
            log=lambda msg: print(msg, file=sys.stderr),
            executor=args.executor,
            jobs=args.jobs,
            scheduler=args.scheduler,
            connect_timeout_s=args.connect_timeout,
        )
        text = render_compare(report, args.format)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
