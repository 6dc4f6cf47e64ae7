"""The public testing module, used exactly as a user would: a machine over two small
actions of their own (one fails for some inputs), the strategies on their own, a
deliberately broken projection that the invariants must catch, and the scripted action
and the log checks on their own (on a golden history, sound and broken)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from domain.events import Recorded
from domain.lifecycles import TASK
from domain.task import TRIGGER_OF
from engine.models import Task, WorkflowStep
from engine.registry import ActionRegistry
from engine.store import EventStore, open_store
from projections import tasks as task_projection
from replay_tools.state import state_at
from replay_tools.testing import (
    EngineStateMachine,
    ScriptedAction,
    assert_dependencies_completed_first,
    assert_live_views_match_log,
    assert_log_verifies,
    dag_workflows,
    event_histories,
    outcome_scripts,
    tasks,
)

SMALL = settings(max_examples=15, stateful_step_count=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def double(x: int) -> int:
    return 2 * x


def halve(x: int) -> int:
    if x % 2:
        raise ValueError(f"{x} is odd")
    return x // 2


X = st.fixed_dictionaries({"x": st.integers(-100, 100)})


class MyMachine(EngineStateMachine):
    def setup_registry(self, registry: ActionRegistry) -> None:
        registry.register("mymod", "double", double)
        registry.register("mymod", "halve", halve)

    def task_strategy(self) -> st.SearchStrategy[Task]:
        return tasks("mymod", "double", X) | tasks("mymod", "halve", X, max_retries=st.just(0))

    def workflow_strategy(self) -> st.SearchStrategy[tuple[str, list[WorkflowStep]]]:
        choices = st.sampled_from([("mymod", "double", X, "x"), ("mymod", "halve", X, "x")])
        return dag_workflows(choices, max_steps=4)

    def check_task(self, task: Task, result: dict[str, Any]) -> None:
        x = task.parameters["x"]
        if task.action == "double":
            assert result["success"] and result["result"]["data"] == 2 * x
        else:
            assert result["success"] == (x % 2 == 0)


MyMachine.TestCase.settings = SMALL
TestMyActions = MyMachine.TestCase


def test_a_broken_projection_breaks_the_invariants(monkeypatch: pytest.MonkeyPatch) -> None:
    real = task_projection.apply

    def skips_completions(view: Any, recorded: Recorded) -> None:
        if recorded.event.type != "task.completed":
            real(view, recorded)

    # the rebuild (replay_tools.state) folds through projections.tasks.apply
    monkeypatch.setattr(task_projection, "apply", skips_completions)
    with pytest.raises(AssertionError, match="tasks view"):
        run_state_machine_as_test(
            MyMachine,
            settings=settings(
                max_examples=5, stateful_step_count=3, deadline=None, database=None, phases=[Phase.generate]
            ),
        )


def test_a_subclass_must_give_a_strategy() -> None:
    class Empty(EngineStateMachine):
        pass

    with pytest.raises(TypeError, match="task_strategy"):
        Empty()


@settings(max_examples=25, deadline=None)
@given(dag_workflows(st.sampled_from([("m", "a", X, "x"), ("m", "b", st.fixed_dictionaries({}))]), max_steps=6))
def test_dag_workflows_depend_only_on_earlier_steps(workflow: tuple[str, list[WorkflowStep]]) -> None:
    name, steps = workflow
    assert name and 1 <= len(steps) <= 6
    names = {s.name for s in steps}
    assert names == {f"s{i}" for i in range(len(steps))}
    for step in steps:
        i = int(step.name[1:])
        assert all(int(d[1:]) < i for d in step.dependencies)
        ref = step.parameters.get("x")
        if isinstance(ref, str):
            assert ref.startswith("{{s") and int(ref[3:].split(".")[0]) < i


@settings(max_examples=25, deadline=None)
@given(tasks("mymod", "double", X))
def test_tasks_are_tasks_of_the_action(task: Task) -> None:
    assert (task.module, task.action) == ("mymod", "double")
    assert isinstance(task.parameters["x"], int) and 0 <= task.max_retries <= 2


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_histories(max_tasks=4))
def test_event_histories_are_consistent(history: list[Recorded]) -> None:
    assert [r.position for r in history] == sorted(r.position for r in history)
    states: dict[str, Any] = {}
    for recorded in history:
        event = recorded.event
        if event.type == "task.created":
            states[event.aggregate_id] = TASK.initial
        elif (trigger := TRIGGER_OF.get(type(event))) is not None:
            states[event.aggregate_id] = TASK.decide(states[event.aggregate_id], trigger)
    assert states and all(TASK.is_final(s) for s in states.values())


# -- the action, the scripts and the log checks on their own ------------------------------

GOLDEN_RUN = Path(__file__).resolve().parent / "golden" / "retry_run.jsonl"


def test_scripted_action_follows_its_script() -> None:
    action = ScriptedAction()
    with pytest.raises(RuntimeError, match="k attempt 1 fails as scripted"):
        action("k", ["fail", "ok"])
    assert action("k", ["fail", "ok"]) == {"key": "k", "attempt": 2, "inputs": []}
    assert action("k", ["fail", "ok"], {"t-b": 1, "t-a": 2}, payload=[1]) == {
        "key": "k",
        "attempt": 3,  # the last outcome repeats
        "inputs": ["t-a", "t-b"],
        "payload": [1],
    }
    assert action("other", ["ok", "fail"])["attempt"] == 1
    with pytest.raises(RuntimeError, match="other attempt 2"):
        action("other", ["ok", "fail"])
    assert action.attempts == {"k": 3, "other": 2}
    with pytest.raises(ValueError, match="outcomes"):
        action("k", [])
    with pytest.raises(ValueError, match="outcomes"):
        action("k", ["maybe"])


@settings(max_examples=25, deadline=None)
@given(outcome_scripts(max_attempts=2))
def test_outcome_scripts_are_short_lists_of_outcomes(script: list[str]) -> None:
    assert 1 <= len(script) <= 2 and set(script) <= {"ok", "fail"}


def test_outcome_scripts_need_an_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        outcome_scripts(max_attempts=0)


def _store_of(path: Path, skip: Callable[[dict[str, Any]], bool] = lambda line: False) -> EventStore:
    """A memory store holding a golden history's events, except those ``skip`` names."""
    store = open_store("memory://")
    for text in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        if not skip(line):
            store.append([store.codec.decode(line["type"], json.dumps(line["event"]).encode())])
    return store


def test_the_log_checks_pass_on_a_sound_log() -> None:
    with _store_of(GOLDEN_RUN) as store:
        assert assert_log_verifies(store).events == store.max_position() == 19
        assert_dependencies_completed_first(store)
        end = state_at(store, position=store.max_position())
        assert_live_views_match_log(store, {"tasks": end.tasks.snapshot, "workflows": end.workflows.snapshot})


def test_the_log_checks_catch_a_step_that_starts_too_early() -> None:
    def fetch_completed(line: dict[str, Any]) -> bool:
        return line["type"] == "task.completed" and line["stream_id"].endswith("/fetch")

    with _store_of(GOLDEN_RUN, skip=fetch_completed) as store:
        with pytest.raises(AssertionError, match=r"ingest-000002/parse started at \d+ before its dependency"):
            assert_dependencies_completed_first(store)
        with pytest.raises(AssertionError, match="causation"):  # parse's task.ready names the missing event
            assert_log_verifies(store)


def test_the_view_check_catches_a_lagging_or_wrong_view() -> None:
    with _store_of(GOLDEN_RUN) as store:
        earlier = state_at(store, position=12).tasks.snapshot  # a view that stopped at position 12
        assert_live_views_match_log(store, {"tasks": earlier}, caught_up=False)
        with pytest.raises(AssertionError, match="live tasks view lags the log"):
            assert_live_views_match_log(store, {"tasks": earlier})

        def wrong() -> dict[str, Any]:
            return dict(state_at(store, position=store.max_position()).tasks.snapshot(), stats={})

        with pytest.raises(AssertionError, match="live tasks view differs from the fold of the log up to 18"):
            assert_live_views_match_log(store, {"tasks": wrong}, caught_up=False)
        with pytest.raises(ValueError, match="unknown view name"):
            assert_live_views_match_log(store, {"task": earlier})
