"""The public testing module, used exactly as a user would: a machine over two small
actions of their own (one fails for some inputs), the strategies on their own, and a
deliberately broken projection that the invariants must catch."""

from __future__ import annotations

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
from projections import tasks as task_projection
from replay_tools.testing import EngineStateMachine, dag_workflows, event_histories, tasks

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
