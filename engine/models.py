"""The spec's data models for tasks, as plain dataclasses users build and read.

They are the API's vocabulary, not the state: the engine records a ``Task`` as a
``task.created`` event and answers ``get_task``/``list_tasks`` with ``Task`` objects
rebuilt from the task view (so their fields show what the log says).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.enums import OrchestrationMode, ResourceType, SessionStatus, TaskPriority, TaskStatus, WorkflowStatus
from projections.tasks import ResultRecord, TaskRecord

__all__ = ["OrchestrationSession", "Task", "TaskResource", "TaskResult", "WorkflowExecution", "WorkflowStep"]


@dataclass
class TaskResource:
    """A resource a task needs. ``mode``: ``"read"`` is shared; ``"write"`` and
    ``"exclusive"`` are exclusive."""

    type: ResourceType
    identifier: str
    mode: str = "read"
    timeout: int | None = None


@dataclass
class TaskResult:
    success: bool
    data: Any = None
    error_message: str | None = None
    error_type: str | None = None
    execution_time: float = 0.0
    memory_usage: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "data": self.data,
            "error_message": self.error_message,
            "error_type": self.error_type,
            "execution_time": self.execution_time,
            "memory_usage": self.memory_usage,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_record(cls, rec: ResultRecord) -> TaskResult:
        return cls(
            success=rec.success,
            data=rec.data,
            error_message=rec.error_message,
            error_type=rec.error_type,
            execution_time=rec.execution_time,
            memory_usage=rec.memory_usage,
            metadata=dict(rec.metadata),
        )


@dataclass
class Task:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = ""
    description: str = ""
    module: str = ""
    action: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    dependencies: list[str] = field(default_factory=list)
    priority: TaskPriority = TaskPriority.NORMAL
    resources: list[TaskResource] = field(default_factory=list)

    timeout: int | None = None
    max_retries: int = 3
    retry_delay: float = 1.0

    status: TaskStatus = TaskStatus.PENDING
    retry_count: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: TaskResult | None = None

    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # seconds into an attempt at which the action is asked to stop (< timeout); see
    # README "Executors and what each guarantees"
    soft_timeout: float | None = None

    @classmethod
    def from_record(cls, rec: TaskRecord) -> Task:
        timeout: Any = rec.timeout
        if isinstance(timeout, float) and timeout.is_integer():
            timeout = int(timeout)
        return cls(
            id=rec.id,
            name=rec.name,
            description=rec.description,
            module=rec.module,
            action=rec.action,
            parameters=dict(rec.parameters),
            dependencies=list(rec.dependencies),
            priority=TaskPriority(rec.priority),
            resources=[
                TaskResource(
                    type=r.type,
                    identifier=r.identifier,
                    mode=r.mode,
                    timeout=int(r.timeout) if r.timeout is not None else None,
                )
                for r in rec.resources
            ],
            timeout=timeout,
            max_retries=rec.max_retries,
            retry_delay=rec.retry_delay,
            status=rec.status,
            retry_count=rec.retry_count,
            created_at=rec.created_at,
            started_at=rec.started_at,
            completed_at=rec.completed_at,
            result=TaskResult.from_record(rec.result) if rec.result is not None else None,
            tags=list(rec.tags),
            metadata=dict(rec.metadata),
            soft_timeout=rec.soft_timeout,
        )


@dataclass
class WorkflowStep:
    """One step of a workflow definition (the spec's data model).

    ``retry_count`` is kept for compatibility with the original file format; the number
    of retries a step actually used is in the run's events. ``retry_delay`` (seconds,
    default 1.0) and ``soft_timeout`` (seconds into an attempt at which the action is
    asked to stop; less than ``timeout``) are this project's additions.
    """

    name: str
    module: str
    action: str
    parameters: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    timeout: int | None = None
    retry_count: int = 0
    max_retries: int = 3
    retry_delay: float = 1.0
    soft_timeout: float | None = None


@dataclass
class WorkflowExecution:
    """What ``execute_workflow`` returns (the spec's data model, plus ``run_id``, the
    id of the run in the event log, for replay tools)."""

    workflow_name: str
    status: WorkflowStatus = WorkflowStatus.PENDING
    start_time: datetime | None = None
    end_time: datetime | None = None
    results: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    performance_metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""


@dataclass
class OrchestrationSession:
    """A session as ``OrchestrationEngine.get_session`` returns it (read from the log)."""

    session_id: str
    user_id: str
    mode: OrchestrationMode
    status: SessionStatus
    max_parallel_tasks: int
    max_parallel_workflows: int
    timeout_seconds: float | None
    resource_requirements: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    ended_at: datetime | None = None
    active_workflows: int = 0
