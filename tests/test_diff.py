"""Diffing recordings (replaylib.diff), the diff/compare verbs, and the KPIs (replaylib.record.kpis)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pyarrow as pa
import pytest
from scenario_helpers import tiny_scenario

from replaylib.cli import main
from replaylib.diff import (
    DiffError,
    MetadataMismatch,
    decode_report,
    diff_frames,
    diff_recordings,
    format_json,
    format_text,
    render,
)
from replaylib.diff.model import DiffReport, FieldDiff
from replaylib.record import EventRow, RecordingError, RecordingWriter, read_recording, recording_metadata
from replaylib.record.kpis import ReversalCounter, compute_kpis, format_kpis
from replaylib.sim.metrics import GAMMA, LatencyStats

REPO = Path(__file__).resolve().parents[1]

# -- building recordings -------------------------------------------------------------------------

SHA_TRACE = "a" * 64
SHA_SYSTEMS = "b" * 64
INTERVAL_MS = 10_000.0


def meta(**over: Any) -> dict[str, str]:
    """Realistic recording metadata; keyword arguments override keys."""
    base = {
        "replaylib_version": "0.1.0",
        "schema_version": "1",
        "planner_name": "sla",
        "planner_version": "1",
        "scenario_name": "ramp_budget",
        "scenario_hash": "c" * 64,
        "trace_path": "../traces/ramp_30min.jsonl.gz",
        "trace_sha256": SHA_TRACE,
        "systems_sha256": SHA_SYSTEMS,
        "system_name": "h100_sxm",
        "seed": "0",
        "ttft_target_ms": "2000.0",
        "itl_target_ms": "50.0",
        "gpus_per_worker": "2",
    }
    base.update({k: str(v) for k, v in over.items()})
    return base


def _hist(*pairs: tuple[float, int]) -> LatencyStats:
    s = LatencyStats()
    for value, n in pairs:
        s.add(value, n)
    return s


def tick_fields(i: int) -> dict[str, Any]:
    """A plausible tick row ``i`` (values vary smoothly with i)."""
    n_p, n_d = 2 + (i // 7) % 2, 3 + (i // 5) % 2
    gpus = 2 * (n_p + n_d)
    ttft = _hist((180.0 + i, 8), (950.0, 2))
    itl = _hist((22.0 + (i % 3), 90), (60.0, 10))
    power = 450.0 * gpus + 3.25 * i
    return {
        "now_ms": (i + 1) * INTERVAL_MS, "t_sched_ms": (i + 1) * INTERVAL_MS, "fleet_ms": (i + 1) * INTERVAL_MS + 1.5,
        "prefill_active": n_p, "prefill_starting": 0, "prefill_draining": 0,
        "decode_active": n_d, "decode_starting": 0, "decode_draining": 0,
        "target_prefill": n_p, "target_decode": n_d,
        "cap_prefill_w": 700.0, "cap_decode_w": 600.0, "target_cap_prefill_w": 700.0, "target_cap_decode_w": 600.0,
        "power_prefill_w": 520.5, "power_decode_w": 410.25, "obs_power_prefill_w": 521.0, "obs_power_decode_w": 409.0,
        "power_total_w": power, "projected_w": 650.0 * gpus, "budget_w": 8000.0, "budget_clamped": False, "gpus": gpus,
        "arrivals": 10 + i % 4, "request_rate": 1.0 + (i % 4) / 10, "mean_isl": 2048.0, "mean_osl": 256.0,
        "predicted_rate": 1.1, "predicted_isl": 2000.0, "predicted_osl": 250.0, "prefix_hit_rate": 0.4,
        "c_ttft": 1.0, "c_itl": 1.0, "c_power_p": 1.0, "c_power_d": 1.0,
        "ttft_mean_ms": ttft.mean, "ttft_p50_ms": ttft.p50, "ttft_p99_ms": ttft.p99, "ttft_count": ttft.count,
        "ttft_within_sla": ttft.count_le(2000.0),
        "itl_mean_ms": itl.mean, "itl_p50_ms": itl.p50, "itl_p99_ms": itl.p99, "itl_count": itl.count,
        "itl_within_sla": itl.count_le(50.0), "ttft_hist": ttft.flat(), "itl_hist": itl.flat(),
        "obs_ttft_ms": ttft.mean, "obs_itl_ms": itl.mean, "ttft_violation": False, "itl_violation": False,
        "reason": "steady", "actuation": "ok",
        "arrived": 11 * (i + 1), "completed": 11 * i, "dropped": 0, "in_flight": 11, "preemptions": 0,
    }  # fmt: skip


#: Non-tick events of the default recording: (tick, kind, fields), appended after that tick's row.
DEFAULT_EVENTS: list[tuple[int, str, dict[str, Any]]] = [
    (3, "scale", {"event": "scale_out", "target_prefill": 3, "target_decode": 4, "detail": "prefill 2->3, decode 3->4"}),
    (5, "cap", {"event": "cap", "cap_prefill_w": 650.0, "cap_decode_w": 550.0, "detail": "prefill 700->650 W"}),
    (8, "scale", {"event": "scale_in", "target_prefill": 2, "target_decode": 3, "detail": "prefill 3->2, decode 4->3"}),
    (10, "fault", {"event": "actuation_fault", "detail": "events[0] {\"mode\":\"rbac_denied\"}"}),
]


def write_recording(
    path: Path,
    n: int = 20,
    *,
    ticks: dict[int, dict[str, Any]] | None = None,
    events: list[tuple[int, str, dict[str, Any]]] | None = None,
    metadata: dict[str, str] | None = None,
    base: Any = tick_fields,
) -> Path:
    """``n`` tick rows (``ticks[i]`` overrides fields of tick i), non-tick ``events``, one assertion row."""
    ticks = ticks or {}
    events = DEFAULT_EVENTS if events is None else events
    with RecordingWriter(path, metadata or meta(), batch_rows=7) as w:
        for i in range(n):
            fields = {**base(i), **ticks.get(i, {})}
            w.append(EventRow(kind="tick", seq=w.next_seq(), tick=i, **fields))
            for t, kind, extra in events:
                if t == i:
                    now = fields["now_ms"]
                    w.append(EventRow(kind=kind, seq=w.next_seq(), tick=i, now_ms=now, **extra))
        last = {**base(n - 1), **ticks.get(n - 1, {})}["now_ms"] if n else 0.0
        w.append(EventRow(kind="assertion", seq=w.next_seq(), tick=n - 1, now_ms=last, event="ttft_p99_ms",
                          detail="ttft_p99_ms <= 2000 -- max 950", passed=True))
    return path


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def rec_a(tmp_path: Path) -> Path:
    return write_recording(tmp_path / "a.arrow")


# -- identical / one difference / several ------------------------------------------------------


def test_identical_recordings(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(tmp_path / "b.arrow")
    report = diff_recordings(rec_a, b)
    assert report.identical
    assert report.first_divergence is None
    assert report.column_counts == []
    assert report.ticks_a == report.ticks_b == 20
    assert [(k.kind, k.count_a, k.count_b, k.differing) for k in report.events] == [
        ("scale", 2, 2, 0), ("cap", 1, 1, 0), ("fault", 1, 1, 0), ("assertion", 1, 1, 0)
    ]
    code, out, _ = run_cli("diff", str(rec_a), str(b), capsys=capsys)
    assert code == 0
    assert "IDENTICAL" in out
    assert "first divergence" not in out


def test_one_tick_differs_is_reported_with_both_values(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={7: {"target_decode": 9}})
    report = diff_recordings(rec_a, b)
    assert not report.identical
    div = report.first_divergence
    assert div is not None and div.tick == 7 and div.only_in is None
    assert div.fields == [FieldDiff(column="target_decode", a=4, b=9)]
    assert [(c.column, c.ticks) for c in report.column_counts] == [("target_decode", 1)]
    assert report.ticks_differing == 1
    assert [r.tick for r in div.context] == [5, 6, 7, 8, 9]
    assert div.columns == ["target_decode"]
    assert [r.differs for r in div.context] == [[], [], ["target_decode"], [], []]
    assert [(r.a, r.b) for r in div.context][2] == ([4], [9])
    code, out, _ = run_cli("diff", str(rec_a), str(b), capsys=capsys)
    assert code == 1
    assert "first divergence: tick 7" in out
    assert "4 | 9" in out  # the context cell of tick 7
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("target_decode ") and ln.split()[1:] == ["4", "9"])
    assert line


def test_several_differences_first_is_earliest_and_counts_per_column(tmp_path: Path, rec_a: Path) -> None:
    b = write_recording(
        tmp_path / "b.arrow",
        ticks={
            12: {"power_total_w": 1.0},
            4: {"target_prefill": 7},
            15: {"power_total_w": 2.0, "target_prefill": 8, "reason": "sla_breach"},
        },
    )
    report = diff_recordings(rec_a, b, context=1)
    div = report.first_divergence
    assert div is not None and div.tick == 4
    assert [f.column for f in div.fields] == ["target_prefill"]
    assert {c.column: c.ticks for c in report.column_counts} == {"target_prefill": 2, "power_total_w": 2, "reason": 1}
    assert [c.column for c in report.column_counts] == ["target_prefill", "power_total_w", "reason"]  # schema order
    assert {c.column: c.judged for c in report.column_counts} == {"target_prefill": True, "power_total_w": False, "reason": True}
    assert report.ticks_differing == 2  # decisions differ at ticks 4 and 15; the power outcome at 12 is summarised
    assert [r.tick for r in div.context] == [3, 4, 5]
    everything = diff_recordings(rec_a, b, context=1, only="all")
    assert everything.ticks_differing == 3 and everything.first_divergence is not None
    assert everything.first_divergence.tick == 4


def test_tolerance_is_relative(tmp_path: Path, rec_a: Path) -> None:
    p = tick_fields(6)["power_total_w"]
    b = write_recording(tmp_path / "b.arrow", ticks={6: {"power_total_w": p * (1 + 1e-3)}})
    assert diff_recordings(rec_a, b, only="all", tolerance=1e-2).identical
    loose = diff_recordings(rec_a, b, only="all", tolerance=1e-4)
    assert not loose.identical and loose.first_divergence is not None and loose.first_divergence.tick == 6
    assert not diff_recordings(rec_a, b, only="all").identical  # outcomes default: rel 1e-5
    assert diff_recordings(rec_a, b).identical  # by default only decisions are judged: the power is summarised
    # ints are compared exactly whatever the tolerance
    c = write_recording(tmp_path / "c.arrow", ticks={6: {"gpus": tick_fields(6)["gpus"] + 1}})
    assert not diff_recordings(rec_a, c, only="all", tolerance=0.5).identical


def test_tolerance_flag_on_cli(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tick_fields(6)["power_total_w"]
    b = write_recording(tmp_path / "b.arrow", ticks={6: {"power_total_w": p * (1 + 1e-3)}})
    assert run_cli("diff", str(rec_a), str(b), "--only", "all", "--tolerance", "1e-2", capsys=capsys)[0] == 0
    assert run_cli("diff", str(rec_a), str(b), "--only", "all", "--tolerance", "1e-4", capsys=capsys)[0] == 1
    assert run_cli("diff", str(rec_a), str(b), "--only", "all", "--tolerance", "power_total_w=abs:10", capsys=capsys)[0] == 0
    assert run_cli("diff", str(rec_a), str(b), "--only", "outcomes", "--tolerance", "outcome=rel:1e-2", capsys=capsys)[0] == 0


def test_nulls_equal_each_other_but_not_a_value(tmp_path: Path, rec_a: Path) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={9: {"obs_power_decode_w": None}})
    report = diff_recordings(rec_a, b, only="observations", tolerance=0.5)
    assert report.first_divergence is not None
    assert report.first_divergence.fields == [FieldDiff(column="obs_power_decode_w", a=409.0, b=None)]
    c = write_recording(tmp_path / "c.arrow", ticks={9: {"obs_power_decode_w": None}})
    assert diff_recordings(b, c).identical


def test_columns_restricts_the_comparison(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={3: {"target_decode": 9}, 9: {"power_total_w": 1.0}})
    only_power = diff_recordings(rec_a, b, columns=["power_total_w"])
    assert only_power.columns == ["power_total_w"]
    assert only_power.first_divergence is not None and only_power.first_divergence.tick == 9
    assert [(c.column, c.ticks) for c in only_power.column_counts] == [("power_total_w", 1)]
    assert diff_recordings(rec_a, b, columns=["gpus", "reason"]).identical
    assert run_cli("diff", str(rec_a), str(b), "--columns", "gpus,reason", capsys=capsys)[0] == 0
    code, out, _ = run_cli("diff", str(rec_a), str(b), "--columns", "target_decode", capsys=capsys)
    assert code == 1 and "first divergence: tick 3" in out


def test_unknown_column_is_an_error(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DiffError, match="unknown column 'target_decod'.*target_decode"):
        diff_recordings(rec_a, rec_a, columns=["target_decod"])
    code, _, err = run_cli("diff", str(rec_a), str(rec_a), "--columns", "power_total_w,bogus", capsys=capsys)
    assert code == 2 and "unknown column 'bogus'" in err


def test_histograms_and_seq_ignored_by_default_but_comparable(tmp_path: Path, rec_a: Path) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={5: {"ttft_hist": [1, 2, 3, 4]}})
    assert diff_recordings(rec_a, b).identical
    named = diff_recordings(rec_a, b, columns=["ttft_hist"])
    assert named.first_divergence is not None and named.first_divergence.tick == 5
    assert named.first_divergence.fields[0].b == [1, 2, 3, 4]


# -- lengths and events -------------------------------------------------------------------------


def test_different_lengths_are_reported(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(tmp_path / "b.arrow", n=23)
    report = diff_recordings(rec_a, b)
    assert not report.identical
    assert (report.ticks_a, report.ticks_b) == (20, 23)
    assert (report.only_b.count, report.only_b.first, report.only_b.last) == (3, 20, 22)
    assert report.only_a.count == 0
    assert report.ticks_differing == 0  # the 20 common ticks agree
    div = report.first_divergence
    assert div is not None and div.tick == 20 and div.only_in == "b" and div.now_ms_a is None
    code, out, _ = run_cli("diff", str(b), str(rec_a), capsys=capsys)
    assert code == 1
    assert "ticks only in A: 3 (ticks 20–22)" in out


def test_extra_event_on_one_side(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = (12, "fault", {"event": "node_down", "detail": "events[1] lost 1 decode"})
    b = write_recording(tmp_path / "b.arrow", events=[*DEFAULT_EVENTS, extra])
    report = diff_recordings(rec_a, b, only="all")
    assert not report.identical
    assert report.ticks_differing == 0 and report.first_divergence is None  # seq shifted, ticks did not
    fault = next(k for k in report.events if k.kind == "fault")
    assert (fault.count_a, fault.count_b, fault.differing, fault.only_a, fault.only_b) == (1, 2, 0, 0, 1)
    assert fault.first is not None
    assert (fault.first.index, fault.first.only_in, fault.first.tick_a, fault.first.tick_b) == (0, "b", None, 12)
    others = [k for k in report.events if k.kind != "fault"]
    assert all(k.differing == k.only_a == k.only_b == 0 for k in others)
    code, out, _ = run_cli("diff", str(rec_a), str(b), "--only", "all", capsys=capsys)
    assert code == 1
    assert "#0 only in B (tick 12)" in out  # the first fault event at tick 12
    # a fault is a circumstance, not a decision: by default it is summarised
    code, out, _ = run_cli("diff", str(rec_a), str(b), capsys=capsys)
    assert code == 0 and "SAME" in out and "fault events differ" in out


def test_changed_event_fields(tmp_path: Path, rec_a: Path) -> None:
    changed = [*DEFAULT_EVENTS[:2], (9, "scale", {**DEFAULT_EVENTS[2][2], "target_decode": 2}), DEFAULT_EVENTS[3]]
    b = write_recording(tmp_path / "b.arrow", events=changed)
    scale = next(k for k in diff_recordings(rec_a, b).events if k.kind == "scale")
    # events align by (tick, kind, order within the tick): the scale-in moved from tick 8 to tick 9
    assert (scale.differing, scale.only_a, scale.only_b) == (0, 1, 1)
    assert scale.first is not None and (scale.first.index, scale.first.only_in, scale.first.tick_a) == (0, "a", 8)
    same_tick = [*DEFAULT_EVENTS[:2], (8, "scale", {**DEFAULT_EVENTS[2][2], "target_decode": 2}), DEFAULT_EVENTS[3]]
    c = write_recording(tmp_path / "c.arrow", events=same_tick)
    scale = next(k for k in diff_recordings(rec_a, c).events if k.kind == "scale")
    assert (scale.differing, scale.only_a, scale.only_b) == (1, 0, 0)
    assert scale.first is not None and (scale.first.index, scale.first.tick_a, scale.first.tick_b) == (0, 8, 8)
    assert [f.column for f in scale.first.fields] == ["target_decode"]


def test_one_missing_event_does_not_shift_the_later_ones(tmp_path: Path, rec_a: Path) -> None:
    """An event missing at one tick is one event only in A; the same kind at later ticks still aligns."""
    b = write_recording(tmp_path / "b.arrow", events=DEFAULT_EVENTS[1:])  # the scale-out at tick 3 is gone
    report = diff_recordings(rec_a, b)
    scale = next(k for k in report.events if k.kind == "scale")
    assert (scale.count_a, scale.count_b, scale.differing, scale.only_a, scale.only_b) == (2, 1, 0, 1, 0)
    assert not report.identical  # a missing scale event is a changed decision


# -- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "what"), [("trace_sha256", "f" * 64, "traces"), ("scenario_name", "other", "scenarios")])
def test_mismatched_trace_or_scenario_refused_unless_forced(
    tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, what: str
) -> None:
    b = write_recording(tmp_path / "b.arrow", metadata=meta(**{key: value}))
    with pytest.raises(MetadataMismatch, match=f"different {what}"):
        diff_recordings(rec_a, b)
    code, out, err = run_cli("diff", str(rec_a), str(b), capsys=capsys)
    assert code == 2 and f"different {what}" in err and "--force" in err and out == ""
    forced = diff_recordings(rec_a, b, force=True)
    assert forced.forced and forced.identical
    assert [m.key for m in forced.metadata] == [key]
    code, out, _ = run_cli("diff", str(rec_a), str(b), "--force", capsys=capsys)
    assert code == 0 and key in out


def test_planner_version_difference_listed_first_not_refused(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={2: {"target_decode": 5}}, metadata=meta(planner_version=2, seed=1, scenario_hash="d" * 64))
    report = diff_recordings(rec_a, b)
    assert [(m.key, m.a, m.b) for m in report.metadata] == [
        ("planner_version", "1", "2"), ("seed", "0", "1"), ("scenario_hash", "c" * 64, "d" * 64)
    ]
    assert not report.forced
    assert (report.planner_a, report.planner_b) == ("sla@1", "sla@2")
    code, out, _ = run_cli("diff", str(rec_a), str(b), capsys=capsys)
    assert code == 1
    assert out.index("planner_version") < out.index("DIFFERENT") < out.index("first divergence")


# -- output formats -----------------------------------------------------------------------------


def test_json_output_parses_and_round_trips(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(
        tmp_path / "b.arrow", n=22,
        ticks={4: {"power_total_w": float("nan"), "reason": "x|y"}, 6: {"budget_w": None}},
        events=[*DEFAULT_EVENTS, (11, "sweep", {"event": "sweep", "projected_w": 7000.0})],
        metadata=meta(planner_version=3),
    )  # fmt: skip
    report = diff_recordings(rec_a, b)
    assert decode_report(format_json(report)) == report
    assert msgspec.json.decode(msgspec.json.encode(report), type=DiffReport) == report
    assert report.first_divergence is not None
    assert FieldDiff(column="reason", a="steady", b="x|y") in report.first_divergence.fields
    assert report.first_divergence.others == ["power_total_w"]  # summarised outcome, named but not shown
    everything = diff_recordings(rec_a, b, only="all")
    assert FieldDiff(column="power_total_w", a=tick_fields(4)["power_total_w"], b="nan") in everything.first_divergence.fields
    assert decode_report(format_json(everything)) == everything
    code, out, _ = run_cli("diff", str(rec_a), str(b), "--format", "json", capsys=capsys)
    assert code == 1
    doc = json.loads(out)
    assert doc["identical"] is False and doc["first_divergence"]["tick"] == 4
    assert doc["metadata"][0] == {"key": "planner_version", "a": "1", "b": "3"}
    assert decode_report(out) == report


def test_markdown_output(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={4: {"reason": "a|b"}})
    code, out, _ = run_cli("diff", str(rec_a), str(b), "--format", "markdown", capsys=capsys)
    assert code == 1
    assert "| column | A | B |" in out
    assert "| reason | steady | a\\|b |" in out
    assert "#### KPIs" in out and "| KPI | A | B | Δ (B−A) |" in out


def test_render_rejects_unknown_format(rec_a: Path) -> None:
    with pytest.raises(DiffError, match="unknown format"):
        render(diff_recordings(rec_a, rec_a), "yaml")


# -- frames without files (goldens) ---------------------------------------------------------------


def test_diff_frames_works_on_dataframes_with_coarser_types(rec_a: Path) -> None:
    df = read_recording(rec_a)
    golden_like = df.drop("ttft_hist", "itl_hist", "seq").with_columns(pl.col("gpus").cast(pl.Float64))
    assert diff_frames(df, golden_like).identical  # ignored columns may be absent; ints read back as floats are fine
    named = diff_frames(df, golden_like, columns=["ttft_hist", "gpus"])
    assert not named.identical and named.columns_only_a == ["ttft_hist"] and named.columns == ["gpus"]
    lacking = diff_frames(df, golden_like.drop("reason"))
    assert not lacking.identical and lacking.columns_only_a == ["reason"] and lacking.first_divergence is None
    changed = golden_like.with_columns(
        pl.when(pl.col("tick") == 13).then(pl.lit(1.5)).otherwise(pl.col("gpus")).alias("gpus")
    )
    assert diff_frames(df, changed).identical  # gpus is an outcome: summarised by default
    report = diff_frames(df, changed, only="outcomes")
    assert report.first_divergence is not None and report.first_divergence.tick == 13
    assert report.first_divergence.fields == [FieldDiff(column="gpus", a=float(tick_fields(13)["gpus"]), b=1.5)]


def test_diff_frames_without_seq_keeps_row_order() -> None:
    a = pl.DataFrame({"kind": ["tick", "scale", "tick"], "tick": [0, 0, 1], "now_ms": [1.0, 1.0, 2.0], "target_decode": [1, 2, 2]})
    b = a.with_columns(pl.Series("target_decode", [1, 3, 2]))
    report = diff_frames(a, b)
    assert report.first_divergence is None  # the tick rows agree
    assert [(k.kind, k.differing) for k in report.events] == [("scale", 1)]


def test_diff_frames_needs_kind_and_tick() -> None:
    with pytest.raises(DiffError, match="no 'kind' column"):
        diff_frames(pl.DataFrame({"tick": [0]}), pl.DataFrame({"tick": [0]}))


# -- KPIs ---------------------------------------------------------------------------------------

H = 3_600_000.0  # ms per hour


def _b(bucket: int) -> float:
    """A latency sample at the representative value of ``bucket``."""
    return GAMMA ** (bucket - 0.5)


KPI_TICKS: list[dict[str, Any]] = [
    # now_ms (h)  gpus  power  budget  tgt_p tgt_d  ttft samples {bucket: n}  ttft_within  itl samples  itl_within
    {"h": 1, "gpus": 8, "power": 4000.0, "budget": 8000.0, "tp": 2, "td": 4, "ttft": {450: 10}, "tw": 10, "itl": {300: 100}, "iw": 99},
    {"h": 2, "gpus": 8, "power": 5000.0, "budget": 8000.0, "tp": 3, "td": 5, "ttft": {460: 20}, "tw": 18, "itl": {300: 100}, "iw": 100},
    {"h": 4, "gpus": 16, "power": 9000.0, "budget": 8000.0, "tp": 3, "td": 4, "ttft": {}, "tw": 0, "itl": {300: 95, 350: 5}, "iw": 90},
    {"h": 5, "gpus": 8, "power": 10000.0, "budget": 10000.0, "tp": 2, "td": 5, "ttft": {470: 10}, "tw": 9, "itl": {300: 100}, "iw": 100},
    {"h": 6, "gpus": 8, "power": 4000.0, "budget": 10000.0, "tp": 2, "td": 5, "ttft": {450: 10}, "tw": 10, "itl": {300: 95, 350: 5}, "iw": 100},
    {"h": 8, "gpus": 16, "power": 6000.0, "budget": None, "tp": 3, "td": 5, "ttft": {480: 108, 700: 2}, "tw": 108, "itl": {300: 100}, "iw": 100},
]  # fmt: skip


def _osc(i: int) -> int:
    """The running reversal count of KPI_TICKS' targets up to tick i, as the adapter records it."""
    counter = ReversalCounter()
    for t in KPI_TICKS[: i + 1]:
        counter.update({"prefill": t["tp"], "decode": t["td"]})
    return counter.count


def _kpi_tick(i: int) -> dict[str, Any]:
    t = KPI_TICKS[i]
    ttft = _hist(*((_b(b), n) for b, n in t["ttft"].items()))
    itl = _hist(*((_b(b), n) for b, n in t["itl"].items()))
    return {
        "now_ms": t["h"] * H, "gpus": t["gpus"], "power_total_w": t["power"], "budget_w": t["budget"],
        "target_prefill": t["tp"], "target_decode": t["td"], "oscillations": _osc(i),
        "ttft_count": ttft.count, "ttft_within_sla": t["tw"], "ttft_hist": ttft.flat(),
        "itl_count": itl.count, "itl_within_sla": t["iw"], "itl_hist": itl.flat(),
        "arrived": 100 * (i + 1), "completed": 90 * (i + 1), "dropped": i, "in_flight": 10 * (i + 1) - i,
    }  # fmt: skip


KPI_EVENTS = [
    (1, "scale", {"event": "scale_out", "target_prefill": 3, "target_decode": 5}),
    (2, "scale", {"event": "scale_in", "target_prefill": 3, "target_decode": 4}),
    (3, "scale", {"event": "rebalance", "target_prefill": 2, "target_decode": 5}),
    (4, "fault", {"event": "budget_change"}),
]


def test_kpis_match_hand_computation(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "k.arrow", n=6, base=_kpi_tick, events=KPI_EVENTS)
    k = compute_kpis(read_recording(path), recording_metadata(path))
    # Δt = 1, 1, 2, 1, 1, 2 hours
    assert k.ticks == 6 and k.duration_s == pytest.approx(8 * 3600.0)
    assert k.gpu_hours == pytest.approx(8 + 8 + 32 + 8 + 8 + 32)
    assert k.energy_kwh == pytest.approx((4000 + 5000 + 18000 + 10000 + 4000 + 12000) / 1000.0)
    assert k.power_mean_w == pytest.approx(53000.0 / 8)
    assert k.power_peak_w == 10000.0
    assert k.budget_peak_w == 10000.0
    assert k.power_budget_peak_ratio == pytest.approx(9000.0 / 8000.0)
    assert k.budget_violations == 1  # tick 2 (tick 3 is at the budget, not over; tick 5 has no budget)
    # prefill 2,3,3,2,2,3: deltas +1,0,-1,0,+1 -> 2 reversals; decode 4,5,4,5,5,5: +1,-1,+1 -> 2
    assert k.oscillations == 4
    assert [_osc(i) for i in range(6)] == [0, 0, 1, 3, 3, 4]  # decode at 2; both at 3; prefill at 5
    assert k.scaling_actions == 3
    assert (k.arrived, k.completed, k.dropped, k.in_flight) == (600, 540, 5, 55)
    assert k.ttft_attainment == pytest.approx(155 / 160)
    assert k.itl_attainment == pytest.approx(589 / 600)
    assert k.sla_attainment == pytest.approx(155 / 160)
    # merged TTFT buckets: 450:20, 460:20, 470:10, 480:108, 700:2 (160 samples): p50 rank 80 in 480;
    # p99 rank ceil(158.4) = 159 in 700 (the first 158 samples are at or below 480)
    assert k.ttft_p50_ms == _b(480)
    assert k.ttft_p99_ms == _b(700)
    # ITL: 300:590, 350:10 -> rank 594 in 350
    assert (k.itl_p50_ms, k.itl_p99_ms) == (_b(300), _b(350))
    assert (k.ttft_target_ms, k.itl_target_ms) == (2000.0, 50.0)


def test_kpi_quantiles_match_latency_stats(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "k.arrow", n=6, base=_kpi_tick, events=[])
    merged, merged_itl = LatencyStats(), LatencyStats()
    for i in range(6):
        merged.merge(_hist(*((_b(b), n) for b, n in KPI_TICKS[i]["ttft"].items())))
        merged_itl.merge(_hist(*((_b(b), n) for b, n in KPI_TICKS[i]["itl"].items())))
    k = compute_kpis(read_recording(path))
    assert (k.ttft_p50_ms, k.ttft_p99_ms) == (merged.p50, merged.p99)
    assert (k.itl_p50_ms, k.itl_p99_ms) == (merged_itl.p50, merged_itl.p99)


def test_kpis_without_budget_are_null_not_zero(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "k.arrow", n=4, ticks={i: {"budget_w": None} for i in range(4)})
    k = compute_kpis(read_recording(path))
    assert k.budget_peak_w is None and k.power_budget_peak_ratio is None and k.budget_violations is None
    assert k.gpu_hours is not None and k.gpu_hours > 0
    text = format_kpis(k, recording_metadata(path))
    assert "budget violations" in text
    assert next(ln for ln in text.splitlines() if "budget violations" in ln).split()[-1] == "—"


def test_kpis_of_empty_and_sparse_frames() -> None:
    empty = compute_kpis(pl.DataFrame({"kind": ["assertion"], "tick": [0], "now_ms": [0.0]}))
    assert empty.ticks == 0 and empty.gpu_hours is None and empty.energy_kwh is None and empty.ttft_p99_ms is None
    assert empty.sla_attainment is None and empty.oscillations == 0 and empty.scaling_actions == 0
    only_itl = compute_kpis(pl.DataFrame({"kind": ["tick"], "tick": [0], "now_ms": [10.0], "itl_count": [4], "itl_within_sla": [3]}))
    assert only_itl.ttft_attainment is None and only_itl.sla_attainment == 0.75


def test_format_kpis_shows_latency_against_targets(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "k.arrow", n=6, base=_kpi_tick, events=KPI_EVENTS, metadata=meta(itl_target_ms=25))
    text = format_kpis(compute_kpis(read_recording(path)), recording_metadata(path))
    assert text.splitlines()[0] == "KPIs  sla@1 on ramp_budget (seed 0)"
    ttft = next(ln for ln in text.splitlines() if "TTFT p99" in ln)
    assert f"{_b(700):,.1f} ms" in ttft and "target 2,000.0 ms" in ttft and "OVER" not in ttft
    assert "OVER" not in next(ln for ln in text.splitlines() if "ITL p50" in ln)  # 25 ms target, p50 19.7 ms
    assert "OVER" in next(ln for ln in text.splitlines() if "ITL p99" in ln)  # p99 32.4 ms
    assert "GPU-hours" in text and "96.000" in text


def test_kpi_deltas_in_diff_report(tmp_path: Path) -> None:
    a = write_recording(tmp_path / "a.arrow", n=6, base=_kpi_tick, events=KPI_EVENTS)
    b = write_recording(tmp_path / "b.arrow", n=6, base=_kpi_tick, events=KPI_EVENTS[:2], ticks={2: {"power_total_w": 7000.0}})
    rows = {r.name: r for r in diff_recordings(a, b).kpis}
    assert (rows["budget_violations"].a, rows["budget_violations"].b, rows["budget_violations"].delta) == (1, 0, -1)
    assert rows["energy_kwh"].delta == pytest.approx(-4.0)
    assert (rows["scaling_actions"].a, rows["scaling_actions"].b, rows["scaling_actions"].delta) == (3, 2, -1)


# -- CLI errors ---------------------------------------------------------------------------------


def test_cli_bad_files_exit_2(tmp_path: Path, rec_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli("diff", str(rec_a), str(tmp_path / "missing.arrow"), capsys=capsys)
    assert code == 2 and "no such recording" in err and out == ""

    text = tmp_path / "notes.arrow"
    text.write_text("hello\n")
    code, _, err = run_cli("diff", str(text), str(rec_a), capsys=capsys)
    assert code == 2 and "notes.arrow" in err and "not a readable recording" in err

    other = tmp_path / "other.arrow"
    with pa.OSFile(str(other), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("x", pa.int64())])) as w:
        w.write_table(pa.table({"x": [1]}))
    code, _, err = run_cli("diff", str(rec_a), str(other), capsys=capsys)
    assert code == 2 and "other.arrow" in err and "metadata lacks" in err

    code, _, err = run_cli("diff", str(rec_a), str(rec_a), "--tolerance", "-1", capsys=capsys)
    assert code == 2 and "--tolerance" in err


def test_cli_subprocess_exit_codes(tmp_path: Path, rec_a: Path) -> None:
    b = write_recording(tmp_path / "b.arrow", ticks={1: {"target_decode": 99}})
    cmd = [sys.executable, "-m", "replaylib", "diff"]
    same = subprocess.run([*cmd, str(rec_a), str(rec_a)], capture_output=True, text=True, cwd=REPO)
    diff = subprocess.run([*cmd, str(rec_a), str(b)], capture_output=True, text=True, cwd=REPO)
    bad = subprocess.run([*cmd, str(rec_a), str(tmp_path / "nope.arrow")], capture_output=True, text=True, cwd=REPO)
    assert (same.returncode, diff.returncode, bad.returncode) == (0, 1, 2)
    assert "target_decode" in diff.stdout and bad.stderr.startswith("error: ")


def test_diff_refuses_partial_and_truncated_recordings(tmp_path: Path, rec_a: Path) -> None:
    """An interrupted replay's ``.partial`` file, or a recording cut short, is never diffed as if complete."""
    w = RecordingWriter(tmp_path / "c.arrow", meta(), batch_rows=4)
    for i in range(9):
        w.append(EventRow(kind="tick", seq=w.next_seq(), tick=i, **tick_fields(i)))
    partial = w.abort()
    with pytest.raises(RecordingError, match="a partial recording"):
        diff_recordings(rec_a, partial, columns=["target_decode", "power_total_w"])
    cut = tmp_path / "cut.arrow"
    for keep in (len(rec_a.read_bytes()) // 2, len(rec_a.read_bytes()) - 20):
        cut.write_bytes(rec_a.read_bytes()[:keep])
        with pytest.raises(RecordingError, match=f"{cut}: truncated recording"):
            diff_recordings(rec_a, cut)
        run = subprocess.run([sys.executable, "-m", "replaylib", "diff", str(rec_a), str(cut)], capture_output=True,
                             text=True, cwd=REPO)
        assert run.returncode == 2 and "truncated" in run.stderr and "IDENTICAL" not in run.stdout
        assert "Traceback" not in run.stderr


# -- compare (needs the adapter and the planner registry) -----------------------------------------


def _scenario(tmp_path: Path) -> Path:
    return tiny_scenario(
        tmp_path,
        "system: h100_sxm\n"
        "trace: {path: ../traces/tiny.jsonl, block_size: 512}\n"
        "fleet: {prefill_workers: 1, decode_workers: 1}\n"
        "planner: {name: sla@1, ttft_ms: 2000, itl_ms: 50}\n"
        "ticks: 30\n",
    )


def test_compare_two_planners(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("replaylib.adapter")
    pytest.importorskip("replaylib.planner.registry")
    scenario = _scenario(tmp_path)
    out_dir = tmp_path / "runs"
    code, out, err = run_cli(
        "compare", "--scenario", str(scenario), "--planner", "sla@1", "--planner", "sla@1", "--planner", "aic@1",
        "--seed", "3", "--out-dir", str(out_dir), "--format", "json", capsys=capsys,
    )  # fmt: skip
    assert code == 1, err  # aic@1 decides differently from sla@1
    from replaylib.diff.report import decode_compare

    report = decode_compare(out)
    assert report.planners[:2] == ["sla@1", "sla@1"] and len(report.diffs) == 2 and len(report.kpis) == 3
    assert report.diffs[0].exact  # same planner, same seed: byte-identical recordings
    assert not report.diffs[1].identical
    assert sorted(p.name for p in out_dir.iterdir()) == ["00-sla_1.arrow", "01-sla_1.arrow", "02-aic_1.arrow"]
    assert recording_metadata(out_dir / "02-aic_1.arrow").seed == 3
    code, text, _ = run_cli("compare", "--scenario", str(scenario), "--planner", "sla@1", "--planner", "aic@1", capsys=capsys)
    assert code == 1 and "=== sla@1 vs aic@1 ===" in text and "KPIs" in text


def test_compare_needs_two_planners(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli("compare", "--scenario", str(tmp_path / "s.yaml"), "--planner", "sla@1", capsys=capsys)
    assert code == 2 and "at least two" in err


def test_damaged_histogram_is_a_recording_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_recording(tmp_path / "a.arrow", n=4)
    b = write_recording(tmp_path / "b.arrow", n=4, ticks={2: {"itl_hist": [300, 5, 301]}})
    code, _, err = run_cli("diff", str(a), str(b), capsys=capsys)
    assert code == 2 and "itl_hist of tick 2 has an odd number of values" in err


def test_text_report_uses_side_labels(tmp_path: Path, rec_a: Path) -> None:
    b = write_recording(tmp_path / "b.arrow", n=21, ticks={3: {"target_prefill": 5}})
    text = format_text(diff_recordings(rec_a, b), labels=("golden", "replay"))
    assert "ticks only in golden: none; only in replay: 1 (tick 20)" in text
    assert "1 ticks only in replay" in text and "Δ (replay−golden)" in text
    assert " A " not in text and "only in B" not in text
