"""Timing and power models (replaylib.timing): the analytic formulas, measured tables, the registry,
user models, cap curves from data, and the errors of a bad timing or power section."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_helpers import fleet_config, hand_system, req
from replaylib.scenario import ScenarioError, load_system
from replaylib.scenario.system import DecodeCurve, DecodeTable, PrefillCurve, PrefillTable, TableTiming as TableSpec
from replaylib.sim import Fleet
from replaylib.timing import (
    UNBOUNDED_STEPS,
    AnalyticTiming,
    PowerModel,
    TableTiming,
    TimingModel,
    power_model,
    register_power_model,
    register_timing_model,
    run_end,
    run_step,
    run_steps_by,
    timing_model,
)

REPO = Path(__file__).resolve().parents[1]
H100_TEXT = (REPO / "systems" / "h100_sxm_analytic.yaml").read_text()

TABLE = {
    "model": "table",
    "prefill": {"curves": [{"context": 0, "tokens": [100, 1000, 4000], "pass_ms": [20.0, 38.0, 110.0]}]},
    "decode": {"curves": [
        {"context": 1000, "batch": [1, 8, 32], "step_ms": [5.0, 9.0, 21.0]},
        {"context": 4000, "batch": [1, 8, 32], "step_ms": [6.0, 13.0, 40.0]},
    ]},
    "kv_transfer": {"base_ms": 1.0, "per_token_ms": 0.001},
}


def write_system(tmp_path: Path, *, timing: dict | None = None, name: str = "sys.yaml", **sections: object) -> Path:
    """h100_sxm with its timing (and any other top-level section) replaced."""
    doc = yaml.safe_load(H100_TEXT)
    if timing is not None:
        doc["timing"] = timing
    doc.update(sections)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def table_system(tmp_path: Path, **prefill_keys: object):  # noqa: ANN201
    timing = msgspec.json.decode(msgspec.json.encode(TABLE))
    timing["prefill"].update(prefill_keys)
    return load_system(write_system(tmp_path, timing=timing))


# -- the protocol ---------------------------------------------------------------------------------


def test_builtin_models_satisfy_the_protocols(tmp_path: Path) -> None:
    for system in (hand_system(), table_system(tmp_path)):
        assert isinstance(timing_model(system), TimingModel)
        assert isinstance(power_model(system), PowerModel)
    assert type(timing_model(hand_system())) is AnalyticTiming
    assert type(timing_model(table_system(tmp_path))) is TableTiming


@settings(max_examples=200, deadline=None, derandomize=True)
@given(first=st.floats(0.01, 50), growth=st.floats(-0.5, 0.5), k_max=st.integers(1, 400),
       start=st.floats(0, 1e6), frac=st.floats(-0.1, 1.2))
def test_run_steps_by_inverts_run_end(first: float, growth: float, k_max: int, start: float, frac: float) -> None:
    # a run's steps all take positive time (a table's step time may fall along a run)
    if run_step(first, growth, k_max - 1) <= 0:
        return
    t = start + frac * (run_end(start, first, growth, k_max) - start)
    k = run_steps_by(start, first, growth, k_max, t)
    assert 0 <= k <= k_max
    assert run_end(start, first, growth, k) <= t or k == 0
    assert k == k_max or run_end(start, first, growth, k + 1) > t


# -- analytic -------------------------------------------------------------------------------------


def test_analytic_formulas_by_hand() -> None:
    # pass = 10 + 0.5 sum(n) + 0.001 sum(n (ctx + n/2)); step = 5 + 0.25 b + 0.01 used; hand-off = 2 + 0.1 isl
    t = timing_model(hand_system())
    assert t.prefill_pass_ms([(100, 0), (50, 200)], 1.0) == pytest.approx(10 + 0.5 * 150 + 0.001 * (100 * 50 + 50 * 225))
    assert t.prefill_pass_ms([(100, 0)], 0.5) == pytest.approx(2 * (10 + 50 + 5))
    assert t.decode_step_ms(4, 1000, 1.0) == pytest.approx(5 + 1 + 10)
    first, growth, steps = t.decode_run(4, 1000, 0.5)
    assert (first, growth, steps) == (pytest.approx(32.0), pytest.approx(0.08), UNBOUNDED_STEPS)
    assert t.kv_transfer_end_ms(100.0, 30) == pytest.approx(105.0)
    # a prompt of 250 new tokens after 50 cached, chunked at 100: 3 passes, sum n (ctx + n/2) = 250*50 + 250^2/2
    assert t.prefill_request_ms(250, 50, 100, 1.0) == pytest.approx(3 * 10 + 0.5 * 250 + 0.001 * (250 * 50 + 250**2 / 2))
    # (itl * s - base) / (per_seq + per_kv * ctx) = (40 - 5) / (0.25 + 0.01 * 100) = 28
    assert t.decode_max_batch(40.0, 100.0, 1.0, 1000) == 28
    assert t.decode_max_batch(40.0, 100.0, 1.0, 10) == 10
    assert t.decode_max_batch(4.0, 100.0, 1.0, 10) == 0


def test_analytic_decode_run_is_its_steps(tmp_path: Path) -> None:
    t = timing_model(hand_system())
    first, growth, _ = t.decode_run(3, 900, 0.7)
    for i in range(50):
        assert run_step(first, growth, i) == pytest.approx(t.decode_step_ms(3, 900 + 3 * i, 0.7), rel=1e-12)


# -- table: prefill -------------------------------------------------------------------------------


def test_table_prefill_pass_reproduces_each_point_and_interpolates(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    for n, ms in ((100, 20.0), (1000, 38.0), (4000, 110.0)):
        assert t.prefill_pass_ms([(n, 0)], 1.0) == pytest.approx(ms, rel=1e-12)
    assert t.prefill_pass_ms([(550, 0)], 1.0) == pytest.approx(29.0)  # halfway in tokens
    assert t.prefill_pass_ms([(1000, 0)], 0.5) == pytest.approx(76.0)  # divided by the speed


def test_table_default_pass_overhead_is_the_first_interval_extended_to_zero(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    assert t.pass_overhead_ms == pytest.approx(20.0 - 100 * (18.0 / 900))  # 18 ms
    assert timing_model(table_system(tmp_path, pass_overhead_ms=5.0)).pass_overhead_ms == 5.0


def test_table_chunked_prompt_telescopes_to_its_point_plus_one_overhead_per_extra_pass(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    h = t.pass_overhead_ms
    chunks = [(1500, 0), (1500, 1500), (1000, 3000)]  # a 4000-token prompt in three passes
    total = sum(t.prefill_pass_ms([c], 1.0) for c in chunks)
    assert total == pytest.approx(110.0 + 2 * h, rel=1e-12)
    assert t.prefill_request_ms(4000, 0, 1500, 1.0) == pytest.approx(total, rel=1e-12)
    # the same prompt through the real fleet, chunked at 1500 tokens
    fleet = Fleet(table_system(tmp_path), fleet_config(max_num_batched_tokens=1500), [req(0, 4000, 1)])
    assert fleet.advance_to(1e9).window.ttft.mean == pytest.approx(110.0 + 2 * h, rel=1e-12)


def test_table_pass_of_several_prompts_shares_one_overhead(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    h = t.pass_overhead_ms
    one = t.prefill_pass_ms([(100, 0)], 1.0)
    assert t.prefill_pass_ms([(100, 0)] * 5, 1.0) == pytest.approx(h + 5 * (one - h))


def test_measured_chunk_budget_makes_a_fleet_at_that_budget_reproduce_the_points(tmp_path: Path) -> None:
    # the 4000-token point was measured on an engine chunking at 1000 tokens: 4 passes
    system = table_system(tmp_path, measured_max_num_batched_tokens=1000)
    h = timing_model(system).pass_overhead_ms
    for n, ms in ((100, 20.0), (1000, 38.0), (4000, 110.0)):
        fleet = Fleet(system, fleet_config(max_num_batched_tokens=1000), [req(0, n, 1)])
        assert fleet.advance_to(1e9).window.ttft.mean == pytest.approx(ms, rel=1e-12)
    # a fleet that does not chunk it saves the three extra overheads
    fleet = Fleet(system, fleet_config(max_num_batched_tokens=8192), [req(0, 4000, 1)])
    assert fleet.advance_to(1e9).window.ttft.mean == pytest.approx(110.0 - 3 * h, rel=1e-12)


def test_table_prefill_beyond_the_last_point_continues_its_slope_and_is_counted(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    slope = (110.0 - 38.0) / 3000
    assert t.prefill_pass_ms([(5000, 0)], 1.0) == pytest.approx(110.0 + 1000 * slope)
    assert t.prefill_pass_ms([(50, 0)], 1.0) == pytest.approx(19.0)  # below: the first interval extended
    r = t.range_report()
    assert (r.prefill_lookups, r.prefill_above, r.prefill_below, r.prefill_max_tokens) == (2, 1, 1, 5000)
    assert "1 above the measured tokens" in r.describe()


def test_table_with_prefill_curves_at_several_contexts_is_exact_at_each(tmp_path: Path) -> None:
    timing = msgspec.json.decode(msgspec.json.encode(TABLE))
    timing["prefill"]["curves"].append({"context": 2000, "tokens": [100, 1000], "pass_ms": [30.0, 60.0]})
    t = timing_model(load_system(write_system(tmp_path, timing=timing)))
    h = t.pass_overhead_ms
    assert t.prefill_pass_ms([(1000, 2000)], 1.0) == pytest.approx(60.0)
    assert t.prefill_pass_ms([(100, 2000)], 1.0) == pytest.approx(30.0)
    # halfway between the curves: the blend of the context-0 curve telescoped and the context-2000 curve
    telescoped = (38.0 + (110.0 - 38.0) / 3000 * 1000 - h) - (38.0 + 0 - h) + h  # G(2000) - G(1000) + h
    assert t.prefill_pass_ms([(1000, 1000)], 1.0) == pytest.approx(0.5 * telescoped + 0.5 * 60.0)


# -- table: decode --------------------------------------------------------------------------------


def test_table_decode_reproduces_points_and_is_linear_between(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    assert t.decode_step_ms(8, 8 * 1000, 1.0) == pytest.approx(9.0)
    assert t.decode_step_ms(32, 32 * 4000, 1.0) == pytest.approx(40.0)
    assert t.decode_step_ms(20, 20 * 1000, 1.0) == pytest.approx(15.0)  # halfway in batch
    assert t.decode_step_ms(8, 8 * 2500, 1.0) == pytest.approx(11.0)  # halfway in context
    assert t.decode_step_ms(8, 8 * 2500, 0.5) == pytest.approx(22.0)
    assert t.range_report().outside == 0


def test_table_decode_is_flat_outside_the_grid_and_counted(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    assert t.decode_step_ms(64, 64 * 1000, 1.0) == pytest.approx(21.0)  # batch above: the last point
    assert t.decode_step_ms(8, 8 * 10_000, 1.0) == pytest.approx(13.0)  # context above: the last curve
    assert t.decode_step_ms(8, 8 * 100, 1.0) == pytest.approx(9.0)  # context below: the first curve
    r = t.range_report()
    assert (r.decode_lookups, r.decode_batch_above, r.decode_context_above, r.decode_context_below) == (3, 1, 1, 1)
    assert r.decode_max_batch == 64 and r.decode_max_context == 10_000


def test_table_decode_run_is_linear_up_to_the_next_curve_context(tmp_path: Path) -> None:
    t = timing_model(table_system(tmp_path))
    first, growth, steps = t.decode_run(8, 8 * 3990 + 4, 1.0)  # 3990.5 tokens each: 10 steps to the 4000 curve
    assert steps == 10
    for i in range(steps):
        assert run_step(first, growth, i) == pytest.approx(t.decode_step_ms(8, 8 * 3990 + 4 + 8 * i, 1.0), rel=1e-12)
    assert t.decode_run(8, 8 * 5000, 1.0)[1:] == (0.0, UNBOUNDED_STEPS)  # above the last curve: flat, unbounded
    assert t.decode_run(8, 8 * 500, 1.0) == (pytest.approx(9.0), 0.0, 500)  # below the first: flat until it


def test_fleet_decode_run_splits_at_grid_crossings(tmp_path: Path) -> None:
    """One request decoding from context 3990 to 4010 crosses the 4000-token curve: the fleet's
    ITL samples are the model's own steps on both sides."""
    system = table_system(tmp_path)
    t = timing_model(system)
    fleet = Fleet(system, fleet_config(), [req(0, 3990, 21)])
    itl = fleet.advance_to(1e9).window.itl
    expected = [t.decode_step_ms(1, 3991 + i, 1.0) for i in range(20)]
    assert itl.count == 20 and itl.total == pytest.approx(sum(expected), rel=1e-12)
    assert fleet.timing.range_report().decode_lookups == 2  # one run to the curve, one after it


@settings(max_examples=150, deadline=None, derandomize=True)
@given(steps=st.lists(st.lists(st.floats(1.0, 60.0), min_size=3, max_size=3), min_size=2, max_size=2),
       itl=st.floats(1.0, 70.0), context=st.floats(100, 6000), limit=st.integers(1, 80), speed=st.floats(0.3, 1.0))
def test_table_decode_max_batch_is_the_largest_batch_that_meets_the_target(steps, itl, context, limit, speed) -> None:  # noqa: ANN001
    spec = TableSpec(
        prefill=PrefillTable(curves=[PrefillCurve(context=0, tokens=[10, 20], pass_ms=[1.0, 2.0])]),
        decode=DecodeTable(curves=[DecodeCurve(context=1000, batch=[1, 7.5, 40], step_ms=steps[0]),
                                   DecodeCurve(context=4000, batch=[1, 10, 33], step_ms=steps[1])]),
    )
    t = TableTiming(msgspec.structs.replace(hand_system(), timing=spec))
    fits = [b for b in range(1, limit + 1) if t.decode_step_ms(b, b * context, speed) <= itl]
    expected = max(fits) if fits else 0
    got = t.decode_max_batch(itl, context, speed, limit)
    if got != expected:  # only a batch whose step lands on the target itself (rounding) may differ
        b = max(got, expected)
        assert t.decode_step_ms(b, b * context, speed) == pytest.approx(itl, rel=1e-9)


def test_noisy_non_monotone_decode_points_are_accepted_as_measured(tmp_path: Path) -> None:
    timing = msgspec.json.decode(msgspec.json.encode(TABLE))
    timing["decode"]["curves"][0]["step_ms"] = [5.0, 12.0, 10.0]  # measurement noise: a dip
    t = timing_model(load_system(write_system(tmp_path, timing=timing)))
    assert t.decode_step_ms(32, 32 * 1000, 1.0) == pytest.approx(10.0)


# -- bad tables -----------------------------------------------------------------------------------


def _mutated(path: tuple, value: object) -> dict:
    timing = msgspec.json.decode(msgspec.json.encode(TABLE))
    node = timing
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return timing


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("prefill", "curves", 0, "tokens"), [100, 1000, 900], r"timing\.prefill\.curves\[0\]\.tokens\[2\]: expected strictly increasing tokens: 900 after 1000"),
        (("prefill", "curves", 0, "pass_ms"), [20.0, float("nan"), 30.0], r"timing\.prefill\.curves\[0\]\.pass_ms\[1\]: expected a number > 0\.0, got nan"),
        (("prefill", "curves", 0, "pass_ms"), [20.0, -1.0, 30.0], r"timing\.prefill\.curves\[0\]\.pass_ms\[1\]: expected a number > 0\.0, got -1\.0"),
        (("prefill", "curves", 0, "pass_ms"), [20.0, 30.0], r"timing\.prefill\.curves\[0\]\.pass_ms: expected 3 values \(one per tokens point\), got 2"),
        (("prefill", "curves", 0, "context"), 512, r"timing\.prefill\.curves\[0\]\.context: expected a curve at context 0"),
        (("prefill", "curves"), [], r"timing\.prefill\.curves: expected at least one curve"),
        (("prefill", "pass_overhead_ms"), 25.0, r"timing\.prefill\.pass_overhead_ms: 25 ms is more than a whole pass"),
        (("decode", "curves", 1, "context"), 900, r"timing\.decode\.curves\[\*\]\.context\[1\]: expected strictly increasing contexts: 900 after 1000"),
        (("decode", "curves", 0, "batch"), [0.5, 8, 32], r"timing\.decode\.curves\[0\]\.batch\[0\]: expected a number >= 1"),
        (("decode", "curves", 0, "batch"), [1, 8, 8], r"timing\.decode\.curves\[0\]\.batch\[2\]: expected strictly increasing batch sizes: 8 after 8"),
        (("decode", "curves", 0, "step_ms"), [5.0, 0.0, 21.0], r"timing\.decode\.curves\[0\]\.step_ms\[1\]: expected a number > 0"),
        (("decode", "curves", 0, "step_ms"), [5.0, float("inf"), 21.0], r"timing\.decode\.curves\[0\]\.step_ms\[1\]: expected a finite time"),
        (("decode",), _DELETE, r"timing\.decode: required key is missing"),
    ],
)
def test_bad_table_names_file_key_and_point(tmp_path: Path, path: tuple, value: object, message: str) -> None:
    p = write_system(tmp_path, timing=_mutated(path, value))
    with pytest.raises(ScenarioError, match=r"sys\.yaml: " + message):
        load_system(p)


def test_unknown_or_broken_model_names_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"timing\.model: unknown model 'roofline'; available: analytic, table"):
        load_system(write_system(tmp_path, timing={"model": "roofline"}))
    with pytest.raises(ScenarioError, match=r"timing\.model: cannot import module 'no_such_pkg\.mod'"):
        load_system(write_system(tmp_path, timing={"model": "no_such_pkg.mod:Timing"}))
    with pytest.raises(ScenarioError, match=r"timing\.model: model 'tests.custom_timing_example:NotAModel' built a NotAModel without prefill_pass_ms"):
        load_system(write_system(tmp_path, timing={"model": "tests.custom_timing_example:NotAModel"}))
    with pytest.raises(ScenarioError, match=r"power_model\.model: building model 'tests.custom_timing_example:FlatTiming' failed"):
        load_system(write_system(tmp_path, power_model={"model": "tests.custom_timing_example:FlatTiming"}))


# -- user models ----------------------------------------------------------------------------------

FLAT = {"model": "tests.custom_timing_example:FlatTiming", "pass_ms": 7.0, "ms_per_token": 0.01, "step_ms": 3.0}


def test_user_timing_model_from_the_systems_yaml_times_the_fleet(tmp_path: Path) -> None:
    system = load_system(write_system(tmp_path, timing=FLAT))
    fleet = Fleet(system, fleet_config(), [req(0, 1000, 5)])
    snap = fleet.advance_to(1e9)
    assert snap.window.ttft.mean == pytest.approx(17.0)  # 7 + 0.01 x 1000
    assert snap.window.itl.mean == pytest.approx(3.0)
    assert fleet.timing.calls == 2  # one pass, one decode run (never per token)


def test_user_models_by_registered_name_and_by_library_call(tmp_path: Path) -> None:
    from custom_timing_example import DoubleDrawPower, FlatTiming

    register_timing_model("flat-test", FlatTiming)
    register_power_model("double-test", DoubleDrawPower)
    with pytest.raises(ValueError, match="built-in"):
        register_timing_model("table", FlatTiming)
    system = load_system(write_system(tmp_path, timing={**FLAT, "model": "flat-test"},
                                      power_model={**yaml.safe_load(H100_TEXT)["power_model"], "model": "double-test"}))
    assert type(timing_model(system)) is FlatTiming
    analytic = power_model(hand_system())
    doubled = power_model(system)
    assert doubled.worker_w("decode", 700, 0, 1.0) == pytest.approx(2 * analytic.worker_w("decode", 700, 0, 1.0))
    assert doubled.worker_w("decode", 300, 1e6, 1.0) == 300  # never above the cap
    # the library call: a model object given to the fleet replaces the YAML's
    flat = FlatTiming(system)
    fleet = Fleet(hand_system(), fleet_config(), [req(0, 1000, 1)], timing=flat)
    assert fleet.advance_to(1e9).window.ttft.mean == pytest.approx(17.0)


def test_replay_takes_a_timing_model_for_fleet_and_planner(tmp_path: Path) -> None:
    from custom_timing_example import FlatTiming

    from replaylib.adapter import replay
    from replaylib.scenario import load_scenario

    loaded = load_scenario(REPO / "scenarios" / "default.yaml")
    system = load_system(write_system(tmp_path, timing=FLAT))
    flat = FlatTiming(system)
    result = replay(msgspec.structs.replace(loaded, scenario=msgspec.structs.replace(loaded.scenario, ticks=3)),
                    out=tmp_path / "r.arrow", timing=flat)
    assert result.ticks == 3 and flat.calls > 0


# -- power models and cap curves ------------------------------------------------------------------


def test_speed_curve_from_a_csv_with_sources(tmp_path: Path) -> None:
    (tmp_path / "caps.csv").write_text(
        "role,cap_w,speed,source\n"
        "prefill,200,0.30,bench run 1\nprefill,450,0.70,bench run 2\nprefill,700,1.0,bench run 3\n"
        "decode,200,0.70,bench run 4\ndecode,700,1.0,bench run 5\n"
    )
    curves = {"prefill": {"csv": "caps.csv"}, "decode": {"csv": "caps.csv", "source": "our lab, 2025-11"}}
    system = load_system(write_system(tmp_path, speed_curve=curves))
    assert system.speed_curve.prefill.points == [(200.0, 0.3), (450.0, 0.7), (700.0, 1.0)]
    assert system.speed_curve.prefill.point_sources[1] == "bench run 2"
    assert power_model(system).speed("prefill", 325) == pytest.approx(0.5)
    assert power_model(system).speed("decode", 450) == pytest.approx(0.85)


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("role,cap_w,speed\nprefill,200,0.3\nprefill,700,1.0\n", r"caps\.csv: line 2: speed_curve\.prefill: the point has no source"),
        ("role,cap_w,speed,source\nprefill,200,0.3,a\ndecode,200,0.5,b\nprefill,700,1.0,\n", r"caps\.csv: line 4: speed_curve\.prefill: the point has no source"),
        ("role,cap_w\nprefill,200\n", r"caps\.csv: missing column 'speed'"),
        ("role,cap_w,speed,source\nprefill,200,fast,x\n", r"caps\.csv: line 2: column 'speed': expected a number, got 'fast'"),
        ("role,cap_w,speed,source\nprefill,200,0.5,x\nprefill,400,0.4,y\nprefill,700,1.0,z\n",
         r"caps\.csv: line 3: speed_curve\.prefill: speed must not fall as the cap rises: point 1 \[400, 0\.4\] is slower than point 0 \[200, 0\.5\]"),
        ("role,cap_w,speed,source\ndecode,200,0.5,x\n", r"caps\.csv: no rows with role 'prefill'"),
    ],
)
def test_bad_speed_curve_csv_names_file_line_and_point(tmp_path: Path, csv: str, message: str) -> None:
    (tmp_path / "caps.csv").write_text(csv)
    base = yaml.safe_load(H100_TEXT)["speed_curve"]
    p = write_system(tmp_path, speed_curve={"prefill": {"csv": "caps.csv"}, "decode": base["decode"]})
    with pytest.raises(ScenarioError, match=message):
        load_system(p)


def test_speed_curve_falling_with_the_cap_is_an_error_naming_the_point(tmp_path: Path) -> None:
    curves = yaml.safe_load(H100_TEXT)["speed_curve"]
    curves["decode"]["points"] = [[200, 0.62], [250, 0.82], [300, 0.75], [700, 1.0]]
    with pytest.raises(ScenarioError, match=r"sys\.yaml: speed_curve\.decode\[2\]: speed must not fall as the cap rises: "
                                            r"point 2 \[300, 0\.75\] is slower than point 1 \[250, 0\.82\]"):
        load_system(write_system(tmp_path, speed_curve=curves))


def test_table_power_model_interpolates_measured_draw_under_the_cap(tmp_path: Path) -> None:
    pm = {"model": "table",
          "prefill": {"load": [0, 2048, 8192], "draw_w": [300, 600, 690], "source": "lab, nvidia-smi at 10 Hz"},
          "decode": {"load": [0, 400000], "draw_w": [150, 330], "source": "lab"}}
    power = power_model(load_system(write_system(tmp_path, power_model=pm)))
    assert power.worker_w("prefill", 700, 1024, 1.0) == pytest.approx(450)
    assert power.worker_w("prefill", 500, 8192, 1.0) == 500  # never above the cap
    assert power.worker_w("decode", 700, 200000, 0.5) == pytest.approx(70 + 0.5 * (240 - 70))
    assert power.worker_w("decode", 700, 9e9, 1.0) == pytest.approx(330)  # flat beyond the last point
    assert power.saturated_w("prefill", 650) == 650 and power.saturated_w("decode", 700) == 330
    bad = {**pm, "decode": {"load": [0, 400000], "draw_w": [150, 900], "source": "lab"}}
    with pytest.raises(ScenarioError, match=r"power_model\.decode\.draw_w\[1\]: expected a draw between idle_w \(70\) and tdp_w \(700\) W: point 1 is 900 W"):
        load_system(write_system(tmp_path, power_model=bad))
    unsourced = {**pm, "decode": {"load": [0, 400000], "draw_w": [150, 330]}}
    with pytest.raises(ScenarioError, match=r"power_model\.decode\.source: points given as data need a source"):
        load_system(write_system(tmp_path, power_model=unsourced))


@pytest.mark.parametrize("path", sorted((REPO / "systems").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_curve_says_where_its_numbers_come_from(path: Path) -> None:
    """Every cap curve and power-model role of a shipped system names its source, and says in
    words that it is an assumption when it is not a measurement."""
    s = load_system(path)
    for role in ("prefill", "decode"):
        curve = getattr(s.speed_curve, role)
        assert curve.source, f"{path.name}: speed_curve.{role} has no source"
        assert curve.assumption, f"{path.name}: speed_curve.{role} is not measured and must say so"
        pm = getattr(s.power_model, role)
        assert pm.source and pm.assumption, f"{path.name}: power_model.{role} needs a source and its assumption"
    assert s.gpu.source, f"{path.name}: gpu has no source"
    if s.timing.__struct_config__.tag == "analytic":
        assert s.timing.source and s.timing.assumption, f"{path.name}: analytic timing must say it is derived, not measured"
    else:
        assert s.provenance is not None, f"{path.name}: a table-timed system must say where its table comes from"
    if s.provenance is not None:
        assert s.provenance.call.startswith("python -m replaylib systems import ")


def test_multi_curve_prefill_pass_equals_its_chunk_by_chunk_definition() -> None:
    """The per-pass fast path of a table with several context curves (the shipped aiconfigurator H100 has
    eight) gives the same time and the same range report as summing _chunk_cost chunk by chunk."""
    import random

    from replaylib.timing.table import TableTiming

    system = load_system(REPO / "systems" / "h100_sxm.yaml")
    assert len(system.timing.prefill.curves) > 1
    fast, slow = TableTiming(system), TableTiming(system)
    rng = random.Random(5)
    for _ in range(3000):
        chunks = [(rng.choice([1, 7, 64, 500, 4096, 20000, 140000, rng.randint(1, 200000)]),
                   rng.choice([0, 0, 3, 1024, 5000, 70000, 131072, 300000, rng.randint(0, 200000)]))
                  for _ in range(rng.randint(1, 5))]
        speed = rng.choice([1.0, 0.37])
        slow._flag_below = slow._flag_above = False
        total = slow.pass_overhead_ms
        for n, c in chunks:
            total += slow._chunk_cost(n, c)
        slow._count_pass()
        assert fast.prefill_pass_ms(chunks, speed) == total / speed, chunks
    assert fast.range_report() == slow.range_report()
    assert fast.range_report().prefill_above > 0  # passes beyond the curves were exercised (none can fall below: they start at 1 token)
