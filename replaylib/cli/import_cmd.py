"""``import FORMAT SRC -o DST``: convert a production trace into a replaylib trace."""

from __future__ import annotations

import argparse
import sys
import time

from replaylib.cli.options import seed_int
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "import a production trace (mooncake, azure, burstgpt, bailian, csv, parquet)"

_FORMATS_HELP = """\
formats:
  mooncake  Mooncake JSONL variants (aliases input_tokens/output_tokens/created_time/
            delay_ms, float timestamps, session_id/delay); sorted by default
  azure     Azure LLM inference trace CSV 2023/2024: TIMESTAMP,ContextTokens,GeneratedTokens
  burstgpt  BurstGPT CSV: Timestamp (s), Model, Request tokens, Response tokens, Log Type;
            rows with 0 response tokens (failed requests) are dropped and counted
  bailian   Alibaba Qwen-Bailian JSONL: chat_id, parent_chat_id, timestamp (s), input_length,
            output_length, hash_ids (16 tokens a block) -> session_id = root chat_id
  csv       any CSV table, with --map and --time-unit
  parquet   any Parquet table, with --map and --time-unit (native datetime columns need none)

Azure, BurstGPT, Bailian, CSV and Parquet sources are streamed in batches (memory does
not grow with the file; Bailian alone keeps a chat -> session map, ~100 bytes a chat)
and must be time-ordered: the first row that goes back in time is an error unless
--sort is given.  --sort holds the whole trace in memory.

examples:
  python -m replaylib import azure AzureLLMInferenceTrace_code.csv -o traces/azure_code.jsonl.gz
  python -m replaylib import burstgpt BurstGPT_1.csv -o burst.parquet --model GPT-4 --start 3600 --end 7200
  python -m replaylib import csv my.csv -o my.jsonl --map timestamp=ts,input_length=prompt,output_length=completion --time-unit s

exit status: 0 on success, 2 on bad input or usage (nothing is written then, and an
existing output file is left untouched).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help=HELP,
        description="Convert a production trace into a replaylib trace (.jsonl, .jsonl.gz or .parquet).",
        epilog=_FORMATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from replaylib.trace.importers import FORMATS

    p.add_argument("format", choices=FORMATS, metavar="FORMAT", help=f"source format: {', '.join(FORMATS)}")
    p.add_argument("src", metavar="SRC", help="source file (CSV and JSONL may be gzip-compressed)")
    p.add_argument("-o", "--output", required=True, metavar="DST", help="output trace: DST.jsonl, DST.jsonl.gz or DST.parquet")
    p.add_argument("--block-size", type=int, default=512, metavar="N", help="target tokens per hash block (default 512)")
    p.add_argument("--start", type=float, metavar="S", help="drop rows earlier than S seconds after the first source row")
    p.add_argument("--end", type=float, metavar="S", help="stop at S seconds after the first source row")
    p.add_argument("--speedup", type=float, default=1.0, metavar="X", help="divide all output times by X (default 1)")
    p.add_argument("--sample", type=float, metavar="FRACTION", help="keep this fraction of rows (whole sessions if the source has sessions)")
    p.add_argument("--seed", type=seed_int, default=0, metavar="N", help="seed for --sample (default 0)")
    p.add_argument("--limit", type=int, metavar="N", help="stop after writing N rows")
    p.add_argument(
        "--sort",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sort rows by timestamp instead of failing on out-of-order rows; holds the WHOLE trace "
        "in memory (default: on for mooncake, off for the streamed formats)",
    )
    p.add_argument(
        "--shared-prefix-tokens",
        type=int,
        default=0,
        metavar="N",
        help="sources without hash ids: the full blocks of the first N tokens get the same ids in "
        "every request (a common system prompt); default 0 = every block unique",
    )
    p.add_argument(
        "--source-block-size",
        type=int,
        metavar="N",
        help="tokens per source hash id (mooncake 512, bailian 16; csv/parquet with a hash_ids column)",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="FIELD=COLUMN,...",
        help="csv/parquet: source column of each field (timestamp, input_length, output_length, "
        "session_id, hash_ids); unmapped fields use their own name; may be repeated",
    )
    p.add_argument("--time-unit", choices=("s", "ms", "us", "ns", "datetime"), help="csv/parquet: unit of the timestamp column")
    p.add_argument("--time-format", metavar="FMT", help="datetime text layout, e.g. '%%Y-%%m-%%d %%H:%%M:%%S%%.f' (default: guessed from the first row)")
    p.add_argument("--model", help="burstgpt: keep only this Model (case-insensitive)")
    p.add_argument("--log-type", help="burstgpt: keep only this Log Type (case-insensitive)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=import_cmd, _parser=p)


def import_cmd(args: argparse.Namespace) -> int:
    import msgspec

    from replaylib.trace.importers import ImportOptions, format_report, import_trace

    try:
        columns = _parse_map(",".join(args.map)) if args.map else {}
    except ValueError as exc:
        args._parser.error(str(exc))
    options = ImportOptions(
        block_size=args.block_size,
        start_s=args.start,
        end_s=args.end,
        speedup=args.speedup,
        sample=args.sample,
        seed=args.seed,
        limit=args.limit,
        sort=args.sort,
        shared_prefix_tokens=args.shared_prefix_tokens,
        source_block_size=args.source_block_size,
        columns=columns,
        time_unit=args.time_unit,
        time_format=args.time_format,
        model=args.model,
        log_type=args.log_type,
    )
    began = time.perf_counter()
    try:
        report = import_trace(args.format, args.src, args.output, options)
    except ReplaylibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - began
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        print(format_report(report))
        print(f"took        {elapsed:,.2f} s ({report.rows_read / max(elapsed, 1e-9):,.0f} rows/s)")
    return 0


def _parse_map(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        field, sep, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise ValueError(f"--map: expected FIELD=COLUMN pairs separated by commas, got {item!r}")
        if field in out:
            raise ValueError(f"--map: field {field!r} given twice")
        out[field] = column
    return out
