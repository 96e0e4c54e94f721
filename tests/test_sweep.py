"""Sweeps: the matrix, the table, failures, resuming, overrides read back, executors (pool, Dask) and bad input."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import polars as pl
import pytest

from replaylib.cli import main
from replaylib.record import read_recording, recording_metadata
from replaylib.scenario import load_scenario
from replaylib.sweep import load_sweep, run_sweep
from replaylib.sweep.plan import plan_sweep
from replaylib.sweep.storage import Store

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "scenarios" / "default.yaml"
#: keep every run short: the default scenario on its first 600 requests (about 5 minutes), 4 ticks
SHORT = {"trace.limit": [600], "ticks": [4]}


def write_sweep(tmp_path: Path, body: dict, name: str = "sw.yaml") -> Path:
    doc = {"scenarios": [os.path.relpath(DEFAULT, tmp_path)], **body}
    doc.setdefault("overrides", {})
    doc["overrides"] = {**SHORT, **doc["overrides"]}
    path = tmp_path / name
    path.write_text(msgspec.json.encode(doc).decode())  # JSON is YAML
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recordings(out: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted((out / "runs").glob("*.arrow"))}


# -- the matrix, the table and the overrides --------------------------------------------------------


def test_overrides_are_applied_exactly_and_read_back_from_each_recording(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, {
        "planners": ["sla@1", "aic@2"],
        "seeds": [3],
        "overrides": {"power.total_gpu_power_limit_w": [4000, 8000.5], "fleet.router": ["round_robin", "kv_aware"]},
        "cases": [{"planner.params.scale_in_ticks": 2}, {"planner.params.scale_in_ticks": 5, "fleet.decode_workers": 2}],
    })  # fmt: skip
    result = run_sweep(sweep, out=tmp_path / "out", executor="serial")
    table = pl.read_parquet(tmp_path / "out" / "sweep.parquet")
    assert table.height == len(result.runs) == 2 * 2 * 2 * 2
    assert table["run"].to_list() == list(range(16))
    assert table.equals(result.table)
    for row in table.iter_rows(named=True):
        path = tmp_path / "out" / row["recording"]
        assert sha256(path) == row["sha256"]
        meta = recording_metadata(path)
        want = msgspec.json.decode(row["overrides"])
        assert meta.overrides == want  # recorded in the metadata, exactly as given
        assert set(want) == {"trace.limit", "ticks", "power.total_gpu_power_limit_w", "fleet.router", "planner.params.scale_in_ticks"} | (
            {"fleet.decode_workers"} if want["planner.params.scale_in_ticks"] == 5 else set()
        )
        assert (meta.planner, meta.seed) == (row["planner_version"], 3)
        # the content hash is that of the scenario with exactly these overrides applied
        assert meta.scenario_hash == load_scenario(DEFAULT, overrides=want).content_hash
        ticks = read_recording(path).filter(pl.col("kind") == "tick")
        assert ticks.height == 4  # ticks: 4
        assert ticks["budget_w"][0] == float(want["power.total_gpu_power_limit_w"])
        assert row["override.power.total_gpu_power_limit_w"] == float(want["power.total_gpu_power_limit_w"])
        assert row["override.fleet.router"] == want["fleet.router"]
        if "fleet.decode_workers" in want:
            assert ticks["decode_active"][0] == 2  # the initial fleet of the override, not the scenario's 1
        else:
            assert ticks["decode_active"][0] == 1 and row["override.fleet.decode_workers"] is None
    # typed override columns: floats (ints and floats mixed), strings, ints
    assert table.schema["override.power.total_gpu_power_limit_w"] == pl.Float64
    assert table.schema["override.fleet.router"] == pl.String
    assert table.schema["override.planner.params.scale_in_ticks"] == pl.Int64


def test_table_rows_hold_parameters_kpis_and_verdicts(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, {"planners": ["aic@2"], "seeds": {"start": 1, "count": 2}})
    result = run_sweep(sweep, out=tmp_path / "out", executor="serial")
    t = result.table
    assert t["seed"].to_list() == [1, 2] and t["planner"].to_list() == ["aic@2"] * 2
    assert t["scenario"].to_list() == ["default"] * 2
    assert t["scenario_file"][0] == os.path.relpath(DEFAULT, tmp_path).replace(os.sep, "/")
    for row, outcome in zip(t.iter_rows(named=True), result.outcomes, strict=True):
        path = tmp_path / "out" / row["recording"]
        df = read_recording(path)
        verdicts = df.filter(pl.col("kind") == "assertion")["passed"].to_list()
        assert row["assertions"] == len(verdicts) == 4
        assert row["assertions_failed"] == verdicts.count(False) == len(row["failed_assertions"])
        assert row["status"] == ("passed" if all(verdicts) else "failed")
        assert row["ticks"] == 4 and row["arrived"] == outcome.kpis.arrived
        from replaylib.record.kpis import compute_kpis

        kpis = compute_kpis(df, recording_metadata(path))
        assert {k: row[k] for k in msgspec.structs.asdict(kpis)} == msgspec.structs.asdict(kpis)
    assert not result.ok  # 4 ticks of a 40-minute scenario: 'every request completes' fails
    assert any("every request of the trace completes" in f for f in t["failed_assertions"][0])


# -- failures ----------------------------------------------------------------------------------------


def test_a_failing_run_is_reported_and_does_not_stop_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path, {
        "planners": ["aic@2", "tests.custom_planner_example:CrashingPlanner", "sla@1"],
        "seeds": [0, 1],
    })  # fmt: skip
    code = main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    table = pl.read_parquet(tmp_path / "out" / "sweep.parquet")
    assert table.height == 6
    crashed = table.filter(pl.col("planner_version") == "crashing@1")
    assert crashed["status"].to_list() == ["error", "error"]
    assert all("deliberate crash at tick 2" in e for e in crashed["error"])
    assert crashed["recording"].null_count() == 2 and crashed["ticks"].null_count() == 2
    others = table.filter(pl.col("planner_version") != "crashing@1")
    assert others["status"].is_in(["passed", "failed"]).all() and others["error"].null_count() == 4
    assert len(recordings(tmp_path / "out")) == 4
    # each failure is reported with its parameters; a planner that raises is bad input: nothing half-written stays
    assert err.count("deliberate crash at tick 2") == 2 and "tests.custom_planner_example:CrashingPlanner, seed 1" in err
    assert not sorted((tmp_path / "out").rglob("*.partial"))


# -- resuming ---------------------------------------------------------------------------------------


def test_a_resumed_sweep_skips_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_sweep(write_sweep(tmp_path, {"planners": ["aic@2"], "seeds": [0, 1]}), out=out, executor="serial")
    assert first.reused == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.arrow")}
    # the same sweep grown by a seed and a planner: only the new cells replay
    grown = write_sweep(tmp_path, {"planners": ["aic@2", "sla@1"], "seeds": [0, 1, 2]})
    second = run_sweep(grown, out=out, executor="process", jobs=2)
    assert second.reused == 2 and len(second.runs) == 6
    assert [o.reused for o in second.outcomes] == [True, True, False, False, False, False]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.arrow") if p.name in stamps} == stamps
    # the resumed table is byte for byte the table of a fresh sweep
    fresh = run_sweep(grown, out=tmp_path / "fresh", executor="serial")
    assert fresh.reused == 0
    assert sha256(out / "sweep.parquet") == sha256(tmp_path / "fresh" / "sweep.parquet")
    assert recordings(out) == recordings(tmp_path / "fresh")
    # a damaged recording, or one whose inputs are not the run's, is replayed again
    victim, other = sorted((out / "runs").glob("*.arrow"))[:2]
    victim.write_bytes(victim.read_bytes()[:300])
    third = run_sweep(grown, out=out, executor="serial")
    assert third.reused == 5 and recordings(out) == recordings(tmp_path / "fresh")
    other.write_bytes(victim.read_bytes())  # a valid recording, of another run
    fourth = run_sweep(grown, out=out, executor="serial")
    assert fourth.reused == 5 and recordings(out) == recordings(tmp_path / "fresh")
    # --force replays everything
    assert run_sweep(grown, out=out, executor="serial", reuse=False).reused == 0


# -- executors: byte-identical whatever ran them -------------------------------------------------------


def test_process_pool_and_serial_recordings_are_byte_identical(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, {"planners": ["sla@1", "aic@2"], "seeds": [0, 1, 2]})
    run_sweep(sweep, out=tmp_path / "serial", executor="serial")
    run_sweep(sweep, out=tmp_path / "pool", executor="process", jobs=2)
    assert len(recordings(tmp_path / "serial")) == 6
    assert recordings(tmp_path / "pool") == recordings(tmp_path / "serial")
    assert sha256(tmp_path / "pool" / "sweep.parquet") == sha256(tmp_path / "serial" / "sweep.parquet")


def test_an_fsspec_url_output_holds_the_same_files(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    sweep = write_sweep(tmp_path, {"planners": ["aic@2"], "seeds": [0, 1]})
    run_sweep(sweep, out=tmp_path / "local", executor="serial")
    url = (tmp_path / "remote").as_uri()
    result = run_sweep(sweep, out=url, executor="process", jobs=2)
    assert result.table_path == url + "/sweep.parquet"
    assert recordings(tmp_path / "remote") == recordings(tmp_path / "local")
    assert sha256(tmp_path / "remote" / "sweep.parquet") == sha256(tmp_path / "local" / "sweep.parquet")
    assert run_sweep(sweep, out=url, executor="serial").reused == 2  # resumable through the URL too


def test_dask_local_cluster_gives_identical_recordings(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    sweep = write_sweep(tmp_path, {"planners": ["sla@1", "aic@2", "tests.custom_planner_example:CrashingPlanner"], "seeds": [0, 1]})
    run_sweep(sweep, out=tmp_path / "serial", executor="serial")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["sweep", str(sweep), "--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address, "--quiet"])
    assert code == 1  # the crashing planner's runs
    assert len(recordings(tmp_path / "serial")) == 4
    assert recordings(tmp_path / "dask") == recordings(tmp_path / "serial")
    assert sha256(tmp_path / "dask" / "sweep.parquet") == sha256(tmp_path / "serial" / "sweep.parquet")
    table = pl.read_parquet(tmp_path / "dask" / "sweep.parquet")
    assert table.filter(pl.col("status") == "error").height == 2


def test_dask_batch_size_follows_the_run_time_and_keeps_the_end_balanced() -> None:
    from replaylib.sweep.executors import DASK_MAX_BATCH, DASK_TASK_S, dask_batch_size

    assert dask_batch_size(None, 1000, 2) == 1  # no run timed yet
    assert dask_batch_size(DASK_TASK_S * 2, 1000, 2) == 1  # long runs go alone
    assert dask_batch_size(DASK_TASK_S / 3, 1000, 2) == 3
    assert dask_batch_size(DASK_TASK_S / 2.5, 1000, 2) == 3  # rounded up: a task lasts at least DASK_TASK_S
    assert dask_batch_size(1e-9, 1000, 2) == DASK_MAX_BATCH
    assert dask_batch_size(1e-9, 12, 2) == 3  # two tasks per worker are left for the end
    assert dask_batch_size(1e-9, 3, 2) == 1


def test_dask_batches_short_tasks_and_a_failure_loses_only_its_own() -> None:
    """Short tasks go to the workers in batches (fewer submissions than tasks); every result arrives once;
    a task that raises inside a batch is its own on_error, the rest of its batch still arrives."""
    distributed = pytest.importorskip("distributed")
    from replaylib.sweep.executors import DaskExecutor, ExecutorOptions

    tasks = [str(i) for i in range(60)]
    tasks[37] = "not a number"
    got: list[int] = []
    errors: list[tuple[str, type]] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ex = DaskExecutor(ExecutorOptions(scheduler=cluster.scheduler_address))
        submits = 0
        submit = ex.client.submit

        def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            nonlocal submits
            submits += 1
            return submit(*args, **kwargs)

        ex.client.submit = counting  # type: ignore[method-assign]
        try:
            ex.run(int, tasks, got.append, lambda task, exc: errors.append((task, type(exc))))
        finally:
            ex.close()
    assert sorted(got) == [i for i in range(60) if i != 37]
    assert errors == [("not a number", ValueError)]
    assert submits < 30


def test_the_local_dask_cluster_runs_its_workers_without_the_profiler() -> None:
    """README "Sweeps": a sweep's Dask workers run with the sampling profiler off; the executor's own local
    cluster starts its worker processes so (the configuration reaches them, and no profile callback runs)."""
    distributed = pytest.importorskip("distributed")
    from replaylib.sweep.executors import local_cluster

    def profiling(dask_worker) -> tuple[bool, bool]:  # noqa: ANN001
        import dask

        return dask.config.get("distributed.worker.profile.enabled"), "profile" in dask_worker.periodic_callbacks

    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        assert list(client.run(profiling).values()) == [(False, False), (False, False)]


def test_compare_runs_on_the_sweep_executors(tmp_path: Path) -> None:
    from replaylib.diff import compare_planners

    short = {"trace.limit": 600, "ticks": 4}
    loaded = load_scenario(DEFAULT, overrides=short)
    serial = compare_planners(loaded, ["sla@1", "aic@2"], out_dir=tmp_path / "a", executor="serial")
    pooled = compare_planners(loaded, ["sla@1", "aic@2"], out_dir=tmp_path / "b", executor="process", jobs=2)
    assert [sha256(Path(p)) for p in serial.recordings] == [sha256(Path(p)) for p in pooled.recordings]
    assert serial.kpis == pooled.kpis and serial.planners == ["sla@1", "aic@2"]


# -- bad input: a clear error, exit 2, nothing started ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("body", "extra", "message"),
    [
        ({"planners": ["aic@2"], "seedz": [1]}, [], "sw.yaml: seedz: unknown key; expected one of"),
        ({"overrides": {"power.total_gpu_power_limt_w": [1]}}, [],
         "sw.yaml: overrides.power.total_gpu_power_limt_w: not a scenario key: power has no key 'total_gpu_power_limt_w'; expected one of"),
        ({"overrides": {"fleet.router.x": [1]}}, [], "overrides.fleet.router.x: not a scenario key: fleet.router is a value"),
        ({"overrides": {"power.bias.power_bias_gpu": [1]}}, [], "not a scenario key: power.bias takes one of"),
        ({"overrides": {"events[0].at_s": [1]}}, [], "overrides.events[0].at_s: not a scenario key: events has 0 item(s)"),
        ({"overrides": {"fleet.router": ["fastest"]}}, [], "sw.yaml: fleet.router: expected one of"),
        ({"overrides": {"seed": [1, 2]}}, [], "overrides.seed: set it with the sweep's seeds: list"),
        ({"planners": []}, [], "sw.yaml: planners: empty list: the sweep's matrix would have no runs"),
        ({"seeds": {"count": 0}}, [], "sw.yaml: seeds: empty list"),
        ({"overrides": {"power.total_gpu_power_limit_w": []}}, [], "overrides.power.total_gpu_power_limit_w: empty list"),
        ({"planners": ["aic@9"]}, [], "planner 'aic@9'"),
        ({"planners": ["aic", "aic@2"]}, [], "runs 0 and 1 are the same replay"),
        ({"planners": ["aic@2"]}, ["--scheduler", "tcp://127.0.0.1:{port}", "--connect-timeout", "1"], "cannot reach the Dask scheduler"),
        ({"planners": ["aic@2"]}, ["--out", "{file}/sub"], "cannot write the sweep's output here"),
    ],
)
def test_bad_sweeps_exit_2_and_start_nothing(tmp_path: Path, body: dict, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    if "--scheduler" in extra:
        pytest.importorskip("distributed")
    (tmp_path / "a_file").write_text("not a folder")
    sweep = write_sweep(tmp_path, body)
    args = [a.format(port=_free_port(), file=tmp_path / "a_file") for a in extra]
    out = tmp_path / "out"
    if "--out" not in args:
        args += ["--out", str(out)]
    code = main(["sweep", str(sweep), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not list(tmp_path.rglob("*.arrow")) and not list(tmp_path.rglob("*.parquet"))


def test_bad_sweep_file_shapes(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "noscen.yaml").write_text("scenarios: [nope.yaml]\n")
    (tmp_path / "glob.yaml").write_text("scenarios: ['none/*.yaml']\n")
    (tmp_path / "scalar.yaml").write_text(f"scenarios: [{DEFAULT}]\noverrides: {{ticks: 4}}\n")
    for name, message in [
        ("list.yaml", "expected a mapping at the top level"),
        ("empty.yaml", "scenarios: required key is missing"),
        ("noscen.yaml", "scenarios[0]: scenario file not found"),
        ("glob.yaml", "scenarios[0]: the pattern 'none/*.yaml' matches no file"),
        ("scalar.yaml", "overrides.ticks: expected a list"),
    ]:
        run = subprocess.run([sys.executable, "-m", "replaylib", "sweep", str(tmp_path / name), "--out", str(tmp_path / "o")],
                             capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 2, (name, run.stderr)
        assert message in run.stderr, (name, run.stderr)
    assert not (tmp_path / "o").exists()


def test_dry_run_lists_the_runs_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path, {"planners": ["aic@2", "sla@1"], "overrides": {"power.total_gpu_power_limit_w": [4000, 6000]}})
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"sweep sw: 4 runs -> {tmp_path / 'out'}"
    assert len(out.splitlines()) == 5 and "runs/default__sla_1__seed7__" in out
    assert not (tmp_path / "out").exists()
    planned = plan_sweep(load_sweep(sweep), Store(tmp_path / "out"))
    assert [r.planner for r in planned] == ["aic@2", "sla@1", "aic@2", "sla@1"]


# -- the shipped example and the README -----------------------------------------------------------


def test_shipped_example_sweep_and_the_readme_example_plan(tmp_path: Path) -> None:
    import re

    import yaml

    from replaylib.sweep import sweep_from_mapping

    example = plan_sweep(load_sweep(REPO / "sweeps" / "budget.yaml"), Store(tmp_path / "o"))
    assert len(example) == 18 and {r.planner for r in example} == {"sla@1", "power@1", "aic@2"}
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Sweeps.*?```yaml\n(.*?)```", readme, re.S)
    assert block, "README has a Sweeps section with a yaml example"
    sweep = sweep_from_mapping(yaml.safe_load(block.group(1)), str(REPO / "sweeps" / "readme.yaml"))
    runs = plan_sweep(sweep, Store(tmp_path / "r"))
    assert {r.scenario for r in runs} == {"default", "g3_tight_budget"}
    assert len(runs) == 2 * 2 * 8 * 3 * 2 * 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()  # planning writes nothing


# -- progress and interruption --------------------------------------------------------------------


def test_progress_bar_shows_total_failures_and_eta() -> None:
    import io

    from replaylib.sweep.progress import ProgressBar
    from replaylib.sweep.task import RunOutcome

    stream = io.StringIO()
    bar = ProgressBar(4, workers=2, stream=stream)
    assert "0/4 runs" in stream.getvalue() and "ETA …" in stream.getvalue()  # nothing to extrapolate from yet
    bar.update(RunOutcome(index=0, key="a", passed=True, seconds=2.0))
    bar.update(RunOutcome(index=1, key="b", error="boom", seconds=2.0))
    line = stream.getvalue().rsplit("\r", 1)[1]
    assert "2/4 runs" in line and "1 failed" in line and "ETA" in line and "ETA …" not in line
    bar.update(RunOutcome(index=2, key="c", reused=True, passed=True))
    assert "1 reused" in stream.getvalue().rsplit("\r", 1)[1]
    bar.close()
    assert stream.getvalue().endswith("\n")


class _InterruptedExecutor:
    """Runs the first two tasks, then the user presses Ctrl-C."""

    name = "interrupted"
    workers = 1

    def run(self, fn, tasks, on_result, on_error):  # type: ignore[no-untyped-def]
        for task in tasks[:2]:
            on_result(fn(task))
        raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_an_interrupted_sweep_still_writes_its_table_and_resumes(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, {"planners": ["aic@2"], "seeds": [0, 1, 2, 3]})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, out=tmp_path / "out", executor=_InterruptedExecutor())  # type: ignore[arg-type]
    table = pl.read_parquet(tmp_path / "out" / "sweep.parquet")
    assert table["status"].to_list()[2:] == ["error", "error"]
    assert table["error"].to_list()[2:] == ["not run (the sweep was interrupted)"] * 2
    assert table["recording"].null_count() == 2 and len(recordings(tmp_path / "out")) == 2
    resumed = run_sweep(sweep, out=tmp_path / "out", executor="serial")
    assert [o.reused for o in resumed.outcomes] == [True, True, False, False]
    assert resumed.table["error"].null_count() == 4


def test_a_worker_whose_inputs_differ_publishes_nothing(tmp_path: Path) -> None:
    from replaylib.sweep.task import execute_task

    sweep = write_sweep(tmp_path, {"planners": ["aic@2"], "seeds": [0]})
    (run,) = plan_sweep(load_sweep(sweep), Store(tmp_path / "out"))
    (tmp_path / "out" / "runs").mkdir(parents=True)
    # as if the trace on this worker were another file than the one the sweep hashed
    other_trace = msgspec.structs.replace(run.task.inputs, trace_sha256="0" * 64)
    outcome = execute_task(msgspec.structs.replace(run.task, inputs=other_trace))
    assert outcome.status == "error" and "not those the sweep planned" in outcome.error
    assert "trace_sha256" in outcome.error and not Path(run.task.dest).exists()
    older = msgspec.structs.replace(run.task.inputs, replaylib_version="0.0.1")
    outcome = execute_task(msgspec.structs.replace(run.task, inputs=older))
    assert "the sweep was planned with 0.0.1" in outcome.error and not Path(run.task.dest).exists()
    assert execute_task(run.task).status in ("passed", "failed") and Path(run.task.dest).exists()
