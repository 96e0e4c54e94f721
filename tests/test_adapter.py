"""The tick loop (replaylib.adapter): the ``now`` rule, stopping, events, faults, budget clamp, planner errors, assertions.

Every replay here runs a small scenario written into ``tmp_path`` (the real
H100 SXM systems file, a synthetic trace) with a tiny planner object, so the
tests do not depend on the built-in planners.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from replaylib.adapter import replay
from replaylib.planner import Decision, Observation, PlannerError
from replaylib.record import read_recording
from replaylib.scenario import LoadedScenario, ScenarioError, load_scenario

REPO = Path(__file__).resolve().parents[1]
SYSTEM_FILE = REPO / "systems" / "h100_sxm_analytic.yaml"  # analytic: these tests reason about its pass times
MIN_CAP, MAX_CAP = 200.0, 700.0  # systems/h100_sxm.yaml gpu.min_cap_w / max_cap_w
GPUS = 2  # gpus_per_worker


# -- helpers ----------------------------------------------------------------------------------------


def write_trace(path: Path, rows: list[tuple[float, int, int]]) -> Path:
    path.write_text("".join(json.dumps({"timestamp": t, "input_length": i, "output_length": o, "hash_ids": []}) + "\n"
                            for t, i, o in rows))
    return path


def steady_rows(minutes: float = 12, every_ms: int = 3000, isl: int = 1500, osl: int = 60) -> list[tuple[float, int, int]]:
    return [(t, isl, osl) for t in range(0, int(minutes * 60_000), every_ms)]


def _merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def make_scenario(tmp_path: Path, rows: list[tuple[float, int, int]] | None = None, name: str = "adapter_test",
                  **overrides: Any) -> LoadedScenario:
    """Write a scenario (+ trace) into tmp_path and load it."""
    trace = write_trace(tmp_path / f"{name}.jsonl", steady_rows() if rows is None else rows)
    doc: dict[str, Any] = {
        "name": name,
        "system": str(SYSTEM_FILE),
        "seed": 3,
        "trace": {"path": str(trace)},
        "fleet": {"prefill_workers": 2, "decode_workers": 2, "router": "round_robin"},
        "planner": {"adjustment_interval_s": 60, "ttft_ms": 2000, "itl_ms": 50},
    }
    _merge(doc, overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_scenario(path)


class Scripted:
    """Holds the initial fleet (or whatever ``decide`` says) and keeps every observation it got."""

    name = "scripted"
    version = 4

    def __init__(self, decide: Callable[[Observation], Decision] | None = None, n_prefill: int = 2, n_decode: int = 2) -> None:
        self.decide = decide
        self.n = (n_prefill, n_decode)
        self.seen: list[Observation] = []

    def on_tick(self, obs: Observation) -> Decision:
        self.seen.append(obs)
        if self.decide is not None:
            return self.decide(obs)
        return Decision(n_prefill=self.n[0], n_decode=self.n[1], reason="hold")


def follow(obs: Observation) -> Decision:
    """Ask for exactly the accepting workers the planner sees: never scales by itself."""
    return Decision(n_prefill=obs.prefill.active + obs.prefill.starting, n_decode=obs.decode.active + obs.decode.starting,
                    reason="follow")


def run(loaded: LoadedScenario, tmp_path: Path, planner: Any = None, **kw: Any) -> tuple[Any, pl.DataFrame, pl.DataFrame]:
    out = tmp_path / "rec.arrow"
    result = replay(loaded, out=out, planner=planner if planner is not None else Scripted(), **kw)
    df = read_recording(out)
    return result, df, df.filter(pl.col("kind") == "tick")


def first_tick_at(ticks: pl.DataFrame, at_s: float) -> int:
    hit = ticks.filter(pl.col("now_ms") >= at_s * 1000.0)
    assert hit.height, f"no tick reaches {at_s} s"
    return int(hit["tick"][0])


def check_now_rule(ticks: pl.DataFrame, interval_ms: float) -> None:
    """now = max(t_sched, fleet); the next tick is scheduled from now; nothing goes backwards."""
    rows = ticks.sort("seq").to_dicts()
    assert [r["tick"] for r in rows] == list(range(len(rows)))
    assert rows[0]["t_sched_ms"] == interval_ms
    for r in rows:
        assert r["now_ms"] == max(r["t_sched_ms"], r["fleet_ms"])
        assert r["fleet_ms"] <= r["now_ms"]
    for prev, cur in itertools.pairwise(rows):
        assert cur["t_sched_ms"] > prev["now_ms"]
        assert cur["t_sched_ms"] == prev["now_ms"] + interval_ms
        assert cur["now_ms"] > prev["now_ms"]


# -- the now rule -----------------------------------------------------------------------------------


def test_sparse_trace_terminates_and_ticks_never_go_stale(tmp_path: Path) -> None:
    hour = 3_600_000
    loaded = make_scenario(tmp_path, rows=[(0, 800, 20), (2 * hour, 800, 20), (5 * hour, 800, 20)])
    result, _, ticks = run(loaded, tmp_path)
    assert result.finished
    check_now_rule(ticks, 60_000.0)
    # 5 h of 60 s ticks (plus the few needed to finish the last request), not an endless loop
    assert result.ticks == 301  # ticks at 1, 2, ... 301 minutes: 5 h of 60 s ticks, then one to finish
    last = ticks.row(-1, named=True)
    assert last["now_ms"] > 5 * hour and (last["arrived"], last["completed"], last["in_flight"]) == (3, 3, 0)
    # nothing happens for hours: those ticks still advance 60 s each, with empty windows
    quiet = ticks.filter((pl.col("now_ms") > 10 * 60_000) & (pl.col("now_ms") < 2 * hour))
    assert quiet.height > 100
    assert quiet["arrivals"].sum() == 0 and quiet["ttft_count"].sum() == 0


def test_long_prefill_pass_straddles_ticks_and_the_clock_follows_the_fleet(tmp_path: Path) -> None:
    # a 200k-token prompt in one pass takes ~71 s on H100 SXM: it straddles 7 ticks of 10 s
    loaded = make_scenario(
        tmp_path,
        rows=[(0, 200_000, 4), (100_000, 200_000, 4)],
        fleet={"prefill_workers": 1, "decode_workers": 1, "max_num_batched_tokens": 262_144},
        planner={"adjustment_interval_s": 10},
    )
    result, _, ticks = run(loaded, tmp_path, planner=Scripted(n_prefill=1, n_decode=1))
    assert result.finished
    check_now_rule(ticks, 10_000.0)
    late = ticks.filter(pl.col("fleet_ms") > pl.col("t_sched_ms"))
    assert late.height >= 2  # both long passes moved the clock
    first = late.row(0, named=True)
    assert first["tick"] == 0 and first["t_sched_ms"] == 10_000.0
    assert first["fleet_ms"] > 60_000.0  # stopped after the whole pass, far past the tick time
    nxt = ticks.filter(pl.col("tick") == 1).row(0, named=True)
    assert nxt["t_sched_ms"] == first["now_ms"] + 10_000.0
    assert result.ticks < 20  # no tick at 20 s, 30 s, ... while the fleet was already at ~71 s


def test_planner_next_tick_s_sets_the_next_tick(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=2))
    planner = Scripted(lambda o: Decision(n_prefill=2, n_decode=2, next_tick_s=7.5 if o.tick % 2 == 0 else None))
    _, _, ticks = run(loaded, tmp_path, planner=planner)
    rows = ticks.to_dicts()
    for prev, cur in itertools.pairwise(rows):
        step = 7_500.0 if prev["tick"] % 2 == 0 else 60_000.0
        assert cur["t_sched_ms"] == prev["now_ms"] + step


# -- stopping ---------------------------------------------------------------------------------------


def test_tick_limit_stops_the_loop(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, ticks=3)
    result, df, ticks = run(loaded, tmp_path)
    assert (result.ticks, result.finished) == (3, False)
    assert ticks["tick"].to_list() == [0, 1, 2]
    assert ticks["arrived"][-1] == 61 < len(steady_rows())  # arrivals at 0, 3, ... 180 s: far from done
    assert result.rows == df.height


def test_drained_trace_and_idle_fleet_stop_the_loop(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=5))
    result, _, ticks = run(loaded, tmp_path)
    n = len(steady_rows(minutes=5))
    assert result.finished
    last = ticks.row(-1, named=True)
    assert (last["arrived"], last["completed"], last["dropped"], last["in_flight"]) == (n, n, 0, 0)
    # it stops at the first tick where everything is done, not later
    before = ticks.row(-2, named=True)
    assert before["completed"] < n
    assert result.ticks == ticks.height


# -- events -----------------------------------------------------------------------------------------


def test_events_fire_once_at_the_first_tick_at_or_after_their_time(tmp_path: Path) -> None:
    events = [
        {"type": "budget_change", "at_s": 150, "total_gpu_power_limit_w": 5000},
        {"type": "budget_change", "at_s": 0, "total_gpu_power_limit_w": 9000},
        {"type": "bias_step", "at_s": 200, "signal": "power_bias_decode", "delta": 10},
        {"type": "budget_change", "at_s": 100_000, "total_gpu_power_limit_w": 1000},  # after the end: never fires
    ]
    loaded = make_scenario(tmp_path, power={"total_gpu_power_limit_w": 8000}, events=events)
    _, df, ticks = run(loaded, tmp_path)
    faults = df.filter(pl.col("kind") == "fault")
    assert faults["event"].to_list() == ["budget_change", "budget_change", "bias_step"]  # in time order, once each
    assert [d.split(" ", 1)[0] for d in faults["detail"]] == ["events[1]", "events[0]", "events[2]"]
    assert faults["tick"].to_list() == [0, first_tick_at(ticks, 150), first_tick_at(ticks, 200)]
    for row in faults.iter_rows(named=True):
        assert row["now_ms"] == ticks.filter(pl.col("tick") == row["tick"])["now_ms"][0]
    # the budget in force: 9000 from tick 0, 5000 from the tick the change fired
    k = first_tick_at(ticks, 150)
    assert ticks.filter(pl.col("tick") < k)["budget_w"].unique().to_list() == [9000.0]
    assert ticks.filter(pl.col("tick") >= k)["budget_w"].unique().to_list() == [5000.0]
    assert k >= 2


def test_budget_change_reaches_the_planner(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, events=[{"type": "budget_change", "at_s": 120, "total_gpu_power_limit_w": 4321}])
    planner = Scripted()
    _, _, ticks = run(loaded, tmp_path, planner=planner)
    k = first_tick_at(ticks, 120)
    assert (k, ticks["now_ms"][k]) == (1, 120_000.0)  # a tick exactly at at_s fires it (>=, not >)
    assert [o.budget_w for o in planner.seen[:k]] == [None] * k
    assert {o.budget_w for o in planner.seen[k:]} == {4321.0}
    assert ticks["budget_w"][: k].null_count() == k  # no budget: null, not 0


def test_rbac_denied_blocks_scaling(tmp_path: Path) -> None:
    events = [{"type": "actuation_fault", "at_s": 60, "mode": "rbac_denied", "duration_s": 180}]
    loaded = make_scenario(tmp_path, events=events)
    planner = Scripted(lambda o: Decision(n_prefill=3 if o.tick >= 1 else 2, n_decode=2))
    _, df, ticks = run(loaded, tmp_path, planner=planner)
    end = first_tick_at(ticks, 240)  # the fault is over from this tick on
    assert end >= 3
    denied = ticks.filter((pl.col("tick") >= 1) & (pl.col("tick") < end))
    assert denied["actuation"].unique().to_list() == ["scaling_denied"]
    rbac = df.filter((pl.col("kind") == "fault") & (pl.col("event") == "rbac_denied"))
    assert rbac["tick"].to_list() == list(range(1, end))
    assert "prefill 3" in rbac["detail"][0]
    scale = df.filter(pl.col("kind") == "scale")
    assert scale["tick"].to_list() == [end] and scale["event"][0] == "scale_out"
    # the planner is told; the fleet did not change while denied
    assert [o.last_actuation for o in planner.seen[1 : end + 1]] == ["ok"] + ["scaling_denied"] * (end - 1)
    assert set(zip(denied["prefill_active"], denied["prefill_starting"])) == {(2, 0)}
    after = ticks.filter(pl.col("tick") == end + 1).row(0, named=True)
    assert (after["prefill_active"], after["prefill_starting"], after["actuation"]) == (2, 1, "ok")


@pytest.mark.parametrize(("mode", "forced", "actuation"), [("nvml_low", MIN_CAP, "caps_forced_low"), ("nvml_high", MAX_CAP, "caps_forced_high")])
def test_nvml_faults_force_caps_to_the_sku_limits(tmp_path: Path, mode: str, forced: float, actuation: str) -> None:
    events = [{"type": "actuation_fault", "at_s": 120, "mode": mode, "duration_s": 120}]
    loaded = make_scenario(tmp_path, events=events)
    _, df, ticks = run(loaded, tmp_path, planner=Scripted(lambda o: Decision(n_prefill=2, n_decode=2, cap_prefill_w=450, cap_decode_w=300)))
    start, end = first_tick_at(ticks, 120), first_tick_at(ticks, 240)
    during = ticks.filter((pl.col("tick") >= start) & (pl.col("tick") < end))
    assert during.height >= 1
    assert during["cap_prefill_w"].unique().to_list() == [forced]
    assert during["cap_decode_w"].unique().to_list() == [forced]
    assert during["actuation"].unique().to_list() == [actuation]
    outside = ticks.filter((pl.col("tick") < start) | (pl.col("tick") >= end))
    assert set(zip(outside["cap_prefill_w"], outside["cap_decode_w"])) == {(450.0, 300.0)}
    assert outside["actuation"].unique().to_list() == ["ok"]
    caps = df.filter(pl.col("kind") == "cap")
    assert caps["tick"].to_list() == [0, start, end]


def test_intended_caps_come_back_after_a_forced_cap_fault(tmp_path: Path) -> None:
    """A planner that set caps once and then sends none gets its caps back when nvml_low ends."""
    events = [{"type": "actuation_fault", "at_s": 120, "mode": "nvml_low", "duration_s": 120}]
    loaded = make_scenario(tmp_path, events=events)

    def once(o: Observation) -> Decision:
        caps = (450.0, 300.0) if o.tick == 0 else (None, None)
        return Decision(n_prefill=2, n_decode=2, cap_prefill_w=caps[0], cap_decode_w=caps[1])

    _, _, ticks = run(loaded, tmp_path, planner=Scripted(once))
    start, end = first_tick_at(ticks, 120), first_tick_at(ticks, 240)
    caps = dict(zip(ticks["tick"].to_list(), zip(ticks["cap_prefill_w"], ticks["cap_decode_w"], strict=True), strict=True))
    assert caps[start] == (MIN_CAP, MIN_CAP)
    assert caps[end] == (450.0, 300.0) and caps[max(caps)] == (450.0, 300.0)


def test_daemonset_absent_leaves_caps_unapplied(tmp_path: Path) -> None:
    events = [{"type": "actuation_fault", "at_s": 60, "mode": "daemonset_absent", "duration_s": 120}]
    loaded = make_scenario(tmp_path, events=events)
    _, df, ticks = run(loaded, tmp_path, planner=Scripted(lambda o: Decision(n_prefill=2, n_decode=2, cap_prefill_w=450, cap_decode_w=300)))
    end = first_tick_at(ticks, 180)
    during = ticks.filter(pl.col("tick") < end)
    assert set(zip(during["cap_prefill_w"], during["cap_decode_w"])) == {(MAX_CAP, MAX_CAP)}
    assert during["actuation"].unique().to_list() == ["caps_not_applied"]
    absent = df.filter((pl.col("kind") == "fault") & (pl.col("event") == "daemonset_absent"))
    assert absent["tick"].to_list() == list(range(end))
    caps = df.filter(pl.col("kind") == "cap")
    assert caps["tick"].to_list() == [end]
    assert (caps["cap_prefill_w"][0], caps["cap_decode_w"][0]) == (450.0, 300.0)
    assert ticks.filter(pl.col("tick") >= end)["cap_prefill_w"].unique().to_list() == [450.0]


def test_node_down_and_up_change_what_the_planner_sees(tmp_path: Path) -> None:
    events = [
        {"type": "node_down", "at_s": 150, "role": "prefill", "count": 1},
        {"type": "node_up", "at_s": 330, "role": "prefill", "count": 2},
        {"type": "node_down", "at_s": 330, "role": "decode", "count": 1},
    ]
    loaded = make_scenario(tmp_path, events=events, fleet={"prefill_workers": 2, "decode_workers": 2})
    planner = Scripted(follow)
    _, df, ticks = run(loaded, tmp_path, planner=planner)
    down, up = first_tick_at(ticks, 150), first_tick_at(ticks, 330)
    seen = {o.tick: o for o in planner.seen}
    assert (seen[down - 1].prefill.active, seen[down].prefill.active) == (2, 1)
    assert seen[down].decode.active == 2
    assert (seen[up].prefill.active, seen[up].prefill.starting) == (1, 2)
    assert (seen[up - 1].decode.active, seen[up].decode.active) == (2, 1)
    row = ticks.filter(pl.col("tick") == up).row(0, named=True)
    assert (row["prefill_active"], row["prefill_starting"], row["decode_active"]) == (1, 2, 1)
    faults = df.filter(pl.col("kind") == "fault")
    assert faults["event"].to_list() == ["node_down", "node_up", "node_down"]
    assert "(lost 1)" in faults["detail"][0]
    # the started workers become active after the start-up delay (120 s)
    ready = first_tick_at(ticks, 330 + 120 + 60)
    assert seen[ready].prefill.active == 3
    assert df.filter(pl.col("kind") == "tick")["dropped"][-1] == 0


def test_prom_outage_nulls_observed_signals(tmp_path: Path) -> None:
    events = [{"type": "prom_outage", "at_s": 120, "signals": ["ttft", "power_decode"], "duration_s": 120}]
    loaded = make_scenario(tmp_path, events=events)
    planner = Scripted()
    _, _, ticks = run(loaded, tmp_path, planner=planner)
    start, end = first_tick_at(ticks, 120), first_tick_at(ticks, 240)
    during = ticks.filter((pl.col("tick") >= start) & (pl.col("tick") < end))
    assert during.height >= 1
    assert during["obs_ttft_ms"].null_count() == during.height
    assert during["obs_power_decode_w"].null_count() == during.height
    # truth is still recorded; unlisted signals are still observed
    assert during["power_decode_w"].null_count() == 0 and during["ttft_mean_ms"].null_count() == 0
    assert during["obs_power_prefill_w"].null_count() == 0 and during["obs_itl_ms"].null_count() == 0
    outside = ticks.filter((pl.col("tick") < start) | (pl.col("tick") >= end)).filter(pl.col("ttft_count") > 0)
    assert outside.height >= 3
    assert outside["obs_ttft_ms"].null_count() == 0 and outside["obs_power_decode_w"].null_count() == 0
    with_samples = set(ticks.filter(pl.col("ttft_count") > 0)["tick"].to_list())
    for o in planner.seen:
        hidden = start <= o.tick < end
        assert (o.decode.power_w is None) == hidden
        assert (o.ttft is None) == (hidden or o.tick not in with_samples)
        assert o.prefill.power_w is not None and o.itl is not None


def test_prom_stale_serves_old_readings(tmp_path: Path) -> None:
    events = [{"type": "prom_stale", "at_s": 120, "signals": ["power_prefill"], "lag_ticks": 2, "duration_s": 180}]
    loaded = make_scenario(tmp_path, events=events, power={"noise": {"power_prefill": {"kind": "gaussian", "sigma": 5}}})
    _, _, ticks = run(loaded, tmp_path)
    start, end = first_tick_at(ticks, 120), first_tick_at(ticks, 300)
    truth = dict(zip(ticks["tick"], ticks["power_prefill_w"]))
    for row in ticks.iter_rows(named=True):
        t = row["tick"]
        expected = truth.get(t - 2) if start <= t < end else truth[t]  # None: no history that old yet
        assert row["obs_power_prefill_w"] == expected
        assert row["obs_power_decode_w"] == row["power_decode_w"]
    stale = ticks.filter((pl.col("tick") >= start + 2) & (pl.col("tick") < end))
    assert stale.height >= 1 and (stale["obs_power_prefill_w"] != stale["power_prefill_w"]).all()


def test_optimizer_failure_reaches_the_planner_for_exactly_n_ticks(tmp_path: Path) -> None:
    events = [{"type": "optimizer_failure", "at_s": 120, "mode": "empty", "ticks": 3}]
    loaded = make_scenario(tmp_path, events=events)
    planner = Scripted()
    _, df, ticks = run(loaded, tmp_path, planner=planner)
    k = first_tick_at(ticks, 120)
    faults = [o.optimizer_fault for o in planner.seen]
    assert faults == [None] * k + ["empty"] * 3 + [None] * (len(faults) - k - 3)
    assert df.filter(pl.col("kind") == "fault")["tick"].to_list() == [k]


def test_bias_event_shifts_only_its_signal(tmp_path: Path) -> None:
    common = {"rows": steady_rows(minutes=6)}
    plain = make_scenario(tmp_path, name="plain", **common)
    biased = make_scenario(tmp_path, name="biased", events=[{"type": "bias_step", "at_s": 120, "signal": "power_bias_decode", "delta": 15}], **common)
    _, _, a = run(plain, tmp_path)
    _, _, b = run(biased, tmp_path)
    k = first_tick_at(b, 120)
    assert a["power_prefill_w"].to_list() == b["power_prefill_w"].to_list()
    assert a["obs_ttft_ms"].to_list() == b["obs_ttft_ms"].to_list()
    for i, (x, y) in enumerate(zip(a["power_decode_w"], b["power_decode_w"])):
        assert y == pytest.approx(x + (15.0 if i >= k else 0.0))


# -- the budget clamp -------------------------------------------------------------------------------


def _caps_planner(cap_p: float, cap_d: float, n_p: int = 2, n_d: int = 2) -> Scripted:
    return Scripted(lambda o: Decision(n_prefill=n_p, n_decode=n_d, cap_prefill_w=cap_p, cap_decode_w=cap_d, projected_w=GPUS * (n_p * cap_p + n_d * cap_d)))


def test_budget_clamp_lowers_caps_uniformly(tmp_path: Path) -> None:
    budget = 3000.0  # asks 2 x (2 x 700 + 2 x 350) = 4200 W
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=4), power={"total_gpu_power_limit_w": budget})
    _, df, ticks = run(loaded, tmp_path, planner=_caps_planner(700, 350))
    assert ticks["budget_clamped"].unique().to_list() == [True]
    factor = budget / 4200.0
    for row in ticks.iter_rows(named=True):
        assert row["cap_prefill_w"] == pytest.approx(700 * factor, abs=1e-6)
        assert row["cap_decode_w"] == pytest.approx(350 * factor, abs=1e-6)
        assert row["cap_prefill_w"] / row["cap_decode_w"] == pytest.approx(2.0)
        assert row["provisioned_w"] <= budget and row["provisioned_w"] == pytest.approx(budget, abs=1e-3)
        assert row["budget_headroom_w"] >= 0
        assert (row["target_cap_prefill_w"], row["target_cap_decode_w"], row["projected_w"]) == (700.0, 350.0, 4200.0)
    cap_rows = df.filter(pl.col("kind") == "cap")
    assert cap_rows.height == 1  # applied once, then unchanged


def test_budget_that_fits_leaves_caps_untouched(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=4), power={"total_gpu_power_limit_w": 4200})
    _, _, ticks = run(loaded, tmp_path, planner=_caps_planner(700, 350))
    assert ticks["budget_clamped"].unique().to_list() == [False]
    assert set(zip(ticks["cap_prefill_w"], ticks["cap_decode_w"])) == {(700.0, 350.0)}
    assert ticks["provisioned_w"].unique().to_list() == [4200.0]
    assert ticks["budget_headroom_w"].unique().to_list() == [0.0]


def test_infeasible_budget_floors_caps_at_the_sku_minimum(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=3), power={"total_gpu_power_limit_w": 1000})
    _, _, ticks = run(loaded, tmp_path, planner=_caps_planner(700, 700))
    assert ticks["budget_clamped"].unique().to_list() == [True]
    assert set(zip(ticks["cap_prefill_w"], ticks["cap_decode_w"])) == {(MIN_CAP, MIN_CAP)}
    assert ticks["budget_headroom_w"].unique().to_list() == [1000.0 - GPUS * 4 * MIN_CAP]  # recorded as over budget


def test_budget_clamp_uses_current_caps_when_the_planner_leaves_them(tmp_path: Path) -> None:
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=3), power={"total_gpu_power_limit_w": 4000})
    _, _, ticks = run(loaded, tmp_path)  # no caps in the decision: the SKU max 700 W is in force
    assert ticks["budget_clamped"][0] is True
    assert ticks["cap_prefill_w"][0] == pytest.approx(500.0) and ticks["cap_decode_w"][0] == pytest.approx(500.0)
    assert ticks["target_cap_prefill_w"].null_count() == ticks.height


# -- planner errors ---------------------------------------------------------------------------------


class Failing:
    name = "broken"
    version = 9

    def __init__(self, how: str, at: int = 2) -> None:
        self.how, self.at = how, at

    def on_tick(self, obs: Observation) -> Any:
        if obs.tick < self.at:
            return Decision(n_prefill=2, n_decode=2)
        if self.how == "zero_prefill":
            return Decision(n_prefill=0, n_decode=2)
        if self.how == "zero_decode":
            return Decision(n_prefill=2, n_decode=0)
        if self.how == "not_a_decision":
            return {"n_prefill": 2, "n_decode": 2}
        if self.how == "bad_next_tick":
            return Decision(n_prefill=2, n_decode=2, next_tick_s=0.0)
        raise ZeroDivisionError("division by zero in the planner")


@pytest.mark.parametrize(("how", "words"), [
    ("zero_prefill", "field n_prefill: expected an integer number of workers from 1 to"),
    ("zero_decode", "field n_decode: expected an integer number of workers from 1 to"),
    ("not_a_decision", "returned dict"),
    ("bad_next_tick", "field next_tick_s: expected None or a finite number of seconds >="),
    ("raise", "ZeroDivisionError: division by zero in the planner"),
])
def test_planner_errors_name_the_planner_and_tick_keep_the_old_recording_and_leave_no_partial(
        tmp_path: Path, how: str, words: str) -> None:
    loaded = make_scenario(tmp_path)
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"previous recording")
    with pytest.raises(PlannerError) as info:
        replay(loaded, out=out, planner=Failing(how, at=2))
    msg = str(info.value)
    assert "broken@9" in msg and "tick 2" in msg and words in msg
    if how == "raise":
        assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert out.read_bytes() == b"previous recording"
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]  # bad input: nothing half-written stays


# -- assertions -------------------------------------------------------------------------------------


def _verdicts(tmp_path: Path, assertions: list[dict], **kw: Any) -> tuple[Any, pl.DataFrame]:
    loaded = make_scenario(tmp_path, rows=steady_rows(minutes=5), assertions=assertions, **kw)
    result, df, _ = run(loaded, tmp_path)
    return result, df


def test_assertion_verdicts(tmp_path: Path) -> None:
    cases = [
        ({"at_tick": 1, "field": "target_prefill", "op": "==", "value": 2}, True, "tick 1: target_prefill = 2"),
        ({"at_tick": 1, "field": "target_prefill", "op": "==", "value": 3}, False, "tick 1: target_prefill = 2"),
        ({"at_tick": 99, "field": "target_prefill", "op": "==", "value": 2}, False, "ended before tick 99"),
        ({"always": True, "field": "dropped", "op": "==", "value": 0}, True, "held at all"),
        ({"always": True, "field": "arrived", "op": "<", "value": 30}, False, "first failed at tick 1"),
        ({"eventually_by_tick": 3, "field": "completed", "op": ">=", "value": 50}, True, "held at tick 2"),
        ({"eventually_by_tick": 1, "field": "completed", "op": ">=", "value": 50}, False, "never held up to tick 1"),
        ({"at_tick": 2, "field": "cap_decode_w", "op": "within", "value": 705, "tolerance": 5}, True, "tick 2"),
        ({"at_tick": 2, "field": "cap_decode_w", "op": "within", "value": 705, "tolerance": 4.9}, False, "tick 2"),
        ({"always": True, "field": "cap_prefill_w", "op": "==", "ref": "system.gpu.max_cap_w"}, True, "held at all"),
        ({"at_tick": 0, "field": "cap_prefill_w", "op": "<", "ref": "system.gpu.min_cap_w"}, False, "tick 0"),
        ({"eventually_by_tick": 4, "field": "ttft_mean_ms", "op": "<=", "ref": "planner.ttft_ms"}, True, "held at tick 0"),
        ({"at_tick": 0, "field": "ttft_mean_ms", "op": ">", "ref": "planner.ttft_ms"}, False, "tick 0"),
        ({"always": True, "field": "reason", "op": "==", "value": "hold"}, True, "held at all"),
        ({"at_tick": 0, "field": "actuation", "op": "!=", "value": "ok"}, False, "tick 0: actuation = 'ok'"),
        # a null field fails at_tick/always even with an op that None would satisfy
        ({"at_tick": 0, "field": "target_cap_prefill_w", "op": "!=", "value": 0}, False, "tick 0: target_cap_prefill_w = None"),
        ({"always": True, "field": "budget_w", "op": "!=", "value": 1}, False, "first failed at tick 0"),
    ]
    result, df = _verdicts(tmp_path, [c[0] for c in cases])
    assert len(result.assertions) == len(cases)
    for a, (spec, ok, evidence) in zip(result.assertions, cases):
        assert a.passed is ok, (spec, a)
        assert evidence in a.evidence, (spec, a.evidence)
    assert result.passed is False
    rows = df.filter(pl.col("kind") == "assertion")
    assert rows["passed"].to_list() == [c[1] for c in cases]
    assert rows["event"].to_list() == [c[0]["field"] for c in cases]
    assert rows["tick"].unique().to_list() == [result.ticks - 1]
    assert rows["seq"].to_list() == list(range(df.height - len(cases), df.height))  # appended at the end
    ttft0 = df.filter((pl.col("kind") == "tick") & (pl.col("tick") == 0))["ttft_mean_ms"][0]
    assert ttft0 is not None and ttft0 < 2000  # the premise of the two planner.ttft_ms cases


def test_all_passing_assertions_pass(tmp_path: Path) -> None:
    result, _ = _verdicts(tmp_path, [{"always": True, "field": "dropped", "op": "==", "value": 0, "description": "no drops"}])
    assert result.passed and result.assertions[0].description == "no drops"


BAD_ASSERTIONS = [
    ({"field": "no_such_column", "op": "==", "value": 1, "always": True}, "assertions[1].field", "unknown field"),
    ({"field": "dropped", "op": "==", "value": 0, "always": True, "feild": 3}, "assertions[1].feild", "unknown key"),
    ({"field": "dropped", "op": "==", "value": 0, "always": True, "at_tick": 3}, "assertions[1]", "exactly one of at_tick"),
    ({"field": "dropped", "op": "==", "value": 0}, "assertions[1]", "got none"),
    ({"field": "dropped", "op": "==", "value": 0, "ref": "planner.ttft_ms", "always": True}, "assertions[1]", "exactly one of value or ref"),
    ({"field": "dropped", "op": "==", "always": True}, "assertions[1]", "exactly one of value or ref"),
    ({"field": "dropped", "op": "<", "ref": "planner.no_such_knob", "always": True}, "assertions[1].ref", "bad ref"),
    ({"field": "dropped", "op": "<", "ref": "system.gpu.nope", "always": True}, "assertions[1].ref", "bad ref"),
    ({"field": "dropped", "op": "<", "ref": "fleet.prefill_workers", "always": True}, "assertions[1].ref", "bad ref"),
    ({"field": "dropped", "op": "<", "ref": "system.gpu.model", "always": True}, "assertions[1].ref", "not a number"),
    ({"field": "cap_prefill_w", "op": "within", "value": 500, "always": True}, "assertions[1].tolerance", "needs a tolerance"),
    ({"field": "cap_prefill_w", "op": "<", "value": 500, "tolerance": 3, "always": True}, "assertions[1].tolerance", "only applies"),
    ({"field": "reason", "op": "<", "value": "hold", "always": True}, "assertions[1]", "text"),
    ({"field": "dropped", "op": "==", "value": "zero", "always": True}, "assertions[1].value", "string"),
]


@pytest.mark.parametrize(("bad", "key", "words"), BAD_ASSERTIONS, ids=[b[1] + ":" + b[2] for b in BAD_ASSERTIONS])
def test_bad_assertions_are_load_time_errors_naming_file_and_index(tmp_path: Path, bad: dict, key: str, words: str) -> None:
    good = {"field": "dropped", "op": "==", "value": 0, "always": True}
    with pytest.raises(ScenarioError) as info:
        make_scenario(tmp_path, assertions=[good, bad])
    err = info.value
    assert err.path == str(tmp_path / "adapter_test.yaml")
    assert err.key == key
    assert words in err.message
    assert str(tmp_path / "adapter_test.yaml") in str(err) and key in str(err)


def test_bad_assertion_in_a_parent_names_the_parent_file(tmp_path: Path) -> None:
    parent = tmp_path / "parent.yaml"
    parent.write_text(yaml.safe_dump({"assertions": [{"field": "dropped", "op": "==", "always": True, "at_tick": 1, "value": 0}]}))
    trace = write_trace(tmp_path / "t.jsonl", steady_rows(minutes=1))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": "parent.yaml", "system": str(SYSTEM_FILE), "trace": {"path": str(trace)}}))
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert info.value.path == str(parent) and info.value.key == "assertions[0]"
