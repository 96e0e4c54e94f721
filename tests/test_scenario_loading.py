"""Scenario YAML with extends:, systems YAML, and their errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replaylib.scenario import ScenarioError, load_scenario, load_system
from replaylib.scenario.model import BiasStep, NodeDown
from replaylib.timing import power_model

REPO = Path(__file__).resolve().parents[1]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (tmp_path / "systems").mkdir(exist_ok=True)
    (tmp_path / "systems" / "h100_sxm.yaml").write_text((REPO / "systems" / "h100_sxm.yaml").read_text())
    (tmp_path / "traces").mkdir(exist_ok=True)
    (tmp_path / "traces" / "t.jsonl").write_text('{"timestamp":0,"input_length":1,"output_length":1,"hash_ids":[0]}\n')
    return tmp_path


BASE = """
system: h100_sxm
trace: {path: ../../traces/t.jsonl, block_size: 512}
fleet: {prefill_workers: 2, decode_workers: 2, router: kv_aware}
planner: {name: sla@1, ttft_ms: 2000, itl_ms: 50}
power:
  total_gpu_power_limit_w: 8000
  bias: {power_bias_decode: 5}
events:
  - {type: bias_step, at_s: 60, signal: power_bias_decode, delta: 20}
"""


def test_extends_deep_merges_maps_and_replaces_lists(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "scenarios/_base/base.yaml": BASE,
            "scenarios/child.yaml": """
extends: _base/base.yaml
name: child
fleet: {decode_workers: 3}
power: {bias: {ttft_bias: 100}}
events:
  - {type: node_down, at_s: 120, role: decode, count: 1}
""",
        },
    )
    loaded = load_scenario(root / "scenarios" / "child.yaml")
    s = loaded.scenario
    assert s.name == "child"
    assert (s.fleet.prefill_workers, s.fleet.decode_workers, s.fleet.router) == (2, 3, "kv_aware")
    assert s.power.bias == {"power_bias_decode": 5, "ttft_bias": 100}  # maps merged key by key
    assert s.power.total_gpu_power_limit_w == 8000
    assert s.events == [NodeDown(at_s=120, role="decode", count=1)]  # lists replaced, not appended
    # the template's relative trace path is resolved from the template, then re-expressed from the child
    assert s.trace.path == "../traces/t.jsonl"
    assert Path(loaded.trace_path) == root / "traces" / "t.jsonl"
    assert Path(loaded.system_path) == root / "systems" / "h100_sxm.yaml"


def test_parent_alone_keeps_its_own_values(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scenarios/_base/base.yaml": BASE})
    s = load_scenario(root / "scenarios" / "_base" / "base.yaml").scenario
    assert s.name == "base"  # defaults to the file stem
    assert s.events == [BiasStep(at_s=60, signal="power_bias_decode", delta=20)]


def test_multiple_parents_merge_left_to_right(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "scenarios/_base/base.yaml": BASE,
            "scenarios/_base/tight.yaml": "power: {total_gpu_power_limit_w: 4000}\nfleet: {router: round_robin}\n",
            "scenarios/x.yaml": "extends: [_base/base.yaml, _base/tight.yaml]\nfleet: {router: least_loaded}\n",
        },
    )
    s = load_scenario(root / "scenarios" / "x.yaml").scenario
    assert s.power.total_gpu_power_limit_w == 4000
    assert s.fleet.router == "least_loaded"


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scenarios/a.yaml": "extends: b.yaml\n", "scenarios/b.yaml": "extends: a.yaml\n"})
    with pytest.raises(ScenarioError, match=r"extends cycle: a.yaml -> b.yaml -> a.yaml"):
        load_scenario(root / "scenarios" / "a.yaml")


def test_missing_parent_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scenarios/a.yaml": "extends: _base/nope.yaml\n"})
    with pytest.raises(ScenarioError) as info:
        load_scenario(root / "scenarios" / "a.yaml")
    assert info.value.path.endswith("a.yaml") and info.value.key == "extends"
    assert "parent file not found: _base/nope.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("child", "key", "fragment", "in_base"),
    [
        ("planner: {ttft_ms: fast}", "planner.ttft_ms", "expected a number, got 'fast'", False),
        ("planner: {ttft_ms: -5}", "planner.ttft_ms", "expected a number > 0.0, got -5", False),
        ("planner: {ttfts: 5}", "planner.ttfts", "unknown key; expected one of name, adjustment_interval_s", False),
        ("fleet: {router: random}", "fleet.router", "expected one of 'kv_aware', 'least_loaded', 'round_robin', got 'random'", False),
        ("fleet: {prefill_workers: 0}", "fleet.prefill_workers", ">= 1, got 0", False),
        ("events: [{type: bias_step, at_s: 1, signal: power, delta: 1}]", "events[0].signal", "expected one of 'itl_bias', 'power_bias_decode', 'power_bias_prefill', 'ttft_bias', got 'power'", False),
        ("events: [{type: explode, at_s: 1}]", "events[0].type", "expected one of 'actuation_fault', 'bias_ramp'", False),
        ("events: [{type: node_down, at_s: 1}]", "events[0].role", "required key is missing", False),
        ("power: {bias: {power_bias_gpu: 1}}", "power.bias", "unknown key 'power_bias_gpu'; expected one of", False),
        ("power: {noise: {ttft: {kind: pink}}}", "power.noise.ttft.kind", "expected one of 'ar1', 'gaussian', 'none', got 'pink'", False),
        ("planner: {max_gpu_budget: 2}", "planner.max_gpu_budget", "at least the initial fleet's 8 GPUs", False),
    ],
)
def test_errors_name_file_key_path_and_expectation(
    tmp_path: Path, child: str, key: str, fragment: str, in_base: bool
) -> None:
    root = _tree(tmp_path, {"scenarios/_base/base.yaml": BASE, "scenarios/c.yaml": "extends: _base/base.yaml\n" + child + "\n"})
    with pytest.raises(ScenarioError) as info:
        load_scenario(root / "scenarios" / "c.yaml")
    err = info.value
    assert err.key == key, str(err)
    assert fragment.lower() in str(err).lower(), str(err)
    assert err.path.endswith("c.yaml")


def test_error_in_a_template_names_the_template(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"scenarios/_base/base.yaml": BASE.replace("ttft_ms: 2000", "ttft_ms: soon"), "scenarios/c.yaml": "extends: _base/base.yaml\n"},
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(root / "scenarios" / "c.yaml")
    assert info.value.path.endswith("_base/base.yaml") and info.value.key == "planner.ttft_ms"


def test_duplicate_keys_and_bad_yaml_are_errors(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scenarios/d.yaml": BASE + "fleet: {decode_workers: 1}\n", "scenarios/y.yaml": "fleet: [1,\n"})
    with pytest.raises(ScenarioError, match="duplicate key 'fleet'"):
        load_scenario(root / "scenarios" / "d.yaml")
    with pytest.raises(ScenarioError, match="invalid YAML: line"):
        load_scenario(root / "scenarios" / "y.yaml")


def test_unknown_system_and_missing_trace(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scenarios/s.yaml": BASE.replace("system: h100_sxm", "system: b200")})
    with pytest.raises(ScenarioError, match="unknown system 'b200'"):
        load_scenario(root / "scenarios" / "s.yaml")
    root = _tree(tmp_path, {"scenarios/t.yaml": BASE.replace("../../traces/t.jsonl", "../traces/missing.jsonl")})
    with pytest.raises(ScenarioError, match="trace file not found"):
        load_scenario(root / "scenarios" / "t.yaml")


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scenarios/_base/base.yaml": BASE, "scenarios/a.yaml": "extends: _base/base.yaml\nname: a\n"})
    h1 = load_scenario(root / "scenarios" / "a.yaml").content_hash
    assert h1 == load_scenario(root / "scenarios" / "a.yaml").content_hash
    (root / "scenarios" / "a.yaml").write_text("extends: _base/base.yaml\nname: a\nseed: 1\n")
    assert load_scenario(root / "scenarios" / "a.yaml").content_hash != h1


@pytest.mark.parametrize("sku", ["h100_sxm", "h100_pcie", "h200_sxm"])
def test_bundled_systems_load_and_have_the_published_shape(sku: str) -> None:
    s = load_system(REPO / "systems" / f"{sku}.yaml")
    speed = power_model(s).speed
    g = s.gpu
    assert g.idle_w < g.min_cap_w <= g.max_cap_w <= g.tdp_w
    # prefill is compute-bound: slows as soon as the cap drops below its uncapped draw
    p_unc = s.power_model.prefill.uncapped_w
    assert speed("prefill", p_unc) == 1.0
    assert speed("prefill", 0.8 * p_unc) < 0.9
    # decode is memory-bound: a cap above its draw changes nothing, the floor slows it
    d_unc = s.power_model.decode.uncapped_w
    assert speed("decode", d_unc) == 1.0 == speed("decode", g.max_cap_w)
    assert speed("decode", g.min_cap_w) < 1.0
    # at every settable cap, prefill loses at least as much speed as decode
    for cap in range(int(g.min_cap_w), int(g.max_cap_w) + 1, 10):
        assert speed("prefill", cap) <= speed("decode", cap) + 1e-12


def test_bad_system_file_names_key(tmp_path: Path) -> None:
    text = (REPO / "systems" / "h100_sxm.yaml").read_text().replace("min_cap_w: 200", "min_cap_w: 900")
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ScenarioError, match=r"bad.yaml: gpu: expected min_cap_w <= max_cap_w"):
        load_system(p)
    p.write_text((REPO / "systems" / "h100_sxm_analytic.yaml").read_text().replace("base_ms: 14.0", "base_ms: slow"))
    with pytest.raises(ScenarioError, match=r"timing.decode.base_ms: expected a number, got 'slow'"):
        load_system(p)


def test_validate_scenario_cli(tmp_path: Path) -> None:
    base = BASE.replace("../../traces", "../traces")
    root = _tree(tmp_path, {"scenarios/ok.yaml": base, "scenarios/bad.yaml": base + "ticks: zero\n"})
    run = subprocess.run([sys.executable, "-m", "replaylib", "validate", "scenario", str(root / "scenarios/ok.yaml")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2 prefill + 2 decode workers" in run.stdout
    run = subprocess.run([sys.executable, "-m", "replaylib", "validate", "scenario", str(root / "scenarios/bad.yaml")], capture_output=True, text=True)
    assert run.returncode == 1 and "bad.yaml: ticks: expected an integer or null, got 'zero'" in run.stderr
