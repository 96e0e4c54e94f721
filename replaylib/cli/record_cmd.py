"""``record``: replay a scenario, write its recording, print a summary."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from replaylib.cli.options import add_search_options, epilog, search_path, seed_int
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "replay a scenario through the fleet and planner, write the recording, print a summary"

DEFAULT_SCENARIO = "default"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help=HELP,
        description="Replay a scenario (its trace through the simulated fleet, its planner every tick, its events and "
        "power budget), write every event to an Arrow recording and print a summary: a one-line verdict, the KPIs "
        "and each assertion's verdict with its evidence.",
        epilog=epilog(
            "python -m replaylib record",
            "python -m replaylib record --scenario g1_decode_drift --planner aic@1",
            "python -m replaylib record --scenario my.yaml --trace-dir ~/traces --json > summary.json",
            exits="exit status: 0 every assertion passed, 1 an assertion failed, 2 bad input (scenario, trace, planner, output)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", metavar="NAME|PATH",
                   help=f"scenario file, or a name on the scenario search path (default: the bundled {DEFAULT_SCENARIO}; "
                   "`python -m replaylib list scenarios` lists them)")
    p.add_argument("--trace", metavar="PATH|NAME", help="replay this trace (.jsonl, .jsonl.gz, .parquet) instead of the scenario's")
    p.add_argument("--planner", metavar="SPEC", help="planner instead of the scenario's: NAME[@VERSION] or pkg.module:Class")
    p.add_argument("--seed", type=seed_int, help="seed instead of the scenario's")
    p.add_argument("--trace-mode", choices=("open_loop", "closed_loop"),
                   help="replay the trace open loop (every row at its timestamp) or closed loop (a session's next turn "
                        "waits for its previous turn to complete, plus its delay); default: the scenario's trace.mode")
    p.add_argument("--out", metavar="FILE.arrow",
                   help="recording path (default: recordings/<scenario>__<planner>_v<version>.arrow)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (what `show --json` prints)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_search_options(p)
    p.set_defaults(func=run)


def recording_name(scenario: str, planner: str) -> str:
    """``recordings/<scenario>__<name>_v<version>.arrow`` for a resolved ``name@version`` (or an import path).

    Both parts are reduced to a safe file name (letters, digits, ``._-``; no path separator, no leading
    dot, so never ``..``): a scenario's ``name:`` cannot steer the file outside ``recordings/``.
    """
    return os.path.join("recordings", f"{safe_name(scenario)}__{safe_name(planner.replace('@', '_v'))}.arrow")


def safe_name(text: str) -> str:
    """``text`` as one file-name component: runs of other characters become ``_``, leading dots go."""
    name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", text)).lstrip(".")[:120]
    return name or "unnamed"


def run(args: argparse.Namespace) -> int:
    from replaylib.adapter import replay
    from replaylib.data import bundled_dir, require_trace
    from replaylib.planner.registry import resolve_spec
    from replaylib.report.output import check_output
    from replaylib.report.summary import format_summary, summarize_replay, to_json
    from replaylib.scenario import load_scenario

    search = search_path(args)
    try:
        scenario = args.scenario or str(bundled_dir("scenarios") / f"{DEFAULT_SCENARIO}.yaml")
        loaded = load_scenario(scenario, check_trace=args.trace is None, search=search)
        trace = require_trace(args.trace, search) if args.trace is not None else None
        planner = resolve_spec(args.planner or loaded.scenario.planner.name)
        out = args.out or recording_name(loaded.scenario.name, planner)
        check_output(out, create_folders=True)
        bar = _ProgressBar(loaded, trace) if not args.quiet and sys.stderr.isatty() else None
        try:
            result = replay(loaded, out=out, planner=args.planner, trace=trace, seed=args.seed, progress=bar,
                            trace_mode=args.trace_mode)
        finally:
            if bar is not None:
                bar.close()
        summary = summarize_replay(result)  # from the rows as they were recorded: no read-back
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(to_json(summary))
    else:
        note = "" if result.finished else " (stopped at the tick limit)"
        print(format_summary(summary, scenario_path=loaded.path, ticks_note=note))
        outside = result.timing_range.describe()
        if outside:
            print(f"timing outside the measured range ({result.timing_range.model} model, clamped or extended): {outside}")
    return 0 if result.passed else 1


class _ProgressBar:
    """The one-line progress display on a terminal's stderr: ticks, simulated time, requests, total and ETA.

    The simulated-time fraction (now / the trace's last arrival) is deterministic; the ETA extrapolates
    the wall clock from it and is only ever shown here, never written to an output.
    """

    def __init__(self, loaded: object, trace: str | None) -> None:
        from replaylib.trace.stats import trace_extent

        scenario = loaded.scenario  # type: ignore[attr-defined]
        self.limit = scenario.ticks
        extent = trace_extent(trace or loaded.trace_path, sort=scenario.trace.sort)  # type: ignore[attr-defined]
        limit = scenario.trace.limit
        self.total = extent.requests if limit is None else min(limit, extent.requests)
        self.end_ms = extent.last_ms / scenario.trace.speedup
        self.started = time.monotonic()

    def __call__(self, tick: int, now_ms: float, snap: object) -> None:
        done = getattr(snap, "completed", 0)
        arrived = getattr(snap, "arrived", 0)
        of = f"/{self.limit}" if self.limit else ""
        frac = min(1.0, now_ms / self.end_ms) if self.end_ms > 0 else 1.0
        if self.limit:
            frac = max(frac, (tick + 1) / self.limit)
        eta = ""
        elapsed = time.monotonic() - self.started
        if 0.02 < frac < 1.0 and elapsed > 0.5:
            eta = f"  ETA {elapsed * (1 - frac) / frac:4.0f} s"
        sys.stderr.write(
            f"\r  tick {tick + 1}{of}  sim {now_ms / 60000:6.1f} of {self.end_ms / 60000:.1f} min ({frac:4.0%})"
            f"  requests {done:,} done, {arrived:,} of {self.total:,} arrived{eta} "
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
