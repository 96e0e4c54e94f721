"""``record``: replay a scenario, write its recording, print a summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from replaylib.errors import ReplaylibError

DEFAULT_SCENARIO = "scenarios/default.yaml"


def default_scenario() -> Path:
    """The bundled default scenario: beside the package in a checkout, else in the current folder."""
    here = Path(__file__).resolve().parents[2] / DEFAULT_SCENARIO
    return here if here.exists() else Path(DEFAULT_SCENARIO)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="replay a scenario through the fleet and planner, write the recording, print a summary")
    p.add_argument("--scenario", help=f"scenario YAML (default: the bundled {DEFAULT_SCENARIO})")
    p.add_argument("--trace", help="replay this trace instead of the scenario's")
    p.add_argument("--planner", help="planner spec instead of the scenario's: NAME@VERSION or pkg.module:Class")
    p.add_argument("--seed", type=int, help="seed instead of the scenario's")
    p.add_argument("--trace-mode", choices=("open_loop", "closed_loop"),
                   help="replay the trace open loop (every row at its timestamp) or closed loop (a session's next turn "
                        "waits for its previous turn to complete, plus its delay); default: the scenario's trace.mode")
    p.add_argument("--out", help="recording path (default: recordings/<scenario>__<planner>.arrow)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.adapter import replay
    from replaylib.record.kpis import format_kpis
    from replaylib.scenario import load_scenario

    scenario = Path(args.scenario) if args.scenario else default_scenario()
    try:
        loaded = load_scenario(scenario, check_trace=args.trace is None)
        if args.trace is not None and not os.path.exists(args.trace):
            raise ReplaylibError(f"{args.trace}: no such trace")
        planner = args.planner or loaded.scenario.planner.name
        out = args.out or os.path.join("recordings", f"{loaded.scenario.name}__{planner.replace(':', '_').replace('@', '_v')}.arrow")
        show = not args.quiet and sys.stderr.isatty()
        bar = _ProgressBar(loaded.scenario.ticks) if show else None
        try:
            result = replay(loaded, out=out, planner=args.planner, trace=args.trace, seed=args.seed, progress=bar,
                            trace_mode=args.trace_mode)
        finally:
            if bar is not None:
                bar.close()
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = result.meta  # the summary comes from the rows as they were recorded: no read-back
    print(f"scenario {loaded.scenario.name} ({scenario}) | planner {result.planner} | seed {meta.seed}")
    print(f"recording {result.path}: {result.rows} events over {result.ticks} ticks"
          + ("" if result.finished else " (stopped at the tick limit)"))
    print(format_kpis(result.kpis, meta))
    if result.turns_abandoned is not None:
        print(f"closed loop: session turns abandoned {result.turns_abandoned:,}, held back at the end {result.turns_held:,}")
    if result.assertions:
        print("assertions")
        for a in result.assertions:
            print(f"  {'PASS' if a.passed else 'FAIL'}  [{a.index}] {a.description} -- {a.evidence}")
    return 0 if result.passed else 1


class _ProgressBar:
    """A one-line progress display on stderr (simulated time and ticks; no wall clock)."""

    def __init__(self, tick_limit: int | None) -> None:
        self.limit = tick_limit

    def __call__(self, tick: int, now_ms: float, snap: object) -> None:
        done = getattr(snap, "completed", 0)
        total = getattr(snap, "arrived", 0)
        of = f"/{self.limit}" if self.limit else ""
        sys.stderr.write(f"\r  tick {tick + 1}{of}  sim {now_ms / 60000:7.1f} min  requests {done:,} done of {total:,} arrived ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
