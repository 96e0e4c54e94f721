"""``sweep SWEEP.yaml``: run a matrix of replays on a local process pool or Dask; one recording per run, one table."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog, positive_float, positive_int
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "run a matrix of scenarios x planners x seeds x overrides; a recording per run and a Parquet table"


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where the replays run (shared by ``sweep`` and ``compare``)."""
    from replaylib.sweep.executors import EXECUTORS

    g = p.add_argument_group("executor")
    g.add_argument("--executor", choices=list(EXECUTORS), default=None,
                   help="serial (in this process), process (a local process pool) or dask "
                        "(default: dask with --scheduler, serial with --jobs 1, else process)")
    g.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                   help="worker processes of the local pool or of a local Dask cluster (default: every core)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run on this Dask scheduler's workers (implies --executor dask; needs replaylib[dask])")
    g.add_argument("--connect-timeout", type=positive_float, default=10.0, metavar="S",
                   help="give up reaching the scheduler after S seconds (default 10)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help=HELP,
        description="Plan every run of SWEEP.yaml (scenarios x planners x seeds x overrides of scenario keys), run them "
        "as independent tasks and write OUT/runs/*.arrow and OUT/sweep.parquet (parameters, KPIs, assertion verdicts, "
        "recording path and sha256). A run whose recording already exists for the same inputs is reused.",
        epilog=epilog(
            "python -m replaylib sweep sweeps/budget.yaml",
            "python -m replaylib sweep my_sweep.yaml --jobs 8 --out results/",
            "python -m replaylib sweep my_sweep.yaml --scheduler tcp://10.0.0.5:8786 --out s3://bucket/sweeps/x",
            exits="exit status: 0 every run passed its assertions, 1 a run failed or errored, 2 bad input (nothing was run)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file")
    p.add_argument("--out", "-o", default=None, metavar="DIR|URL",
                   help="output folder or fsspec URL, reachable by every worker (default: recordings/sweeps/<sweep name>)")
    add_executor_options(p)
    p.add_argument("--force", action="store_true", help="replay every run, even those whose recording exists")
    p.add_argument("--dry-run", action="store_true", help="plan and check the sweep, list its runs, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.sweep.runner import run_sweep

    try:
        if args.dry_run:
            return _dry_run(args)
        result = run_sweep(
            args.sweep, out=args.out, executor=args.executor, jobs=args.jobs, scheduler=args.scheduler,
            connect_timeout_s=args.connect_timeout,
            reuse=not args.force, progress=not args.quiet and sys.stderr.isatty(),
            log=lambda msg: print(msg, file=sys.stderr),
        )  # fmt: skip
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = len(result.runs)
    print(f"sweep {result.sweep.name}: {n} run{'s' if n != 1 else ''} ({result.reused} reused) -> {result.out}")
    print(f"  {result.count('passed')} passed, {result.count('failed')} failed an assertion, {result.count('error')} errors")
    print(f"table {result.table_path}")
    return 0 if result.ok else 1


def _dry_run(args: argparse.Namespace) -> int:
    from replaylib.sweep.plan import plan_sweep
    from replaylib.sweep.runner import default_out
    from replaylib.sweep.spec import load_sweep
    from replaylib.sweep.storage import Store

    sweep = load_sweep(args.sweep)
    store = Store(args.out if args.out is not None else default_out(sweep))
    runs = plan_sweep(sweep, store, reuse=not args.force)
    print(f"sweep {sweep.name}: {len(runs)} runs -> {store.location}")
    for r in runs:
        extra = f" {r.overrides}" if r.overrides else ""
        print(f"  {r.index:>5}  {r.scenario}  {r.planner}  seed {r.seed}{extra}  {store.relative(r.task.dest)}")
    return 0
