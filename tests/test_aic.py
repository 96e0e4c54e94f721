"""Timing tables from aiconfigurator (``replaylib.timing.aiconfigurator``; extra ``aic``).

Skipped, with the reason, when aiconfigurator is not installed — except the
test that its absence gives a clear error naming the extra.
"""

from __future__ import annotations

import bisect
import re
import sys
from pathlib import Path

import pytest
import yaml

from replaylib.scenario.system import TableTiming, load_system
from replaylib.sim.calibration import decode_step_ms, prefill_ttft_ms
from replaylib.timing import aiconfigurator as aic
from replaylib.timing.aiconfigurator import AicError, AicUnavailable, estimate_tables
from systems_helpers import needs_aic, rebuild_from_provenance

MODEL = "meta-llama/Meta-Llama-3.1-70B"
REPO = Path(__file__).resolve().parents[1]
AIC_ARGS = dict(tp_size=2, gemm_quant_mode="fp8", kvcache_quant_mode="fp8", backend_name="trtllm")


def lin(xs, ys, x):  # noqa: ANN001, ANN201 - piecewise-linear interpolation on a grid
    i = bisect.bisect_left(xs, x)
    if xs[i] == x:
        return ys[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])


def reference(system: str, version: str, mode: str, **kw):  # noqa: ANN003, ANN201
    """aiconfigurator's own answer, through its documented outputs: TTFT of a prefill, TPOT of one decode step."""
    from aiconfigurator.cli.api import cli_estimate

    with aic._quiet():
        r = cli_estimate(MODEL, system, mode=mode, backend_version=version, **AIC_ARGS, **kw)
    return r.ttft if mode == "static_ctx" else r.tpot


@pytest.fixture(scope="module")
def h100_tables():
    return estimate_tables(MODEL, "h100_sxm", "trtllm", tp=2, gemm_quant="fp8", kv_quant="fp8")


@needs_aic
@pytest.mark.parametrize("system", ["h100_sxm", "h200_sxm"])
def test_tables_equal_aiconfigurator_at_the_grid_points(system: str) -> None:
    t = estimate_tables(MODEL, system, "trtllm", tp=2, gemm_quant="fp8", kv_quant="fp8",
                        prefill_tokens=[512, 2048, 8192, 32768], prefill_contexts=[0, 4096],
                        decode_batches=[1, 8, 32, 128], decode_contexts=[2048, 8192])
    assert t.backend_version == "1.3.0rc20"  # aiconfigurator 0.12's default trtllm database for both
    for curve in t.prefill:
        for n, ms in zip(curve.tokens, curve.pass_ms):
            expected = reference(system, t.backend_version, "static_ctx", isl=curve.context + n, osl=1, batch_size=1,
                                 prefix=curve.context)
            assert ms == pytest.approx(expected, rel=1e-12), (curve.context, n)
    for curve in t.decode:
        for b, ms in zip(curve.batch, curve.step_ms):
            expected = reference(system, t.backend_version, "static_gen", isl=curve.context, osl=2, batch_size=b)
            assert ms == pytest.approx(expected, rel=1e-12), (curve.context, b)
    # the recorded call reproduces the tables
    again = eval(t.provenance.call, {"replaylib": __import__("replaylib.timing.aiconfigurator")})  # noqa: S307
    assert again.to_builtins() == t.to_builtins()
    # a cached prefix is cheaper than computing it, dearer than not having it
    fresh_4k = reference(system, t.backend_version, "static_ctx", isl=4096 + 512, osl=1, batch_size=1)
    assert t.prefill[0].pass_ms[0] < t.prefill[1].pass_ms[0] < fresh_4k


@needs_aic
def test_default_grid_includes_the_issue_points(h100_tables) -> None:
    fresh = next(c for c in h100_tables.prefill if c.context == 0)
    assert {512, 2048, 8192, 32768} <= set(fresh.tokens)
    for context in (2048, 8192):
        curve = next(c for c in h100_tables.decode if c.context == context)
        assert {1, 8, 32, 128} <= set(curve.batch)


# Off-grid check points: along each curve (tokens / batch between grid points) and between curves.
PREFILL_OFF = (3, 24, 40, 100, 300, 640, 900, 1100, 1400, 1700, 1900, 2200, 2700, 3000, 3500, 3900, 4200,
               4700, 5600, 6500, 7600, 9000, 11000, 13000, 15000, 18000, 22000, 26000, 30000)  # fmt: skip
DECODE_OFF = (19, 22, 26, 30, 36, 44, 52, 60, 70, 76, 84, 92, 100, 108, 116, 124, 136, 150, 170, 185, 200, 215, 230, 250)
PREFILL_BETWEEN = ((700, 3000), (3000, 6000), (5000, 12000), (2000, 24000), (8000, 48000), (300, 1500))
DECODE_BETWEEN = ((8, 3000), (32, 6000), (64, 10000), (128, 20000), (200, 28000), (3, 700))


@needs_aic
def test_interpolation_between_grid_points_is_close_to_the_estimator(h100_tables) -> None:
    t = h100_tables
    v = t.backend_version
    errors = []
    for context in (0, 8192):
        curve = next(c for c in t.prefill if c.context == context)
        for n in PREFILL_OFF:
            assert n not in curve.tokens
            truth = reference("h100_sxm", v, "static_ctx", isl=context + n, osl=1, batch_size=1, prefix=context)
            errors.append((abs(lin(curve.tokens, curve.pass_ms, n) / truth - 1), "prefill", context, n))
    for context in (2048, 8192):
        curve = next(c for c in t.decode if c.context == context)
        for b in DECODE_OFF:
            assert b not in curve.batch
            truth = reference("h100_sxm", v, "static_gen", isl=context, osl=2, batch_size=b)
            errors.append((abs(lin(curve.batch, curve.step_ms, b) / truth - 1), "decode", context, b))
    worst = max(errors)
    assert worst[0] <= 0.01, f"along a curve the grid is off by {worst[0]:.2%} at {worst[1:]}"

    def between(curves, attr, x, context):  # noqa: ANN001, ANN202 - linear in context between two curves
        cs = [c.context for c in curves]
        i = bisect.bisect_right(cs, context) - 1
        a, b = curves[i], curves[i + 1]
        ya, yb = lin(getattr(a, attr), a.pass_ms if attr == "tokens" else a.step_ms, x), lin(
            getattr(b, attr), b.pass_ms if attr == "tokens" else b.step_ms, x)
        return ya + (yb - ya) * (context - a.context) / (b.context - a.context)

    errors = []
    for n, context in PREFILL_BETWEEN:
        truth = reference("h100_sxm", v, "static_ctx", isl=context + n, osl=1, batch_size=1, prefix=context)
        errors.append((abs(between(t.prefill, "tokens", n, context) / truth - 1), "prefill", n, context))
    for b, context in DECODE_BETWEEN:
        truth = reference("h100_sxm", v, "static_gen", isl=context, osl=2, batch_size=b)
        errors.append((abs(between(t.decode, "batch", b, context) / truth - 1), "decode", b, context))
    worst = max(errors)
    assert worst[0] <= 0.03, f"between curves the grid is off by {worst[0]:.2%} at {worst[1:]}"


@needs_aic
def test_yaml_structure_and_provenance(h100_tables) -> None:
    doc = yaml.safe_load(h100_tables.to_yaml())
    assert doc == h100_tables.to_builtins()
    assert list(doc) == ["timing", "provenance"]
    assert doc["timing"]["model"] == "table" and list(doc["timing"]) == ["model", "prefill", "decode"]
    for curve in doc["timing"]["prefill"]["curves"]:
        assert list(curve) == ["context", "tokens", "pass_ms"] and len(curve["tokens"]) == len(curve["pass_ms"])
        assert all(a < b for a, b in zip(curve["tokens"], curve["tokens"][1:]))
        assert all(isinstance(x, float) and x > 0 for x in curve["pass_ms"])
    assert [c["context"] for c in doc["timing"]["prefill"]["curves"]][0] == 0
    assert list(doc["timing"]["prefill"]) == ["curves", "pass_overhead_ms"]
    h = doc["timing"]["prefill"]["pass_overhead_ms"]
    assert 0 < h <= min(c["pass_ms"][0] for c in doc["timing"]["prefill"]["curves"])  # the loader's rule
    assert f"pass_overhead_ms = {h:.4g}" in doc["provenance"]["source"] and h == h100_tables.pass_overhead_ms
    for curve in doc["timing"]["decode"]["curves"]:
        assert list(curve) == ["context", "batch", "step_ms"] and len(curve["batch"]) == len(curve["step_ms"])
        assert all(a < b for a, b in zip(curve["batch"], curve["batch"][1:]))
    prov = doc["provenance"]
    assert list(prov) == ["tool", "version", "database", "call", "source"]
    assert prov["tool"] == "aiconfigurator" and prov["version"] == "0.12.0"
    assert prov["database"].startswith("SILICON h100_sxm/trtllm/1.3.0rc20 (sha256 ")
    assert "backend_version='1.3.0rc20'" in prov["call"] and "tp=2" in prov["call"]
    assert "static_ctx" in prov["source"] and "no framework/scheduling overhead" in prov["source"]
    assert 0.3 < h100_tables.silicon_share <= 1.0


# The issue's points (batch 1 prefills; decode steps at contexts 2k and 8k) and points off the grid.
FLEET_PREFILL = (512, 2048, 8192, 32768, 3000, 12000, 50000, 100000)
FLEET_DECODE = tuple((b, c) for c in (2048, 8192) for b in (1, 8, 32, 128)) + ((50, 3000), (100, 10000), (20, 20000))


@needs_aic
@pytest.mark.parametrize("system", ["h100_sxm", "h200_sxm"])
def test_shipped_system_is_made_by_its_call_and_the_fleet_reproduces_aiconfigurator(
        system: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """systems/<system>.yaml is exactly what its provenance.call writes today, and the fleet running it —
    one prefill alone, one decode step of a batch (replaylib.sim.calibration) — is within 3% of
    aiconfigurator's own estimate at the issue's points and off the grid (exact at grid points)."""
    monkeypatch.chdir(REPO)  # the call's paths are relative to the repository root
    path = REPO / "systems" / f"{system}.yaml"
    assert rebuild_from_provenance(path) == path.read_text(), f"regenerate: the call in {path.name}'s provenance"
    loaded = load_system(path)
    assert isinstance(loaded.timing, TableTiming) and loaded.provenance.tool == "aiconfigurator"
    version = "1.3.0rc20"
    assert f"{system}/trtllm/{version}" in loaded.provenance.database
    errors = []
    for isl in FLEET_PREFILL:
        truth = reference(system, version, "static_ctx", isl=isl, osl=1, batch_size=1)
        errors.append((abs(prefill_ttft_ms(loaded, isl, isl) / truth - 1), "prefill", isl))
    for b, c in FLEET_DECODE:
        truth = reference(system, version, "static_gen", isl=c, osl=2, batch_size=b)
        errors.append((abs(decode_step_ms(loaded, b, c) / truth - 1), "decode", b, c))
    on_grid = errors[:4] + errors[len(FLEET_PREFILL):len(FLEET_PREFILL) + 8]
    assert max(on_grid)[0] < 1e-9, max(on_grid)
    assert max(errors)[0] <= 0.03, f"the fleet is off aiconfigurator by {max(errors)[0]:.2%} at {max(errors)[1:]}"


@needs_aic
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "meta-llama/No-Such-Model"}, r"model: 'meta-llama/No-Such-Model' is neither"),
        ({"system": "h999_sxm"}, r"system: unknown system 'h999_sxm'"),
        ({"backend": "tensorflow"}, r"backend: 'tensorflow' has no database for h100_sxm"),
        ({"backend_version": "0.0.1"}, r"backend_version: '0.0.1' is not a trtllm database for h100_sxm"),
        ({"gemm_quant": "fp9"}, r"gemm_quant: unknown mode 'fp9'"),
        ({"kv_quant": "fp4x"}, r"kv_quant: unknown mode 'fp4x'"),
        ({"prefill_tokens": [512, 256]}, r"prefill_tokens\[1\]: the grid must be strictly increasing, got 256 after 512"),
        ({"decode_batches": [1, 8, 8]}, r"decode_batches\[2\]: the grid must be strictly increasing"),
        ({"decode_batches": [0, 8]}, r"decode_batches\[0\]: expected an integer >= 1, got 0"),
        ({"decode_contexts": [2048.5]}, r"decode_contexts\[0\]: expected an integer, got 2048.5"),
        ({"prefill_contexts": [1024, 2048]}, r"prefill_contexts: must start at 0"),
        ({"prefill_tokens": []}, r"prefill_tokens: expected a non-empty list"),
        ({"prefill_contexts": [0, 131072]}, r"at context 131072 none of prefill_tokens fits meta-llama/Meta-Llama-3.1-70B's context length 131072"),
        ({"tp": 0}, r"tp: expected an integer >= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, match: str) -> None:
    base = dict(prefill_tokens=[512], prefill_contexts=[0], decode_batches=[1], decode_contexts=[2048])
    with pytest.raises(AicError, match=match):
        estimate_tables(**{**base, **kwargs})


def test_without_aiconfigurator_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aic, "_API", None)
    monkeypatch.setitem(sys.modules, "aiconfigurator", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "aiconfigurator.cli", None)
    monkeypatch.setitem(sys.modules, "aiconfigurator.cli.api", None)
    with pytest.raises(AicUnavailable, match=r"pip install 'replaylib\[aic\]'"):
        estimate_tables(prefill_tokens=[512], prefill_contexts=[0], decode_batches=[1], decode_contexts=[2048])
    # bad grids are reported before anything is imported
    with pytest.raises(AicError, match=r"prefill_tokens\[1\]"):
        estimate_tables(prefill_tokens=[2, 1])


# -- systems import aiconfigurator: bad input --------------------------------------------------------


def _import_cli(tmp_path: Path, *extra: str, model: str = MODEL) -> tuple[int, Path]:
    from replaylib.cli import main

    out = tmp_path / "out.yaml"
    out.write_text("keep me\n")  # an existing file survives a failed import
    code = main(["systems", "import", "aiconfigurator", model, "-o", str(out), *extra])
    return code, out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gpu-from", str(REPO / "systems" / "h100_sxm_analytic.yaml")], "--system: give aiconfigurator's system name"),
        (["--system", "h100_sxm"], "give --gpu-from SYSTEM.yaml"),
        (["--system", "h100_sxm", "--gpu-from", str(REPO / "systems" / "h100_sxm_analytic.yaml"), "--tp", "4"],
         "--tp 4: --gpu-from .*h100_sxm_analytic.yaml describes TP2 workers"),
        (["--system", "h100_sxm", "--gpu-from", str(REPO / "systems" / "h100_sxm_analytic.yaml"), "--set", "nokey"],
         "--set 'nokey': expected KEY.PATH=VALUE"),
    ],
)
def test_import_bad_options_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     extra: list[str], message: str) -> None:
    code, out = _import_cli(tmp_path, *extra)
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert out.read_text() == "keep me\n" and [p.name for p in tmp_path.iterdir()] == ["out.yaml"]


def test_import_without_the_extra_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aic, "_API", None)
    for name in ("aiconfigurator", "aiconfigurator.cli", "aiconfigurator.cli.api"):
        monkeypatch.setitem(sys.modules, name, None)
    code, out = _import_cli(tmp_path, "--system", "h100_sxm", "--gpu-from", str(REPO / "systems" / "h100_sxm_analytic.yaml"))
    assert code == 2 and "pip install 'replaylib[aic]'" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"


@needs_aic
def test_import_writes_its_call_and_refuses_an_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--system", "h100_sxm", "--gpu-from", str(REPO / "systems" / "h100_sxm_analytic.yaml")]
    code, out = _import_cli(tmp_path, *base, "--decode-batches", "1,8")  # a small decode grid keeps it quick
    assert code == 0
    system = load_system(out)
    assert system.provenance.call.endswith("--decode-batches 1,8")  # only the grid that differs from the default
    assert [c.batch for c in system.timing.decode.curves][0] == [1, 8]
    code, out = _import_cli(tmp_path, *base, model="meta-llama/No-Such-Model")
    assert code == 2 and "No-Such-Model" in capsys.readouterr().err and out.read_text() == "keep me\n"
