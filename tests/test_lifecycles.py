"""The lifecycle tables and the ``Lifecycle`` decider built from them.

Every expectation here is generated from the module-level tables (``TASK_TRANSITIONS``
...), so adding a row, a trigger or a state makes the parametrized tests grow with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import pytest

from domain.enums import (
    AllocationStatus,
    LeaseStatus,
    ProjectStatus,
    ResourceStatus,
    SessionStatus,
    TaskStatus,
    WorkflowStatus,
)
from domain.errors import IllegalTransitionError, OrchestrationError
from domain.lifecycles import (
    ALLOCATION,
    ALLOCATION_TRANSITIONS,
    LEASE_TRANSITIONS,
    LIFECYCLES,
    PROJECT,
    PROJECT_TRANSITIONS,
    RESOURCE,
    RESOURCE_TRANSITIONS,
    SESSION,
    SESSION_TRANSITIONS,
    TASK,
    TASK_TRANSITIONS,
    WORKFLOW_RUN,
    WORKFLOW_RUN_TRANSITIONS,
    Lifecycle,
)

Row = tuple[str, Sequence[Any], Any]

TABLES: dict[str, tuple[Row, ...]] = {
    "task": TASK_TRANSITIONS,
    "session": SESSION_TRANSITIONS,
    "workflow_run": WORKFLOW_RUN_TRANSITIONS,
    "project": PROJECT_TRANSITIONS,
    "resource": RESOURCE_TRANSITIONS,
    "allocation": ALLOCATION_TRANSITIONS,
    "lease": LEASE_TRANSITIONS,
}

STATES: dict[str, type[Enum]] = {
    "task": TaskStatus,
    "session": SessionStatus,
    "workflow_run": WorkflowStatus,
    "project": ProjectStatus,
    "resource": ResourceStatus,
    "allocation": AllocationStatus,
    "lease": LeaseStatus,
}

INITIAL: dict[str, Enum] = {
    "task": TaskStatus.PENDING,
    "session": SessionStatus.PENDING,
    "workflow_run": WorkflowStatus.PENDING,
    "project": ProjectStatus.PLANNING,
    "resource": ResourceStatus.AVAILABLE,
    "allocation": AllocationStatus.PENDING,
    "lease": LeaseStatus.ACTIVE,
}

FINAL: dict[str, frozenset[Any]] = {
    "task": frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED}),
    "session": frozenset({SessionStatus.COMPLETED, SessionStatus.CANCELLED, SessionStatus.FAILED}),
    "workflow_run": frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}),
    "project": frozenset({ProjectStatus.ARCHIVED}),
    "resource": frozenset(),
    "allocation": frozenset(
        {
            AllocationStatus.RELEASED,
            AllocationStatus.EXPIRED,
            AllocationStatus.REJECTED,
            AllocationStatus.REVOKED,
        }
    ),
    "lease": frozenset({LeaseStatus.TAKEN_OVER}),
}

NOT_A_TRIGGER = "no_such_trigger"


def _table_triggers(name: str) -> list[str]:
    seen: list[str] = []
    for trigger, _sources, _dest in TABLES[name]:
        if trigger not in seen:
            seen.append(trigger)
    return seen


def _table_edges(name: str) -> list[tuple[Any, str, Any]]:
    return [(source, trigger, dest) for trigger, sources, dest in TABLES[name] for source in sources]


def _legal_map(name: str) -> dict[tuple[Any, str], Any]:
    return {(source, trigger): dest for source, trigger, dest in _table_edges(name)}


LEGAL_CASES = [
    pytest.param(name, source, trigger, dest, id=f"{name}-{source.name}-{trigger}")
    for name in TABLES
    for source, trigger, dest in _table_edges(name)
]

ILLEGAL_CASES = [
    pytest.param(name, state, trigger, id=f"{name}-{state.name}-{trigger}")
    for name in TABLES
    for state in STATES[name]
    for trigger in [*_table_triggers(name), NOT_A_TRIGGER]
    if (state, trigger) not in _legal_map(name)
]

NAMES = [pytest.param(name, id=name) for name in TABLES]


# -- the registry of lifecycles ---------------------------------------------------------


def test_lifecycles_registry_covers_every_table() -> None:
    assert set(LIFECYCLES) == set(TABLES)
    assert LIFECYCLES["task"] is TASK
    assert LIFECYCLES["session"] is SESSION
    assert LIFECYCLES["workflow_run"] is WORKFLOW_RUN
    assert LIFECYCLES["project"] is PROJECT
    assert LIFECYCLES["resource"] is RESOURCE
    assert LIFECYCLES["allocation"] is ALLOCATION


@pytest.mark.parametrize("name", NAMES)
def test_lifecycle_metadata(name: str) -> None:
    lc = LIFECYCLES[name]
    assert lc.name == name
    assert lc.states is STATES[name]
    assert lc.initial is INITIAL[name]
    assert lc.final == FINAL[name]
    assert lc.triggers == frozenset(_table_triggers(name))


def test_cases_are_not_empty() -> None:
    # Guards the parametrization itself: an empty table would make the tests vacuous.
    assert len(LEGAL_CASES) == sum(len(_table_edges(name)) for name in TABLES)
    assert len(LEGAL_CASES) > 40
    assert len(ILLEGAL_CASES) > 100


@pytest.mark.parametrize("name", NAMES)
def test_table_rows_use_only_the_lifecycle_states(name: str) -> None:
    states = STATES[name]
    for trigger, sources, dest in TABLES[name]:
        assert isinstance(trigger, str)
        assert trigger
        assert isinstance(dest, states)
        assert sources
        assert all(isinstance(source, states) for source in sources)
        assert len(set(sources)) == len(sources)


# -- decide: every legal pair and every illegal one -------------------------------------


@pytest.mark.parametrize(("name", "source", "trigger", "dest"), LEGAL_CASES)
def test_legal_transition_decides_to_table_destination(name: str, source: Enum, trigger: str, dest: Enum) -> None:
    lc = LIFECYCLES[name]
    assert lc.decide(source, trigger) is dest
    assert lc.decide(source, trigger, "agg-1") is dest
    assert lc.can(source, trigger) is True
    assert trigger in lc.legal_triggers(source)
    assert lc.is_legal_change(source, dest) is True


@pytest.mark.parametrize(("name", "state", "trigger"), ILLEGAL_CASES)
def test_illegal_transition_raises(name: str, state: Enum, trigger: str) -> None:
    lc = LIFECYCLES[name]
    with pytest.raises(IllegalTransitionError) as info:
        lc.decide(state, trigger, "agg-7")
    err = info.value
    assert isinstance(err, OrchestrationError)
    assert err.lifecycle == name
    assert err.state == state.value
    assert err.trigger == trigger
    assert err.error_code == "ILLEGAL_TRANSITION"
    assert err.details == {"lifecycle": name, "state": state.value, "trigger": trigger, "aggregate_id": "agg-7"}
    assert f"'{trigger}'" in err.message
    assert f"'{state.value}'" in err.message
    assert err.message.startswith(f"{name} agg-7:")


@pytest.mark.parametrize(("name", "state", "trigger"), ILLEGAL_CASES)
def test_illegal_question_does_not_become_legal(name: str, state: Enum, trigger: str) -> None:
    lc = LIFECYCLES[name]
    before = list(lc.machine.get_triggers(state.name))
    assert trigger not in before
    for _ in range(2):
        with pytest.raises(IllegalTransitionError):
            lc.decide(state, trigger)
        assert lc.can(state, trigger) is False
        assert trigger not in lc.legal_triggers(state)
    assert list(lc.machine.get_triggers(state.name)) == before
    if trigger in lc.machine.events:
        assert state.name not in lc.machine.events[trigger].transitions


def test_machine_lookup_hazard_is_detectable() -> None:
    """The check above can fail: a plain ``[S]`` lookup on the machine's defaultdict
    (the mistake the module avoids) makes an illegal trigger look legal."""
    fresh = Lifecycle(
        "task",
        TaskStatus,
        TASK_TRANSITIONS,
        initial=TaskStatus.PENDING,
        final=FINAL["task"],
    )
    assert "start" not in fresh.machine.get_triggers(TaskStatus.COMPLETED.name)
    _ = fresh.machine.events["start"].transitions[TaskStatus.COMPLETED.name]
    assert "start" in fresh.machine.get_triggers(TaskStatus.COMPLETED.name)
    # The decider answers from its own precomputed table and stays correct.
    assert fresh.can(TaskStatus.COMPLETED, "start") is False


@pytest.mark.parametrize("name", NAMES)
def test_illegal_transition_without_aggregate_id(name: str) -> None:
    lc = LIFECYCLES[name]
    state = next(iter(STATES[name]))
    with pytest.raises(IllegalTransitionError) as info:
        lc.decide(state, NOT_A_TRIGGER)
    assert info.value.message.startswith(f"{name}: trigger '{NOT_A_TRIGGER}'")
    assert info.value.details["aggregate_id"] == ""


# -- queries: can, legal_triggers, edges, is_legal_change, is_final --------------------


@pytest.mark.parametrize("name", NAMES)
def test_can_matches_table_over_all_pairs(name: str) -> None:
    lc = LIFECYCLES[name]
    legal = _legal_map(name)
    for state in STATES[name]:
        for trigger in [*_table_triggers(name), NOT_A_TRIGGER]:
            assert lc.can(state, trigger) is ((state, trigger) in legal), (state, trigger)


@pytest.mark.parametrize("name", NAMES)
def test_legal_triggers_match_table(name: str) -> None:
    lc = LIFECYCLES[name]
    for state in STATES[name]:
        expected = frozenset(t for t, sources, _d in TABLES[name] if state in sources)
        assert lc.legal_triggers(state) == expected, state


@pytest.mark.parametrize("name", NAMES)
def test_edges_equal_table_rows_in_order(name: str) -> None:
    assert LIFECYCLES[name].edges() == _table_edges(name)


@pytest.mark.parametrize("name", NAMES)
def test_is_legal_change_over_all_state_pairs(name: str) -> None:
    lc = LIFECYCLES[name]
    changes = {(source, dest) for source, _t, dest in _table_edges(name)}
    for source in STATES[name]:
        for dest in STATES[name]:
            assert lc.is_legal_change(source, dest) is ((source, dest) in changes), (source, dest)


@pytest.mark.parametrize("name", NAMES)
def test_is_final(name: str) -> None:
    lc = LIFECYCLES[name]
    for state in STATES[name]:
        assert lc.is_final(state) is (state in FINAL[name])


@pytest.mark.parametrize("name", NAMES)
def test_final_states_have_only_the_triggers_the_table_gives_them(name: str) -> None:
    lc = LIFECYCLES[name]
    for state in lc.final:
        from_table = {t for t, sources, _d in TABLES[name] if state in sources}
        assert lc.legal_triggers(state) == from_table
        for trigger in _table_triggers(name):
            if trigger not in from_table:
                with pytest.raises(IllegalTransitionError):
                    lc.decide(state, trigger)


@pytest.mark.parametrize("name", ["task", "session", "workflow_run", "allocation", "project"])
def test_final_states_are_dead_ends(name: str) -> None:
    # None of these tables has a row leaving a final state.
    lc = LIFECYCLES[name]
    assert lc.final
    for state in lc.final:
        assert lc.legal_triggers(state) == frozenset()


@pytest.mark.parametrize("name", NAMES)
def test_only_final_states_are_dead_ends(name: str) -> None:
    lc = LIFECYCLES[name]
    for state in STATES[name]:
        if not lc.is_final(state):
            assert lc.legal_triggers(state), f"{name}: non-final state {state} has no way out"


@pytest.mark.parametrize("name", NAMES)
def test_every_state_is_reachable_from_initial(name: str) -> None:
    lc = LIFECYCLES[name]
    seen = {lc.initial}
    frontier = [lc.initial]
    while frontier:
        state = frontier.pop()
        for trigger in lc.legal_triggers(state):
            dest = lc.decide(state, trigger)
            if dest not in seen:
                seen.add(dest)
                frontier.append(dest)
    assert seen == set(STATES[name])


# -- mermaid ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_mermaid_draws_every_edge(name: str) -> None:
    lc = LIFECYCLES[name]
    text = lc.mermaid()
    lines = text.split("\n")
    assert lines[0] == "stateDiagram-v2"
    assert lines[1] == f"    [*] --> {INITIAL[name].name}"
    edge_lines = [f"    {s.name} --> {d.name}: {t}" for s, t, d in _table_edges(name)]
    final_lines = [f"    {state.name} --> [*]" for state in STATES[name] if state in FINAL[name]]
    for line in edge_lines + final_lines:
        assert line in lines
    assert lines == ["stateDiagram-v2", f"    [*] --> {INITIAL[name].name}", *edge_lines, *final_lines]


def test_task_mermaid_snippet() -> None:
    text = TASK.mermaid()
    assert "    RUNNING --> READY: retry" in text
    assert "    SKIPPED --> [*]" in text
    assert "ARCHIVED" not in text


# -- the task lifecycle decisions documented in the module docstring --------------------


def _sources(lc: Lifecycle[Any], trigger: str) -> set[Any]:
    return {state for state in lc.states if lc.can(state, trigger)}


def test_task_ready_only_from_pending() -> None:
    assert _sources(TASK, "ready") == {TaskStatus.PENDING}
    assert TASK.decide(TaskStatus.PENDING, "ready") is TaskStatus.READY


def test_task_start_only_from_ready() -> None:
    assert _sources(TASK, "start") == {TaskStatus.READY}
    assert TASK.decide(TaskStatus.READY, "start") is TaskStatus.RUNNING


def test_task_retry_goes_running_to_ready() -> None:
    assert _sources(TASK, "retry") == {TaskStatus.RUNNING}
    assert TASK.decide(TaskStatus.RUNNING, "retry") is TaskStatus.READY


def test_task_complete_and_fail_only_from_running() -> None:
    assert _sources(TASK, "complete") == {TaskStatus.RUNNING}
    assert _sources(TASK, "fail") == {TaskStatus.RUNNING}
    assert TASK.decide(TaskStatus.RUNNING, "complete") is TaskStatus.COMPLETED
    assert TASK.decide(TaskStatus.RUNNING, "fail") is TaskStatus.FAILED


def test_task_skip_only_from_pending_or_ready() -> None:
    assert _sources(TASK, "skip") == {TaskStatus.PENDING, TaskStatus.READY}
    for state in (TaskStatus.PENDING, TaskStatus.READY):
        assert TASK.decide(state, "skip") is TaskStatus.SKIPPED
    with pytest.raises(IllegalTransitionError):
        TASK.decide(TaskStatus.RUNNING, "skip")


def test_task_cancel_from_pending_ready_running() -> None:
    assert _sources(TASK, "cancel") == {TaskStatus.PENDING, TaskStatus.READY, TaskStatus.RUNNING}
    for state in (TaskStatus.PENDING, TaskStatus.READY, TaskStatus.RUNNING):
        assert TASK.decide(state, "cancel") is TaskStatus.CANCELLED


def test_task_final_states() -> None:
    assert {s for s in TaskStatus if TASK.is_final(s)} == {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.SKIPPED,
    }
    for state in TASK.final:
        assert TASK.legal_triggers(state) == frozenset()


def test_resource_self_loops() -> None:
    assert RESOURCE.decide(ResourceStatus.IN_USE, "allocate") is ResourceStatus.IN_USE
    assert RESOURCE.decide(ResourceStatus.IN_USE, "release_some") is ResourceStatus.IN_USE
    assert RESOURCE.is_legal_change(ResourceStatus.IN_USE, ResourceStatus.IN_USE) is True
    assert RESOURCE.is_legal_change(ResourceStatus.AVAILABLE, ResourceStatus.AVAILABLE) is False


def test_project_archive_leaves_completed_and_failed() -> None:
    # COMPLETED and FAILED are not final for projects: they can still be archived.
    for state in (ProjectStatus.COMPLETED, ProjectStatus.FAILED):
        assert not PROJECT.is_final(state)
        assert PROJECT.legal_triggers(state) == frozenset({"archive"})
        assert PROJECT.decide(state, "archive") is ProjectStatus.ARCHIVED
