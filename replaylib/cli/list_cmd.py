"""``list scenarios|planners|systems|traces``: what can be named, one line each."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import add_search_options, epilog, search_path
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "list the scenarios, planners, systems or traces that can be named, one line each"

WHAT = ("scenarios", "planners", "systems", "traces")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help=HELP,
        description="List what a name can refer to: scenarios and systems and traces on the search path (your folders "
        "first, then the bundled ones; a name shadowed by an earlier folder is not shown), or the built-in planners "
        "(any pkg.module:Class planner works as well).",
        epilog=epilog(
            "python -m replaylib list scenarios",
            "python -m replaylib list planners",
            "REPLAYLIB_SCENARIO_PATH=~/my-scenarios python -m replaylib list scenarios",
            exits="exit status: 0 listed, 2 bad input (usage, unreadable folder)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=WHAT, help="what to list")
    p.add_argument("--paths", action="store_true", help="also show the file of each entry")
    add_search_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib import data

    try:
        if args.what == "planners":
            from replaylib.planner.registry import planner_entries

            rows = [(e.spec, e.summary, e.target) for e in planner_entries()]
        else:
            entries = {"scenarios": data.scenario_entries, "systems": data.system_entries, "traces": data.trace_entries}
            listed = entries[args.what](search_path(args))
            rows = [(e.name, e.description + ("" if e.bundled else f"  [{e.folder}]"), e.path) for e in listed]
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    width = max((len(r[0]) for r in rows), default=0)
    for name, text, path in rows:
        line = f"{name:<{width}}  {text}".rstrip()
        print(f"{line}  ({path})" if args.paths else line)
    return 0
