"""``compare``: exit status, assertion verdicts and KPI rows, untruncated details, recording paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_helpers import tiny_scenario

from replaylib.cli import main
from replaylib.diff import compare_planners
from replaylib.diff.report import decode_compare, render_compare

LONG = "the fleet never holds fewer GPUs than the two workers it starts with, at any tick of the replay"


def _scenario(tmp_path: Path, assertions: str = "") -> Path:
    return tiny_scenario(
        tmp_path,
        "system: h100_sxm\n"
        "trace: {path: ../traces/tiny.jsonl, block_size: 512}\n"
        "fleet: {prefill_workers: 1, decode_workers: 1}\n"
        "planner: {name: sla@1, adjustment_interval_s: 10, ttft_ms: 2000, itl_ms: 50}\n"
        "power: {noise: {power_decode: {kind: gaussian, sigma: 5}}}\n"
        "ticks: 12\n"
        "assertions:\n"
        "  - {always: true, field: dropped, op: '==', value: 0, description: no request is dropped}\n" + assertions,
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_same_decisions_and_passing_assertions_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path)
    code, out, _ = _run(capsys, "--scenario", str(scenario), "--planner", "sla@1", "--planner", "sla@1")
    assert code == 0, out
    assert "SAME: every planner decides as sla@1; all 2 assertion verdicts passed" in out
    assert "assertions passed" in out and "assertions failed" in out  # rows of the KPI table
    assert "replaylib-compare-" not in out and ".arrow" not in out  # temporary recordings are not named
    assert "A: (no path)" not in out


def test_a_failed_assertion_exits_1_with_its_full_detail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path, f"  - {{always: true, field: gpus, op: '>=', value: 6, description: '{LONG}'}}\n")
    code, out, _ = _run(capsys, "--scenario", str(scenario), "--planner", "sla@1", "--planner", "sla@1")
    assert code == 1
    assert "SAME" not in out.splitlines()[1] and "2 of 4 assertion verdicts failed" in out
    fails = [ln for ln in out.splitlines() if ln.strip().startswith("FAIL")]
    assert len(fails) == 2 and all(LONG in ln and "-- " in ln for ln in fails)  # never cut short
    kpi = next(ln for ln in out.splitlines() if ln.strip().startswith("assertions failed"))
    assert kpi.split()[-2:] == ["1", "1"]


def test_different_decisions_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path)
    code, out, _ = _run(capsys, "--scenario", str(scenario), "--planner", "sla@1", "--planner", "aic@1")
    assert code == 1 and "DIFFERENT: aic@1 decides differently from sla@1" in out


def test_out_dir_keeps_and_lists_the_recordings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path)
    runs = tmp_path / "runs"
    code, out, _ = _run(capsys, "--scenario", str(scenario), "--planner", "sla@1", "--planner", "sla@1", "--out-dir", str(runs))
    assert code == 0
    kept = sorted(runs.iterdir())
    assert [p.name for p in kept] == ["00-sla_1.arrow", "01-sla_1.arrow"]
    assert "recordings kept:" in out and all(str(p) in out for p in kept)
    report = compare_planners(scenario, ["sla@1", "sla@1"])
    assert report.recordings == [] and report.diffs[0].path_a is None and report.same and report.passed
    assert decode_compare(render_compare(report, "json")) == report


def test_seed_change_is_the_same_decisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path)
    a, b = tmp_path / "a.arrow", tmp_path / "b.arrow"
    assert main(["record", "--scenario", str(scenario), "--seed", "1", "--out", str(a), "--quiet"]) == 0
    assert main(["record", "--scenario", str(scenario), "--seed", "2", "--out", str(b), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "decisions identical" in out and "observations differ" in out and "summarised" in out
    assert main(["diff", str(a), str(b), "--only", "all"]) == 1


def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--scenario", str(scenario), "--planner", "sla@1", "--planner", "sla@1", "--tolerance", "x=1"])
    assert exc.value.code == 2 and "unknown column or column class 'x'" in capsys.readouterr().err
