"""The replay tools' fast paths give exactly what their plain definitions give.

The log is the benchmark's generated one (``bench/replay_big.py``, 20,000 events:
workflow runs with retries, failures that skip dependents, cancelled runs with late
results, sessions, a redefinition), plus a project linking one of its runs. Each
reference below is the straightforward definition: every view applied to every event;
the whole log read, then selected, filtered and linked; one ``_Line`` per event encoded
with ``codec.encode``; every upcast type decoded through its upcasters.
"""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain import project as project_domain
from domain.enums import WorkflowStatus
from domain.events import EventMeta, Recorded, upcasters_for
from domain.project import ProjectWorkflowLinked
from domain.task import TaskCreated
from domain.workflow import WorkflowRunCreated
from engine.store import EventStore, open_store
from projections import projects, resources, sessions, tasks, workflows
from replay_tools.exchange import FORMAT, FORMAT_VERSION, _Line, export_events
from replay_tools.history import gc_paused
from replay_tools.state import state_at, views_equal
from replay_tools.timeline import Timeline, TimelineEntry, timeline

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import replay_big  # noqa: E402 -- the generator lives with the benchmark

EVENTS = 20_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    path = tmp_path_factory.mktemp("fast-paths") / "events.db"
    meta = replay_big.build_log(path, EVENTS)
    s = open_store(f"sqlite:///{path}")
    try:
        run_id = meta["sample_run"]
        run = next(r.event for r in s.read(types=[WorkflowRunCreated.TYPE]) if r.event.aggregate_id == run_id)
        assert isinstance(run, WorkflowRunCreated)
        when = run.timestamp + timedelta(seconds=1)
        created = project_domain.create("proj", EventMeta(timestamp=when, actor="ana"), path="/srv/proj")
        state = project_domain.evolve(None, created)
        linked = project_domain.link_workflow(
            state,
            EventMeta(timestamp=when, actor="ana", causation_id=created.event_id),
            workflow=run.workflow,
            run_id=run_id,
            outcome=WorkflowStatus.COMPLETED,
            duration=1.0,
        )
        s.append([created, linked])
        yield s
    finally:
        s.close()


def _some(store: EventStore, event_type: type[Any], count: int) -> list[Any]:
    found = [r.event for r in store.read(types=[event_type.TYPE])]
    step = max(1, len(found) // count)
    return found[::step][:count]


# -- references ------------------------------------------------------------------------


def _reference_views(store: EventStore, position: int) -> dict[str, Any]:
    views = {
        "tasks": tasks.TaskView(),
        "workflows": workflows.WorkflowView(),
        "sessions": sessions.SessionView(),
        "projects": projects.ProjectView(),
        "resources": resources.ResourceView(),
    }
    modules = {"tasks": tasks, "workflows": workflows, "sessions": sessions, "projects": projects}
    modules["resources"] = resources
    for recorded in store.read(stop=position):
        for name, view in views.items():
            modules[name].apply(view, recorded)  # type: ignore[attr-defined]
    return views


def _reference_timeline(store: EventStore, **kw: Any) -> Timeline:
    """The plain definition (the module docstring of replay_tools.timeline)."""
    recorded = list(store.read())
    run, task, session, project = (kw.get(k) for k in ("run", "task", "session", "project"))
    selected = recorded
    if run or task or session or project:
        streams: set[str] = set()
        correlations: set[str] = set()
        if task:
            streams.add(f"task:{task}")
        if run:
            streams.add(f"workflow_run:{run}")
            correlations.add(run)
        if session:
            streams.add(f"session:{session}")
            correlations.add(session)
            for r in recorded:
                e = r.event
                if isinstance(e, TaskCreated) and e.group == session:
                    streams.add(e.stream_id)
                elif isinstance(e, WorkflowRunCreated) and e.session_id == session:
                    streams.add(e.stream_id)
                    correlations.add(e.aggregate_id)
        if project:
            streams.add(f"project:{project}")
            for r in recorded:
                e = r.event
                if isinstance(e, ProjectWorkflowLinked) and e.aggregate_id == project:
                    streams.add(f"workflow_run:{e.run_id}")
                    correlations.add(e.run_id)
        selected = [r for r in recorded if r.event.stream_id in streams or r.event.correlation_id in correlations]
    types = frozenset(kw.get("types", ()))
    actor, corr, since, until = (kw.get(k) for k in ("actor", "correlation_id", "since", "until"))
    kept = [
        r
        for r in selected
        if (not types or r.event.type in types)
        and (actor is None or r.event.actor == actor)
        and (corr is None or r.event.correlation_id == corr)
        and (since is None or r.event.timestamp >= since)
        and (until is None or r.event.timestamp <= until)
    ]
    caused: dict[str, list[str]] = {}
    for r in kept:
        if r.event.causation_id:
            caused.setdefault(r.event.causation_id, []).append(r.event.event_id)
    return Timeline(tuple(_reference_entry(r, tuple(caused.get(r.event.event_id, ()))) for r in kept))


def _reference_entry(r: Recorded, caused: tuple[str, ...]) -> TimelineEntry:
    e = r.event
    parts = []
    for name in e.__struct_fields__:
        if name in ("aggregate_id", "version", "timestamp", "actor", "correlation_id", "causation_id", "schema"):
            continue
        raw = getattr(e, name)
        if raw is None or (isinstance(raw, str | list | dict) and not raw):  # empty fields are left out
            continue
        value = msgspec.to_builtins(raw)
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        text = " ".join(text.split())
        parts.append(f"{name}={text if len(text) <= 40 else text[:39] + '…'}")
    line = " ".join(parts)
    return TimelineEntry(
        position=r.position,
        event_id=e.event_id,
        type=e.type,
        kind=e.KIND,
        aggregate_id=e.aggregate_id,
        version=e.version,
        timestamp=e.timestamp,
        actor=e.actor,
        correlation_id=e.correlation_id,
        causation_id=e.causation_id,
        caused=caused,
        summary=line if len(line) <= 160 else line[:159] + "…",
    )


# -- state_at ----------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.37, 0.5, 1.0])
def test_state_at_equals_every_view_applied_to_every_event(store: EventStore, fraction: float) -> None:
    position = int(store.max_position() * fraction)
    state = state_at(store, position=position)
    reference = _reference_views(store, position)
    for name, view in reference.items():
        assert views_equal(getattr(state, name), view), name
    assert state.position == position
    assert state.task_stats == reference["tasks"].stats()


# -- timeline ----------------------------------------------------------------------------


def _selections(store: EventStore) -> list[dict[str, Any]]:
    runs = _some(store, WorkflowRunCreated, 3)
    failed = [r.event.aggregate_id for r in store.read(types=["workflow_run.failed", "workflow_run.cancelled"])]
    in_session = next(r for r in runs if r.session_id)
    session = in_session.session_id
    task_ids = [t.aggregate_id for t in _some(store, TaskCreated, 2)]
    mid = runs[1].timestamp
    return [
        {},
        {"run": runs[0].aggregate_id},
        {"run": failed[0]},
        {"run": failed[-1], "task": task_ids[0]},
        {"task": task_ids[1]},
        {"session": session},
        {"project": "proj"},
        {"project": "proj", "types": ["task.started", "workflow_run.created", "project.workflow_linked"]},
        {"types": ["task.retry_scheduled", "task.late_result_discarded", "task.cancelled"]},
        {"actor": "system", "since": mid},
        {"session": session, "until": in_session.timestamp, "correlation_id": in_session.aggregate_id},
        {"correlation_id": failed[0], "types": ["task.failed", "task.skipped"]},
    ]


def test_timeline_equals_its_plain_definition(store: EventStore) -> None:
    for selection in _selections(store):
        got = timeline(store, **selection)
        want = _reference_timeline(store, **selection)
        assert got == want, selection
        assert len(got) > 0, selection


def test_generated_log_has_every_task_outcome(store: EventStore) -> None:
    """The log the fast paths are checked on holds every kind of task event."""
    types = {r.event.type for r in store.read()}
    for name in ("task.retry_scheduled", "task.failed", "task.skipped", "task.cancelled", "task.late_result_discarded"):
        assert name in types


def test_timeline_unknown_ids_still_raise(store: EventStore) -> None:
    from domain.errors import NotFoundError

    for kw in ({"run": "ghost"}, {"task": "ghost"}, {"session": "ghost"}, {"project": "ghost"}):
        with pytest.raises(NotFoundError):
            timeline(store, **kw)


# -- export ------------------------------------------------------------------------------


def test_export_lines_are_the_msgspec_lines(store: EventStore, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    summary = export_events(store, out)
    encoder = msgspec.json.Encoder()
    want = []
    counts: dict[str, int] = {}
    for recorded in store.read():
        e = recorded.event
        line = _Line(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            position=recorded.position,
            type=e.type,
            schema=e.schema,
            stream_id=e.stream_id,
            event=msgspec.Raw(store.codec.encode(e)),
        )
        want.append(encoder.encode(line) + b"\n")
        counts[e.type] = counts.get(e.type, 0) + 1
    assert out.read_bytes() == b"".join(want)
    assert summary.events == len(want) and dict(summary.types) == counts
    text = io.StringIO()
    assert export_events(store, text) == summary
    assert text.getvalue().encode() == out.read_bytes()


def test_export_line_of_an_awkward_stream_id(tmp_path: Path) -> None:
    """Stream ids are JSON-escaped in the line as msgspec would."""
    from domain import task as T

    meta = EventMeta(timestamp=datetime(2026, 1, 1).astimezone(), actor='a "quoted"\tactor')
    created = T.create('t "1"\\ü\n', meta, name="n", module="m", action="a", parameters={"x": [1.5, None, "ü"]})
    with open_store("memory://") as s:
        s.append([created])
        out = io.StringIO()
        export_events(s, out)
        line = _Line(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            position=1,
            type=created.type,
            schema=created.schema,
            stream_id=created.stream_id,
            event=msgspec.Raw(s.codec.encode(created)),
        )
        assert out.getvalue() == msgspec.json.encode(line).decode() + "\n"


# -- codec -------------------------------------------------------------------------------


def test_decode_and_encode_decoded_equal_the_plain_paths(store: EventStore) -> None:
    codec = store.codec
    rows = store.recorder.select_rows(1, EVENTS, None, ())  # type: ignore[attr-defined]
    upcast_rows = 0
    for _, topic, state in rows:
        event = codec.decode(topic, state)
        if upcasters_for(topic):
            upcast_rows += 1
            assert event == codec._decode_upcast(topic, type(event), state)
        assert codec.encode_decoded(event) == codec.encode(event)
    assert upcast_rows > 0


# -- gc_paused ---------------------------------------------------------------------------


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("inside")
    assert gc.isenabled()
