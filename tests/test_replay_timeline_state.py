"""replay_tools.timeline and replay_tools.state over a real history: a session running
a successful and a failing workflow (one of them for a project), plus a task outside
any session. Timelines select, filter, order and link; states at the end equal the
live views, and states at earlier positions equal folds of the log's prefixes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import NotFoundError, ValidationError
from domain.events import Recorded
from engine.models import Task, WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry
from engine.store import EventStore, open_store
from projections import projects, resources, sessions, tasks, workflows
from replay_tools.history import History
from replay_tools.state import State, state_at, view_differences, views_equal
from replay_tools.timeline import Timeline, TimelineEntry, timeline


def _work(tag: str = "") -> str:
    return tag


def _boom() -> None:
    raise RuntimeError("step broke")


def _step(name: str, action: str = "work", deps: tuple[str, ...] = ()) -> WorkflowStep:
    params = {"tag": name} if action == "work" else {}
    return WorkflowStep(name=name, module="t", action=action, parameters=params, dependencies=list(deps), max_retries=0)


@dataclass
class Built:
    url: str
    store: EventStore
    session: str
    ok_run: str
    bad_run: str
    lone_task: str
    project: str
    live: dict[str, dict[str, object]]
    max_position: int


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    data = tmp_path_factory.mktemp("replay") / "data"
    registry = ActionRegistry()
    registry.register("t", "work", _work)
    registry.register("t", "boom", _boom)
    engine = OrchestrationEngine(config_file=None, data_dir=str(data), registry=registry, max_workers=2)
    try:
        wm = engine.workflow_manager
        wm.create_workflow("good", [_step("a"), _step("b", deps=("a",))], save=False)
        wm.create_workflow(
            "bad", [_step("a"), _step("bad", "boom", deps=("a",)), _step("c", deps=("bad",))], save=False
        )
        sid = engine.create_session("ann", max_parallel_tasks=2)
        ok = engine.execute_workflow("good", session_id=sid)
        assert ok["success"], ok
        engine.project_manager.create_project("proj")
        bad = engine.execute_project_workflow("proj", "bad", session_id=sid)
        assert not bad["success"]
        lone = engine.execute_task(Task(name="lone", module="t", action="work", parameters={"tag": "x"}, max_retries=0))
        assert lone["success"], lone
        engine.close_session(sid)
        engine.store.flush()
        live = {
            "tasks": engine.task_orchestrator.view.snapshot(),
            "workflows": engine.workflow_manager.view.snapshot(),
            "sessions": engine.sessions.snapshot(),
            "projects": engine.project_manager.view.snapshot(),
            "resources": engine.resource_manager.view.snapshot(),
        }
        url = engine.config.store_url
        ok_run, bad_run = ok["run_id"], bad["run_id"]
        lone_task = lone["task_id"]
    finally:
        engine.close()
    store = open_store(url)
    try:
        yield Built(url, store, sid, ok_run, bad_run, lone_task, "proj", live, store.max_position())
    finally:
        store.close()


# -- timeline ---------------------------------------------------------------------


def _ordered(tl: Timeline) -> None:
    positions = [e.position for e in tl]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_whole_store_timeline_is_the_log_in_order(built: Built) -> None:
    tl = timeline(built.url)
    assert [e.position for e in tl] == [r.position for r in built.store.read()]
    _ordered(tl)
    assert tl.entries[-1].position == built.max_position
    with History(built.store) as history:
        assert timeline(history) == tl
    assert timeline(built.store) == tl
    entry = tl.entries[0]
    assert isinstance(entry, TimelineEntry)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.actor = "mallory"  # type: ignore[misc]
    assert all(e.timestamp.tzinfo is not None for e in tl)


def test_run_timeline_has_the_run_and_its_steps(built: Built) -> None:
    tl = timeline(built.store, run=built.bad_run)
    _ordered(tl)
    kinds = {e.kind for e in tl}
    assert kinds == {"workflow_run", "task", "project"}  # the project's link is correlated with the run
    assert {e.type for e in tl if e.kind == "project"} == {"project.workflow_linked"}
    assert all(e.aggregate_id == built.bad_run or e.correlation_id == built.bad_run for e in tl)
    types = [e.type for e in tl]
    assert types[0] in ("workflow_run.created", "task.created")
    assert "workflow_run.failed" in types and "task.failed" in types and "task.skipped" in types
    created = tl.get(f"workflow_run:{built.bad_run}@1")
    assert created is not None and created.type == "workflow_run.created"
    assert f"workflow_run:{built.bad_run}@2" in created.caused  # the run's started by its created
    assert "workflow=bad" in created.summary and len(created.summary) <= 160
    # nothing of the other run or the lone task
    assert built.ok_run not in {e.aggregate_id for e in tl} | {e.correlation_id for e in tl}


def test_task_timeline_and_causation_links(built: Built) -> None:
    tl = timeline(built.url, task=built.lone_task)
    assert [e.type for e in tl] == ["task.created", "task.ready", "task.started", "task.completed"]
    assert [e.version for e in tl] == [1, 2, 3, 4]
    created, ready, started, completed = tl.entries
    assert started.causation_id == ready.event_id
    assert ready.caused == (started.event_id,)
    assert created.caused == (ready.event_id,)
    assert completed.causation_id == started.event_id and started.caused == (completed.event_id,)
    assert completed.caused == ()


def test_session_timeline_holds_its_runs_and_tasks(built: Built) -> None:
    tl = timeline(built.url, session=built.session)
    _ordered(tl)
    ids = {e.aggregate_id for e in tl}
    assert {built.session, built.ok_run, built.bad_run} <= ids
    assert built.lone_task not in ids  # executed outside the session
    assert {"session.created", "session.closed"} <= {e.type for e in tl}
    runs = set(timeline(built.url, run=built.ok_run).event_ids) | set(timeline(built.url, run=built.bad_run).event_ids)
    assert runs <= set(tl.event_ids)


def test_project_timeline_holds_its_stream_and_linked_runs(built: Built) -> None:
    tl = timeline(built.url, project=built.project)
    types = [e.type for e in tl]
    assert "project.created" in types and "project.workflow_linked" in types
    assert set(timeline(built.url, run=built.bad_run).event_ids) <= set(tl.event_ids)
    assert built.ok_run not in {e.aggregate_id for e in tl}


def test_filters(built: Built) -> None:
    everything = timeline(built.url)
    started = timeline(built.url, types=["task.started", "workflow_run.started"])
    assert {e.type for e in started} == {"task.started", "workflow_run.started"}
    assert len(started) == sum(1 for e in everything if e.type in ("task.started", "workflow_run.started"))
    ann = timeline(built.url, actor="ann")
    assert len(ann) > 0 and all(e.actor == "ann" for e in ann)
    assert len(ann) < len(everything)
    corr = timeline(built.url, correlation_id=built.ok_run)
    assert len(corr) > 0 and all(e.correlation_id == built.ok_run for e in corr)
    # time window: the middle entry's timestamp, inclusive both ends
    mid = everything.entries[len(everything) // 2].timestamp
    after = timeline(built.url, since=mid)
    before = timeline(built.url, until=mid)
    assert all(e.timestamp >= mid for e in after) and all(e.timestamp <= mid for e in before)
    assert len(after) + len(before) >= len(everything)
    window = timeline(built.url, run=built.bad_run, since=mid, until=mid)
    assert all(e.timestamp == mid for e in window)
    # filters combine with selection; links only among the entries kept
    only_task_started = timeline(built.url, task=built.lone_task, types=["task.started"])
    assert len(only_task_started) == 1 and only_task_started.entries[0].caused == ()


def test_errors(built: Built) -> None:
    for kw, noun in (("run", "workflow run"), ("task", "task"), ("session", "session"), ("project", "project")):
        with pytest.raises(NotFoundError, match=f"no {noun} 'ghost'"):
            timeline(built.url, **{kw: "ghost"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown event type"):
        timeline(built.url, types=["task.exploded"])
    with pytest.raises(ValidationError, match="timezone-aware"):
        timeline(built.url, since=datetime(2020, 1, 1))
    with pytest.raises(ValidationError):
        state_at(built.url)
    with pytest.raises(ValidationError):
        state_at(built.url, position=1, at=datetime.now(UTC))
    with pytest.raises(ValidationError, match="timezone-aware"):
        state_at(built.url, at=datetime(2020, 1, 1))
    with pytest.raises(ValidationError):
        state_at(built.url, position=-1)


# -- state_at ---------------------------------------------------------------------


def test_state_at_end_equals_the_live_views(built: Built) -> None:
    state = state_at(built.url, position=built.max_position)
    assert isinstance(state, State)
    assert state.position == built.max_position
    for name, snapshot in built.live.items():
        assert getattr(state, name).snapshot() == snapshot, name
    assert state.task_stats == state.tasks.stats()
    assert state.task_stats["failed"] == 1 and state.task_stats["skipped"] == 1
    assert state.workflow_summary["completed"] == 1 and state.workflow_summary["failed"] == 1
    assert state.workflow_summary["total"] == 2
    assert set(state.resource_usage) == set(state.resources.resources)
    for usage in state.resource_usage.values():
        assert {"capacity", "allocated", "utilization", "status"} <= set(usage)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.position = 0  # type: ignore[misc]


def _fold(store: EventStore, stop: int) -> dict[str, object]:
    def read() -> Iterator[Recorded]:
        return store.read(stop=stop)  # stop=0: nothing

    return {
        "tasks": tasks.fold(read()).snapshot(),
        "workflows": workflows.fold(read()).snapshot(),
        "sessions": sessions.fold(read()).snapshot(),
        "projects": projects.fold(read()).snapshot(),
        "resources": resources.fold(read()).snapshot(),
    }


def test_state_at_position_equals_folds_of_the_prefix(built: Built) -> None:
    top = built.max_position
    for p in sorted({0, 1, 2, top // 3, top // 2, top - 1, top}):
        state = state_at(built.store, position=p)
        assert state.position == p
        expected = _fold(built.store, p)
        assert {n: getattr(state, n).snapshot() for n in expected} == expected, p
    assert views_equal(state_at(built.url, position=top), state_at(built.store, position=top))
    early, late = state_at(built.url, position=top // 2), state_at(built.url, position=top)
    assert not views_equal(early, late)
    assert "tasks" in view_differences(early, late)
    assert views_equal(early.tasks, early.tasks) and not views_equal(early.tasks, late.tasks)


def test_state_at_timestamp_picks_the_last_event_at_or_before(built: Built) -> None:
    log = list(built.store.read())
    probe = log[len(log) // 2]
    state = state_at(built.url, at=probe.event.timestamp)
    last_at_or_before = max(r.position for r in log if r.event.timestamp <= probe.event.timestamp)
    assert state.position == last_at_or_before >= probe.position
    assert state.timestamp is not None and state.timestamp <= probe.event.timestamp
    assert views_equal(state, state_at(built.url, position=last_at_or_before))
    assert state_at(built.url, at=log[0].event.timestamp - timedelta(days=1)).position == 0
    assert state_at(built.url, at=log[-1].event.timestamp + timedelta(days=1)).position == log[-1].position
    empty = state_at(built.url, position=0)
    assert empty.timestamp is None and empty.task_stats["total_tasks"] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_state_at_tasks_equals_the_task_fold_of_the_prefix(built: Built, data: st.DataObject) -> None:
    p = data.draw(st.integers(min_value=0, max_value=built.max_position))
    state = state_at(built.store, position=p)
    expected = tasks.fold(built.store.read(stop=p)).snapshot()
    assert state.tasks.snapshot() == expected
