#!/usr/bin/env python3
"""Print (or --write into docs/fleet_model.md) the table of shipped systems: timing, source, and the
fleet's error against each table system's own grid points (replaylib.sim.calibration)."""

from __future__ import annotations

import argparse
import os
import sys

from benchutil import ROOT

sys.path.insert(0, ROOT)

START, END = "<!-- systems-table:start -->\n", "<!-- systems-table:end -->"


def main() -> int:
    from replaylib.scenario import load_system
    from replaylib.sim.calibration import render_systems_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the table in docs/fleet_model.md")
    args = ap.parse_args()
    folder = os.path.join(ROOT, "systems")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".yaml"))
    table = render_systems_table([(f"systems/{n}", load_system(os.path.join(folder, n))) for n in names])
    if not args.write:
        sys.stdout.write(table)
        return 0
    doc_path = os.path.join(ROOT, "docs", "fleet_model.md")
    with open(doc_path, encoding="utf-8") as fh:
        doc = fh.read()
    if START not in doc or END not in doc:
        print(f"{doc_path}: no {START.strip()} ... {END} markers", file=sys.stderr)
        return 2
    head, rest = doc.split(START, 1)
    doc = head + START + table + END + rest.split(END, 1)[1]
    with open(doc_path, "w", encoding="utf-8") as fh:
        fh.write(doc)
    print(f"updated {doc_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
