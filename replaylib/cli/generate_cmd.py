"""``generate -o OUT.jsonl[.gz] [--config FILE.yaml] [flags]``: write a seeded synthetic trace.

Every flag maps to one key of :class:`~replaylib.trace.generate.GeneratorConfig`.
The config is built as a mapping — the ``--config`` file first, flags on top —
and validated in one go, so the defaults live in the structs only and an error
names the flag (or the file and key) that caused it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "write a seeded synthetic Mooncake-style trace"

#: (flag, key path in the config, argparse type, help).  Shape-specific keys live under ``arrivals``.
_FLAGS: tuple[tuple[str, tuple[str, ...], Any, str], ...] = (
    ("--seed", ("seed",), int, "random seed (default 0)"),
    ("--duration", ("duration_s",), float, "trace length in seconds (default 1800; with only --requests: unlimited)"),
    ("--requests", ("requests",), int, "stop after this many requests"),
    ("--block-size", ("block_size",), int, "tokens per hash block (default 512)"),
    ("--rate", ("arrivals", "rate"), float, "poisson: requests/s (default 2)"),
    ("--rate0", ("arrivals", "rate0"), float, "ramp: starting requests/s (default 0.5)"),
    ("--rate1", ("arrivals", "rate1"), float, "ramp: final requests/s (default 3)"),
    ("--ramp-over", ("arrivals", "over_s"), float, "ramp: seconds to go from rate0 to rate1 (default: --duration)"),
    ("--levels", ("arrivals", "levels"), None, "step: START_S:RATE,... levels, the first at 0 (default 0:1,600:3,1200:1)"),
    ("--base", ("arrivals", "base"), float, "sine: mean requests/s (default 2)"),
    ("--amplitude", ("arrivals", "amplitude"), float, "sine: swing in requests/s (default 1)"),
    ("--period", ("arrivals", "period_s"), float, "sine: period in seconds (default 1200)"),
    ("--phase", ("arrivals", "phase"), float, "sine: phase in radians (default 0)"),
    *(
        (f"--{name}-{knob}", (key, field), typ, f"{what}: {text}" + (extra if knob == "max" else ""))
        for name, key, what, extra in (
            ("isl", "isl", "ISL of first turns", "; for isl this clamps every input, continuations included"),
            ("osl", "osl", "OSL", ""),
            ("turn", ("sessions", "turn"), "new user tokens per continuation", ""),
        )
        for knob, field, typ, text in (
            ("dist", "dist", str, "lognormal, uniform or fixed"),
            ("mean", "mean", float, "mean tokens (lognormal, fixed)"),
            ("sigma", "sigma", float, "log-space sigma (lognormal)"),
            ("min", "min", int, "clamp to at least this many tokens (>= 1)"),
            ("max", "max", int, "clamp to at most this many tokens"),
        )
    ),
    ("--system-prompts", ("prefixes", "system_prompts"), int, "number of shared system prompts (default 3)"),
    ("--system-prompt-tokens", ("prefixes", "tokens"), int, "tokens of each system prompt (default 1024)"),
    ("--prompt-zipf", ("prefixes", "zipf_s"), float, "Zipf exponent of system-prompt popularity (default 1.2)"),
    ("--prompt-share", ("prefixes", "share"), float, "probability a new request uses a system prompt (default 1)"),
    ("--continue-prob", ("sessions", "continue_prob"), float, "probability a request continues an open session (default 0.4)"),
    ("--session-min-gap", ("sessions", "min_gap_s"), float, "seconds before a session's next turn (default 10)"),
    ("--session-timeout", ("sessions", "timeout_s"), float, "seconds after which an idle session closes (default 900)"),
    ("--max-turns", ("sessions", "max_turns"), int, "turns per session at most (default 10)"),
    ("--max-open-sessions", ("sessions", "max_open"), int, "open sessions kept at most (default 1024)"),
)


def _flatten(flags: tuple[tuple[str, Any, Any, str], ...]) -> list[tuple[str, tuple[str, ...], Any, str]]:
    out = []
    for flag, key, typ, text in flags:
        path = tuple(p for part in key for p in ((part,) if isinstance(part, str) else part))
        out.append((flag, path, typ, text))
    return out


FLAGS = _flatten(_FLAGS)


def _levels(text: str) -> list[list[float]]:
    try:
        pairs = [item.split(":") for item in text.split(",") if item.strip()]
        return [[float(a), float(b)] for a, b in pairs]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START_S:RATE[,START_S:RATE...], got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    from replaylib.cli.options import epilog

    p = sub.add_parser(
        "generate",
        help=HELP,
        description="Write a seeded synthetic Mooncake-style trace (same flags + seed => same bytes). "
        "Defaults look like a scaled-down Mooncake conversation trace.",
        epilog=epilog(
            "python -m replaylib generate -o t.jsonl.gz --shape ramp --rate0 0.5 --rate1 3 --duration 1800 --seed 1",
            "python -m replaylib generate -o t.jsonl --shape step --levels 0:1,600:4 --duration 1200",
            "python -m replaylib generate -o t.jsonl --config gen.yaml --seed 2",
            exits="exit status: 0 written, 1 the config produced no requests, 2 bad input (flag, config, output path)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl[.gz]",
                   help="output trace: .jsonl, or .jsonl.gz for gzip (other extensions are refused; "
                   "`import` writes Parquet)")
    p.add_argument("--config", metavar="FILE.yaml", help="generator config; flags given as well override its keys")
    p.add_argument("--shape", choices=("poisson", "ramp", "step", "sine"), help="arrival-rate shape (default poisson)")
    p.add_argument("--session-ids", action="store_true", default=None, help="write session_id on every row")
    p.add_argument("--session-delays", action="store_true", default=None,
                   help="also write delay (ms since the session's previous turn arrived) on continuation turns, "
                        "for closed-loop replay; implies --session-ids")
    for flag, _path, typ, text in FLAGS:
        kwargs: dict[str, Any] = {"type": _levels if flag == "--levels" else typ, "help": text, "dest": _dest(flag)}
        if flag.endswith("-dist"):
            kwargs["choices"] = ("lognormal", "uniform", "fixed")
        p.add_argument(flag, default=None, metavar=flag.rsplit("-", 1)[-1].upper(), **kwargs)
    p.set_defaults(func=run)


def _dest(flag: str) -> str:
    return "cfg_" + flag.lstrip("-").replace("-", "_")


def build_config(args: argparse.Namespace) -> Any:
    """The validated :class:`GeneratorConfig` for parsed ``args`` (raises GeneratorConfigError)."""
    from replaylib.trace.generate import GeneratorConfigError, config_from_mapping

    doc: dict[str, Any] = {}
    source = "command line"
    if args.config:
        from replaylib.scenario.yamlio import read_yaml

        loaded = read_yaml(args.config)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise GeneratorConfigError(args.config, None, f"expected a mapping at the top level, got {type(loaded).__name__}")
        doc = loaded
        source = args.config
    given: dict[tuple[str, ...], str] = {}
    if args.shape is not None and doc.get("arrivals", {}).get("shape") != args.shape:
        doc["arrivals"] = {"shape": args.shape}  # another shape's keys do not carry over
        given[("arrivals", "shape")] = "--shape"
    if args.session_ids:
        _set(doc, ("sessions", "emit_ids"), True)
        given[("sessions", "emit_ids")] = "--session-ids"
    if args.session_delays:
        _set(doc, ("sessions", "emit_delays"), True)
        given[("sessions", "emit_delays")] = "--session-delays"
    for flag, path, _, _ in FLAGS:
        value = getattr(args, _dest(flag))
        if value is not None:
            _set(doc, path, value)
            given[path] = flag
    arrivals = doc.get("arrivals")
    if isinstance(arrivals, dict) and "shape" not in arrivals and not args.config:
        arrivals["shape"] = "poisson"  # the default shape; a flag of another shape is then reported as such
    if args.cfg_requests is not None and "duration_s" not in doc:
        doc["duration_s"] = None  # --requests alone: no time limit
    try:
        return config_from_mapping(doc, source=source)
    except GeneratorConfigError as exc:
        where = tuple(exc.key.split("[")[0].split(".")) if exc.key else ()
        flags = [f for path, f in given.items() if where and path[: len(where)] == where]
        if flags:
            raise GeneratorConfigError(", ".join(flags), None, exc.message) from None
        if not args.config and exc.key is not None:
            raise GeneratorConfigError("config", exc.key, exc.message) from None
        raise


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = doc.get(key)
        if not isinstance(child, dict):
            child = doc[key] = {}
        doc = child
    doc[path[-1]] = value


def run(args: argparse.Namespace) -> int:
    from replaylib.trace import read_trace, write_trace
    from replaylib.trace.generate import generate_trace
    from replaylib.trace.stats import format_stats, trace_stats

    try:
        config = build_config(args)
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.output.endswith((".jsonl", ".jsonl.gz")):
        print(f"error: {args.output}: generate writes Mooncake JSONL; name the output .jsonl or .jsonl.gz "
              "(for Parquet, generate a .jsonl and convert it with `python -m replaylib import mooncake T.jsonl -o T.parquet`)",
              file=sys.stderr)
        return 2
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory):
        print(f"error: output directory does not exist: {directory}", file=sys.stderr)
        return 2
    try:
        n = write_trace(args.output, generate_trace(config))
        if n == 0:
            os.unlink(args.output)
            print("error: the config produced no requests (duration too short or rate too low?)", file=sys.stderr)
            return 1
        stats = trace_stats(read_trace(args.output), block_size=config.block_size)
    except (OSError, ReplaylibError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_stats(args.output, stats))
    print(f"config      shape {config.arrivals.__struct_config__.tag}, seed {config.seed}")
    return 0
