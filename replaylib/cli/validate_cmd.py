"""``validate trace PATH`` and ``validate scenario PATH``."""

from __future__ import annotations

import argparse
import sys

from replaylib.errors import ReplaylibError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a trace or a scenario and print what it holds")
    what = p.add_subparsers(dest="what", metavar="{trace,scenario}", parser_class=type(p))
    what.required = True
    t = what.add_parser("trace", help="validate a Mooncake JSONL trace (.jsonl or .jsonl.gz) and print its statistics")
    t.add_argument("path")
    t.add_argument("--block-size", type=int, default=512, help="tokens per hash block (default 512)")
    t.add_argument("--sort", action="store_true", help="accept out-of-order timestamps (sorts in memory)")
    t.set_defaults(func=validate_trace)
    s = what.add_parser("scenario", help="validate a scenario YAML (with its extends chain and system)")
    s.add_argument("path")
    s.set_defaults(func=validate_scenario)


def validate_trace(args: argparse.Namespace) -> int:
    from replaylib.trace import read_trace
    from replaylib.trace.stats import format_stats, trace_stats

    try:
        stats = trace_stats(read_trace(args.path, sort=args.sort), block_size=args.block_size)
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_stats(args.path, stats))
    return 0


def validate_scenario(args: argparse.Namespace) -> int:
    from replaylib.scenario import load_scenario

    try:
        loaded = load_scenario(args.path)
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = loaded.scenario
    print(f"scenario    {s.name}  ({args.path})")
    print(f"trace       {loaded.trace_path}")
    print(f"system      {loaded.system.name}  ({loaded.system_path})")
    print(f"fleet       {s.fleet.prefill_workers} prefill + {s.fleet.decode_workers} decode workers, router {s.fleet.router}")
    print(f"planner     {s.planner.name}, every {s.planner.adjustment_interval_s:g} s")
    budget = s.power.total_gpu_power_limit_w
    print(f"budget      {'none' if budget is None else f'{budget:,.0f} W'}")
    print(f"events      {len(s.events)}   assertions {len(s.assertions)}")
    print(f"hash        {loaded.content_hash}")
    return 0
