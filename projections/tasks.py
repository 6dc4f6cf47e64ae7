"""Task views folded from task events: the task list and the execution statistics.

``apply(view, recorded) -> view`` is the whole projection: it reads nothing but its
arguments, dispatches on the event type, and updates the view it owns in place (a fold
over 100,000s of events cannot afford a copy per event). Live views (updated by the
store's committer after each commit) and views rebuilt from the log run the same code,
so they are equal by construction, which the property tests check.

Statistics definitions (the spec names the keys, not their meaning):

* counts are of tasks by their current status (``skipped`` is reported too);
* ``total_execution_time`` sums the measured time of every finished attempt
  (completed, failed, retried or timed out); ``average_execution_time`` divides it by
  the number of those attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import Any

import msgspec

from domain.enums import TaskStatus
from domain.events import Recorded
from domain.task import (
    ResourceSpec,
    TaskAdopted,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskLateResultDiscarded,
    TaskReady,
    TaskRetryScheduled,
    TaskReused,
    TaskSkipped,
    TaskSoftTimeoutReached,
    TaskStarted,
)

__all__ = [
    "FAILURE_RATE_DEGRADED",
    "FAILURE_RATE_UNHEALTHY",
    "KINDS",
    "ResultRecord",
    "TaskRecord",
    "TaskView",
    "apply",
    "fold",
]

KINDS: frozenset[str] = frozenset({"task"})
"""The event kinds this view folds; :func:`apply` ignores every other event."""

# Health thresholds on the share of finished tasks that failed (judged from 10 finished
# tasks on), used by the engine's health_check and the CLI's health command alike.
FAILURE_RATE_DEGRADED = 0.25
FAILURE_RATE_UNHEALTHY = 0.75


@dataclass(slots=True)
class ResultRecord:
    success: bool
    data: Any = None
    error_message: str | None = None
    error_type: str | None = None
    execution_time: float = 0.0
    memory_usage: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TaskRecord:
    id: str
    name: str
    description: str
    module: str
    action: str
    parameters: dict[str, Any]
    dependencies: list[str]
    priority: int
    resources: list[ResourceSpec]
    timeout: float | None
    max_retries: int
    retry_delay: float
    tags: list[str]
    metadata: dict[str, Any]
    owner: str
    correlation_id: str
    created_at: datetime
    status: TaskStatus = TaskStatus.PENDING
    retry_count: int = 0
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: ResultRecord | None = None
    late_results: int = 0
    version: int = 1
    soft_timeout: float | None = None
    soft_timeouts_reached: int = 0


@dataclass
class TaskView:
    """All tasks and their statistics, as of ``position`` in the log."""

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    counts: dict[TaskStatus, int] = field(default_factory=lambda: dict.fromkeys(TaskStatus, 0))
    total_execution_time: float = 0.0
    finished_attempts: int = 0
    position: int = 0

    def stats(self) -> dict[str, Any]:
        c = self.counts
        return {
            "total_tasks": len(self.tasks),
            "pending": c[TaskStatus.PENDING],
            "ready": c[TaskStatus.READY],
            "running": c[TaskStatus.RUNNING],
            "completed": c[TaskStatus.COMPLETED],
            "failed": c[TaskStatus.FAILED],
            "cancelled": c[TaskStatus.CANCELLED],
            "skipped": c[TaskStatus.SKIPPED],
            "total_execution_time": self.total_execution_time,
            "average_execution_time": (
                self.total_execution_time / self.finished_attempts if self.finished_attempts else 0.0
            ),
        }

    def snapshot(self) -> dict[str, Any]:
        """Plain-data form, for comparing views (live vs rebuilt) and for export."""
        out: dict[str, Any] = msgspec.to_builtins(
            {"tasks": self.tasks, "stats": self.stats(), "position": self.position}
        )
        return out


def _set_status(view: TaskView, rec: TaskRecord, status: TaskStatus) -> None:
    view.counts[rec.status] -= 1
    view.counts[status] += 1
    rec.status = status


def _attempt_time(view: TaskView, seconds: float) -> None:
    view.total_execution_time += seconds
    view.finished_attempts += 1


def _created(view: TaskView, event: TaskCreated) -> None:
    # Strings many tasks share (names, actions, owner, a run's correlation id) are
    # interned: each decoded event brings its own copies (an eighth of a rebuilt view).
    view.tasks[event.aggregate_id] = TaskRecord(
        id=event.aggregate_id,
        name=intern(event.name),
        description=intern(event.description),
        module=intern(event.module),
        action=intern(event.action),
        parameters=event.parameters,
        dependencies=event.dependencies,
        priority=event.priority,
        resources=event.resources,
        timeout=event.timeout,
        max_retries=event.max_retries,
        retry_delay=event.retry_delay,
        tags=event.tags,
        metadata=event.metadata,
        owner=intern(event.owner),
        correlation_id=intern(event.correlation_id),
        created_at=event.timestamp,
        soft_timeout=event.soft_timeout,
    )
    view.counts[TaskStatus.PENDING] += 1


def _ready(view: TaskView, rec: TaskRecord, event: TaskReady) -> None:
    _set_status(view, rec, TaskStatus.READY)


def _started(view: TaskView, rec: TaskRecord, event: TaskStarted) -> None:
    _set_status(view, rec, TaskStatus.RUNNING)
    rec.attempts = event.attempt
    rec.started_at = event.timestamp


def _completed(view: TaskView, rec: TaskRecord, event: TaskCompleted) -> None:
    _set_status(view, rec, TaskStatus.COMPLETED)
    rec.completed_at = event.timestamp
    rec.result = ResultRecord(
        success=True,
        data=event.data,
        execution_time=event.execution_time,
        memory_usage=event.memory_usage,
        metadata={**event.metadata, "attempt": event.attempt},
    )
    _attempt_time(view, event.execution_time)


def _retry_scheduled(view: TaskView, rec: TaskRecord, event: TaskRetryScheduled) -> None:
    _set_status(view, rec, TaskStatus.READY)
    rec.retry_count += 1
    rec.result = ResultRecord(
        success=False,
        error_message=event.error_message,
        error_type=event.error_type,
        execution_time=event.execution_time,
        metadata={"attempt": event.attempt, "retry_at": event.retry_at.isoformat()},
    )
    _attempt_time(view, event.execution_time)


def _failed(view: TaskView, rec: TaskRecord, event: TaskFailed) -> None:
    _set_status(view, rec, TaskStatus.FAILED)
    rec.completed_at = event.timestamp
    rec.result = ResultRecord(
        success=False,
        error_message=event.error_message,
        error_type=event.error_type,
        execution_time=event.execution_time,
        metadata={**event.metadata, "attempt": event.attempt},
    )
    _attempt_time(view, event.execution_time)


def _cancelled(view: TaskView, rec: TaskRecord, event: TaskCancelled) -> None:
    _set_status(view, rec, TaskStatus.CANCELLED)
    rec.completed_at = event.timestamp
    rec.result = ResultRecord(
        success=False,
        error_message=f"cancelled: {event.reason}" if event.reason else "cancelled",
        error_type="TaskCancelled",
        metadata={"abandoned_attempt": event.abandoned_attempt},
    )


def _skipped(view: TaskView, rec: TaskRecord, event: TaskSkipped) -> None:
    _set_status(view, rec, TaskStatus.SKIPPED)
    rec.completed_at = event.timestamp
    rec.result = ResultRecord(
        success=False,
        error_message=f"skipped: dependency {event.dependency} ended {event.dependency_status.value}",
        error_type="DependencyNotCompleted",
        metadata={"dependency": event.dependency, "dependency_status": event.dependency_status.value},
    )


def _late_result(view: TaskView, rec: TaskRecord, event: TaskLateResultDiscarded) -> None:
    rec.late_results += 1


def _soft_timeout(view: TaskView, rec: TaskRecord, event: TaskSoftTimeoutReached) -> None:
    rec.soft_timeouts_reached += 1


def _reused(view: TaskView, rec: TaskRecord, event: TaskReused) -> None:
    """COMPLETED with the original's result; no attempt ran, so no execution time is
    added to the statistics."""
    _set_status(view, rec, TaskStatus.COMPLETED)
    rec.completed_at = event.timestamp
    rec.result = ResultRecord(
        success=True,
        data=event.data,
        execution_time=0.0,
        metadata={"reused_from": event.source, "original_execution_time": event.execution_time},
    )


def _adopted(view: TaskView, rec: TaskRecord, event: TaskAdopted) -> None:
    rec.owner = event.owner


_HANDLERS: dict[type[Any], Callable[[TaskView, TaskRecord, Any], None]] = {
    TaskReady: _ready,
    TaskStarted: _started,
    TaskCompleted: _completed,
    TaskRetryScheduled: _retry_scheduled,
    TaskFailed: _failed,
    TaskCancelled: _cancelled,
    TaskSkipped: _skipped,
    TaskLateResultDiscarded: _late_result,
    TaskSoftTimeoutReached: _soft_timeout,
    TaskAdopted: _adopted,
    TaskReused: _reused,
}


def apply(view: TaskView, recorded: Recorded) -> TaskView:
    """Fold one committed event into ``view``. Non-task events are ignored."""
    event = recorded.event
    if event.KIND not in KINDS:
        return view
    view.position = recorded.position
    if type(event) is TaskCreated:
        _created(view, event)
        return view
    rec = view.tasks[event.aggregate_id]
    rec.version = event.version
    _HANDLERS[type(event)](view, rec, event)
    return view


def fold(events: Iterable[Recorded], view: TaskView | None = None) -> TaskView:
    """Rebuild (or continue) a view from committed events."""
    view = view if view is not None else TaskView()
    for recorded in events:
        apply(view, recorded)
    return view
