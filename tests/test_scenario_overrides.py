"""Overriding scenario keys by dotted path: exactly the key named, validated like the file, errors naming the declaring file."""

from __future__ import annotations

from pathlib import Path

import pytest

from replaylib.scenario import ScenarioError, load_scenario
from replaylib.scenario.overrides import check_override_key, parse_key

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "scenarios" / "default.yaml"
NODE_LOSS = REPO / "scenarios" / "node_loss.yaml"


def test_parse_key() -> None:
    assert parse_key("power.total_gpu_power_limit_w") == ("power", "total_gpu_power_limit_w")
    assert parse_key("events[1].at_s") == ("events", 1, "at_s")
    assert parse_key("ticks") == ("ticks",)
    for bad in ("", ".a", "a.", "a..b", "[0].a", "a[x]", "a[0", "a.[0]", "a[0]b", "a b"):
        with pytest.raises(ValueError, match="malformed key path"):
            parse_key(bad)


def test_overrides_set_exactly_the_named_keys() -> None:
    base = load_scenario(DEFAULT).scenario
    got = load_scenario(DEFAULT, overrides={
        "power.total_gpu_power_limit_w": 4000,
        "fleet.router": "round_robin",
        "planner.params.scale_in_ticks": 3,
        "power.noise.power_decode.sigma": 9.5,
        "ticks": 12,
    })  # fmt: skip
    sc = got.scenario
    assert sc.power.total_gpu_power_limit_w == 4000.0 and sc.fleet.router == "round_robin"
    assert sc.planner.params == {**base.planner.params, "scale_in_ticks": 3}
    assert sc.power.noise["power_decode"].sigma == 9.5
    assert sc.power.noise["power_decode"].kind == base.power.noise["power_decode"].kind  # siblings untouched
    assert sc.ticks == 12
    # everything else is the scenario's own
    assert (sc.fleet.prefill_workers, sc.fleet.decode_workers, sc.planner.name, sc.seed) == (
        base.fleet.prefill_workers, base.fleet.decode_workers, base.planner.name, base.seed)
    assert got.content_hash != load_scenario(DEFAULT).content_hash
    assert got.overrides["ticks"] == 12


def test_a_map_value_replaces_the_map_and_list_items_are_addressable() -> None:
    base = load_scenario(NODE_LOSS).scenario
    assert base.events, "node_loss has events"
    at = base.events[0].at_s
    got = load_scenario(NODE_LOSS, overrides={"events[0].at_s": at + 60, "power.bias": {"power_bias_decode": 5.0}}).scenario
    assert got.events[0].at_s == at + 60 and got.events[1:] == base.events[1:]
    assert got.power.bias == {"power_bias_decode": 5.0}


def test_file_paths_are_relative_to_the_declaring_file(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweeps"
    sweep_dir.mkdir()
    trace = REPO / "traces" / "tiny.jsonl"
    import os

    rel = os.path.relpath(trace, sweep_dir)
    got = load_scenario(DEFAULT, overrides={"trace.path": rel}, overrides_from=sweep_dir / "s.yaml")
    assert got.trace_path == str(trace)
    # and recorded relative to the scenario, like any trace path (machine-independent content hash)
    assert got.scenario.trace.path == os.path.relpath(trace, DEFAULT.parent)
    whole = load_scenario(DEFAULT, overrides={"trace": {"path": rel, "block_size": 512}}, overrides_from=sweep_dir / "s.yaml")
    assert whole.trace_path == str(trace) and whole.scenario.trace.limit is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("fleet.routr", "x", "overrides.fleet.routr: not a scenario key: fleet has no key 'routr'; expected one of prefill_workers"),
        ("nope", 1, "not a scenario key: the scenario has no key 'nope'"),
        ("power.bias.gpu", 1.0, "not a scenario key: power.bias takes one of"),
        ("ticks.x", 1, "not a scenario key: ticks is a value, it has no key 'x'"),
        ("fleet[0]", 1, "not a scenario key: fleet is not a list"),
        ("events[9].at_s", 1, "not a scenario key: events has 0 item(s), no [9]"),
        ("planner.name", "sla@1", "set it with the sweep's planners: list"),
        ("fleet.router", "fastest", "o.yaml: fleet.router: expected one of 'kv_aware', 'least_loaded', 'round_robin', got 'fastest'"),
        ("fleet.prefill_workers", 0, "o.yaml: fleet.prefill_workers: expected an integer >= 1, got 0"),
    ],
)
def test_bad_overrides_name_the_declaring_file(key: str, value: object, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(DEFAULT, overrides={key: value}, overrides_from="o.yaml")
    assert str(info.value).startswith("o.yaml: "), str(info.value)
    assert message in str(info.value)


def test_free_form_params_take_any_key_below() -> None:
    assert check_override_key("planner.params.a.b", declared_in="x") == ("planner", "params", "a", "b")
    got = load_scenario(DEFAULT, overrides={"planner.params.nested.k": 1}).scenario
    assert got.planner.params["nested"] == {"k": 1}
