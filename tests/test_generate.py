"""The seeded synthetic trace generator, its CLI verb and the bundled traces."""

from __future__ import annotations

import gzip
import itertools
import math
import os
import re
import shlex
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path

import msgspec
import pytest

from replaylib.cli import main
from replaylib.trace import Request, read_trace, write_trace
from replaylib.trace.generate import (
    GeneratorConfig,
    GeneratorConfigError,
    InputLengths,
    OutputLengths,
    Poisson,
    Prefixes,
    Ramp,
    Sessions,
    Sine,
    Step,
    config_from_mapping,
    generate_trace,
    load_generator_config,
    rate_at,
)
from replaylib.trace.stats import trace_stats

ROOT = Path(__file__).resolve().parents[1]
NO_PREFIXES = Prefixes(system_prompts=0)
NO_SESSIONS = Sessions(continue_prob=0.0)


def _rows(config: GeneratorConfig) -> list[Request]:
    return list(generate_trace(config))


def _bytes(config: GeneratorConfig, tmp_path: Path, name: str = "t.jsonl") -> bytes:
    path = tmp_path / name
    write_trace(path, generate_trace(config))
    return path.read_bytes()


def _run(argv: list[str]) -> int:
    """The CLI's exit status, whether it returns or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = _bytes(GeneratorConfig(seed=7, duration_s=600), tmp_path, "a.jsonl")
    b = _bytes(GeneratorConfig(seed=7, duration_s=600), tmp_path, "b.jsonl")
    c = _bytes(GeneratorConfig(seed=8, duration_s=600), tmp_path, "c.jsonl")
    assert a == b
    assert a != c
    assert a.count(b"\n") > 500


def test_same_bytes_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    args = ["generate", "--shape", "sine", "--duration", "900", "--session-ids", "--seed", "11"]
    assert _run([*args, "-o", str(tmp_path / "here.jsonl")]) == 0
    for hash_seed in ("1", "987654"):
        out = tmp_path / f"child{hash_seed}.jsonl"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "replaylib", *args, "-o", str(out)], env=env, cwd=ROOT, check=True, capture_output=True)
        assert out.read_bytes() == (tmp_path / "here.jsonl").read_bytes()


def test_each_aspect_has_its_own_random_stream() -> None:
    def cols(cfg: GeneratorConfig) -> dict[str, list]:
        rows = _rows(cfg)
        return {"t": [r.timestamp for r in rows], "isl": [r.input_length for r in rows],
                "osl": [r.output_length for r in rows], "ids": [r.hash_ids for r in rows]}

    base = GeneratorConfig(seed=3, duration_s=900)
    ref = cols(base)
    other_osl = cols(msgspec.structs.replace(base, osl=OutputLengths(mean=900.0, sigma=0.2)))
    assert other_osl["t"] == ref["t"] and other_osl["osl"] != ref["osl"]
    other_isl = cols(msgspec.structs.replace(base, isl=InputLengths(mean=2000.0)))
    assert other_isl["t"] == ref["t"] and other_isl["osl"] == ref["osl"] and other_isl["isl"] != ref["isl"]
    no_sessions = cols(msgspec.structs.replace(base, sessions=NO_SESSIONS))
    assert no_sessions["t"] == ref["t"] and no_sessions["osl"] == ref["osl"] and no_sessions["isl"] != ref["isl"]
    # Without sessions an output length never feeds a later input, so inputs ignore OSL entirely.
    plain = msgspec.structs.replace(base, sessions=NO_SESSIONS, osl=OutputLengths(mean=900.0, sigma=0.2))
    assert cols(plain)["ids"] == no_sessions["ids"]
    # Another arrival rate gives other timestamps but the same length sequence.
    faster = cols(msgspec.structs.replace(base, arrivals=Poisson(rate=3.0)))
    assert faster["t"][:50] != ref["t"][:50]
    n = min(len(faster["osl"]), len(ref["osl"]))
    assert n > 1000 and faster["osl"][:n] == ref["osl"][:n]


def test_session_ids_only_add_the_field() -> None:
    plain = _rows(GeneratorConfig(seed=5, duration_s=600))
    tagged = _rows(GeneratorConfig(seed=5, duration_s=600, sessions=Sessions(emit_ids=True)))
    assert all(r.session_id is None for r in plain)
    assert all(isinstance(r.session_id, int) for r in tagged)
    assert plain == [msgspec.structs.replace(r, session_id=None) for r in tagged]


# --------------------------------------------------------------------------- arrival shapes


def _expected_counts(config: GeneratorConfig, edges: list[float]) -> list[float]:
    """Integral of the configured rate over each [edges[i], edges[i+1]) (midpoint rule, 0.5 s steps)."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        steps = max(1, round((hi - lo) / 0.5))
        h = (hi - lo) / steps
        out.append(sum(rate_at(config, lo + (i + 0.5) * h) for i in range(steps)) * h)
    return out


def _observed_counts(rows: list[Request], edges: list[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for r in rows:
        t = r.timestamp / 1000
        for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
            if lo <= t < hi:
                counts[i] += 1
    return counts


def _assert_profile(config: GeneratorConfig, edges: list[float]) -> list[int]:
    rows = _rows(config)
    ts = [r.timestamp for r in rows]
    assert all(isinstance(t, int) for t in ts)
    assert ts == sorted(ts)
    assert ts[-1] < config.duration_s * 1000  # type: ignore[operator]
    observed = _observed_counts(rows, edges)
    for (lo, hi), obs, exp in zip(itertools.pairwise(edges), observed, _expected_counts(config, edges)):
        # Poisson counts: 4.5 standard deviations (exact zero where the rate is zero).
        assert abs(obs - exp) <= 4.5 * math.sqrt(exp) + 1e-9, f"[{lo}, {hi}) s: {obs} arrivals, expected {exp:.1f}"
    return observed


def test_poisson_rate() -> None:
    cfg = GeneratorConfig(seed=1, duration_s=2000, arrivals=Poisson(rate=5.0))
    observed = _assert_profile(cfg, [0, 500, 1000, 1500, 2000])
    assert abs(sum(observed) - 10_000) < 4.5 * 100


def test_ramp_rate_profile() -> None:
    cfg = GeneratorConfig(seed=1, duration_s=1800, arrivals=Ramp(rate0=0.5, rate1=3.0))
    first, second = _assert_profile(cfg, [0, 900, 1800])
    assert second > 1.7 * first  # expected 2137.5 vs 1012.5
    sixths = _assert_profile(cfg, [i * 300 for i in range(7)])
    assert sixths == sorted(sixths)


def test_ramp_holds_final_rate_after_over_s() -> None:
    cfg = GeneratorConfig(seed=2, duration_s=1200, arrivals=Ramp(rate0=4.0, rate1=1.0, over_s=400))
    observed = _assert_profile(cfg, [0, 400, 800, 1200])
    assert observed[0] > 2 * observed[1]


def test_step_levels_match_rates() -> None:
    cfg = GeneratorConfig(seed=1, duration_s=1500, arrivals=Step(levels=[(0.0, 1.0), (500.0, 4.0), (1000.0, 0.5)]))
    observed = _assert_profile(cfg, [0, 500, 1000, 1500])
    assert observed[1] > 3 * observed[0]  # expected 2000 vs 500
    assert observed[0] > 1.5 * observed[2]  # expected 500 vs 250


def test_sine_peak_and_trough() -> None:
    cfg = GeneratorConfig(seed=1, duration_s=2400, arrivals=Sine(base=2.0, amplitude=1.5, period_s=1200.0))
    observed = _assert_profile(cfg, [i * 100 for i in range(25)])
    peak = observed[2] + observed[3] + observed[14] + observed[15]  # around t = 300 s, 1500 s
    trough = observed[8] + observed[9] + observed[20] + observed[21]  # around t = 900 s, 2100 s
    assert peak > 4 * trough


def test_sine_never_below_zero() -> None:
    # base 1, amplitude 2: the rate is clipped to 0 wherever sin(...) < -1/2.
    cfg = GeneratorConfig(seed=4, duration_s=3600, arrivals=Sine(base=1.0, amplitude=2.0, period_s=1200.0))
    rows = _rows(cfg)
    assert rows
    phases = [(r.timestamp / 1000 / 1200) % 1 for r in rows]
    assert not any(7 / 12 + 0.001 < p < 11 / 12 - 0.001 for p in phases)
    _assert_profile(cfg, [i * 100 for i in range(37)])


def test_request_limit_and_duration_limit() -> None:
    rows = _rows(GeneratorConfig(seed=1, duration_s=None, requests=1234, arrivals=Poisson(rate=50.0)))
    assert len(rows) == 1234
    both = _rows(GeneratorConfig(seed=1, duration_s=10, requests=1_000_000, arrivals=Poisson(rate=50.0)))
    assert 300 < len(both) < 700 and both[-1].timestamp < 10_000


# --------------------------------------------------------------------------- lengths


def _plain(**kw: object) -> GeneratorConfig:
    """No system prompts and no sessions, so every input length is a raw ISL draw."""
    return GeneratorConfig(seed=9, duration_s=None, requests=20_000, prefixes=NO_PREFIXES, sessions=NO_SESSIONS, **kw)  # type: ignore[arg-type]


def test_lognormal_lengths_honour_mean_min_max() -> None:
    rows = _rows(_plain(isl=InputLengths(mean=6000.0, sigma=0.9, min=64, max=200_000), osl=OutputLengths(mean=350.0, sigma=0.7, min=1, max=20_000)))
    isl = [r.input_length for r in rows]
    osl = [r.output_length for r in rows]
    assert abs(sum(isl) / len(isl) - 6000) < 0.04 * 6000
    assert abs(sum(osl) / len(osl) - 350) < 0.03 * 350
    assert min(isl) >= 64 and max(isl) <= 200_000 and min(osl) >= 1


def test_lengths_are_clamped() -> None:
    rows = _rows(_plain(isl=InputLengths(mean=6000.0, sigma=1.0, min=2000, max=8000), osl=OutputLengths(mean=350.0, min=100, max=400)))
    isl = Counter(r.input_length for r in rows)
    osl = Counter(r.output_length for r in rows)
    assert min(isl) == 2000 and max(isl) == 8000 and isl[2000] > 100 and isl[8000] > 100
    assert min(osl) == 100 and max(osl) == 400 and osl[100] > 100 and osl[400] > 100


def test_uniform_and_fixed_lengths() -> None:
    rows = _rows(_plain(isl=InputLengths(dist="uniform", min=100, max=300), osl=OutputLengths(dist="fixed", mean=128.0)))
    isl = [r.input_length for r in rows]
    assert min(isl) == 100 and max(isl) == 300
    assert abs(sum(isl) / len(isl) - 200) < 2
    assert {r.output_length for r in rows} == {128}


# --------------------------------------------------------------------------- prefix structure


def _blocks_ok(rows: list[Request], bs: int) -> bool:
    return all(len(r.hash_ids) == -(-r.input_length // bs) for r in rows)


@pytest.mark.parametrize("bs", [512, 64, 1000])
def test_block_count_matches_input_length(bs: int) -> None:
    rows = _rows(GeneratorConfig(seed=2, duration_s=900, block_size=bs, prefixes=Prefixes(tokens=1300)))
    assert _blocks_ok(rows, bs)
    assert trace_stats(rows, block_size=bs).block_mismatches == 0


def test_system_prompts_are_shared_with_zipf_popularity() -> None:
    prefixes = Prefixes(system_prompts=3, tokens=1300, zipf_s=1.2)  # 2 full blocks + a partial one
    rows = _rows(GeneratorConfig(seed=3, duration_s=None, requests=6000, prefixes=prefixes, sessions=NO_SESSIONS))
    first_two = Counter(tuple(r.hash_ids[:2]) for r in rows)
    assert set(first_two) == {(0, 1), (2, 3), (4, 5)}
    a, b, c = first_two[(0, 1)], first_two[(2, 3)], first_two[(4, 5)]
    assert a > 1.8 * b and b > 1.3 * c  # weights 1 : 0.435 : 0.268 -> expected 3510 : 1527 : 940
    assert all(r.input_length > 1300 for r in rows)
    # Everything after the prompt's full blocks is fresh: no id repeats outside the prompts.
    rest = Counter(i for r in rows for i in r.hash_ids[2:])
    assert max(rest.values()) == 1 and min(rest) >= 6


def test_no_prompts_no_sessions_means_no_reuse() -> None:
    rows = _rows(GeneratorConfig(seed=3, duration_s=600, prefixes=NO_PREFIXES, sessions=NO_SESSIONS))
    assert trace_stats(rows).prefix_reuse == 0.0


def test_sessions_continue_previous_turns() -> None:
    bs = 512
    ss = Sessions(continue_prob=0.4, min_gap_s=10.0, timeout_s=300.0, max_turns=4, emit_ids=True)
    cfg = GeneratorConfig(seed=4, duration_s=3600, arrivals=Poisson(rate=2.0), sessions=ss)
    rows = _rows(cfg)
    by_session: dict[int, list[Request]] = defaultdict(list)
    for r in rows:
        by_session[r.session_id].append(r)  # type: ignore[index]
    continuations = 0
    partial_checked = 0
    for turns in by_session.values():
        assert len(turns) <= 4
        for prev, cur in itertools.pairwise(turns):
            continuations += 1
            full = prev.input_length // bs
            assert cur.hash_ids[:full] == prev.hash_ids[:full]
            assert cur.input_length >= prev.input_length + prev.output_length + ss.turn.min
            assert 10_000 <= cur.timestamp - prev.timestamp <= 300_000
            if prev.input_length % bs and len(cur.hash_ids) > full:
                assert cur.hash_ids[full] != prev.hash_ids[full]  # the partial last block is not shared
                partial_checked += 1
    share = continuations / len(rows)
    assert 0.30 < share < 0.42, share
    assert partial_checked > 100
    assert max(r.input_length for r in rows) <= cfg.isl.max
    assert trace_stats(rows).prefix_reuse > 0.3


def test_open_sessions_are_bounded() -> None:
    # With at most 4 open sessions, a turn can only continue one of the 4 most recently active sessions.
    ss = Sessions(continue_prob=0.9, min_gap_s=0.0, max_open=4, max_turns=1000, emit_ids=True)
    isl = InputLengths(mean=500.0, max=1_000_000)
    rows = _rows(GeneratorConfig(seed=6, duration_s=None, requests=3000, arrivals=Poisson(rate=5.0), sessions=ss, isl=isl))
    recent: list[int] = []  # session ids by last activity, most recent last
    continuations = 0
    for r in rows:
        sid = r.session_id
        assert isinstance(sid, int)
        if sid in recent:
            assert sid in recent[-4:]
            recent.remove(sid)
            continuations += 1
        recent.append(sid)
    assert continuations > 2000


# --------------------------------------------------------------------------- output, laziness, validation


def test_output_reads_back_identically(tmp_path: Path) -> None:
    cfg = GeneratorConfig(seed=8, duration_s=600, sessions=Sessions(emit_ids=True))
    write_trace(tmp_path / "t.jsonl.gz", generate_trace(cfg))
    assert (tmp_path / "t.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert list(read_trace(tmp_path / "t.jsonl.gz")) == _rows(cfg)


def test_generator_is_lazy() -> None:
    cfg = GeneratorConfig(seed=1, duration_s=None, requests=10_000_000)
    t0 = time.perf_counter()
    first = list(itertools.islice(generate_trace(cfg), 10))
    assert time.perf_counter() - t0 < 0.5
    assert len(first) == 10


def test_memory_stays_flat() -> None:
    def peak(n: int) -> int:
        ss = Sessions(max_open=64)  # the cap is what bounds the state; a small one plateaus quickly
        cfg = GeneratorConfig(seed=1, duration_s=None, requests=n, arrivals=Poisson(rate=20.0), sessions=ss)
        tracemalloc.start()
        try:
            assert sum(1 for _ in generate_trace(cfg)) == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1000), peak(4000)
    assert large - small < 150_000  # holding the 3000 extra rows would take > 1.5 MB


def test_direct_construction_is_validated_too() -> None:
    # Constructing a Struct does not check field constraints; generate_trace does.
    with pytest.raises(GeneratorConfigError, match=r"isl\.mean: expected float > 0"):
        generate_trace(GeneratorConfig(isl=InputLengths(mean=-5.0)))
    with pytest.raises(GeneratorConfigError, match=r"arrivals\.period_s: expected float > 0"):
        generate_trace(GeneratorConfig(arrivals=Sine(period_s=0.0)))
    # Cross-field checks run in __post_init__, at construction.
    with pytest.raises(ValueError, match="duration_s and/or requests"):
        GeneratorConfig(duration_s=None)


@pytest.mark.parametrize(
    ("doc", "pattern"),
    [
        ({"isl": {"mean": 0}}, r"isl\.mean: expected float > 0"),
        ({"isl": {"min": 10, "max": 5}}, r"isl: min \(10\) must not exceed max \(5\)"),
        ({"arrivals": {"shape": "zigzag"}}, r"arrivals\.shape: unknown shape"),
        ({"arrivals": {"shape": "ramp", "rate": 2}}, r"arrivals\.rate: unknown key for shape ramp"),
        ({"arrivals": {"shape": "step", "levels": [[10, 1]]}}, "first level must start at 0"),
        ({"sessions": {"continue_prob": 1.5}}, r"sessions\.continue_prob: expected float <= 1"),
        ({"prefixes": {"tokens": 70000}}, r"prefixes\.tokens \(70000\) must be below isl\.max"),
        ({"duration_s": None, "arrivals": {"shape": "step", "levels": [[0, 1], [5, 0]]}, "requests": 9}, "would never end"),
        ({"sesions": {}}, "sesions: unknown key"),
    ],
)
def test_config_errors_name_the_key(doc: dict, pattern: str) -> None:
    with pytest.raises(GeneratorConfigError, match=pattern):
        config_from_mapping(doc, source="cfg.yaml")


# --------------------------------------------------------------------------- CLI


def test_cli_config_file_equals_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "g.yaml").write_text(
        "seed: 21\nduration_s: 300\narrivals: {shape: step, levels: [[0, 1], [100, 3]]}\n"
        "osl: {dist: uniform, min: 10, max: 20}\nsessions: {emit_ids: true, max_turns: 3}\n"
    )
    assert _run(["generate", "--config", str(tmp_path / "g.yaml"), "-o", str(tmp_path / "a.jsonl")]) == 0
    flags = ["--seed", "21", "--duration", "300", "--shape", "step", "--levels", "0:1,100:3", "--osl-dist", "uniform",
             "--osl-min", "10", "--osl-max", "20", "--session-ids", "--max-turns", "3"]
    assert _run(["generate", *flags, "-o", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert load_generator_config(str(tmp_path / "g.yaml")).arrivals == Step(levels=[(0.0, 1.0), (100.0, 3.0)])
    out = capsys.readouterr().out
    assert "requests" in out and "prefix reuse" in out and "sessions" in out
    # A flag overrides the file.
    assert _run(["generate", "--config", str(tmp_path / "g.yaml"), "--seed", "22", "-o", str(tmp_path / "c.jsonl")]) == 0
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a.jsonl").read_bytes()


def test_cli_gzip_by_suffix(tmp_path: Path) -> None:
    assert _run(["generate", "--requests", "50", "-o", str(tmp_path / "t.jsonl.gz")]) == 0
    raw = gzip.decompress((tmp_path / "t.jsonl.gz").read_bytes())
    assert raw.count(b"\n") == 50


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--isl-mean", "-5"], "--isl-mean: expected float > 0"),
        (["--rate", "fast"], "invalid float value"),
        (["--shape", "square"], "invalid choice"),
        (["--shape", "ramp", "--rate", "2"], "--rate: unknown key for shape ramp"),
        (["--rate0", "2"], "--rate0: unknown key for shape poisson"),
        (["--isl-min", "900", "--isl-max", "100"], "must not exceed max"),
        (["--levels", "0:1,oops"], "START_S:RATE"),
        (["--shape", "step", "--levels", "3:1"], "first level must start at 0"),
        (["--continue-prob", "2"], "--continue-prob: expected float <= 1"),
        (["--requests", "0"], "--requests: expected int >= 1"),
        (["--config", "/nonexistent/g.yaml"], "cannot open"),
    ],
)
def test_cli_bad_input_exits_2(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    assert _run(["generate", *argv, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_bad_config_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "g.yaml").write_text("seed: 1\nisl:\n  mean: 3000\n  sigmaa: 2\n")
    assert _run(["generate", "--config", str(tmp_path / "g.yaml"), "-o", str(tmp_path / "t.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "g.yaml: isl.sigmaa: unknown key" in err


# --------------------------------------------------------------------------- bundled traces


def _readme_commands(verbs: str = "generate") -> list[tuple[str, list[str]]]:
    text = (ROOT / "traces" / "README.md").read_text()
    out = []
    for line in text.splitlines():
        m = re.match(rf"- `([^`]+)`.*: `python -m replaylib ((?:{verbs}) [^`]+)`$", line)
        if m:
            out.append((m.group(1), shlex.split(m.group(2))))
    return out


def test_readme_lists_every_bundled_trace() -> None:
    """Every bundled trace is listed with the command that made it (generated here; the real excerpt imported)."""
    traces = ROOT / "traces"
    bundled = {p.relative_to(traces).as_posix() for p in traces.rglob("*")
               if p.is_file() and p.name not in ("README.md", "__init__.py") and "__pycache__" not in p.parts}
    assert {name for name, _ in _readme_commands("generate|import")} == bundled
    assert all((ROOT / "traces" / name).stat().st_size < 1_000_000 for name in bundled)


@pytest.mark.parametrize(("name", "argv"), [pytest.param(n, a, id=n) for n, a in _readme_commands()])
def test_bundled_trace_regenerates_byte_identically(name: str, argv: list[str], tmp_path: Path) -> None:
    i = argv.index("-o")
    assert argv[i + 1] == f"traces/{name}"
    argv[i + 1] = str(tmp_path / name)
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)  # testbed/... traces sit in a subfolder
    assert _run(argv) == 0
    assert (tmp_path / name).read_bytes() == (ROOT / "traces" / name).read_bytes()
