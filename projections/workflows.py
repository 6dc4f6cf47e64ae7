"""Workflow views folded from events: definitions (latest version of each) and runs.

Like every view here, ``apply(view, recorded) -> view`` reads only its arguments and
ignores events of other kinds, so the same fold serves the live view and a rebuild.
Per-step outcomes are not copied here: a run names its steps' task ids, and readers
join with the task view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Any

import msgspec

from domain.enums import WorkflowStatus
from domain.events import Recorded
from domain.workflow import (
    StepSpec,
    WorkflowDefined,
    WorkflowRunCancelled,
    WorkflowRunCompleted,
    WorkflowRunCreated,
    WorkflowRunFailed,
    WorkflowRunStarted,
)

__all__ = ["KINDS", "DefinitionRecord", "RunRecord", "WorkflowView", "apply", "fold"]

KINDS: frozenset[str] = frozenset({"workflow", "workflow_run"})
"""The event kinds this view folds; :func:`apply` ignores every other event."""


@dataclass(slots=True)
class DefinitionRecord:
    name: str
    version: int
    steps: list[StepSpec]
    source: str
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class RunRecord:
    id: str
    workflow: str
    definition_version: int
    parameters: dict[str, Any]
    step_tasks: dict[str, str]
    session_id: str
    actor: str
    created_at: datetime
    status: WorkflowStatus = WorkflowStatus.PENDING
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: float | None = None
    reason: str = ""
    errors: list[str] = field(default_factory=list)
    restart_of: str = ""
    forked_from: str = ""
    from_step: str = ""
    reused_steps: list[str] = field(default_factory=list)


@dataclass
class WorkflowView:
    definitions: dict[str, DefinitionRecord] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    position: int = 0

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(
            {"definitions": self.definitions, "runs": self.runs, "position": self.position}
        )
        return out

    def running(self) -> int:
        return sum(1 for r in self.runs.values() if r.status in (WorkflowStatus.PENDING, WorkflowStatus.RUNNING))


def _end(rec: RunRecord, status: WorkflowStatus, at: datetime, duration: float) -> None:
    rec.status = status
    rec.ended_at = at
    rec.duration = duration


def apply(view: WorkflowView, recorded: Recorded) -> WorkflowView:
    event = recorded.event
    if event.KIND not in KINDS:
        return view
    view.position = recorded.position
    if event.KIND == "workflow":
        if isinstance(event, WorkflowDefined):
            old = view.definitions.get(event.aggregate_id)
            view.definitions[event.aggregate_id] = DefinitionRecord(
                name=event.aggregate_id,
                version=event.version,
                steps=event.steps,
                source=event.source,
                created_at=old.created_at if old else event.timestamp,
                updated_at=event.timestamp,
            )
        return view
    if event.KIND != "workflow_run":
        return view
    if isinstance(event, WorkflowRunCreated):
        view.runs[event.aggregate_id] = RunRecord(
            id=intern(event.aggregate_id),  # the correlation id of its steps' task records
            workflow=intern(event.workflow),
            definition_version=event.definition_version,
            parameters=event.parameters,
            step_tasks=event.step_tasks,
            session_id=intern(event.session_id),
            actor=intern(event.actor),
            created_at=event.timestamp,
            restart_of=event.restart_of,
            forked_from=event.forked_from,
            from_step=event.from_step,
            reused_steps=list(event.reused_steps),
        )
        return view
    rec = view.runs[event.aggregate_id]
    if isinstance(event, WorkflowRunStarted):
        rec.status = WorkflowStatus.RUNNING
        rec.started_at = event.timestamp
    elif isinstance(event, WorkflowRunCompleted):
        _end(rec, WorkflowStatus.COMPLETED, event.timestamp, event.duration)
    elif isinstance(event, WorkflowRunFailed):
        _end(rec, WorkflowStatus.FAILED, event.timestamp, event.duration)
        rec.reason = event.reason
        rec.errors = list(event.errors)
    elif isinstance(event, WorkflowRunCancelled):
        _end(rec, WorkflowStatus.CANCELLED, event.timestamp, event.duration)
        rec.reason = event.reason
    return view


def fold(events: Iterable[Recorded], view: WorkflowView | None = None) -> WorkflowView:
    view = view if view is not None else WorkflowView()
    for recorded in events:
        apply(view, recorded)
    return view
