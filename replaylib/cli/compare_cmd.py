"""``compare --scenario S --planner P1 --planner P2 ...``: replay one scenario under each planner and diff them."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import add_search_options, epilog, search_path, seed_int
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "replay a scenario under several planners; diff each against the first, KPIs and assertions side by side"


def register(sub: argparse._SubParsersAction) -> None:
    from replaylib.cli.diff_cmd import add_diff_options
    from replaylib.cli.sweep_cmd import add_executor_options

    p = sub.add_parser(
        "compare",
        help=HELP,
        description="Replay the same scenario (same trace, same seed) once per --planner, print each planner's diff "
        "against the first one (judged by the scenario's golden: block, then --only / --tolerance), one KPI table "
        "across all of them and every assertion verdict. Exit status 0 = every planner decides as the first and "
        "every assertion passes, 1 = a planner decides differently or an assertion fails, 2 = error.",
        epilog=epilog(
            "python -m replaylib compare --scenario g2_load_ramp --planner sla@1 --planner aic@2",
            "python -m replaylib compare --scenario my.yaml --planner aic@2 --planner my_pkg.planners:Mine --format markdown",
            exits="exit status: 0 every planner decides as the first and every assertion passes, 1 a planner decides "
            "differently or an assertion fails, 2 bad input (scenario, planner, tolerance, usage)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", required=True, metavar="NAME|PATH", help="the scenario to replay: a file or a name (`list scenarios`)")
    p.add_argument("--planner", action="append", required=True, metavar="SPEC", dest="planners",
                   help="a planner: name@version (sla@1, aic@1 ...) or pkg.module:Class; give it twice or more")
    p.add_argument("--seed", type=seed_int, default=None, help="seed for every replay (default: the scenario's)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="keep the recordings here, and list them (default: a temporary folder, removed afterwards)")
    add_diff_options(p)
    add_executor_options(p)
    add_search_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.diff import compare_planners, render_compare

    if len(args.planners) < 2:
        print("error: compare needs at least two --planner", file=sys.stderr)
        return 2
    try:
        from replaylib.cli.diff_cmd import policy_from
        from replaylib.scenario import load_scenario

        loaded = load_scenario(args.scenario, search=search_path(args))
        report = compare_planners(
            loaded,
            args.planners,
            seed=args.seed,
            out_dir=args.out_dir,
            policy=policy_from(args, loaded.scenario),
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
    return 0 if report.same and report.passed else 1
