"""``compare --scenario S --planner P1 --planner P2 ...``: replay one scenario under each planner and diff them."""

from __future__ import annotations

import argparse
import sys

from replaylib.errors import ReplaylibError


def register(sub: argparse._SubParsersAction) -> None:
    from replaylib.cli.diff_cmd import add_diff_options

    p = sub.add_parser(
        "compare",
        help="replay a scenario under several planners; diff each against the first, KPIs and assertions side by side",
        description="Replay the same scenario (same trace, same seed) once per --planner, print each planner's diff "
        "against the first one (judged by the scenario's golden: settings, then --only / --tolerance), one KPI table "
        "across all of them and every assertion verdict. Exit status 0 = every planner decides as the first and "
        "every assertion passes, 1 = a planner decides differently or an assertion fails, 2 = error.",
    )
    p.add_argument("--scenario", required=True, metavar="S.yaml", help="the scenario to replay")
    p.add_argument("--planner", action="append", required=True, metavar="SPEC", dest="planners",
                   help="a planner: name@version (sla@1, aic@1 ...) or pkg.module:Class; give it twice or more")
    p.add_argument("--seed", type=int, default=None, help="seed for every replay (default: the scenario's)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="keep the recordings here (default: a temporary folder, removed afterwards)")
    add_diff_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.cli.diff_cmd import policy_from
    from replaylib.diff import compare_planners, render_compare
    from replaylib.scenario import load_scenario

    if len(args.planners) < 2:
        print("error: compare needs at least two --planner", file=sys.stderr)
        return 2
    try:
        loaded = load_scenario(args.scenario)
        report = compare_planners(
            loaded,
            args.planners,
            seed=args.seed,
            out_dir=args.out_dir,
            policy=policy_from(args, loaded.scenario),
            columns=args.columns,
            context=args.context,
            log=lambda msg: print(msg, file=sys.stderr),
        )
        text = render_compare(report, args.format)
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0 if report.same and report.passed else 1
