"""The command line: every verb is listed, usage errors exit 2 with a usage line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from replaylib.cli import VERBS, main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replaylib", *args], capture_output=True, text=True)


def test_help_lists_every_verb() -> None:
    run = _run("--help")
    assert run.returncode == 0
    for verb in VERBS:
        assert f"    {verb} " in run.stdout or f"    {verb}\n" in run.stdout, verb  # a long name wraps its help


@pytest.mark.parametrize(
    "args",
    [
        ("explode",),
        (),
        ("record", "--seed", "abc"),
        ("validate",),
        ("validate", "trace"),
        ("diff", "only-one.arrow"),
        ("generate", "--shape", "square", "-o", "x.jsonl"),
        ("import", "nosuchformat", "src.csv", "-o", "x.jsonl"),
        ("sweep",),
        ("sweep", "s.yaml", "--jobs", "0"),
        ("sweep", "s.yaml", "--executor", "threads"),
    ],
)
def test_usage_errors_exit_2_with_a_usage_line(args: tuple[str, ...]) -> None:
    run = _run(*args)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("usage: python -m replaylib"), run.stderr
    assert "error:" in run.stderr


def test_verb_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in VERBS:
        with pytest.raises(SystemExit) as info:
            main([verb, "--help"])
        assert info.value.code == 0
        assert f"python -m replaylib {verb}" in capsys.readouterr().out
