"""Closed-loop session replay: the fleet's arrival source, the scenario switch, the CLI flag, the generator's delays.

The rule (docs/fleet_model.md, "Closed-loop sessions"): a session's first turn
arrives at its timestamp; every later turn ``delay`` ms after the previous turn
of its session completed (``max(f + delay, ts - lookahead)``); the rest of a
session whose turn is dropped is abandoned.  The differential test
(tests/test_sim_differential.py) holds the fast fleet to the reference on random
session traces; these tests pin the behaviour a user relies on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from reference_fleet import ReferenceFleet
from sim_helpers import fleet_config, hand_system, req, tiny_system
from replaylib.record import read_recording, recording_metadata
from replaylib.scenario import load_scenario
from replaylib.sim import ClosedLoop, Fleet
from replaylib.trace import Request, read_trace
from replaylib.trace.generate import GeneratorConfig, Poisson, Sessions, generate_trace

REPO = Path(__file__).resolve().parents[1]
SESSIONS_TRACE = REPO / "traces" / "sessions_30min.jsonl.gz"
SCENARIO = REPO / "scenarios" / "closed_loop_sessions.yaml"
FLEETS = pytest.mark.parametrize("fleet_cls", [Fleet, ReferenceFleet], ids=["fast", "reference"])


def turn(ts: float, isl: int, osl: int, session: str | int | None = None, delay: float | None = None) -> Request:
    return msgspec.structs.replace(req(ts, isl, osl), session_id=session, delay=delay)


def run(fleet_cls, rows, system=None, closed_loop=ClosedLoop(), until=1e12, **cfg):  # noqa: ANN001
    outs: dict = {}
    fleet = fleet_cls(system or hand_system(), fleet_config(**cfg), iter(rows), block_size=512,
                      on_finish=lambda o: outs.__setitem__(o.index, o), closed_loop=closed_loop)
    snap = fleet.advance_to(until)
    return outs, snap


def conversation_trace(n: int = 400, rate: float = 2.0, seed: int = 3) -> list[Request]:
    config = GeneratorConfig(
        seed=seed, duration_s=None, requests=n, arrivals=Poisson(rate=rate),
        sessions=Sessions(continue_prob=0.7, min_gap_s=2.0, emit_delays=True),
    )
    return list(generate_trace(config))


def previous_turns(rows: list[Request]) -> dict[int, int]:
    """row index -> index of the previous row of its session."""
    last: dict = {}
    prev = {}
    for i, r in enumerate(rows):
        if r.session_id is not None:
            if r.session_id in last:
                prev[i] = last[r.session_id]
            last[r.session_id] = i
    return prev


# --------------------------------------------------------------------------- the rule


@FLEETS
def test_next_turn_starts_exactly_delay_after_the_previous_completion(fleet_cls) -> None:
    rows = conversation_trace()
    prev = previous_turns(rows)
    assert len(prev) > 150 and all(rows[k].delay is not None for k in prev)
    outs, snap = run(fleet_cls, rows, system=tiny_system(), prefill_workers=2, decode_workers=2)
    assert snap.done and snap.completed == len(rows) and snap.turns_abandoned == 0
    for k, j in prev.items():
        assert outs[k].arrival_ms == outs[j].completion_ms + rows[k].delay, (k, j)
    for i, r in enumerate(rows):
        if i not in prev:  # a session's first turn arrives at its recorded time
            assert outs[i].arrival_ms == r.timestamp


@FLEETS
def test_a_slower_system_stretches_the_replay(fleet_cls) -> None:
    rows = conversation_trace()
    fast, slow = tiny_system(), tiny_system(prefill=(53.0, 1.1, 0.0), decode=(77.0, 1.3, 0.011))

    def span(system, closed_loop):  # noqa: ANN001
        outs, snap = run(fleet_cls, rows, system=system, closed_loop=closed_loop, prefill_workers=2, decode_workers=2)
        assert snap.done and snap.completed + snap.dropped == len(rows)
        return max(o.arrival_ms for o in outs.values()), max(o.completion_ms for o in outs.values())

    open_fast, open_slow = span(fast, None), span(slow, None)
    assert open_fast[0] == open_slow[0] == rows[-1].timestamp  # open loop: arrivals do not care
    closed_fast, closed_slow = span(fast, ClosedLoop()), span(slow, ClosedLoop())
    assert closed_fast[0] > rows[-1].timestamp  # turns wait for their answers ...
    assert closed_slow[0] > closed_fast[0] + 60_000  # ... and a slower fleet slows its own arrivals
    assert closed_slow[1] > closed_fast[1]


@FLEETS
def test_the_rest_of_a_session_is_abandoned_when_a_turn_is_dropped(fleet_cls) -> None:
    rows = [
        turn(0, 100, 5, "a"),
        turn(10, 20_000, 5, "a", delay=50),  # cannot fit the KV capacity (10,000): dropped
        turn(20, 300, 5, "a", delay=50),  # never sent
        turn(30, 100, 5, "b"),
        turn(40, 400, 5, "a"),  # never sent either, although it has no delay
        turn(600_000, 100, 5, "a", delay=10),  # recorded more than session_timeout after the drop: a new session
        turn(600_005, 100, 5, "a", delay=10),  # follows the new session
    ]
    cl = ClosedLoop(lookahead_ms=1_000.0, session_timeout_ms=30_000.0)
    outs, snap = run(fleet_cls, rows, closed_loop=cl)
    status = {i: o.status for i, o in outs.items()}
    assert status == {0: "completed", 1: "dropped", 2: "abandoned", 3: "completed", 4: "abandoned", 5: "completed", 6: "completed"}
    assert outs[1].drop_reason == "kv_too_large"
    assert snap.turns_abandoned == 2 and snap.arrived == 5 and snap.done
    assert outs[2].arrival_ms == outs[4].arrival_ms < 600_000 - 30_000  # abandoned when turn 1 was dropped
    assert outs[5].arrival_ms == 600_000  # a new session starts at its recorded time
    assert outs[6].arrival_ms == outs[5].completion_ms + 10


@FLEETS
def test_lookahead_bounds_how_early_a_turn_comes(fleet_cls) -> None:
    # The recording's second turn came 100 s after the first: the simulated fleet answers far faster.
    rows = [turn(0, 100, 5, 7), turn(100_000, 100, 5, 7, delay=1_000)]
    outs, _ = run(fleet_cls, rows, closed_loop=ClosedLoop(lookahead_ms=600_000.0))
    assert outs[1].arrival_ms == outs[0].completion_ms + 1_000  # within the look-ahead: the delay rules
    outs, _ = run(fleet_cls, rows, closed_loop=ClosedLoop(lookahead_ms=30_000.0))
    assert outs[1].arrival_ms == 70_000  # no earlier than lookahead before its recorded time
    outs, _ = run(fleet_cls, rows, closed_loop=ClosedLoop(lookahead_ms=0.0))
    assert outs[1].arrival_ms == 100_000  # L = 0: never before its recorded time


@FLEETS
def test_a_turn_without_delay_waits_for_its_predecessor_and_its_timestamp(fleet_cls) -> None:
    rows = [turn(0, 4000, 200, "s"), turn(5, 100, 5, "s"), turn(5, 100, 5), turn(900_000, 100, 5, "s")]
    outs, _ = run(fleet_cls, rows)
    assert outs[1].arrival_ms == outs[0].completion_ms > 5  # waits for the previous turn
    assert outs[2].arrival_ms == 5  # no session: open loop
    assert outs[3].arrival_ms == 900_000  # its predecessor finished long before: its recorded time


@FLEETS
def test_held_turns_and_conservation_at_every_stop(fleet_cls) -> None:
    rows = conversation_trace(300, rate=6.0)
    outs: dict = {}
    fleet = fleet_cls(tiny_system(prefill=(53.0, 1.1, 0.0)), fleet_config(), iter(rows), block_size=512,
                      on_finish=lambda o: outs.__setitem__(o.index, o), closed_loop=ClosedLoop())
    held_seen = 0
    t = 0.0
    while True:
        t += 5_000.0
        snap = fleet.advance_to(t)
        assert snap.completed + snap.dropped + snap.in_flight == snap.arrived
        due = sum(1 for r in rows if r.timestamp <= snap.now_ms)
        assert snap.arrived + snap.turns_abandoned + snap.turns_held >= due  # every due row is accounted
        held_seen = max(held_seen, snap.turns_held)
        if snap.done:
            break
    assert held_seen > 10  # an overloaded fleet holds its users back
    assert snap.turns_held == 0 and snap.arrived + snap.turns_abandoned == len(rows) == len(outs)


def test_the_trace_is_streamed_not_read_eagerly() -> None:
    rows = conversation_trace(2000, rate=4.0)
    pulled = []

    def source():
        for r in rows:
            pulled.append(r.timestamp)
            yield r

    lookahead = 60_000.0
    fleet = Fleet(tiny_system(), fleet_config(prefill_workers=2, decode_workers=2), source(), block_size=512,
                  closed_loop=ClosedLoop(lookahead_ms=lookahead))
    for t in (50_000.0, 200_000.0, 400_000.0):
        snap = fleet.advance_to(t)
        assert pulled[-1] <= snap.now_ms + lookahead + 10_000  # read about `lookahead` ahead, no further
        assert len(pulled) < len(rows)


def test_closed_loop_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="lookahead_ms"):
        ClosedLoop(lookahead_ms=-1.0)
    with pytest.raises(ValueError, match="session_timeout_ms"):
        ClosedLoop(session_timeout_ms=0.0)
    with pytest.raises(ValueError, match="lookahead_ms"):
        ClosedLoop(lookahead_ms=float("inf"))


# --------------------------------------------------------------------------- the generator's delays


def test_generator_writes_delays_without_changing_anything_else() -> None:
    base = dict(seed=5, duration_s=600.0, sessions=Sessions(continue_prob=0.5, min_gap_s=3.0, emit_ids=True))
    plain = list(generate_trace(GeneratorConfig(**base)))
    base["sessions"] = Sessions(continue_prob=0.5, min_gap_s=3.0, emit_delays=True)  # implies the ids
    delayed = list(generate_trace(GeneratorConfig(**base)))
    assert [msgspec.structs.replace(r, delay=None) for r in delayed] == plain
    prev = previous_turns(delayed)
    assert len(prev) > 100
    for i, r in enumerate(delayed):
        expected = r.timestamp - delayed[prev[i]].timestamp if i in prev else None
        assert r.delay == expected


def test_bundled_session_trace_has_delays_on_every_continuation() -> None:
    rows = list(read_trace(SESSIONS_TRACE))
    prev = previous_turns(rows)
    assert len(prev) > 1000
    assert all(rows[k].delay == rows[k].timestamp - rows[j].timestamp for k, j in prev.items())
    assert all(r.delay is None for i, r in enumerate(rows) if i not in prev)


# --------------------------------------------------------------------------- scenario, adapter, CLI


def _record(tmp_path: Path, name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    out = tmp_path / f"{name}.arrow"
    return subprocess.run(
        [sys.executable, "-m", "replaylib", "record", "--quiet", "--out", str(out), *args],
        cwd=REPO, capture_output=True, text=True, env=env, check=False,
    )


def test_recordings_are_byte_identical_across_runs_and_hash_seeds(tmp_path: Path) -> None:
    runs = []
    for i, seed in enumerate(("0", "1", "12345")):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = _record(tmp_path, f"r{i}", "--scenario", str(SCENARIO), env=env)
        assert done.returncode == 0, done.stderr
        runs.append((tmp_path / f"r{i}.arrow").read_bytes())
    assert runs[0] == runs[1] == runs[2]
    assert recording_metadata(tmp_path / "r0.arrow").trace_mode == "closed_loop"


def test_trace_mode_flag_overrides_the_scenario(tmp_path: Path) -> None:
    done = _record(tmp_path, "open", "--scenario", str(SCENARIO), "--trace-mode", "open_loop")
    assert done.returncode == 1, done.stderr  # the scenario's closed-loop assertion fails open loop
    assert "FAIL  [2]" in done.stdout and "closed loop:" not in done.stdout
    meta = recording_metadata(tmp_path / "open.arrow")
    assert meta.trace_mode == "open_loop"
    ticks = read_recording(tmp_path / "open.arrow").filter(kind="tick")
    assert ticks["turns_held"].null_count() == ticks.height  # the columns do not apply open loop
    closed = _record(tmp_path, "closed", "--scenario", str(SCENARIO))
    assert closed.returncode == 0, closed.stdout
    assert "closed loop: session turns abandoned 0" in closed.stdout
    shown = subprocess.run([sys.executable, "-m", "replaylib", "show", str(tmp_path / "closed.arrow")],
                           cwd=REPO, capture_output=True, text=True, check=False)
    assert "closed loop: session turns abandoned 0, held back at the end 0" in shown.stdout  # read back: the same
    a = read_recording(tmp_path / "open.arrow").filter(kind="tick")
    b = read_recording(tmp_path / "closed.arrow").filter(kind="tick")
    assert b["now_ms"].max() > a["now_ms"].max()  # closed loop the replay runs longer


def test_bad_trace_mode_is_a_usage_error(tmp_path: Path) -> None:
    done = _record(tmp_path, "bad", "--trace-mode", "sideways")
    assert done.returncode == 2 and "--trace-mode" in done.stderr and "Traceback" not in done.stderr


def test_scenario_trace_mode_is_validated(tmp_path: Path) -> None:
    from replaylib.scenario.yamlio import ScenarioError

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {REPO / 'scenarios' / 'default.yaml'}\nname: bad\ntrace: {{mode: closed}}\n")
    with pytest.raises(ScenarioError, match=r"trace\.mode"):
        load_scenario(bad)
    bad.write_text(f"extends: {REPO / 'scenarios' / 'default.yaml'}\nname: bad\ntrace: {{session_lookahead_s: -5}}\n")
    with pytest.raises(ScenarioError, match=r"trace\.session_lookahead_s"):
        load_scenario(bad)


def test_closed_loop_on_a_trace_without_sessions_is_open_loop(tmp_path: Path) -> None:
    from replaylib.adapter import replay

    loaded = load_scenario(REPO / "scenarios" / "default.yaml")
    a = replay(loaded, out=tmp_path / "a.arrow")
    b = replay(loaded, out=tmp_path / "b.arrow", trace_mode="closed_loop")
    da, db = read_recording(a.path), read_recording(b.path)
    extra = ["turns_held", "turns_abandoned"]
    assert da.drop(extra).equals(db.drop(extra))
    assert db.filter(kind="tick")["turns_abandoned"].max() == 0


def test_speedup_shrinks_delays_too(tmp_path: Path) -> None:
    from replaylib.adapter.loop import _Replay

    loaded = load_scenario(SCENARIO)
    sc = loaded.scenario
    fast = msgspec.structs.replace(loaded, scenario=msgspec.structs.replace(sc, trace=msgspec.structs.replace(sc.trace, speedup=4.0)))
    plain = list(_Replay(loaded, planner=None, trace=None, seed=None)._rows())[:200]
    sped = list(_Replay(fast, planner=None, trace=None, seed=None)._rows())[:200]
    assert any(r.delay for r in plain)
    for p, s in zip(plain, sped):
        assert s.timestamp == p.timestamp / 4.0
        assert s.delay == (None if p.delay is None else p.delay / 4.0)
