"""Property tests of the replay tools on random engine histories.

Histories come from :mod:`replay_tools.testing`: an :class:`EngineStateMachine` running
random tasks and DAG workflows of scripted actions (failures, retries, data passed
between steps) in a session, and :func:`event_histories` (task graphs with
dependencies and cancellations). On each history:

- ``state_at`` the end equals the live views;
- ``state_at`` a position equals the fold of the events up to it, folded separately
  view by view with the projections' own ``fold``; ``state_at`` a time equals the fold
  of the log up to its last event stamped at or before that time;
- exporting the whole store and importing it into an empty store gives the same events
  at the same positions, the same views and the same export; exporting a run and
  importing it into an empty store gives the same run, step tasks and session;
- the timeline of the whole store lists exactly the log's events, in order, with the
  causation links the log implies.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from domain.events import Recorded
from engine.registry import ActionRegistry
from engine.store import EventStore, open_store
from projections import projects, resources, sessions, workflows
from projections import tasks as task_views
from replay_tools.exchange import export_events, import_events
from replay_tools.state import State, state_at
from replay_tools.testing import (
    EngineStateMachine,
    ScriptedAction,
    assert_log_verifies,
    dag_workflows,
    event_histories,
    outcome_scripts,
    tasks,
)
from replay_tools.timeline import timeline

FOLDS: dict[str, Callable[[Sequence[Recorded]], Any]] = {
    "tasks": task_views.fold,
    "workflows": workflows.fold,
    "sessions": sessions.fold,
    "projects": projects.fold,
    "resources": resources.fold,
}
MS = timedelta(milliseconds=1)
ENTRY_FIELDS = (
    "position",  # the rest are the event's own
    "event_id",
    "type",
    "aggregate_id",
    "version",
    "timestamp",
    "actor",
    "correlation_id",
    "causation_id",
)


def folded(events: Sequence[Recorded]) -> dict[str, dict[str, Any]]:
    """Every view of ``events``, each folded on its own."""
    return {name: fold(events).snapshot() for name, fold in FOLDS.items()}


def views_of(state: State) -> dict[str, dict[str, Any]]:
    return {name: getattr(state, name).snapshot() for name in FOLDS}


# -- the properties, on one store and its log ---------------------------------------------


def check_prefix(store: EventStore, log: Sequence[Recorded], n: int) -> None:
    """``state_at`` the position of the n-th event == the fold of the first n events."""
    stop = log[n - 1].position if n else 0
    state = state_at(store, position=stop)
    assert (state.position, state.timestamp) == ((stop, log[n - 1].event.timestamp) if n else (0, None))
    assert views_of(state) == folded(log[:n]), f"state_at(position={stop}) differs from the fold of {n} events"


def check_time(store: EventStore, log: Sequence[Recorded], at: datetime) -> None:
    """``state_at(at=...)`` == the fold of the log up to its last event stamped at or
    before ``at`` (events stamped later but logged before it included)."""
    last = max((i for i, r in enumerate(log) if r.event.timestamp <= at), default=-1)
    prefix = log[: last + 1]
    state = state_at(store, at=at)
    assert state.position == (prefix[-1].position if prefix else 0), f"state_at(at={at.isoformat()})"
    assert views_of(state) == folded(prefix), f"state_at(at={at.isoformat()}) differs from the fold of {len(prefix)}"


def check_timeline(store: EventStore, log: Sequence[Recorded]) -> None:
    """The whole store's timeline is the log: same events, same order, and each
    entry's ``caused`` the ids of the events whose causation id is its id."""

    entries = list(timeline(store))
    got = [tuple(getattr(e, f) for f in ENTRY_FIELDS) for e in entries]
    want = [(r.position, *(getattr(r.event, f) for f in ENTRY_FIELDS[1:])) for r in log]
    assert got == want
    assert [e.kind for e in entries] == [r.event.KIND for r in log]
    for entry in entries:
        caused = tuple(r.event.event_id for r in log if r.event.causation_id == entry.event_id)
        assert entry.caused == caused, f"caused of {entry.event_id}"


def check_round_trip(store: EventStore, log: Sequence[Recorded]) -> None:
    """Export the whole store, import it into an empty one: the same log and views,
    and exporting the copy writes the same file."""
    exported = io.StringIO()
    summary = export_events(store, exported)
    assert summary.events == len(log)
    with open_store("memory://") as copy:
        imported = import_events(copy, io.StringIO(exported.getvalue()))
        assert imported.events == len(log)
        again = list(copy.read())
        assert [r.event for r in again] == [r.event for r in log]
        # an empty memory store numbers the events 1..n, as the source did
        assert [r.position for r in again] == [r.position for r in log] == list(range(1, len(log) + 1))
        end = log[-1].position if log else 0
        assert views_of(state_at(copy, position=end)) == views_of(state_at(store, position=end))
        second = io.StringIO()
        export_events(copy, second)
        assert second.getvalue() == exported.getvalue()


def check_run_export(store: EventStore, run_id: str) -> None:
    """Export one run, import it into an empty store: the run, its step tasks and its
    session look exactly as in the source, and the copy verifies."""
    exported = io.StringIO()
    export_events(store, exported, run_id=run_id)
    source = state_at(store, position=store.max_position())
    with open_store("memory://") as copy:
        import_events(copy, io.StringIO(exported.getvalue()))
        target = state_at(copy, position=copy.max_position())
        run = source.workflows.runs[run_id]
        assert target.workflows.runs[run_id] == run
        for task_id in run.step_tasks.values():
            assert target.tasks.tasks[task_id] == source.tasks.tasks[task_id], task_id
        if run.session_id:
            assert target.sessions.sessions[run.session_id] == source.sessions.sessions[run.session_id]
        assert_log_verifies(copy)


# -- random engine histories ----------------------------------------------------------------

SCRIPTED = st.fixed_dictionaries({"key": st.uuids().map(lambda u: u.hex), "outcomes": outcome_scripts()})


class ReplayMachine(EngineStateMachine):
    """Tasks and workflows of a scripted action in one session; the base checks verify,
    every run ends, live == fold and dependency order after each step; this adds the
    replay tools' properties."""

    def setup_registry(self, registry: ActionRegistry) -> None:
        registry.register("replay", "scripted", ScriptedAction())

    def task_strategy(self) -> Any:
        return tasks("replay", "scripted", SCRIPTED)

    def workflow_strategy(self) -> Any:
        return dag_workflows(st.just(("replay", "scripted", SCRIPTED, "payload")), max_steps=5)

    def _log(self) -> list[Recorded]:
        self.engine.store.flush()
        return list(self.engine.store.read())

    @invariant()
    def state_at_the_end_is_the_live_views(self) -> None:
        store = self.engine.store
        store.flush()
        live = {name: read() for name, read in self.live_views().items()}
        assert views_of(state_at(store, position=store.max_position())) == live

    @invariant()
    def timeline_is_the_log(self) -> None:
        check_timeline(self.engine.store, self._log())

    @invariant()
    def export_and_import_round_trip(self) -> None:
        check_round_trip(self.engine.store, self._log())

    @invariant()
    def the_latest_run_exports_alone(self) -> None:
        runs = [r.event.aggregate_id for r in self.engine.store.read(types=["workflow_run.created"])]
        if runs:
            check_run_export(self.engine.store, runs[-1])

    @precondition(lambda self: self.engine.store.max_position() > 0)
    @rule(data=st.data())
    def replay_a_prefix_and_a_time(self, data: st.DataObject) -> None:
        log = self._log()
        check_prefix(self.engine.store, log, data.draw(st.integers(0, len(log)), label="events"))
        stamp = log[data.draw(st.integers(0, len(log) - 1), label="stamp of event")].event.timestamp
        check_time(self.engine.store, log, stamp + data.draw(st.sampled_from([-MS, 0 * MS, MS]), label="offset"))


ReplayMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestReplayOnEngineHistories = ReplayMachine.TestCase


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=event_histories(max_tasks=4))
def test_every_prefix_and_time_of_a_task_history(history: list[Recorded]) -> None:
    with open_store("memory://") as store:
        for recorded in history:
            store.append([recorded.event])
        log = list(store.read())
        assert [r.event for r in log] == [r.event for r in history]
        for n in range(len(log) + 1):
            check_prefix(store, log, n)
        stamps = sorted({r.event.timestamp for r in log})
        for at in [stamps[0] - MS, *stamps, stamps[-1] + MS]:
            check_time(store, log, at)
        check_timeline(store, log)
        check_round_trip(store, log)


# -- the checks can fail ------------------------------------------------------------------

GOLDEN_RUN = Path(__file__).resolve().parent / "golden" / "retry_run.jsonl"
state_module = importlib.import_module("replay_tools.state")
timeline_module = importlib.import_module("replay_tools.timeline")  # the package exports a function of that name


def _one_event_short(fold: Callable[..., State]) -> Callable[..., State]:
    def short(events: Any) -> State:
        return fold(list(events)[:-1])

    return short


@pytest.mark.parametrize("broken", ["state_at drops an event", "state_at(at=) is strict", "timeline loses links"])
def test_the_checks_catch_a_broken_replay_tool(broken: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store("memory://") as store:
        import_events(store, GOLDEN_RUN)
        log = list(store.read())
        if broken == "state_at drops an event":
            monkeypatch.setattr(state_module, "_fold", _one_event_short(state_module._fold))
            with pytest.raises(AssertionError):
                check_prefix(store, log, len(log) // 2)
        elif broken == "state_at(at=) is strict":
            monkeypatch.setattr(
                state_module, "_until", lambda events, at: (r for r in events if r.event.timestamp < at)
            )
            with pytest.raises(AssertionError):
                check_time(store, log, log[-1].event.timestamp)
        else:
            real = timeline_module.timeline

            def loses_links(*args: Any, **kwargs: Any) -> Any:
                whole = real(*args, **kwargs)
                return type(whole)(tuple(dataclasses.replace(e, caused=e.caused[1:]) for e in whole.entries))

            monkeypatch.setattr(sys.modules[__name__], "timeline", loses_links)
            with pytest.raises(AssertionError, match="caused of"):
                check_timeline(store, log)
