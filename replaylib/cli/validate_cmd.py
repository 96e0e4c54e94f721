"""``validate trace PATH`` and ``validate scenario PATH``."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import add_search_options, epilog, positive_int, search_path
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "check a trace or a scenario and print what it holds"

_EXITS = "exit status: 0 valid, 1 invalid (the message names the file, line or key and what was expected), 2 usage"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help=HELP,
        description="Check a trace or a scenario and print what it holds.",
        epilog=epilog("python -m replaylib validate trace traces/tiny.jsonl",
                      "python -m replaylib validate scenario g3_tight_budget", exits=_EXITS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_subparsers(dest="what", metavar="{trace,scenario}", parser_class=type(p))
    what.required = True
    t = what.add_parser(
        "trace",
        help="validate a trace (.jsonl, .jsonl.gz or .parquet) and print its statistics",
        description="Read a whole trace (Mooncake JSONL, plain or gzip, or Parquet) and print request count, duration, "
        "rate, ISL/OSL and prefix reuse. A CSV or other format is refused with the `import` command that converts it.",
        epilog=epilog("python -m replaylib validate trace traces/diurnal_40min.jsonl.gz",
                      "python -m replaylib validate trace imported.parquet --block-size 16",
                      "REPLAYLIB_TRACE_PATH=~/traces python -m replaylib validate trace mooncake.jsonl", exits=_EXITS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("path", metavar="PATH|NAME", help="trace file, or its path below a folder of the trace search path")
    t.add_argument("--block-size", type=positive_int, default=512, help="tokens per hash block (default 512)")
    t.add_argument("--sort", action="store_true", help="accept out-of-order timestamps (sorts in memory)")
    add_search_options(t)
    t.set_defaults(func=validate_trace)
    s = what.add_parser(
        "scenario",
        help="validate a scenario YAML (with its extends chain and system)",
        description="Load a scenario with its extends chain, system and trace and print what it sets up.",
        epilog=epilog("python -m replaylib validate scenario scenarios/g1_decode_drift.yaml",
                      "python -m replaylib validate scenario testbed/a1_burst --scenario-dir ./my-scenarios", exits=_EXITS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("path", metavar="PATH|NAME", help="scenario file, or a scenario name (`list scenarios`)")
    add_search_options(s)
    s.set_defaults(func=validate_scenario)


def validate_trace(args: argparse.Namespace) -> int:
    from replaylib.trace import read_trace
    from replaylib.trace.stats import format_stats, trace_stats

    from replaylib.data import require_trace

    try:
        path = require_trace(args.path, search_path(args))
        stats = trace_stats(read_trace(path, sort=args.sort), block_size=args.block_size)
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_stats(path, stats))
    return 0


def validate_scenario(args: argparse.Namespace) -> int:
    from replaylib.scenario import load_scenario

    try:
        loaded = load_scenario(args.path, search=search_path(args))
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = loaded.scenario
    print(f"scenario    {s.name}  ({loaded.path})")
    print(f"trace       {loaded.trace_path}")
    print(f"system      {loaded.system.name}  ({loaded.system_path})")
    print(f"fleet       {s.fleet.prefill_workers} prefill + {s.fleet.decode_workers} decode workers, router {s.fleet.router}")
    print(f"planner     {s.planner.name}, every {s.planner.adjustment_interval_s:g} s")
    budget = s.power.total_gpu_power_limit_w
    print(f"budget      {'none' if budget is None else f'{budget:,.0f} W'}")
    print(f"events      {len(s.events)}   assertions {len(s.assertions)}")
    print(f"hash        {loaded.content_hash}")
    return 0
