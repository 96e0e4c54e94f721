"""A tiny scenario project in a temporary folder: systems/, traces/tiny.jsonl, scenarios/<name>.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_scenario(root: Path, body: str, *, name: str = "tiny") -> Path:
    """``scenarios/<name>.yaml`` under ``root`` holding ``body`` (YAML), with the H100 system and the
    100-request ``tiny.jsonl`` trace beside it (``trace: {path: ../traces/tiny.jsonl}``)."""
    (root / "systems").mkdir(exist_ok=True)
    shutil.copy(REPO / "systems" / "h100_sxm.yaml", root / "systems" / "h100_sxm.yaml")
    (root / "traces").mkdir(exist_ok=True)
    shutil.copy(REPO / "traces" / "tiny.jsonl", root / "traces" / "tiny.jsonl")
    path = root / "scenarios" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    return path
