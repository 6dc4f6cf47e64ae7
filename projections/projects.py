"""Project view folded from ``project.*`` events: each project's status, what it was
created with, its milestones, its linked workflow runs and the metrics they add up to.

``apply(view, recorded) -> view`` reads only its arguments and ignores events of other
kinds (``position`` is that of the last project event), so the live view and a view
rebuilt from the whole log are equal. Metrics are derived from the linked runs when
read, so there is no counter that could drift from the runs it counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from domain.enums import ProjectStatus, ProjectType, WorkflowStatus
from domain.events import Recorded
from domain.lifecycles import PROJECT
from domain.project import (
    STATUS_AFTER,
    ProjectCreated,
    ProjectMilestoneAdded,
    ProjectStatusChanged,
    ProjectWorkflowLinked,
)

__all__ = ["KINDS", "LinkedRun", "Milestone", "ProjectRecord", "ProjectView", "apply", "fold"]

KINDS: frozenset[str] = frozenset({"project"})
"""The event kinds this view folds; :func:`apply` ignores every other event."""

_FINAL = (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


@dataclass(slots=True)
class Milestone:
    data: dict[str, Any]
    reached_at: datetime


@dataclass(slots=True)
class LinkedRun:
    run_id: str
    workflow: str
    linked_at: datetime
    outcome: WorkflowStatus | None = None
    duration: float | None = None


@dataclass(slots=True)
class ProjectRecord:
    name: str
    type: ProjectType
    template: str | None
    template_version: str
    description: str
    author: str
    tags: list[str]
    path: str
    version: str
    workflows: list[str]
    required_modules: list[str]
    optional_modules: list[str]
    config: dict[str, Any]
    directories: list[str]
    files: list[str]
    created_at: datetime
    updated_at: datetime
    stream_version: int = 1
    status: ProjectStatus = ProjectStatus.PLANNING
    status_reason: str = ""
    milestones: dict[str, Milestone] = field(default_factory=dict)
    runs: dict[str, LinkedRun] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """What the project's linked workflow runs add up to (JSON-ready)."""
        runs = list(self.runs.values())
        count = {s: sum(1 for r in runs if r.outcome is s) for s in _FINAL}
        finished = sum(count.values())
        durations = [r.duration for r in runs if r.duration is not None]
        last = max((r.linked_at for r in runs), default=None)
        return {
            "runs_linked": len(runs),
            "runs_completed": count[WorkflowStatus.COMPLETED],
            "runs_failed": count[WorkflowStatus.FAILED],
            "runs_cancelled": count[WorkflowStatus.CANCELLED],
            "total_duration": float(sum(durations)),
            "average_duration": sum(durations) / len(durations) if durations else None,
            "success_rate": count[WorkflowStatus.COMPLETED] / finished if finished else None,
            "last_run_at": last.isoformat() if last is not None else None,
            "milestones": len(self.milestones),
        }

    def open_runs(self) -> int:
        """Linked runs without a final outcome yet."""
        return sum(1 for r in self.runs.values() if r.outcome not in _FINAL)


@dataclass
class ProjectView:
    projects: dict[str, ProjectRecord] = field(default_factory=dict)
    position: int = 0

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins({"projects": self.projects, "position": self.position})
        return out

    def by_status(self) -> dict[str, int]:
        return {s.value: sum(1 for p in self.projects.values() if p.status is s) for s in PROJECT.states}


def apply(view: ProjectView, recorded: Recorded) -> ProjectView:
    event = recorded.event
    if event.KIND not in KINDS:
        return view
    view.position = recorded.position
    if isinstance(event, ProjectCreated):
        view.projects[event.aggregate_id] = ProjectRecord(
            name=event.aggregate_id,
            type=event.project_type,
            template=event.template,
            template_version=event.template_version,
            description=event.description,
            author=event.author,
            tags=list(event.tags),
            path=event.path,
            version=event.project_version,
            workflows=list(event.workflows),
            required_modules=list(event.required_modules),
            optional_modules=list(event.optional_modules),
            config=event.config,
            directories=list(event.directories),
            files=list(event.files),
            created_at=event.timestamp,
            updated_at=event.timestamp,
        )
        return view
    rec = view.projects[event.aggregate_id]
    rec.stream_version = event.version
    rec.updated_at = event.timestamp
    if isinstance(event, ProjectStatusChanged):
        rec.status = STATUS_AFTER[type(event)]
        rec.status_reason = event.reason
    elif isinstance(event, ProjectMilestoneAdded):
        rec.milestones[event.milestone] = Milestone(data=event.data, reached_at=event.timestamp)
    elif isinstance(event, ProjectWorkflowLinked):
        old = rec.runs.get(event.run_id)
        rec.runs[event.run_id] = LinkedRun(
            run_id=event.run_id,
            workflow=event.workflow,
            linked_at=old.linked_at if old is not None else event.timestamp,
            outcome=event.outcome,
            duration=event.duration,
        )
    return view


def fold(events: Iterable[Recorded], view: ProjectView | None = None) -> ProjectView:
    view = view if view is not None else ProjectView()
    for recorded in events:
        apply(view, recorded)
    return view
