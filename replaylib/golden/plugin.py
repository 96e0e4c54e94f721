"""pytest plugin (registered by entry point): the ``replay_golden`` fixture.

``replay_golden("scenarios/g3_tight_budget.yaml")`` replays the scenario and
checks its recording against ``goldens/<test module>/<test name>.golden`` (a
parametrized test's name carries its parameters:
``goldens/test_goldens/test_golden[g3_tight_budget].golden``) — one line in a
test.  Options::

    replay_golden(scenario, planner="pkg.mod:Mine", seed=3,
                  tolerance={"observation": 0.05},   # layered over the schema's and the scenario's
                  only="decisions",                  # or "observations", "outcomes", "all", "decisions,outcomes"
                  allow_failed_assertions=False,     # a failing scenario assertion fails the test
                  name="variant")                    # a second golden in the same test: [variant]

A mismatch fails the test with ``pytest.fail``: plain text naming the first
diverging tick, golden against replay for the judged columns only, the rest
counted, and the command that accepts the change — whatever pytest's verbosity,
and without relying on pytest rewriting asserts.  A replay whose scenario
assertions fail never becomes a golden, not even under ``--snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

ReplayGolden = Callable[..., Any]


def _shell_quote(text: str) -> str:
    return text if all(c.isalnum() or c in "/._-:" for c in text) else "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture
def replay_golden(snapshot, tmp_path: Path, request: pytest.FixtureRequest) -> ReplayGolden:  # noqa: ANN001 - syrupy's fixture
    """Replay a scenario and check it against its golden; returns the ReplayResult."""
    from replaylib.adapter import replay
    from replaylib.diff.policy import scenario_policy
    from replaylib.errors import ReplaylibError
    from replaylib.golden.extension import GoldenExtension  # syrupy is imported only when the fixture is used
    from replaylib.scenario import load_scenario

    def check(
        scenario: str | Path,
        *,
        planner: str | None = None,
        seed: int | None = None,
        tolerance: Any = None,
        only: str | Sequence[str] | None = None,
        allow_failed_assertions: bool = False,
        name: str | None = None,
    ) -> Any:
        try:
            loaded = load_scenario(scenario)
            policy = scenario_policy(loaded.scenario, only=only, tolerance=tolerance)
        except ReplaylibError as exc:
            pytest.fail(f"replay_golden: {exc}", pytrace=False)
        out = tmp_path / f"{loaded.scenario.name}{'-' + name if name else ''}.arrow"
        result = replay(loaded, out=out, planner=planner, seed=seed)
        failed = [a for a in result.assertions if not a.passed]
        blocked = bool(failed) and not allow_failed_assertions

        golden = snapshot.use_extension(GoldenExtension)
        target = golden(name=name) if name else golden
        if blocked:  # a replay that breaks its scenario's assertions must not become the golden
            target.update_snapshots = False
            target.update_new_snapshots_only = False
        ext = target.extension
        ext.policy = policy
        ext.compare_text = bool(target.update_snapshots)
        ext.update_command = f"python -m pytest --snapshot-update {_shell_quote(request.node.nodeid)}"
        location = _relative(ext.get_location(test_location=target.test_location, index=target.index))
        ext.source = location
        matched = target == result  # syrupy's comparison (GoldenExtension.matches); a bool, never an assert

        message = []
        if blocked:
            used_seed = loaded.scenario.seed if seed is None else seed
            message.append(f"{len(failed)} of {len(result.assertions)} scenario assertions failed "
                           f"({loaded.scenario.name}, planner {result.planner}, seed {used_seed}):")  # fmt: skip
            message += [f"  FAIL [{a.index}] {a.description} -- {a.evidence}" for a in failed]
            message.append("  the golden was not written (pass allow_failed_assertions=True to accept a failing replay)")
        if not matched:
            if message:
                message.append("")
            message.append(f"{location} does not match the replay of {loaded.scenario.name} "
                           f"(planner {result.planner}):")  # fmt: skip
            message += target.get_assert_diff()
        if message:
            pytest.fail("\n".join(message), pytrace=False)
        return result

    return check


def _relative(location: str) -> str:
    try:
        return str(Path(location).relative_to(Path.cwd()))
    except ValueError:
        return location
