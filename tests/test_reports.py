"""Summaries, pictures, reports and the OpenMetrics export of recordings (replaylib.report and its verbs)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from replaylib.adapter import replay
from replaylib.cli import main
from replaylib.record import read_recording
from replaylib.record.kpis import KPI_SPECS, format_value
from replaylib.report.summary import from_json, summarize, summarize_replay
from replaylib.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default scenario under aic@2 and aic@1, and g1 (with faults); one failing run."""
    d = tmp_path_factory.mktemp("recs")
    out = {}
    for key, scenario, planner in (("default", "default", None), ("v1", "default", "aic@1"), ("g1", "g1_decode_drift", None)):
        out[key] = Path(replay(load_scenario(scenario), out=d / f"{key}.arrow", planner=planner).path)
    failing = d / "failing.yaml"
    failing.write_text(f"extends: {REPO / 'scenarios' / 'default.yaml'}\nname: failing\nticks: 8\nassertions:\n"
                       "  - {always: true, field: prefill_active, op: '<=', value: 2, description: never more than two prefill}\n"
                       "  - {always: true, field: dropped, op: '==', value: 0}\n")
    out["failing"] = Path(replay(load_scenario(failing), out=d / "failing.arrow").path)
    return out


# -- show / record --json -----------------------------------------------------------------------------


def test_show_prints_the_verdict_first_then_metadata_kpis_and_verdicts(recs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(recs["default"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "PASS 4/4 assertions | SLA attainment 79.96% (TTFT 79.96%, ITL 100.00%) | budget kept: peak 58.5% of 5,000 W"
    assert lines[1].startswith("scenario default | planner aic@2 | seed 7")
    assert any(line.split() == ["requests", "completed", "4,640"] for line in lines)
    assert sum(line.startswith("  PASS  [") for line in lines) == 4


def test_a_failing_run_says_so_in_its_first_line(recs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(recs["failing"])]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("FAIL 1 of 2 assertions failed ([0]) | SLA attainment ")


def test_show_json_is_the_summary_and_record_json_prints_the_same(recs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(recs["default"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert from_json(json.dumps(shown)) == summarize(recs["default"])
    assert shown["kpis"]["arrived"] == 4640 and shown["planner"] == "aic@2" and shown["passed"] is True
    assert [a["passed"] for a in shown["assertions"]] == [True] * 4
    out = tmp_path / "again.arrow"
    assert main(["record", "--json", "--out", str(out), "--quiet"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert {**recorded, "recording": None} == {**shown, "recording": None}


def test_the_summary_of_a_replay_equals_the_summary_read_back_from_its_recording(tmp_path: Path) -> None:
    # record prints summarize_replay (the rows as recorded, no read-back); show prints summarize (read back)
    failing = tmp_path / "failing.yaml"
    failing.write_text(f"extends: {REPO / 'scenarios' / 'g1_decode_drift.yaml'}\nname: failing_g1\nticks: 25\nassertions:\n"
                       "  - {always: true, field: decode_active, op: '<=', value: 0, description: impossible}\n")
    for scenario in ("g1_decode_drift", failing):
        result = replay(load_scenario(scenario), out=tmp_path / "r.arrow")
        assert summarize_replay(result) == summarize(result.path)
    assert not summarize_replay(result).passed


# -- plot -----------------------------------------------------------------------------------------------


def _pixels(png: bytes) -> tuple[tuple[int, int], float, int]:
    from PIL import Image

    import numpy as np

    img = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = np.asarray(img).reshape(-1, 3)
    non_white = float((pixels != 255).any(axis=1).mean())
    return img.size, non_white, len(np.unique(pixels, axis=0))


def test_plot_png_has_the_figure_size_and_is_drawn(recs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from replaylib.report import plot

    out = tmp_path / "g1.png"
    assert main(["plot", str(recs["g1"]), "-o", str(out)]) == 0
    size, ink, colours = _pixels(out.read_bytes())
    assert size == (int(plot.WIDTH_IN * plot.DPI), int(plot.HEIGHT_IN * plot.DPI))
    assert ink > 0.05 and colours > 20  # six panels of lines, not a blank canvas


def test_plot_marks_faults_and_failed_assertions_and_overlays(recs) -> None:
    from replaylib.report import plot

    g1 = plot.load(recs["g1"])
    assert [k for _, k in g1.faults][:2] == ["bias_ramp", "actuation_fault"]
    failing = plot.load(recs["failing"])
    assert [t for _, t in failing.failures] == ["[0] never more than two prefill"]
    minutes = failing.failures[0][0]
    first_bad = failing.ticks.filter(pl.col("prefill_active") > 2)["minutes"][0]
    assert minutes == first_bad  # drawn at the tick the evidence names
    fig = plot.figure([plot.load(recs["default"]), plot.load(recs["v1"])])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "prefill active · aic@2" in labels and "prefill active · aic@1" in labels


def test_plot_svg_is_reproducible(recs, tmp_path: Path) -> None:
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    assert main(["plot", str(recs["default"]), str(recs["v1"]), "-o", str(a)]) == 0
    assert main(["plot", str(recs["default"]), str(recs["v1"]), "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes() and b"<svg" in a.read_bytes()


# -- report ---------------------------------------------------------------------------------------------


def test_html_report_is_self_contained_with_kpis_assertions_and_plots(recs, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(recs["g1"]), "-o", str(out)]) == 0
    text = out.read_text()
    summary = summarize(recs["g1"])
    kpi_table = text[text.index('<table class="kpis">'):]
    kpi_table = kpi_table[: kpi_table.index("</table>")]
    for spec in KPI_SPECS:
        assert f"<td>{spec.label}</td>" in kpi_table.replace("&amp;", "&"), spec.label
        assert format_value(getattr(summary.kpis, spec.name), spec.style) in kpi_table
    plain = html.unescape(text)
    for v in summary.assertions:
        assert f"[{v.index}] {v.description} " not in plain  # description and evidence are separate cells
        assert f"<td>[{v.index}] {v.description}</td><td>{v.evidence}</td>" in plain and ("PASS" if v.passed else "FAIL") in text
    (data,) = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert _pixels(base64.b64decode(data))[1] > 0.05
    assert "http://" not in text and "https://" not in text  # nothing to fetch: one file


def test_markdown_report_numbers_equal_show_json(recs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pr.md"
    assert main(["report", str(recs["default"]), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["show", str(recs["default"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    md = out.read_text()
    rows = {cells[0]: cells[1:] for line in md.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split(" | ")]]}
    for spec in KPI_SPECS:
        assert rows[spec.label][0] == format_value(shown["kpis"][spec.name], spec.style), spec.label
    assert md.splitlines()[2] == f"**{shown['verdict']}**"
    for a in shown["assertions"]:
        assert rows["PASS" if a["passed"] else "FAIL"] is not None and f"[{a['index']}] {a['description']}" in md
    assert "![" in md and (tmp_path / "pr.png").is_file()


def test_report_against_another_recording_shows_both_and_the_first_divergence(recs, tmp_path: Path) -> None:
    out = tmp_path / "cmp.md"
    assert main(["report", str(recs["default"]), "--against", str(recs["v1"]), "-o", str(out), "--no-plots"]) == 0
    md = out.read_text()
    assert "| KPI | aic@2 | aic@1 | Δ (aic@1 − aic@2) |" in md
    assert "### Divergence" in md and "first divergence at tick 0" in md
    assert "### Assertions (aic@1)" in md and not (tmp_path / "cmp.png").exists()


def test_report_opens_in_a_headless_browser(recs, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser: install Debian's chromium package (apt-get install chromium) to run this test")
    page = tmp_path / "r.html"
    assert main(["report", str(recs["g1"]), "-o", str(page)]) == 0
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1300,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    size, ink, colours = _pixels(shot.read_bytes())
    assert size == (1300, 2400) and ink > 0.05 and colours > 20


# -- OpenMetrics ------------------------------------------------------------------------------------------


def _parse(text: str) -> dict[str, list]:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_openmetrics_export_parses_and_round_trips_three_columns_exactly(recs, tmp_path: Path) -> None:
    out = tmp_path / "default.om"
    assert main(["export", str(recs["default"]), "--format", "openmetrics", "-o", str(out)]) == 0
    families = _parse(out.read_text())
    ticks = read_recording(recs["default"]).filter(pl.col("kind") == "tick")
    chosen = (("replaylib_power_total_watts", "power_total_w", None), ("replaylib_cap_watts", "cap_decode_w", "decode"),
              ("replaylib_ttft_p99_milliseconds", "ttft_p99_ms", None))
    for family, column, role in chosen:
        samples = [s for s in families[family] if s.labels.get("role") == role]
        expected = [(t / 1000.0, v) for t, v in zip(ticks["now_ms"], ticks[column], strict=True) if v is not None]
        assert [s.value for s in samples] == [v for _, v in expected], column  # bit for bit
        assert [float(s.timestamp) for s in samples] == pytest.approx([t for t, _ in expected], rel=0, abs=1e-6)
        assert all(s.labels["scenario"] == "default" and s.labels["planner"] == "aic@2" for s in samples)
    active = {s.labels["role"] for s in families["replaylib_workers_active"]}
    assert active == {"prefill", "decode"}
    assert not any(math.isnan(s.value) for samples in families.values() for s in samples)


def test_promtool_imports_the_export_into_a_tsdb(recs, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian's prometheus package ships it): cannot check the TSDB import")
    from replaylib.report.openmetrics import export_openmetrics

    out = tmp_path / "default.om"
    samples = export_openmetrics(recs["default"], out)
    run = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(out), str(tmp_path / "tsdb")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    header, row = run.stdout.strip().splitlines()[-2:]
    assert header.split()[:10] == ["BLOCK", "ULID", "MIN", "TIME", "MAX", "TIME", "DURATION", "NUM", "SAMPLES", "NUM"]
    assert int(row.split()[4]) == samples  # ulid, min, max, duration, samples: every sample landed in the TSDB


def test_openmetrics_start_time_and_stdout(recs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(recs["default"]), "-o", "-", "--start", "2026-01-31T12:00:00Z"]) == 0
    families = _parse(capsys.readouterr().out)
    first = families["replaylib_gpus"][0]
    tick0_ms = read_recording(recs["default"]).filter(pl.col("kind") == "tick")["now_ms"][0]  # the first tick's time
    assert tick0_ms > 60_000.0  # later than the tick's schedule: a pass straddled it, and the export follows the fleet
    assert float(first.timestamp) == pytest.approx(1769860800.0 + tick0_ms / 1000.0, abs=1e-3)


def test_grafana_dashboard_charts_series_the_export_has(recs, tmp_path: Path) -> None:
    from replaylib.report.openmetrics import exposition
    from replaylib.report.summary import load_complete

    families = set(_parse("".join(exposition(*load_complete(recs["default"])))))
    dash = json.loads((REPO / "grafana" / "replaylib_dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(replaylib_\w+)\{", e)}
    assert used and used <= families, used - families
    titles = " ".join(p["title"] for p in dash["panels"])
    for word in ("Replicas", "Caps", "power vs budget", "TTFT vs SLA", "ITL vs SLA"):
        assert word in titles


# -- bad input ------------------------------------------------------------------------------------------


def _bad_inputs(recs, tmp_path: Path) -> dict[str, Path]:
    cut = tmp_path / "cut.arrow"
    cut.write_bytes(recs["default"].read_bytes()[:9000])
    return {"missing": tmp_path / "nope.arrow", "truncated": cut, "not a recording": REPO / "traces" / "tiny.jsonl"}


@pytest.mark.parametrize("verb", ["show", "plot", "report", "export"])
def test_bad_recordings_exit_2_with_a_clear_message_and_no_output(verb: str, recs, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    expected = {"missing": "no such recording", "truncated": "truncated recording", "not a recording": "not a readable recording"}
    for what, path in _bad_inputs(recs, tmp_path).items():
        out = tmp_path / {"plot": "o.png", "report": "o.html", "export": "o.om", "show": "unused"}[verb]
        args = [verb, str(path)] + ([] if verb == "show" else ["-o", str(out)])
        assert main(args) == 2, (verb, what)
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected[what] in err and "Traceback" not in err, (verb, what, err)
        assert not out.exists() and not list(tmp_path.glob("o.*"))


@pytest.mark.parametrize(("verb", "name", "message"), [
    ("plot", "no/such/folder/x.png", "does not exist"),
    ("plot", "x.jpg", "expected one of .png, .svg"),
    ("report", "no/such/folder/x.html", "does not exist"),
    ("report", "x.pdf", "expected .html or .md"),
    ("export", "no/such/folder/x.om", "does not exist"),
    ("report", "made.html", "is a folder"),
])
def test_unwritable_outputs_exit_2(verb: str, name: str, message: str, recs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    if name.startswith("made"):
        (tmp_path / name).mkdir()
    assert main([verb, str(recs["default"]), "-o", name]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if name.startswith("made") else [])


def test_a_failed_write_leaves_the_previous_file(recs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from replaylib.report import plot

    out = tmp_path / "keep.png"
    out.write_bytes(b"previous")

    def boom(*_a, **_k):  # noqa: ANN002, ANN003
        raise plot.PlotError("drawing failed")

    monkeypatch.setattr(plot, "render", boom)
    assert main(["plot", str(recs["default"]), "-o", str(out)]) == 2
    assert out.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["keep.png"]
