"""Every view as it was at a global position or at a timestamp, folded from the log
alone.

One pass: the log is read once, up to the position, and each event is applied to every
view (tasks, workflows, sessions, projects, resources). Applying runs projection code
only, never an action, so rebuilding a state is safe whatever the actions did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import domain  # noqa: F401 -- registers every event type, so any event decodes
from domain.enums import WorkflowStatus
from domain.errors import ValidationError
from domain.events import Recorded
from engine.store import EventStore
from projections import projects as project_views
from projections import resources as resource_views
from projections import sessions as session_views
from projections import tasks as task_views
from projections import workflows as workflow_views
from projections.projects import ProjectView
from projections.resources import ResourceView
from projections.sessions import SessionView
from projections.tasks import TaskView
from projections.workflows import WorkflowView
from replay_tools.history import History, gc_paused, opened_store

__all__ = ["State", "state_at", "view_differences", "views_equal"]

VIEW_NAMES: tuple[str, ...] = ("tasks", "workflows", "sessions", "projects", "resources")


class Snapshottable(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class State:
    """Every view as of one position of the log."""

    position: int
    """Global position of the last event folded (0: none)."""
    timestamp: datetime | None
    """Timestamp of the last event folded (``None``: none)."""
    tasks: TaskView
    """Task list and statistics."""
    workflows: WorkflowView
    """Workflow definitions and runs."""
    sessions: SessionView
    """Sessions and handler failures."""
    projects: ProjectView
    """Projects, their milestones and linked runs."""
    resources: ResourceView
    """Resources, allocations and rejections."""
    task_stats: dict[str, Any]
    """``TaskView.stats()``: task counts by status and execution times."""
    workflow_summary: dict[str, int]
    """Number of runs by status (every status, plus ``total``)."""
    resource_usage: dict[str, dict[str, Any]]
    """Per resource: status, capacity, allocated and utilization (percent, 2 decimals)."""


def state_at(
    history_or_url: History | EventStore | str,
    *,
    position: int | None = None,
    at: datetime | None = None,
) -> State:
    """The views as of global ``position`` (events at positions up to it), or as of
    ``at`` (a timezone-aware datetime: the log up to its last event at or before
    ``at``). Exactly one of them must be given."""
    if (position is None) == (at is None):
        raise ValidationError("give exactly one of position= or at=")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
        raise ValidationError(f"position must be an integer >= 0, got {position!r}")
    if at is not None and (not isinstance(at, datetime) or at.utcoffset() is None):
        raise ValidationError(f"at must be a timezone-aware datetime, got {at!r}")
    with opened_store(history_or_url) as store:
        if position is not None:
            return _fold(store.read(stop=position))  # position 0: nothing
        assert at is not None
        return _fold(_until(store.read(), at))


def _until(events: Iterable[Recorded], at: datetime) -> Iterable[Recorded]:
    """The log prefix ending at its last event stamped at or before ``at``. Events
    stamped later but committed before such an event (clocks of concurrent writers)
    are held back and released with it, so the result is always a prefix."""
    held: list[Recorded] = []
    for recorded in events:
        if recorded.event.timestamp > at:
            held.append(recorded)
            continue
        yield from held
        held.clear()
        yield recorded


def _fold(events: Iterable[Recorded]) -> State:
    tasks, workflows, sessions = TaskView(), WorkflowView(), SessionView()
    projects, resources = ProjectView(), ResourceView()
    # Each event goes to the views that fold its kind (every other view would ignore it).
    folds: list[tuple[frozenset[str], Callable[[Any, Recorded], Any], Any]] = [
        (task_views.KINDS, task_views.apply, tasks),
        (workflow_views.KINDS, workflow_views.apply, workflows),
        (session_views.KINDS, session_views.apply, sessions),
        (project_views.KINDS, project_views.apply, projects),
        (resource_views.KINDS, resource_views.apply, resources),
    ]
    by_kind: dict[str, list[tuple[Callable[[Any, Recorded], Any], Any]]] = {}
    for kinds, apply, view in folds:
        for kind in kinds:
            by_kind.setdefault(kind, []).append((apply, view))
    none: list[tuple[Callable[[Any, Recorded], Any], Any]] = []
    last: Recorded | None = None
    with gc_paused():
        for recorded in events:
            for apply, view in by_kind.get(recorded.event.KIND, none):
                apply(view, recorded)
            last = recorded
    summary = {s.value: 0 for s in WorkflowStatus}
    for run in workflows.runs.values():
        summary[run.status.value] += 1
    summary["total"] = len(workflows.runs)
    usage = {
        rid: {
            "status": rec.status.value,
            "capacity": dict(rec.capacity),
            "allocated": dict(rec.allocated),
            "utilization": {k: round(v, 2) for k, v in rec.utilization().items()},
        }
        for rid, rec in resources.resources.items()
    }
    return State(
        position=last.position if last is not None else 0,
        timestamp=last.event.timestamp if last is not None else None,
        tasks=tasks,
        workflows=workflows,
        sessions=sessions,
        projects=projects,
        resources=resources,
        task_stats=tasks.stats(),
        workflow_summary=summary,
        resource_usage=usage,
    )


def view_differences(a: State | Snapshottable, b: State | Snapshottable) -> tuple[str, ...]:
    """Names of the views whose snapshots differ (``"view"`` for two single views)."""
    if isinstance(a, State) and isinstance(b, State):
        return tuple(n for n in VIEW_NAMES if _snap(getattr(a, n)) != _snap(getattr(b, n)))
    if isinstance(a, State) or isinstance(b, State):
        raise ValidationError("compare two States, or two views")
    return () if a.snapshot() == b.snapshot() else ("view",)


def views_equal(a: State | Snapshottable, b: State | Snapshottable) -> bool:
    """Whether two States (all their views) or two views have equal snapshots."""
    return not view_differences(a, b)


def _snap(view: Snapshottable) -> dict[str, Any]:
    return view.snapshot()
