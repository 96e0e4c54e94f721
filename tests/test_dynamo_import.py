"""The Dynamo profile importer (``systems import dynamo``), the shipped system made by it, and how
faithfully the fleet reproduces the profile it came from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replaylib.scenario import load_system
from replaylib.sim.calibration import check_grid, decode_step_ms, prefill_ttft_ms, render_systems_table
from replaylib.timing.importers import SystemsImportError, import_system, importers
from systems_helpers import rebuild_from_provenance

np = pytest.importorskip("numpy", reason="reading Dynamo NPZ profiles needs numpy (pip install 'replaylib[profiles]')")

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO.parent / "shared" / "profiles" / "dynamo_h200_tp1p_tp1d"
SHIPPED = REPO / "systems" / "h200_llama8b_dynamo.yaml"
H200 = REPO / "systems" / "h200_sxm_analytic.yaml"


def need_profile() -> Path:
    if not (PROFILE / "prefill_raw_data.npz").exists():
        pytest.skip(f"the shared Dynamo profile is not available: {PROFILE} (it lives beside the repo in ../shared/profiles)")
    return PROFILE


# -- a small synthetic profile for bad-input tests -------------------------------------------------

PREFILL = {"prefill_isl": np.array([100, 1000, 4000]), "prefill_ttft": np.array([20.0, 38.0, 110.0]),
           "prefill_thpt_per_gpu": np.array([5000.0, 26000.0, 36000.0])}
DECODE = {"x_kv_usage": np.array([0.0001, 0.05, 0.1, 0.0004, 0.1, 0.2]),
          "y_context_length": np.array([1000.0, 1000, 1000, 4000, 4000, 4000]),
          "z_itl": np.array([5.0, 9.0, 12.0, 6.0, 13.0, 20.0]),
          "z_thpt_per_gpu": np.array([200.0, 5000, 8000, 190, 1900, 2000]),
          "max_kv_tokens": np.array([10_000_000])}
DEPLOYMENT = """
spec:
  services:
    prefill:
      componentType: worker
      resources: {limits: {gpu: "1"}}
      extraPodSpec: {mainContainer: {image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1,
        args: ["python3 -m dynamo.vllm --model acme/Tiny-1B --disaggregation-mode prefill"]}}
    decode:
      componentType: worker
      resources: {limits: {gpu: "1"}}
      extraPodSpec: {mainContainer: {image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1,
        args: ["python3 -m dynamo.vllm --model acme/Tiny-1B"]}}
"""


def make_profile(tmp_path: Path, prefill: dict | None = None, decode: dict | None = None, *, layout: str = "flat",
                 deployment: str | None = DEPLOYMENT) -> Path:
    d = tmp_path / "profile"
    d.mkdir(exist_ok=True)
    if layout == "flat":
        pre, dec = d / "prefill_raw_data.npz", d / "decode_raw_data.npz"
    else:
        (d / "selected_prefill_interpolation").mkdir(exist_ok=True)
        (d / "selected_decode_interpolation").mkdir(exist_ok=True)
        pre, dec = d / "selected_prefill_interpolation" / "raw_data.npz", d / "selected_decode_interpolation" / "raw_data.npz"
    np.savez(pre, **(PREFILL if prefill is None else prefill))
    np.savez(dec, **(DECODE if decode is None else decode))
    if deployment is not None:
        (d / "disagg.yaml").write_text(deployment)
    return d


def test_the_dynamo_importer_is_registered() -> None:
    assert "dynamo" in importers()


@pytest.mark.parametrize("layout", ["flat", "profiler"])
def test_synthetic_profile_imports_to_a_table_system(tmp_path: Path, layout: str) -> None:
    out = tmp_path / "tiny.yaml"
    import_system("dynamo", make_profile(tmp_path, layout=layout), out, gpu_from=str(H200))
    s = load_system(out)
    assert s.name == "tiny" and s.model.name == "acme/Tiny-1B" and s.model.gpus_per_worker == 1
    assert s.kv.capacity_tokens == 10_000_000
    assert s.provenance is not None and s.provenance.tool == "dynamo-profiler" and s.provenance.version == "1.6.1"
    assert "sha256:" in s.provenance.source and "--gpu-from" in s.provenance.call
    [p] = s.timing.prefill.curves
    assert (p.context, p.tokens, p.pass_ms) == (0, [100, 1000, 4000], [20.0, 38.0, 110.0])
    assert s.timing.prefill.measured_max_num_batched_tokens == 8192
    d0, d1 = s.timing.decode.curves
    assert (d0.context, d0.batch, d0.step_ms) == (1000, [1, 500, 1000], [5.0, 9.0, 12.0])  # x * 1e7 / 1000
    assert (d1.context, d1.batch) == (4000, [1, 250, 500])
    assert s.gpu == load_system(H200).gpu and s.speed_curve == load_system(H200).speed_curve


def test_overrides_and_assumptions_are_recorded(tmp_path: Path) -> None:
    out = tmp_path / "tiny.yaml"
    import_system("dynamo", make_profile(tmp_path), out, gpu_from=str(H200), sets=["startup_delay_ms=30000"],
                  assumptions=["startup_delay_ms: a 1B model loads in seconds", "the profile is synthetic"],
                  profile_max_num_batched_tokens=0)
    s = load_system(out)
    assert s.startup_delay_ms == 30000
    assert s.timing.prefill.measured_max_num_batched_tokens is None
    notes = s.provenance.assumptions
    assert "startup_delay_ms = 30000 (--set): a 1B model loads in seconds" in notes and "the profile is synthetic" in notes
    assert "--set startup_delay_ms=30000" in s.provenance.call and "--profile-max-num-batched-tokens 0" in s.provenance.call


def _with(d: dict, **changes: object) -> dict:
    out = dict(d)
    for k, v in changes.items():
        if v is None:
            del out[k]
        else:
            out[k] = v
    return out


BAD = [
    ("prefill", {"prefill_ttft": None}, r"prefill_raw_data\.npz: missing array 'prefill_ttft' \(it has: prefill_isl, prefill_thpt_per_gpu\)"),
    ("decode", {"z_itl": None}, r"decode_raw_data\.npz: missing array 'z_itl'"),
    ("prefill", {"prefill_isl": np.array([100, 4000, 1000])}, r"prefill_raw_data\.npz: prefill_isl\[2\] = 1000 after 4000: expected strictly increasing"),
    ("prefill", {"prefill_isl": np.array([100.0, np.nan, 4000])}, r"prefill_raw_data\.npz: prefill_isl\[1\] = nan: expected a finite"),
    ("prefill", {"prefill_ttft": np.array([20.0, -38.0, 110.0])}, r"prefill_raw_data\.npz: prefill_ttft\[1\] = -38: expected a time \(ms\) > 0"),
    ("prefill", {"prefill_ttft": np.array([20.0, 38.0])}, r"prefill_raw_data\.npz: array 'prefill_ttft' has 2 points, 'prefill_isl' has 3"),
    ("decode", {"x_kv_usage": np.array([0.0001, 0.05, 1.3, 0.0004, 0.1, 0.2])}, r"decode_raw_data\.npz: x_kv_usage\[2\] = 1\.3: KV usage is a fraction of max_kv_tokens, expected in \(0, 1\]"),
    ("decode", {"x_kv_usage": np.array([0.0001, 0.1, 0.05, 0.0004, 0.1, 0.2])}, r"decode_raw_data\.npz: x_kv_usage\[2\] = 0\.05 after x_kv_usage\[1\] = 0\.1 at y_context_length 1000: expected increasing KV usage"),
    ("decode", {"z_itl": np.array([5.0, 9.0, np.inf, 6.0, 13.0, 20.0])}, r"decode_raw_data\.npz: z_itl\[2\] = inf: expected a finite time"),
    ("decode", {"z_itl": np.array([5.0, 9.0, 0.0, 6.0, 13.0, 20.0])}, r"decode_raw_data\.npz: z_itl\[2\] = 0: expected a time \(ms\) > 0"),
    ("decode", {"max_kv_tokens": np.array([1e6, 2e6])}, r"decode_raw_data\.npz: max_kv_tokens: expected one whole number"),
    ("decode", {"x_kv_usage": np.array([0.00001, 0.05, 0.1, 0.0004, 0.1, 0.2])}, r"x_kv_usage\[0\] = 1e-05 at y_context_length 1000 is 0\.1 sequences"),
    ("decode", {"y_context_length": np.array([1000.0, 1000, 1000, 4000, 4000, 2000])}, r"y_context_length 2000 has one point \(index 5\)"),
]


@pytest.mark.parametrize(("which", "changes", "message"), BAD, ids=[m.split(": ", 1)[-1][:40] for _, _, m in BAD])
def test_bad_profile_names_file_array_and_point_and_writes_nothing(tmp_path: Path, which: str, changes: dict, message: str) -> None:
    prefill = _with(PREFILL, **changes) if which == "prefill" else None
    decode = _with(DECODE, **changes) if which == "decode" else None
    profile = make_profile(tmp_path, prefill, decode)
    out = tmp_path / "out.yaml"
    with pytest.raises(SystemsImportError, match=message):
        import_system("dynamo", profile, out, gpu_from=str(H200))
    assert not out.exists() and not list(tmp_path.glob(".systems-*"))
    out.write_text("keep me\n")  # an existing file is left as it was
    with pytest.raises(SystemsImportError):
        import_system("dynamo", profile, out, gpu_from=str(H200))
    assert out.read_text() == "keep me\n"


def test_cli_bad_input_exits_2_with_one_line_and_no_file(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, decode=_with(DECODE, x_kv_usage=np.array([0.0001, 0.05, 1.3, 0.0004, 0.1, 0.2])))
    out = tmp_path / "out.yaml"
    run = subprocess.run([sys.executable, "-m", "replaylib", "systems", "import", "dynamo", str(profile), "-o", str(out),
                          "--gpu-from", str(H200)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "x_kv_usage[2] = 1.3: KV usage is a fraction of max_kv_tokens" in run.stderr and not out.exists()
    for args, message in (([], "a Dynamo profile measures no GPU power: give --gpu-from"),
                          (["--gpu-from", str(H200), "--set", "nokey"], "--set 'nokey': expected KEY.PATH=VALUE")):
        run = subprocess.run([sys.executable, "-m", "replaylib", "systems", "import", "dynamo", str(make_profile(tmp_path)),
                              "-o", str(out), *args], capture_output=True, text=True, cwd=REPO)
        assert run.returncode == 2 and message in run.stderr and not out.exists()
    run = subprocess.run([sys.executable, "-m", "replaylib", "systems", "import", "dynamo", str(tmp_path / "nowhere"),
                          "-o", str(out), "--gpu-from", str(H200)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and "not a folder" in run.stderr


def test_profile_without_deployment_needs_model_name_and_version(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, deployment=None)
    with pytest.raises(SystemsImportError, match="no served model found"):
        import_system("dynamo", profile, tmp_path / "o.yaml", gpu_from=str(H200))
    import_system("dynamo", profile, tmp_path / "o.yaml", gpu_from=str(H200), model_name="acme/Tiny-1B", gpus_per_worker=1,
                  tool_version="1.6.1")
    assert load_system(tmp_path / "o.yaml").model.name == "acme/Tiny-1B"


# -- the shipped system ---------------------------------------------------------------------------


def test_shipped_dynamo_system_regenerates_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    need_profile()
    monkeypatch.chdir(REPO)  # the call's paths are relative to the repository root
    assert rebuild_from_provenance(SHIPPED) == SHIPPED.read_text()


def test_fleet_reproduces_the_dynamo_profile_points() -> None:
    """Through the real fleet (Fleet.advance_to): one prefill of each profiled ISL within 2% of
    prefill_ttft, and a decode step at each profiled (KV usage, context) within 2% of z_itl."""
    profile = need_profile()
    system = load_system(SHIPPED)
    budget = system.timing.prefill.measured_max_num_batched_tokens  # the engine chunking the profile was taken on
    pre = np.load(profile / "prefill_raw_data.npz")
    for isl, ttft in zip(pre["prefill_isl"].tolist(), pre["prefill_ttft"].tolist(), strict=True):
        assert prefill_ttft_ms(system, int(isl), budget) == pytest.approx(ttft, rel=0.02), f"ISL {isl}"
    dec = np.load(profile / "decode_raw_data.npz")
    max_kv = int(dec["max_kv_tokens"][0])
    for x, ctx, itl in zip(dec["x_kv_usage"].tolist(), dec["y_context_length"].tolist(), dec["z_itl"].tolist(), strict=True):
        batch = round(x * max_kv / ctx)
        assert decode_step_ms(system, batch, int(ctx)) == pytest.approx(itl, rel=0.02), f"KV usage {x}, context {ctx}"


def test_shipped_table_systems_reproduce_their_own_points() -> None:
    """Without the shared profile (CI): the fleet against the points the systems file holds."""
    for path in sorted((REPO / "systems").glob("*.yaml")):
        check = check_grid(load_system(path))
        if check.timing == "table":
            assert check.prefill_max_error < 1e-9 and check.decode_max_error < 1e-9, path.name


def test_docs_table_of_shipped_systems_is_current() -> None:
    """docs/fleet_model.md's table of systems is what `python tools/systems_table.py --write` makes."""
    paths = sorted((REPO / "systems").glob("*.yaml"))
    table = render_systems_table([(f"systems/{p.name}", load_system(p)) for p in paths])
    doc = (REPO / "docs" / "fleet_model.md").read_text()
    start, end = "<!-- systems-table:start -->\n", "<!-- systems-table:end -->"
    assert start in doc and end in doc, "docs/fleet_model.md lost its systems-table markers"
    assert doc.split(start, 1)[1].split(end, 1)[0] == table, "run: python tools/systems_table.py --write"


def test_shipped_dynamo_scenario_uses_the_dynamo_system() -> None:
    from replaylib.scenario import load_scenario

    loaded = load_scenario(REPO / "scenarios" / "h200_llama8b_dynamo.yaml")
    assert loaded.system.name == "h200_llama8b_dynamo" and loaded.system.provenance is not None
    assert yaml.safe_load(SHIPPED.read_text())["timing"]["model"] == "table"
