"""The golden text format (replaylib.golden.text): layout, byte stability, reading back, bad files,
names of goldens, metadata, and ``diff`` against a golden file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import msgspec
import polars as pl
import pytest

from replaylib.adapter import replay
from replaylib.cli import main
from replaylib.diff import diff_frames, diff_recordings
from replaylib.golden import GoldenFormatError, encode_name, golden_text, parse_golden
from replaylib.record import EventRow, RecordingWriter, read_metadata, read_recording
from replaylib.record.schema import COLUMN_SPECS
from replaylib.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
G3 = REPO / "scenarios" / "g3_tight_budget.yaml"

#: The v1 layout (replaylib 0.1 before goldens v2): a header, then one JSON object per event.
V1_GOLDEN = (
    "# replaylib golden v1 | scenario g3 | planner aic@2 | seed 7 | system h100_sxm | trace sha256 0123456789abcdef | "
    "floats to 6 significant digits | histograms omitted\n"
    '{"kind":"tick","seq":0,"tick":0,"now_ms":60568.1,"target_prefill":2,"target_decode":1}\n'
)


@pytest.fixture(scope="module")
def g3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("g3") / "g3.arrow"
    replay(load_scenario(G3), out=out)
    return out


def _text(path: Path) -> str:
    return golden_text(read_recording(path), read_metadata(path))


def test_layout_is_a_block_per_tick_with_one_line_per_column(g3_run: Path) -> None:
    text = _text(g3_run)
    lines = text.splitlines()
    assert lines[0].startswith("# replaylib golden v2") and "--snapshot-update" in lines[0]
    assert lines[1] == "metadata" and '  planner_name: "aic"' in lines and '  seed: "7"' in lines
    assert not any("trace_path" in ln or "replaylib_version" in ln for ln in lines)  # machine/release-specific
    i = lines.index("tick 0 @ " + lines[lines.index("") + 1].split(" @ ")[1])
    block = lines[i : lines.index("", i)]
    sections = [ln for ln in block if ln.startswith("  ") and not ln.startswith("    ")]
    assert sections[:3] == ["  decision:", "  observation:", "  outcome:"]
    decisions = block[block.index("  decision:") + 1 : block.index("  observation:")]
    assert all(ln.startswith("    ") and ": " in ln for ln in decisions)
    assert {ln.split(":")[0].strip() for ln in decisions} <= {c for c, s in COLUMN_SPECS.items() if s.cls.value == "decision"}
    assert any(ln.startswith("    target_prefill: ") for ln in decisions)
    assert any(ln.startswith('    reason: "') for ln in decisions)
    assert max(len(ln) for ln in lines if not ln.startswith(("#", "    detail"))) < 100  # readable without a tool
    assert "seq" not in {ln.split(":")[0].strip() for ln in lines} and "ttft_hist" not in text


def test_golden_is_byte_stable_and_matches_the_checked_in_one(g3_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.arrow"
    replay(load_scenario(G3), out=again)
    assert _text(again) == _text(g3_run)
    checked_in = REPO / "goldens" / "test_goldens" / "test_golden[g3_tight_budget].golden"
    assert _text(g3_run) == checked_in.read_text(encoding="utf-8")  # same bytes on every platform that runs CI


def test_reading_back_gives_the_recording_at_golden_precision(g3_run: Path) -> None:
    df = read_recording(g3_run)
    golden = parse_golden(_text(g3_run))
    assert golden.metadata["scenario_name"] == "g3_tight_budget" and golden.metadata["planner_version"] == "2"
    assert golden.frame.height == df.height and golden.frame["kind"].to_list() == df["kind"].to_list()
    six_digits = {"all": {"rel": 5e-6, "abs": 0.05}}  # half a unit of the sixth digit; 0.05 for values >= 1e5
    report = diff_frames(df, golden.frame, only="all", tolerance=six_digits)
    assert report.identical and report.column_counts  # rounded, and only rounded
    assert not diff_frames(df, golden.frame, only="all", tolerance=0).identical
    assert golden_text(golden.frame, golden.metadata) == _text(g3_run)  # and it writes back the same bytes


def test_an_event_before_the_first_tick_reads_back(tmp_path: Path) -> None:
    """A fault at at_s 0 is recorded before tick 0's row; its golden block must not run into the metadata."""
    path = REPO / "scenarios" / "testbed" / "b7_nvml_low.yaml"
    out = tmp_path / "b7.arrow"
    replay(load_scenario(path), out=out)
    df = read_recording(out)
    assert df["kind"][0] == "fault"  # the case this test is about
    text = _text(out)
    lines = text.splitlines()
    assert lines[lines.index("  fault event:") - 1] == ""  # a blank line ends the metadata block
    golden = parse_golden(text)
    assert golden.frame["kind"].to_list() == df["kind"].to_list()
    assert golden.frame["tick"][0] == 0 and "fault" not in golden.metadata
    assert golden_text(golden.frame, golden.metadata) == text


def test_one_changed_target_is_at_most_two_lines_in_git_diff(g3_run: Path, tmp_path: Path) -> None:
    df = read_recording(g3_run)
    meta = read_metadata(g3_run)
    tick = 20
    old = df.filter((pl.col("kind") == "tick") & (pl.col("tick") == tick))["target_decode"].item()
    changed = df.with_columns(
        pl.when((pl.col("kind") == "tick") & (pl.col("tick") == tick)).then(old + 1).otherwise(pl.col("target_decode")).alias("target_decode")
    )
    a, b = tmp_path / "a.golden", tmp_path / "b.golden"
    a.write_text(golden_text(df, meta), encoding="utf-8")
    b.write_text(golden_text(changed, meta), encoding="utf-8")
    run = subprocess.run(["git", "diff", "--no-index", "--numstat", str(a), str(b)], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    added, deleted = (int(x) for x in run.stdout.split()[:2])
    assert added + deleted <= 2 and (added, deleted) == (1, 1)
    patch = subprocess.run(["git", "diff", "--no-index", "-U0", str(a), str(b)], capture_output=True, text=True).stdout
    assert f"-    target_decode: {old}" in patch and f"+    target_decode: {old + 1}" in patch


def test_old_format_golden_says_how_to_regenerate(tmp_path: Path, g3_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(GoldenFormatError, match=r"x\.golden: a golden in the old v1 format .*python -m pytest --snapshot-update"):
        parse_golden(V1_GOLDEN, source="x.golden")
    with pytest.raises(GoldenFormatError, match="old v1 format"):  # a v1 file that lost its header line
        parse_golden(V1_GOLDEN.split("\n", 1)[1])
    old = tmp_path / "old.golden"
    old.write_text(V1_GOLDEN)
    assert main(["diff", str(g3_run), str(old)]) == 2
    err = capsys.readouterr().err
    assert str(old) in err and "old v1 format" in err and "--snapshot-update" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello\n", ":1: not a replaylib golden"),
        ("# replaylib golden v9\n", "format v9 is not known"),
        ("# replaylib golden v2\n\ntick 0 @ 1.0 ms\n  decision:\n    target_decodee: 3\n", ":5: unknown column 'target_decodee'"),
        ("# replaylib golden v2\n\ntick 0 @ 1.0 ms\n  decision:\n    target_decode: three\n", ":5: cannot read value 'three'"),
        ("# replaylib golden v2\n\ntick 0 @ 1.0 ms\n  decision:\n    target_decode: 2.5\n", ":5: column 'target_decode' expects Int64"),
        ("# replaylib golden v2\n\ntick 0 @ 1.0 ms\n  decision:\n    power_total_w: 2.5\n", ":5: column 'power_total_w' is a outcome"),
        ("# replaylib golden v2\n\ntick 0 @ 1.0 ms\n  whatever\n", ":4: cannot read '  whatever'"),
    ],
)
def test_damaged_golden_names_the_line(text: str, message: str) -> None:
    with pytest.raises(GoldenFormatError) as err:
        parse_golden(text, source="goldens/t/x.golden")
    assert message in str(err.value) and "goldens/t/x.golden" in str(err.value)


def test_names_from_import_paths_are_valid_and_reversible() -> None:
    assert encode_name("test_x[my_pkg.planners:Mine]") == "test_x[my_pkg.planners%3AMine]"
    assert encode_name("test_x[a/b|c%]") == "test_x[a%2Fb%7Cc%25]"
    assert encode_name("test_y[sla@1]") == "test_y[sla@1]"  # nothing to escape: unchanged
    assert not set(encode_name('t[\\/?*:|"<>%\n]')) & set('\\/?*:|"<>\n')


def _recording(path: Path, metadata: dict[str, str]) -> Path:
    base = {k: "1" for k in ("schema_version", "planner_version", "seed", "gpus_per_worker")}
    base.update({"replaylib_version": "0.1.0", "planner_name": "sla", "scenario_name": "s", "scenario_hash": "c",
                 "trace_path": "t", "trace_sha256": "a", "systems_sha256": "b", "system_name": "h100_sxm",
                 "ttft_target_ms": "2000.0", "itl_target_ms": "50.0"})  # fmt: skip
    base.update(metadata)
    with RecordingWriter(path, base) as w:
        for i in range(3):
            w.append(EventRow(kind="tick", seq=w.next_seq(), tick=i, now_ms=1000.0 * (i + 1), target_decode=2, reason="hold"))
    return path


def test_new_metadata_keys_show_up_in_goldens_and_diffs_without_code_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_a = msgspec.json.encode({"max_gpu_budget": 24, "predictor": {"kind": "arima", "window": 5}}).decode()
    config_b = msgspec.json.encode({"max_gpu_budget": 32, "predictor": {"kind": "arima", "window": 5}}).decode()
    a = _recording(tmp_path / "a.arrow", {"dynamo_version": "0.4.1", "planner_config": config_a})
    b = _recording(tmp_path / "b.arrow", {"dynamo_version": "0.5.0", "planner_config": config_b, "brand_new": "x"})
    assert '  dynamo_version: "0.4.1"' in _text(a).splitlines()
    report = diff_recordings(a, b)
    assert report.identical  # metadata is reported, never judged
    assert [(m.key, m.a, m.b) for m in report.metadata] == [
        ("brand_new", "(absent)", "x"), ("dynamo_version", "0.4.1", "0.5.0"), ("planner_config.max_gpu_budget", "24", "32"),
    ]  # fmt: skip
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "planner_config.max_gpu_budget  24" in out and "dynamo_version" in out
    golden = tmp_path / "a.golden"
    golden.write_text(_text(a))
    assert [m.key for m in diff_recordings(golden, b).metadata] == ["brand_new", "dynamo_version", "planner_config.max_gpu_budget"]


def test_diff_against_a_golden_file(g3_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    golden = REPO / "goldens" / "test_goldens" / "test_golden[g3_tight_budget].golden"
    assert main(["diff", str(g3_run), str(golden), "--only", "all"]) == 0  # the recording is read at golden precision
    assert "IDENTICAL" in capsys.readouterr().out
    other = tmp_path / "sla.arrow"
    replay(load_scenario(G3), out=other, planner="sla@1")
    assert main(["diff", str(golden), str(other)]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and "first divergence: tick" in out and "aic@2" in out and "sla@1" in out
    shutil.copy(golden, tmp_path / "copy.golden")
    assert main(["diff", str(golden), str(tmp_path / "copy.golden"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["diff", str(golden), str(tmp_path / "missing.golden")]) == 2
    assert "no such golden" in capsys.readouterr().err


def test_two_seeds_of_a_catalog_scenario_decide_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The noise moves every observation; sla@1's decisions on node_loss do not move with it (aic@2's caps do:
    it picks them in 25 W steps from the noisy power it observes, and the diff says so)."""
    base, other = tmp_path / "seed7.arrow", tmp_path / "seed8.arrow"
    node_loss = load_scenario(REPO / "scenarios" / "node_loss.yaml")
    replay(node_loss, out=base, planner="sla@1")
    replay(node_loss, out=other, planner="sla@1", seed=8)
    g3_run = base
    assert main(["diff", str(g3_run), str(other)]) == 0
    out = capsys.readouterr().out
    assert "SAME (" in out and "decisions identical" in out and "observations differ at" in out and "summarised" in out
    assert "seed  7  8" in out
    assert main(["diff", str(g3_run), str(other), "--only", "all"]) == 1
    assert "DIFFERENT (decisions, observations and outcomes differ" in capsys.readouterr().out
    assert main(["diff", str(g3_run), str(other), "--only", "observations", "--stat"]) == 1
    stat = capsys.readouterr().out
    assert "first divergence" not in stat and "obs_power_prefill_w" in stat
