"""``systems import NAME SOURCE -o OUT.yaml``: measured or estimated performance data → a systems file."""

from __future__ import annotations

import argparse
import sys

from replaylib.cli.options import epilog
from replaylib.errors import ReplaylibError

#: The one line ``python -m replaylib --help`` shows for this verb.
HELP = "make systems files from profiles or estimators (systems import NAME ...)"

_EPILOG = epilog(
    "python -m replaylib systems import dynamo ../shared/profiles/dynamo_h200_tp1p_tp1d -o systems/my_h200.yaml "
    "--gpu-from systems/h200_sxm_analytic.yaml",
    "python -m replaylib systems import aiconfigurator meta-llama/Meta-Llama-3.1-70B -o systems/my_h100.yaml "
    "--system h100_sxm --gpu-from systems/h100_sxm_analytic.yaml",
    exits="exit status: 0 written, 2 bad input (the file, array and point are named; nothing is written)",
)


def register(sub: argparse._SubParsersAction) -> None:
    from replaylib.timing.importers import importers

    p = sub.add_parser("systems", help=HELP,
                       description="Systems files from measured or estimated performance data.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="systems_verb", metavar="ACTION", parser_class=type(p))
    verbs.required = True
    imp = verbs.add_parser("import", help="import a profile into a systems YAML with provenance",
                           description="Write a systems YAML (table timing, provenance) from a profile.",
                           epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = imp.add_subparsers(dest="importer", metavar="IMPORTER", parser_class=type(p))
    names.required = True
    for name, importer in importers().items():
        q = names.add_parser(name, help=importer.help, description=importer.help, epilog=_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("source", metavar="SOURCE", help=importer.source_help)
        q.add_argument("-o", "--out", required=True, metavar="OUT.yaml", help="the systems file to write")
        importer.add_arguments(q)
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replaylib.timing.importers import import_system, importers

    importer = importers()[args.importer]
    try:
        path = import_system(args.importer, args.source, args.out, **importer.options(args))
    except (ReplaylibError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
