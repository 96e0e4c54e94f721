"""Every bad input ends cleanly: one table of cases per surface, the same checks for each.

Surfaces: traces, scenarios, planner answers, recordings, importer inputs, output paths.  For
every case the command runs as a user runs it (``python -m replaylib ...``, in process) and must
exit with its documented status, print no traceback, name the place (file, line, field, key,
tick) in its message, leave no new file behind and leave every file that was there byte-identical.
Hypothesis then throws arbitrary JSON values at the trace reader: each row is either read or
refused with a ``TraceError`` naming its line, nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_helpers import REPO, tiny_scenario

from replaylib import limits
from replaylib.cli import main
from replaylib.trace import TraceError, read_trace

ROW = {"timestamp": 0, "input_length": 1024, "output_length": 16, "hash_ids": [0, 1]}
SCENARIO = (
    "system: h100_sxm\n"
    "trace: {path: ../traces/tiny.jsonl}\n"
    "fleet: {prefill_workers: 1, decode_workers: 1}\n"
    "planner: {name: sla@1, adjustment_interval_s: 10}\n"
)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _run_clean(root: Path, argv: list[str], code: int, fragments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``; assert the exit status, one clean ``error:`` message with every fragment, and that
    ``root`` holds exactly the files it held, byte for byte.  Returns stderr."""
    before = _snapshot(root)
    got = main(argv)
    out, err = capsys.readouterr()
    assert got == code, f"exit {got}, expected {code}\n{out}\n{err}"
    assert "Traceback" not in err and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert _snapshot(root) == before, "files were added, removed or changed"
    return err


def _lines(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# -- traces ------------------------------------------------------------------------------------------

def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gz_corrupt(root: Path) -> Path:
    src = (REPO / "traces" / "tiny.jsonl").read_bytes() * 40
    data = bytearray(gzip.compress(src, mtime=0))
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    path = root / "corrupt.jsonl.gz"
    path.write_bytes(bytes(data))
    return path


TRACES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "gzip corrupted mid-stream": (_gz_corrupt, ["corrupt.jsonl.gz"]),
    "input_length 2**70": (lambda r: _lines(r / "t.jsonl", [ROW, {**ROW, "input_length": 2**70}]),
                           ["t.jsonl:2: field 'input_length'", "16,777,216"]),
    "output_length 2**70": (lambda r: _lines(r / "t.jsonl", [{**ROW, "output_length": 2**70}]),
                            ["t.jsonl:1: field 'output_length'"]),
    "hash id 2**70": (lambda r: _lines(r / "t.jsonl", [{**ROW, "hash_ids": [0, 2**70]}]), ["t.jsonl:1: field 'hash_ids[1]'"]),
    "more hash ids than tokens": (lambda r: _lines(r / "t.jsonl", [{**ROW, "input_length": 10, "hash_ids": list(range(11))}]),
                                  ["t.jsonl:1: field 'hash_ids'", "at most input_length (10)"]),
    "timestamp 1e400": (lambda r: _lines(r / "t.jsonl", [ROW, '{"timestamp": 1e400, "input_length": 5, "output_length": 5, '
                                                              '"hash_ids": [1]}']), ["t.jsonl:2: field 'timestamp'", "got inf"]),
    "delay 1e400": (lambda r: _lines(r / "t.jsonl", ['{"timestamp": 0, "input_length": 5, "output_length": 5, "hash_ids": [1], '
                                                     '"delay": 1e400}']), ["t.jsonl:1: field 'delay'"]),
    "timestamp past 2**53 ms": (lambda r: _lines(r / "t.jsonl", [{**ROW, "timestamp": 2**60}]), ["t.jsonl:1: field 'timestamp'"]),
    "negative output": (lambda r: _lines(r / "t.jsonl", [{**ROW, "output_length": -1}]), ["t.jsonl:1: field 'output_length'"]),
    "string tokens": (lambda r: _lines(r / "t.jsonl", [{**ROW, "input_length": "12"}]), ["t.jsonl:1: field 'input_length'"]),
    "cut JSON": (lambda r: _lines(r / "t.jsonl", [ROW, '{"timestamp": 5, "input_len']), ["t.jsonl:2: malformed JSON"]),
    "not an object": (lambda r: _lines(r / "t.jsonl", [ROW, "[1, 2]"]), ["t.jsonl:2: expected a JSON object"]),
    "invalid UTF-8": (lambda r: _raw(r / "t.jsonl", json.dumps(ROW).encode() + b'\n{"timestamp": 1, "x": "\xff"}\n'),
                      ["t.jsonl:2"]),
    "backwards": (lambda r: _lines(r / "t.jsonl", [{**ROW, "timestamp": 9}, {**ROW, "timestamp": 3}]),
                  ["t.jsonl:2: field 'timestamp'", "goes backwards"]),
    "empty": (lambda r: _lines(r / "t.jsonl", []), ["t.jsonl: the trace is empty"]),
    "a line with no end (a decompression bomb)": (
        lambda r: _raw(r / "bomb.jsonl.gz", gzip.compress(json.dumps(ROW).encode() + b"\n" + b"{" * (limits.MAX_LINE_BYTES + 10), mtime=0)),
        ["bomb.jsonl.gz:2", f"{limits.MAX_LINE_BYTES:,} bytes"]),
    "too many hash ids": (lambda r: _lines(r / "t.jsonl", [{**ROW, "input_length": limits.MAX_TOKENS,
                                                              "hash_ids": [0] * (limits.MAX_HASH_IDS + 1)}]),
                          ["t.jsonl:1: field 'hash_ids'"]),
}


@pytest.mark.parametrize("case", sorted(TRACES))
def test_bad_traces_are_refused_by_validate_and_record(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, fragments = TRACES[case]
    trace = make(tmp_path)
    _run_clean(tmp_path, ["validate", "trace", str(trace)], 1, fragments, capsys)
    scenario = tiny_scenario(tmp_path, SCENARIO)
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"the previous recording")
    _run_clean(tmp_path, ["record", "--scenario", str(scenario), "--trace", str(trace), "--out", str(out), "--quiet"], 2,
               fragments, capsys)


def test_a_huge_timestamp_gap_is_refused_at_once_naming_the_tick_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _lines(tmp_path / "gap.jsonl", [ROW, {**ROW, "timestamp": 1e13}])  # 317 years later: 5e8 ticks of 60 s
    scenario = tiny_scenario(tmp_path, SCENARIO)
    _run_clean(tmp_path, ["record", "--scenario", str(scenario), "--trace", str(trace), "--out", str(tmp_path / "r.arrow"),
                          "--quiet"], 2, ["gap.jsonl", f"{limits.MAX_TICKS:,} planner ticks", "10,000,000,000 s"], capsys)


def test_requests_at_the_limits_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bounds are not tighter than they say: a request of MAX_TOKENS in and out replays."""
    big = {"timestamp": 0, "input_length": limits.MAX_TOKENS, "output_length": limits.MAX_TOKENS, "hash_ids": [7]}
    trace = _lines(tmp_path / "big.jsonl", [big, {**ROW, "timestamp": 1000}])
    scenario = tiny_scenario(tmp_path, SCENARIO)
    code = main(["record", "--scenario", str(scenario), "--trace", str(trace), "--out", str(tmp_path / "r.arrow"), "--quiet"])
    assert code in (0, 1), capsys.readouterr().err
    assert pa.ipc.open_file(tmp_path / "r.arrow").read_all().num_rows > 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_FIELD = st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids", "session_id", "delay", "input_tokens"])


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(_FIELD, _JSON, min_size=1, max_size=3), drop=st.sets(_FIELD, max_size=2))
def test_any_json_row_is_read_or_refused_naming_its_line(tmp_path: Path, changes: dict, drop: set) -> None:
    row = {k: v for k, v in {**ROW, **changes}.items() if k not in drop}
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(json.dumps(ROW).encode() + b"\n" + msgspec.json.encode(row) + b"\n")
    try:
        rows = list(read_trace(path))
    except TraceError as exc:
        assert exc.path == str(path) and exc.line == 2, str(exc)
        assert str(exc).startswith(f"{path}:2: ")
        return
    r = rows[1]  # accepted: then it is within every bound
    assert 1 <= r.input_length <= limits.MAX_TOKENS and 1 <= r.output_length <= limits.MAX_TOKENS
    assert len(r.hash_ids) <= r.input_length and all(0 <= h <= limits.MAX_HASH_ID for h in r.hash_ids)
    assert math.isfinite(r.timestamp) and 0 <= r.timestamp <= limits.MAX_MILLIS


# -- scenarios ---------------------------------------------------------------------------------------

_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)

#: maps whose values alias the previous level's map: 12**6 values once expanded
_NESTED_MAPS = "".join(
    f"x{i}: &x{i} {{" + ", ".join(f"k{j}: *{'n' if i == 0 else 'x' + str(i - 1)}" for j in range(12)) + "}\n" for i in range(6)
)

SCENARIOS: dict[str, tuple[str | bytes, list[str]]] = {
    "billion laughs at the top": (_LAUGHS + "\n" + SCENARIO, ["s.yaml", "alias", f"{limits.MAX_YAML_NODES:,}"]),
    "billion laughs in planner.params": (
        SCENARIO.replace("adjustment_interval_s: 10}", "adjustment_interval_s: 10, params: {x: *i}}").replace(
            "system:", _LAUGHS + "\nsystem:"), ["s.yaml", "alias bomb"]),
    "billion laughs in nested maps": (
        SCENARIO + "golden: {tolerance: &n {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1}}\n" + _NESTED_MAPS,
        ["s.yaml", "alias bomb"]),
    "recursive alias": (SCENARIO + "description: &x [*x]\n", ["s.yaml", "recursive alias"]),
    "invalid UTF-8": (SCENARIO.encode() + b"description: caf\xe9\n", ["s.yaml", "line 5", "not UTF-8"]),
    "nested too deep": (SCENARIO + "description: " + "[" * 80 + "]" * 80 + "\n", ["s.yaml", "nested"]),
    "oversize file": (SCENARIO + "#" * (limits.MAX_YAML_BYTES + 10) + "\n", ["s.yaml", f"{limits.MAX_YAML_BYTES:,} bytes"]),
    "microsecond interval": (SCENARIO.replace("adjustment_interval_s: 10", "adjustment_interval_s: 0.000001"),
                             ["s.yaml: planner.adjustment_interval_s", ">= 0.01"]),
    "infinite interval": (SCENARIO.replace("adjustment_interval_s: 10", "adjustment_interval_s: .inf"),
                          ["s.yaml: planner.adjustment_interval_s", "finite"]),
    "NaN bias": (SCENARIO + "power: {bias: {ttft_bias: .nan}}\n", ["s.yaml: power.bias.ttft_bias", "finite"]),
    "extends a folder": ("extends: " + "/tmp\n" + SCENARIO, ["s.yaml: extends", "is not a file"]),
    "unknown planner": (SCENARIO.replace("sla@1", "nosuch@1"), ["s.yaml: planner.name", "unknown planner 'nosuch'", "aic@2"]),
    "budget below one worker at the minimum cap": (SCENARIO + "power: {total_gpu_power_limit_w: 6}\n",
                                                   ["s.yaml: power.total_gpu_power_limit_w", "expected at least 800 W", "got 6"]),
    "budget event below the minimum": (SCENARIO + "events: [{type: budget_change, at_s: 5, total_gpu_power_limit_w: 10}]\n",
                                       ["s.yaml: events[0].total_gpu_power_limit_w", "at least 800 W"]),
    "misspelt key": (SCENARIO.replace("adjustment_interval_s", "adjustment_intervl_s"),
                     ["s.yaml: planner.adjustment_intervl_s", "did you mean 'adjustment_interval_s'?"]),
    "unknown router": (SCENARIO.replace("decode_workers: 1}", "decode_workers: 1, router: random}"),
                       ["s.yaml: fleet.router", "expected one of 'kv_aware', 'least_loaded', 'round_robin'"]),
    "unknown event type": (SCENARIO + "events: [{type: explode, at_s: 1}]\n", ["s.yaml: events[0].type", "'budget_change'"]),
    "too many ticks": (SCENARIO + f"ticks: {limits.MAX_TICKS + 1}\n", ["s.yaml: ticks", f"<= {limits.MAX_TICKS}"]),
    "a fleet of a hundred million": (SCENARIO.replace("prefill_workers: 1", "prefill_workers: 100000000"),
                                     ["s.yaml: fleet.prefill_workers", f"<= {limits.MAX_WORKERS_PER_ROLE}"]),
    "a request limit past 64 bits": (SCENARIO.replace("tiny.jsonl}", "tiny.jsonl, limit: 1000000000000000000000000}"),
                                     ["s.yaml: trace.limit"]),
    "a Python tag": (SCENARIO + "description: !!python/object:os.system x\n", ["s.yaml", "line 5", "constructor"]),
    "a list as a key": (SCENARIO + "? [a, b]\n: 1\n", ["s.yaml", "a key must be a plain value"]),
    **{f"a {kind} window past the replay's end": (
        SCENARIO + f"ticks: 10\nevents: [{{type: {kind}, at_s: 50, duration_s: 60{extra}}}]\n",
        ["s.yaml: events[0].duration_s", "ends at 110 s, after the replay's end at 100 s (10 ticks x 10 s)", "expected at most 50"])
        for kind, extra in (("actuation_fault", ", mode: rbac_denied"), ("prom_outage", ", signals: [ttft]"),
                            ("prom_stale", ", signals: [ttft], lag_ticks: 2"), ("frontend_fault", ", fraction: 0.5"),
                            ("mdc_unavailable", ""), ("bias_ramp", ", signal: ttft_bias, delta: 5"),
                            ("bias_sine", ", signal: ttft_bias, amplitude: 5, period_s: 20"))},
    **{f"{kind} ticks past the replay's end": (
        SCENARIO + f"ticks: 10\nevents: [{{type: {kind}, at_s: 75, ticks: 4{extra}}}]\n",
        ["s.yaml: events[0].ticks", "4 ticks from 75 s last until tick 10, after the replay's last tick 9", "expected at most 3"])
        for kind, extra in (("optimizer_failure", ""), ("prom_window_cross", ", signals: [power_decode]"))},
    "an event after the replay's end": (SCENARIO + "ticks: 10\nevents: [{type: node_down, at_s: 101, role: decode}]\n",
                                        ["s.yaml: events[0].at_s", "expected at most 100 (the replay ends at tick 9, 10 x 10 s), got 101"]),
    "unknown fault kind": (SCENARIO + "events: [{type: frontend_outage, at_s: 1, fraction: 0.5}]\n",
                           ["s.yaml: events[0].type", "'frontend_fault'", "got 'frontend_outage'"]),
    "unknown signal": (SCENARIO + "events: [{type: prom_window_cross, at_s: 1, signals: [gpu_temp]}]\n",
                       ["s.yaml: events[0].signals[0]", "expected one of 'itl', 'power_decode', 'power_prefill', 'ttft'", "got 'gpu_temp'"]),
    "unknown noise signal": (SCENARIO + "power: {noise: {capacty: {kind: gaussian, sigma: 0.03}}}\n",
                             ["s.yaml: power.noise", "unknown key 'capacty'", "'capacity'"]),
    "fraction above 1": (SCENARIO + "events: [{type: frontend_fault, at_s: 1, fraction: 1.5}]\n",
                         ["s.yaml: events[0].fraction", "<= 1", "got 1.5"]),
    "fraction below 0": (SCENARIO + "events: [{type: frontend_fault, at_s: 1, fraction: -0.1}]\n",
                         ["s.yaml: events[0].fraction", ">= 0", "got -0.1"]),
    "window-cross weight above 1": (SCENARIO + "events: [{type: prom_window_cross, at_s: 1, signals: [ttft], weight_old: 2}]\n",
                                    ["s.yaml: events[0].weight_old", "<= 1", "got 2"]),
    "optimiser failure count below 1": (SCENARIO + "events: [{type: optimizer_failure, at_s: 1, ticks: 0}]\n",
                                        ["s.yaml: events[0].ticks", ">= 1", "got 0"]),
    "unknown admission control": (SCENARIO.replace("adjustment_interval_s: 10}", "adjustment_interval_s: 10, admission_control: always}"),
                                  ["s.yaml: planner.admission_control", "expected one of 'auto', 'off', got 'always'"]),
    "every problem at once": (
        SCENARIO.replace("sla@1", "nosuch@1").replace("decode_workers: 1}", "decode_workers: 0}")
        + "seed: -1\nevents: [{type: bias_step, at_s: -1, signal: ttft_bias, delta: 1}]\n",
        ["4 problems", "s.yaml: fleet.decode_workers", "s.yaml: seed", "s.yaml: events[0].at_s", "s.yaml: planner.name"]),
}


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_bad_scenarios_are_refused_by_validate_and_record(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body, fragments = SCENARIOS[case]
    path = tiny_scenario(tmp_path, "", name="s")
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    _run_clean(tmp_path, ["validate", "scenario", str(path)], 1, fragments, capsys)
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"the previous recording")
    _run_clean(tmp_path, ["record", "--scenario", str(path), "--out", str(out), "--quiet"], 2, fragments[:1], capsys)


# -- planner answers ---------------------------------------------------------------------------------

ANSWERS: dict[str, str] = {
    "huge_prefill": "field n_prefill", "zero_decode": "field n_decode", "negative_prefill": "field n_prefill",
    "fractional_decode": "field n_decode", "bool_prefill": "field n_prefill", "string_count": "field n_decode",
    "string_cap": "field cap_prefill_w", "nan_caps": "field cap_prefill_w", "inf_cap": "field cap_decode_w",
    "negative_cap": "field cap_prefill_w", "absurd_cap": "field cap_decode_w", "inf_next_tick": "field next_tick_s",
    "zero_next_tick": "field next_tick_s", "tiny_next_tick": "field next_tick_s", "nan_diagnostic": "field predicted_rate",
    "list_diagnostic": "field c_ttft", "reason_not_text": "field reason", "not_a_decision": "returned dict",
    "reason_an_essay": "field reason", "exits": "raised at tick 3: SystemExit: 0",
    "raises": "raised at tick 3: RuntimeError: the planner's own bug",
    "zero_admission": "field admission_rps", "nan_admission": "field admission_rps",
}


def test_every_bad_answer_has_a_case() -> None:
    from hardening_planners import BAD_ANSWERS

    assert set(BAD_ANSWERS) | {"not_a_decision", "raises", "exits"} == set(ANSWERS)


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_bad_planner_answers_stop_the_replay_naming_planner_tick_and_field(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tiny_scenario(tmp_path, SCENARIO.replace(
        "adjustment_interval_s: 10}", f"adjustment_interval_s: 10, params: {{case: {case}, at: 3}}}}"))
    out = tmp_path / "rec.arrow"
    out.write_bytes(b"the previous recording")
    err = _run_clean(tmp_path, ["record", "--scenario", str(scenario), "--planner", "tests.hardening_planners:BadAnswer",
                                "--out", str(out), "--quiet"], 2, ["planner bad_answer@1", "tick 3", ANSWERS[case]], capsys)
    assert err.count("\n") == 1  # one line


def test_numpy_numbers_in_an_answer_are_accepted(tmp_path: Path) -> None:
    import numpy as np

    from replaylib.planner import Decision
    from replaylib.planner.answers import check_decision

    d = check_decision(Decision(n_prefill=np.int64(2), n_decode=np.float64(3.0), cap_decode_w=np.float32(450.0)),
                       planner="p@1", tick=0)
    assert (d.n_prefill, d.n_decode, d.cap_decode_w) == (2, 3, 450.0)
    assert type(d.n_prefill) is int and type(d.n_decode) is int and type(d.cap_decode_w) is float


# -- recordings --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("rec")
    scenario = tiny_scenario(root, SCENARIO)
    assert main(["record", "--scenario", str(scenario), "--out", str(root / "r.arrow"), "--quiet"]) in (0, 1)
    return (root / "r.arrow").read_bytes()


def _with_column(data: bytes, name: str, array: Callable[[pa.Table], pa.Array], nullable: bool) -> bytes:
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    i = table.schema.get_field_index(name)
    col = array(table)
    table = table.set_column(i, pa.field(name, col.type, nullable=nullable), col)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _as_stream(data: bytes) -> bytes:
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


RECORDINGS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "cut to half": (lambda d: d[: len(d) // 2], "truncated recording"),
    "missing its last 20 bytes": (lambda d: d[:-20], "truncated recording"),
    "all-null tick": (lambda d: _with_column(d, "tick", lambda t: pa.nulls(t.num_rows, pa.int64()), True), "column tick has"),
    "text tick": (lambda d: _with_column(d, "tick", lambda t: pa.array([str(x) for x in t["tick"].to_pylist()]), False),
                  "column tick holds string"),
    "a partial stream": (_as_stream, "a partial recording"),
    "not Arrow": (lambda d: b"kind,seq\ntick,0\n", "not a readable recording"),
    "empty": (lambda d: b"", "not a readable recording"),
}


@pytest.mark.parametrize("verb", ["diff", "show", "report"])
@pytest.mark.parametrize("case", sorted(RECORDINGS))
def test_damaged_recordings_are_refused_never_identical(case: str, verb: str, recording: bytes, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    damage, fragment = RECORDINGS[case]
    good, bad = tmp_path / "good.arrow", tmp_path / "bad.arrow"
    good.write_bytes(recording)
    bad.write_bytes(damage(recording))
    argv = {"diff": ["diff", str(good), str(bad)], "show": ["show", str(bad)],
            "report": ["report", str(bad), "-o", str(tmp_path / "report.md")]}[verb]
    err = _run_clean(tmp_path, argv, 2, ["bad.arrow", fragment], capsys)
    assert "IDENTICAL" not in err


# -- importer inputs ---------------------------------------------------------------------------------

def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _csv(root: Path, body: bytes) -> Path:
    path = root / "src.csv"
    path.write_bytes(body)
    return path


IMPORTS: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "invalid UTF-8 in a used cell": (
        lambda r: ["csv", str(_csv(r, b"timestamp,input_length,output_length\n0,10,5\n1,1\xff0,5\n")), "--time-unit", "s",
                   "-o", str(r / "o.jsonl")], ["src.csv", "line 3", "not UTF-8"]),
    "invalid UTF-8 in an unused cell": (
        lambda r: ["csv", str(_csv(r, b"timestamp,input_length,output_length,note\n0,10,5,ok\n1,10,5,\xff\xfe\n")),
                   "--time-unit", "s", "-o", str(r / "o.jsonl")], ["src.csv", "line 3", "not UTF-8"]),
    "invalid UTF-8 in the header": (
        lambda r: ["csv", str(_csv(r, b"timestamp,input_length,output_length,n\xffote\n0,10,5,ok\n")), "--time-unit", "s",
                   "-o", str(r / "o.jsonl")], ["src.csv", "line 1", "not UTF-8"]),
    "output folder missing": (
        lambda r: ["csv", str(_csv(r, b"timestamp,input_length,output_length\n0,10,5\n")), "--time-unit", "s",
                   "-o", str(r / "nowhere" / "o.jsonl")], ["o.jsonl", "does not exist"]),
    "output is a folder": (
        lambda r: ["csv", str(_csv(r, b"timestamp,input_length,output_length\n0,10,5\n")), "--time-unit", "s",
                   "-o", str(_folder(r / "dir.jsonl"))], ["dir.jsonl", "is a folder"]),
    "output under /proc": (
        lambda r: ["csv", str(_csv(r, b"timestamp,input_length,output_length\n0,10,5\n")), "--time-unit", "s",
                   "-o", "/proc/replaylib_test.jsonl"], ["/proc/replaylib_test.jsonl", "cannot"]),
}


@pytest.mark.parametrize("case", sorted(IMPORTS))
def test_bad_imports_exit_2_and_write_nothing(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, fragments = IMPORTS[case]
    _run_clean(tmp_path, ["import", *argv(tmp_path)], 2, fragments, capsys)


# -- output paths ------------------------------------------------------------------------------------

OUTPUTS: dict[str, tuple[Callable[[Path], str], list[str]]] = {
    "a folder": (lambda r: str(r / "recs"), ["recs", "is a folder"]),
    "under a file": (lambda r: str(r / "recs" / "f.arrow" / "x.arrow"), ["f.arrow", "not a folder"]),
    "under /proc": (lambda r: "/proc/replaylib_test.arrow", ["/proc/replaylib_test.arrow", "cannot"]),
    "deep under /proc": (lambda r: "/proc/sys/nope/x.arrow", ["/proc/sys/nope/x.arrow", "cannot write there"]),
    "a device": (lambda r: "/dev/null", ["/dev/null", "not a regular file"]),
    "a name too long": (lambda r: str(r / ("x" * 300 + ".arrow")), ["cannot"]),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_unwritable_outputs_are_refused_before_the_replay(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tiny_scenario(tmp_path, SCENARIO)
    (tmp_path / "recs").mkdir()
    (tmp_path / "recs" / "f.arrow").write_bytes(b"a file")
    out, fragments = OUTPUTS[case]
    _run_clean(tmp_path, ["record", "--scenario", str(scenario), "--out", out(tmp_path), "--quiet"], 2, fragments, capsys)


@pytest.mark.parametrize("verb", ["report", "export", "plot"])
def test_report_outputs_never_replace_a_device(verb: str, recording: bytes, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "r.arrow"
    rec.write_bytes(recording)
    before = os.stat("/dev/null")
    _run_clean(tmp_path, [verb, str(rec), "-o", "/dev/null"], 2, ["/dev/null"], capsys)  # refused, for one reason or another
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


@pytest.mark.parametrize("name", ["../../escaped", "/etc/passwd", "a/b\\c", "..", ".hidden", "x\x00y"])
def test_scenario_names_cannot_steer_the_default_recording_path(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    scenario = tiny_scenario(tmp_path, SCENARIO + f"name: {json.dumps(name)}\nticks: 3\n")
    monkeypatch.chdir(work)
    assert main(["record", "--scenario", str(scenario), "--quiet"]) in (0, 1), capsys.readouterr().err
    written = [p for p in tmp_path.rglob("*.arrow")]
    assert len(written) == 1 and written[0].parent == work / "recordings", written
    assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*__sla_v1\.arrow", written[0].name), written[0].name
    assert ".." not in written[0].name


# -- command-line values -----------------------------------------------------------------------------

FLAGS: dict[str, tuple[list[str], str]] = {
    "a negative seed": (["record", "--seed", "-5"], "argument --seed"),
    "a seed past 64 bits": (["compare", "--seed", str(2**64), "--planner", "sla@1"], "argument --seed"),
    "block size 0": (["validate", "trace", str(REPO / "traces" / "tiny.jsonl"), "--block-size", "0"], "argument --block-size"),
    "a file as a search folder": (["record", "--trace-dir", str(REPO / "README.md")], "not a folder"),
    "a generator that would never end": (["generate", "-o", "g.jsonl", "--rate", "1e300", "--duration", "10"],
                                         "MAX_GENERATED_REQUESTS"),
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_bad_flag_values_are_refused(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv, fragment = FLAGS[case]
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


# -- the documented limits ---------------------------------------------------------------------------

def test_readme_lists_every_limit_with_its_value() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Limits and guarantees", 1)[1].split("\n## ", 1)[0]
    names = [n for n in dir(limits) if n.isupper()]
    assert names
    for name in names:
        value = getattr(limits, name)
        row = next((line for line in section.splitlines() if f"`{name}`" in line and line.startswith("|")), None)
        assert row is not None, f"README's limits table has no row for {name}"
        shown = f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
        assert row.rstrip(" |").endswith(shown), f"{name}: README says {row!r}, the code {shown}"
    assert os.path.exists(REPO / "replaylib" / "limits.py")


def _one_past(limit: int, build: Callable[[int], str], tmp_path: Path) -> tuple[object, str]:
    """``build(limit)`` read (it must load) and ``build(limit + 1)`` refused: what loaded and the refusal."""
    from replaylib.scenario import ScenarioError
    from replaylib.scenario.yamlio import read_yaml

    at, past = tmp_path / "at.yaml", tmp_path / "past.yaml"
    at.write_text(build(limit))
    past.write_text(build(limit + 1))
    loaded = read_yaml(str(at))
    with pytest.raises(ScenarioError) as err:
        read_yaml(str(past))
    return loaded, str(err.value)


def test_yaml_nesting_is_refused_one_level_past_the_limit(tmp_path: Path) -> None:
    # k levels in all, a scalar (1 high) at the bottom of k - 1 nested lists, and k empty lists
    loaded, refusal = _one_past(limits.MAX_YAML_DEPTH, lambda k: "[" * (k - 1) + "1" + "]" * (k - 1), tmp_path)
    depth = 0
    while isinstance(loaded, list):
        loaded, depth = loaded[0], depth + 1
    assert (depth, loaded) == (limits.MAX_YAML_DEPTH - 1, 1)
    assert "past.yaml" in refusal and "nested deeper" in refusal
    _, refusal = _one_past(limits.MAX_YAML_DEPTH, lambda k: "[" * k + "]" * k, tmp_path)
    assert "nested deeper" in refusal


def test_yaml_aliases_are_refused_one_value_past_the_expanded_limit(tmp_path: Path) -> None:
    # a map holding an anchored list of 9 scalars (10 values) and a list repeating it: with the two keys,
    # the map itself and the list, 4 + 10 + 10 * n values once expanded
    def doc(size: int) -> str:
        n, rest = divmod(size - 14, 10)
        return "a: &x [" + ", ".join(["1"] * 9) + "]\nb: [" + ", ".join(["*x"] * n + ["1"] * rest) + "]\n"

    loaded, refusal = _one_past(limits.MAX_YAML_NODES, doc, tmp_path)
    assert isinstance(loaded, dict) and len(loaded["b"]) >= limits.MAX_YAML_NODES // 10 - 2
    assert "past.yaml" in refusal and "alias bomb" in refusal
