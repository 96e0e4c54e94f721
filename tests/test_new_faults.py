"""The fault kinds of issue 12: frontend faults and admission control, model-card outages, metrics
windows that straddle a change, capacity noise.

Each replay-level test replays the alpha testbed base (40 ticks) with and without one event and
checks that the event changes what the planner observes, or what the fleet does, on exactly the
ticks its window names and on no other.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest

from sim_helpers import fleet_config, hand_system, req
from replaylib.adapter import planner_context, replay
from replaylib.planner.common import RoleSizing, Sizing, Workload
from replaylib.planner.registry import load_planner
from replaylib.record import read_recording
from replaylib.scenario import load_scenario
from replaylib.sim import ClosedLoop, FaultWindow, Fleet, Frontend
from replaylib.trace import Request, read_trace

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "scenarios" / "testbed" / "_base" / "alpha_h200.yaml"
TICKS = 40


def _ticks(tmp_path: Path, name: str, **overrides: Any) -> pl.DataFrame:
    loaded = load_scenario(BASE, overrides={"ticks": TICKS, **overrides})
    result = replay(loaded, out=tmp_path / f"{name}.arrow")
    df = read_recording(result.path)
    return df.filter(pl.col("kind") == "tick").sort("tick")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    return _ticks(tmp_path_factory.mktemp("base"), "base")


def _differs(a: pl.DataFrame, b: pl.DataFrame, column: str) -> list[int]:
    """The ticks where ``column`` differs between two replays (null against a value counts)."""
    out = []
    for x, y, t in zip(a[column].to_list(), b[column].to_list(), a["tick"].to_list(), strict=True):
        if x != y:
            out.append(t)
    return out


# -- frontend faults --------------------------------------------------------------------------------


def _fleet(rows: list[Request], frontend: Frontend, closed_loop: ClosedLoop | None = None) -> tuple[Fleet, dict]:
    outs: dict = {}
    fleet = Fleet(hand_system(capacity_tokens=1_000_000), fleet_config(), iter(rows), block_size=512,
                  on_finish=lambda o: outs.__setitem__(o.index, o), closed_loop=closed_loop, frontend=frontend)
    return fleet, outs


def test_a_frontend_fault_rejects_exactly_the_arrivals_in_its_window() -> None:
    rows = [req(100.0 * i, 50, 2) for i in range(300)]  # one request every 100 ms for 30 s
    front = Frontend([FaultWindow(10_000.0, 20_000.0, 1.0)], rng=random.Random(1))
    fleet, outs = _fleet(rows, front)
    snap = fleet.advance_to(60_000.0)
    passed = sorted(outs)
    assert [i for i in range(300) if i not in outs] == list(range(100, 200))  # [10 s, 20 s): all of them
    assert all(outs[i].status == "completed" for i in passed)
    assert front.rejected == 100 and front.shed == 0
    assert snap.arrived == 200 and snap.arrived + front.rejected == 300  # conservation at the frontend
    assert snap.done


def test_a_fractional_fault_is_seeded_and_deterministic() -> None:
    rows = [req(10.0 * i, 50, 2) for i in range(2000)]

    def rejected(seed: int) -> list[int]:
        front = Frontend([FaultWindow(0.0, 20_000.0, 0.67)], rng=random.Random(seed))
        fleet, outs = _fleet(rows, front)
        fleet.advance_to(60_000.0)
        return [i for i in range(2000) if i not in outs]

    a, b, c = rejected(42), rejected(42), rejected(43)
    assert a == b and a != c
    assert 0.62 < len(a) / 2000 < 0.72


def test_admission_control_sheds_beyond_its_rate_and_counts_it() -> None:
    rows = [req(100.0 * i, 50, 2) for i in range(200)]  # 10 requests/s for 20 s
    front = Frontend([], rng=random.Random(0))
    front.set_admission(2.0, 0.0)  # 2 requests/s, a bucket of 2
    fleet, outs = _fleet(rows, front)
    snap = fleet.advance_to(60_000.0)
    assert front.shed == front.rejected
    assert 38 <= len(outs) <= 42  # 2/s for 20 s, plus the full bucket at the start
    assert snap.arrived + front.rejected == 200
    assert front.take_window() == (front.rejected, front.shed) and front.take_window() == (0, 0)
    with pytest.raises(ValueError, match="admission rate"):
        front.set_admission(0.0, 0.0)


def test_a_rejected_session_turn_ends_its_session() -> None:
    rows = [
        msgspec.structs.replace(req(0, 100, 5), session_id="a"),
        msgspec.structs.replace(req(2_000, 100, 5), session_id="b"),  # rejected (inside the window)
        msgspec.structs.replace(req(4_000, 100, 5), session_id="b", delay=10),  # never sent: its session failed
        msgspec.structs.replace(req(5_000, 100, 5), session_id="a", delay=10),  # its session is fine
    ]
    front = Frontend([FaultWindow(1_500.0, 2_500.0, 1.0)], rng=random.Random(0))
    fleet, outs = _fleet(rows, front, closed_loop=ClosedLoop(lookahead_ms=1_000.0))
    snap = fleet.advance_to(60_000.0)
    assert {i: o.status for i, o in outs.items()} == {0: "completed", 2: "abandoned", 3: "completed"}
    assert front.rejected == 1 and snap.turns_abandoned == 1 and snap.done


def test_a_frontend_fault_changes_only_the_ticks_of_its_window(tmp_path: Path, baseline: pl.DataFrame) -> None:
    # requests arriving in [600 s, 1,200 s): what ticks 10 ... 19 observe
    ticks = _ticks(tmp_path, "front", events=[{"type": "frontend_fault", "at_s": 600, "fraction": 0.5, "duration_s": 600}])
    window = ticks["rejected"].diff().fill_null(ticks["rejected"][0]).to_list()
    assert [t for t, n in enumerate(window) if n > 0] == list(range(10, 20))
    assert _differs(ticks, baseline, "arrivals")[0] == 10  # before the window: the same replay
    assert all(ticks["arrivals"][t] < 0.75 * baseline["arrivals"][t] for t in range(10, 20))
    # after it, the fleet gets the whole load again; tick times differ by the passes in flight at each
    # tick (the planner's clock is max(tick, fleet time)), so a window's count may move by a request or two
    assert all(abs(ticks["arrivals"][t] - baseline["arrivals"][t]) <= 3 for t in range(20, TICKS))
    assert ticks["shed"].max() == 0
    # what reached the frontend is the trace's, fault or not; every request is accounted for
    assert all(abs(x - y) <= 3 for x, y in zip(ticks["arrived"], baseline["arrived"], strict=True))
    assert (ticks["completed"] + ticks["dropped"] + ticks["in_flight"] + ticks["rejected"] == ticks["arrived"]).all()
    assert baseline["rejected"].null_count() == TICKS  # no frontend fault, no admission control: null


def test_b11_conserves_every_request(tmp_path: Path) -> None:
    loaded = load_scenario(REPO / "scenarios" / "testbed" / "b11_frontend_fault.yaml")
    df = read_recording(replay(loaded, out=tmp_path / "b11.arrow").path)
    ticks = df.filter(pl.col("kind") == "tick")
    assert (ticks["completed"] + ticks["dropped"] + ticks["in_flight"] + ticks["rejected"] == ticks["arrived"]).all()
    last = ticks.row(-1, named=True)
    assert last["arrived"] == sum(1 for _ in read_trace(loaded.trace_path))
    assert last["rejected"] > 0
    assert df.filter((pl.col("kind") == "fault") & (pl.col("event") == "frontend_fault"))["tick"].to_list() == [0]
    again = replay(loaded, out=tmp_path / "b11_again.arrow").path
    assert Path(again).read_bytes() == (tmp_path / "b11.arrow").read_bytes()  # same inputs and seed: the same bytes


def test_aic_admits_only_what_its_plan_serves() -> None:
    loaded = load_scenario(REPO / "scenarios" / "testbed" / "b11_frontend_fault.yaml", check_trace=False)
    planner = load_planner("aic@2", planner_context(loaded))
    wl = Workload(rate=10.0, isl=2000.0, osl=300.0, hit=0.0)
    sizing = Sizing(prefill=RoleSizing(cap_w=500.0, demand=20_000.0, per_worker=10_000.0),
                    decode=RoleSizing(cap_w=500.0, demand=3_000.0, per_worker=1_000.0))
    assert planner.admission_limit(wl, sizing, 2, 3) is None  # the plan serves the load: no limit
    assert planner.admission_limit(wl, sizing, 1, 3) == pytest.approx(5.0)  # half the prefill it needs
    off = load_planner("aic@2", msgspec.structs.replace(planner_context(loaded), config=msgspec.structs.replace(
        loaded.scenario.planner, admission_control="off")))
    assert off.admission_limit(wl, sizing, 1, 3) is None


# -- the model card ---------------------------------------------------------------------------------


def test_a_model_card_outage_hides_the_card_on_exactly_its_ticks(tmp_path: Path, baseline: pl.DataFrame) -> None:
    ticks = _ticks(tmp_path, "mdc", events=[{"type": "mdc_unavailable", "at_s": 660, "duration_s": 600}])  # ticks 10 ... 19
    cards = ticks["obs_kv_capacity_tokens"].to_list()
    assert [t for t, c in enumerate(cards) if c is None] == list(range(10, 20))
    assert _differs(ticks, baseline, "obs_kv_capacity_tokens") == list(range(10, 20))  # the noise stream does not shift
    for column in ("target_prefill", "target_decode", "cap_prefill_w", "cap_decode_w", "reason"):
        assert _differs(ticks, baseline, column) == [], column  # the planner falls back to the last card it read


def test_capacity_noise_is_relative_and_seeded(tmp_path: Path, baseline: pl.DataFrame) -> None:
    exact = _ticks(tmp_path, "exact", **{"power.noise.capacity.sigma": 0.0})
    assert set(exact["obs_kv_capacity_tokens"].to_list()) == {load_scenario(BASE, check_trace=False).system.kv.capacity_tokens}
    noisy = baseline["obs_kv_capacity_tokens"].cast(pl.Float64) / exact["obs_kv_capacity_tokens"].cast(pl.Float64) - 1.0
    assert 0.015 < float(noisy.std()) < 0.045  # sigma 0.03 of the capacity
    again = _ticks(tmp_path, "again")
    assert again["obs_kv_capacity_tokens"].to_list() == baseline["obs_kv_capacity_tokens"].to_list()


# -- a metrics window straddling a change -----------------------------------------------------------


def test_a_window_cross_mixes_the_previous_value_into_exactly_its_ticks(tmp_path: Path, baseline: pl.DataFrame) -> None:
    ticks = _ticks(tmp_path, "cross", events=[{"type": "prom_window_cross", "at_s": 1260, "signals": ["power_decode"],
                                               "weight_old": 0.66, "ticks": 2}])  # ticks 20 and 21
    assert _differs(ticks, baseline, "obs_power_decode_w") == [20, 21]
    assert _differs(ticks, baseline, "power_decode_w") == []  # the true reading is untouched
    assert _differs(ticks, baseline, "obs_power_prefill_w") == []  # and so is every other signal
    seen, fresh = ticks["obs_power_decode_w"].to_list(), baseline["obs_power_decode_w"].to_list()
    old = fresh[19]
    assert seen[20] == pytest.approx(0.66 * old + 0.34 * fresh[20])
    assert seen[21] == pytest.approx(0.66 * old + 0.34 * fresh[21])


def test_a_window_cross_mixes_latency_summaries(tmp_path: Path, baseline: pl.DataFrame) -> None:
    ticks = _ticks(tmp_path, "cross_ttft", events=[{"type": "prom_window_cross", "at_s": 1260, "signals": ["ttft"], "weight_old": 0.5}])
    assert _differs(ticks, baseline, "obs_ttft_ms") == [20]
    assert ticks["obs_ttft_ms"][20] == pytest.approx(0.5 * baseline["obs_ttft_ms"][19] + 0.5 * baseline["obs_ttft_ms"][20])


def test_aic_sheds_at_the_frontend_only_what_a_budget_limited_plan_cannot_serve(tmp_path: Path) -> None:
    """g3_tight_budget's budget cannot serve its load on the analytic H100 (on the aiconfigurator-timed one it
    nearly can): with admission control aic admits what its plan serves, so the requests it lets in meet
    their SLA far more often; without it, nothing is shed."""
    kpis, ticks = {}, {}
    for mode in ("off", "auto"):
        overrides = {"planner.admission_control": mode, "system": "h100_sxm_analytic"}
        result = replay(load_scenario("g3_tight_budget", overrides=overrides), out=tmp_path / f"{mode}.arrow")
        kpis[mode] = result.kpis
        ticks[mode] = read_recording(result.path).filter(pl.col("kind") == "tick")
    assert kpis["off"].rejected is None and ticks["off"]["admission_rps"].null_count() == ticks["off"].height
    on = ticks["auto"]
    limited = on.filter(pl.col("admission_rps").is_not_null())
    assert limited.height > 0 and (limited["admission_rps"] < limited["predicted_rate"]).all()  # below the offered rate
    assert on["shed"][-1] == on["rejected"][-1] > 0
    assert (on["completed"] + on["dropped"] + on["in_flight"] + on["rejected"] == on["arrived"]).all()
    assert kpis["auto"].sla_attainment > kpis["off"].sla_attainment + 0.2
