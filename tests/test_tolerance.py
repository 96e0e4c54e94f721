"""Tolerances and judged classes (replaylib.diff.policy): layering, parsing, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_helpers import tiny_scenario

from replaylib.cli import main
from replaylib.diff.policy import (
    ComparePolicy,
    ToleranceError,
    make_policy,
    parse_only,
    parse_tolerance,
    parse_tolerance_arg,
    scenario_policy,
)
from replaylib.record.schema import ColumnClass, Tolerance
from replaylib.scenario import load_scenario
from replaylib.scenario.yamlio import ScenarioError

D, OB, X = ColumnClass.DECISION, ColumnClass.OBSERVATION, ColumnClass.OUTCOME


def test_schema_defaults() -> None:
    p = ComparePolicy()
    assert p.judged == (D,)
    assert p.tolerance("target_decode") == Tolerance()
    assert p.tolerance("cap_prefill_w") == Tolerance()  # decisions: exact
    assert p.tolerance("c_ttft") == Tolerance(rel=0.25)  # a noisy estimate
    assert p.tolerance("power_total_w") == Tolerance(rel=1e-5)
    assert p.judges("reason") and not p.judges("obs_power_decode_w") and not p.judges("ttft_p99_ms")


def test_layers_apply_all_then_classes_then_columns_and_later_layers_win() -> None:
    p = make_policy(tolerance={"c_ttft": 0.1, "observation": {"abs": 5}, "all": 0.01})
    assert p.tolerance("c_ttft") == Tolerance(rel=0.1)  # the column beats the class and "all" in its layer
    assert p.tolerance("obs_ttft_ms") == Tolerance(abs=5.0)
    assert p.tolerance("power_total_w") == Tolerance(rel=0.01)
    assert p.tolerance("cap_decode_w") == Tolerance(rel=0.01)
    # a later layer's "all" overrides an earlier layer's column (zero tolerance means zero everywhere)
    q = make_policy(tolerance=0, layers=[parse_tolerance({"c_ttft": 0.3, "outcome": 0.2})])
    assert q.tolerance("c_ttft") == q.tolerance("power_total_w") == Tolerance()
    assert make_policy(tolerance={"rel": 0.5, "abs": 2}).tolerance("mean_isl") == Tolerance(rel=0.5, abs=2.0)


@pytest.mark.parametrize(
    ("text", "judged"),
    [("decisions", (D,)), ("observations", (OB,)), ("all", (D, OB, X)), ("outcomes,decisions", (D, X)), ("decision", (D,))],
)
def test_only(text: str, judged: tuple[ColumnClass, ...]) -> None:
    assert parse_only(text) == judged
    assert make_policy(only=text).only == [c.value + "s" for c in judged]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"obs_powr_decode_w": 0.1}, "unknown column or column class 'obs_powr_decode_w' (did you mean obs_power_decode_w"),
        ({"observatoin": 0.1}, "unknown column or column class 'observatoin' (did you mean observation"),
        (-0.1, "a tolerance must be a finite number >= 0, got -0.1"),
        ({"power_total_w": {"rel": -1}}, "tolerance.power_total_w.rel: a tolerance must be a finite number >= 0, got -1"),
        ({"power_total_w": {"relative": 1}}, "unknown key 'relative'"),
        (float("nan"), "finite number >= 0"),
        (True, "expected a number >= 0, got True"),
        ({"c_ttft": "10%"}, "expected a number >= 0, got '10%'"),
    ],
)
def test_bad_tolerances_name_what_is_wrong(spec: object, message: str) -> None:
    with pytest.raises(ToleranceError) as err:
        make_policy(tolerance=spec)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_bad_only() -> None:
    with pytest.raises(ToleranceError, match="unknown column class 'decsions' .*did you mean decisions"):
        parse_only("decsions")


def test_cli_form() -> None:
    assert parse_tolerance_arg("0.01") == (("all", Tolerance(rel=0.01)),)
    assert parse_tolerance_arg("observation=abs:5") == (("observation", Tolerance(abs=5.0)),)
    assert parse_tolerance_arg("c_ttft=rel:0.1,abs:0.02") == (("c_ttft", Tolerance(rel=0.1, abs=0.02)),)
    assert parse_tolerance_arg("outcomes=0") == (("outcome", Tolerance()),)
    with pytest.raises(ToleranceError, match="expected R, rel:R, abs:A"):
        parse_tolerance_arg("power_total_w=pct:5")
    with pytest.raises(ToleranceError, match="expected a number, got 'x'"):
        parse_tolerance_arg("rel:x")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tolerance", "bogus=0.1"], "unknown column or column class 'bogus'"),
        (["--tolerance", "observations=-1"], "finite number >= 0, got -1"),
        (["--tolerance", "-0.5"], "finite number >= 0"),
        (["--only", "decisons"], "unknown column class 'decisons'"),
    ],
)
def test_cli_bad_tolerance_exits_2(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(tmp_path / "a.arrow"), str(tmp_path / "b.arrow"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage:" in err and "Traceback" not in err


# -- the scenario's golden: block ---------------------------------------------------------------


def _scenario(tmp_path: Path, golden: str) -> Path:
    body = "system: h100_sxm\ntrace: {path: ../traces/tiny.jsonl}\nfleet: {prefill_workers: 1, decode_workers: 1}\nticks: 5\n"
    return tiny_scenario(tmp_path, body + golden, name="s")


def test_scenario_golden_block_is_a_layer(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "golden:\n  only: decisions,observations\n  tolerance: {observation: {abs: 3}, c_itl: 0.5}\n")
    sc = load_scenario(path).scenario
    p = scenario_policy(sc)
    assert p.judged == (D, OB)
    assert p.tolerance("obs_ttft_ms") == Tolerance(abs=3.0) and p.tolerance("c_itl") == Tolerance(rel=0.5)
    over = scenario_policy(sc, only="all", tolerance={"obs_ttft_ms": 0})
    assert over.judged == (D, OB, X) and over.tolerance("obs_ttft_ms") == Tolerance() and over.tolerance("obs_itl_ms") == Tolerance(abs=3.0)


@pytest.mark.parametrize(
    ("golden", "key", "message"),
    [
        ("golden: {tolerance: {bogus_column: 0.1}}\n", "golden.tolerance", "unknown column or column class 'bogus_column'"),
        ("golden: {tolerance: {outcome: -2}}\n", "golden.tolerance.outcome", "expected"),
        ("golden: {tolerance: {c_ttft: {rel: -1}}}\n", "golden.tolerance.c_ttft.rel", "expected"),
        ("golden: {only: decisons}\n", "golden.only", "unknown column class 'decisons'"),
    ],
)
def test_scenario_golden_block_errors(tmp_path: Path, golden: str, key: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario(tmp_path, golden)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and key in str(err.value) and message in str(err.value)
    assert main(["record", "--scenario", str(path), "--out", str(tmp_path / "r.arrow"), "--quiet"]) == 2
    out = capsys.readouterr()
    assert key in out.err and "Traceback" not in out.err and not (tmp_path / "r.arrow").exists()
