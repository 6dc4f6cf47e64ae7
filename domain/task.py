"""The task aggregate: its events, its state, the decisions commands make and how
events apply.

Decisions are pure functions ``(state, args, meta) -> event``: they ask the task
lifecycle whether the trigger is legal (raising :class:`IllegalTransitionError`, having
recorded nothing, when it is not) and build the event with the next version.
:func:`evolve` applies an event to the state; it is the only way state changes, both on
the live path and when the state is rebuilt from the log, and it runs no user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import msgspec

from domain.enums import ResourceType, TaskStatus
from domain.errors import CorruptHistoryError, IllegalTransitionError
from domain.events import Event, EventMeta, register_event_types, register_upcaster
from domain.lifecycles import TASK

__all__ = [
    "ResourceSpec",
    "TaskAdopted",
    "TaskCancelled",
    "TaskCompleted",
    "TaskCreated",
    "TaskFailed",
    "TaskLateResultDiscarded",
    "TaskReady",
    "TaskRetryScheduled",
    "TaskReused",
    "TaskSkipped",
    "TaskSoftTimeoutReached",
    "TaskStarted",
    "TaskState",
    "adopt",
    "attempt_failed",
    "cancel",
    "complete",
    "create",
    "discard_late_result",
    "evolve",
    "ready",
    "reuse",
    "skip",
    "soft_timeout_reached",
    "start",
]


class ResourceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A resource a task declares (the spec's ``TaskResource``, as recorded)."""

    type: ResourceType
    identifier: str
    mode: str = "read"
    timeout: float | None = None


class _TaskEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "task"


class TaskCreated(_TaskEvent, frozen=True, kw_only=True, tag="task.created"):
    """A task was added. Carries the whole definition; status PENDING."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("parameters", "metadata")

    name: str
    module: str
    action: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    dependencies: list[str] = msgspec.field(default_factory=list)
    priority: int = 2
    resources: list[ResourceSpec] = msgspec.field(default_factory=list)
    timeout: float | None = None
    max_retries: int = 3
    retry_delay: float = 1.0
    tags: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    owner: str = ""
    # alias -> dependency task id, for {{alias.output}} references in parameters
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    group: str = ""  # the session whose limits apply ("" = none)
    # seconds after the start of an attempt at which the action is asked to stop
    # (its cancel_token is set; task.soft_timeout_reached is recorded); < timeout
    soft_timeout: float | None = None


class TaskReady(_TaskEvent, frozen=True, kw_only=True, tag="task.ready"):
    """Every dependency completed (or there were none): PENDING -> READY."""


class TaskStarted(_TaskEvent, frozen=True, kw_only=True, tag="task.started"):
    """Attempt ``attempt`` (1-based) was admitted: READY -> RUNNING. Durable before the
    action runs.

    Schema 2 adds ``worker``: who runs the attempt (e.g. ``"thread:task-worker-3"``),
    ``""`` when unknown and for events recorded at schema 1 (upcast on read)."""

    schema: int = 2
    attempt: int
    deadline: datetime | None = None
    worker: str = ""


class TaskCompleted(_TaskEvent, frozen=True, kw_only=True, tag="task.completed"):
    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("data", "metadata")

    attempt: int
    data: Any = None
    execution_time: float = 0.0
    memory_usage: float = 0.0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class TaskRetryScheduled(_TaskEvent, frozen=True, kw_only=True, tag="task.retry_scheduled"):
    """Attempt ``attempt`` failed with retries left: RUNNING -> READY, eligible again at
    ``retry_at``."""

    attempt: int
    error_type: str
    error_message: str
    execution_time: float = 0.0
    retry_at: datetime


class TaskFailed(_TaskEvent, frozen=True, kw_only=True, tag="task.failed"):
    """The last allowed attempt failed (or the failure is not retryable)."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("metadata",)

    attempt: int
    error_type: str
    error_message: str
    execution_time: float = 0.0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class TaskCancelled(_TaskEvent, frozen=True, kw_only=True, tag="task.cancelled"):
    """Cancelled by a command. ``abandoned_attempt`` > 0 when an attempt was running:
    its thread is abandoned and a late result is discarded."""

    reason: str = ""
    abandoned_attempt: int = 0


class TaskSkipped(_TaskEvent, frozen=True, kw_only=True, tag="task.skipped"):
    """A dependency ended without completing, so this task can never run."""

    dependency: str
    dependency_status: TaskStatus


class TaskLateResultDiscarded(_TaskEvent, frozen=True, kw_only=True, tag="task.late_result_discarded"):
    """An abandoned attempt (timed out or cancelled) finished after all; its result is
    recorded here and ignored. No status change."""

    attempt: int
    success: bool
    execution_time: float
    error_type: str | None = None


class TaskSoftTimeoutReached(_TaskEvent, frozen=True, kw_only=True, tag="task.soft_timeout_reached"):
    """Attempt ``attempt`` ran for ``soft_timeout`` seconds: the action was asked to
    stop (the stop flag its ``cancel_token`` reads was set). No status change: the
    attempt's outcome is recorded as usual when the action returns, or the hard
    ``timeout`` ends it."""

    attempt: int
    soft_timeout: float


class TaskReused(_TaskEvent, frozen=True, kw_only=True, tag="task.reused"):
    """The step of a resumed or forked run that keeps the result ``source`` (a task of
    the original run) recorded: COMPLETED without running (``reuse``). The data is
    copied, so this run's log says what it built on."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("data",)

    source: str
    data: Any = None
    execution_time: float = 0.0


class TaskAdopted(_TaskEvent, frozen=True, kw_only=True, tag="task.adopted"):
    """Another engine took this task over from ``previous_owner``, whose lease had
    expired (see :mod:`domain.lease`). No status change; committed with the
    ``lease.taken_over`` that names it, and before the interrupted attempt (if the task
    was RUNNING) is recorded as failed."""

    owner: str
    previous_owner: str


TASK_EVENT_TYPES: tuple[type[_TaskEvent], ...] = (
    TaskCreated,
    TaskReady,
    TaskStarted,
    TaskCompleted,
    TaskRetryScheduled,
    TaskFailed,
    TaskCancelled,
    TaskSkipped,
    TaskLateResultDiscarded,
    TaskSoftTimeoutReached,
    TaskAdopted,
    TaskReused,
)
register_event_types(*TASK_EVENT_TYPES)


def _task_started_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """task.started schema 1 -> 2: ``worker`` did not exist; unknown is ``""``."""
    return {**raw, "worker": raw.get("worker", "")}


register_upcaster(TaskStarted.TYPE, 1, _task_started_v1_to_v2)

# Which lifecycle trigger each status-changing event records.
TRIGGER_OF: dict[type[Event], str] = {
    TaskReady: "ready",
    TaskStarted: "start",
    TaskCompleted: "complete",
    TaskRetryScheduled: "retry",
    TaskFailed: "fail",
    TaskCancelled: "cancel",
    TaskSkipped: "skip",
    TaskReused: "reuse",
}


@dataclass(slots=True)
class TaskState:
    """Write-side state of one task: what decisions need, nothing more."""

    id: str
    version: int
    status: TaskStatus
    definition: TaskCreated
    attempt: int = 0
    retry_at: datetime | None = None
    owner: str = ""

    @property
    def retries_used(self) -> int:
        return max(0, self.attempt - 1)


def _meta(meta: EventMeta) -> dict[str, Any]:
    return {
        "timestamp": meta.timestamp,
        "actor": meta.actor,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
    }


def create(task_id: str, meta: EventMeta, **definition: Any) -> TaskCreated:
    return TaskCreated(aggregate_id=task_id, version=1, **_meta(meta), **definition)


def _next(state: TaskState, trigger: str) -> int:
    TASK.decide(state.status, trigger, state.id)
    return state.version + 1


def ready(state: TaskState, meta: EventMeta) -> TaskReady:
    return TaskReady(aggregate_id=state.id, version=_next(state, "ready"), **_meta(meta))


def start(state: TaskState, meta: EventMeta, worker: str = "") -> TaskStarted:
    version = _next(state, "start")
    timeout = state.definition.timeout
    deadline = meta.timestamp + timedelta(seconds=timeout) if timeout is not None else None
    return TaskStarted(
        aggregate_id=state.id,
        version=version,
        attempt=state.attempt + 1,
        deadline=deadline,
        worker=worker,
        **_meta(meta),
    )


def complete(
    state: TaskState,
    meta: EventMeta,
    *,
    data: Any,
    execution_time: float,
    memory_usage: float = 0.0,
    metadata: dict[str, Any] | None = None,
) -> TaskCompleted:
    return TaskCompleted(
        aggregate_id=state.id,
        version=_next(state, "complete"),
        attempt=state.attempt,
        data=data,
        execution_time=execution_time,
        memory_usage=memory_usage,
        metadata=metadata or {},
        **_meta(meta),
    )


def attempt_failed(
    state: TaskState,
    meta: EventMeta,
    *,
    error_type: str,
    error_message: str,
    execution_time: float,
    retryable: bool = True,
    metadata: dict[str, Any] | None = None,
) -> TaskRetryScheduled | TaskFailed:
    """A failed attempt: retried after ``retry_delay`` while ``max_retries`` allows and
    the failure is retryable, else final."""
    defn = state.definition
    if retryable and state.retries_used < defn.max_retries:
        return TaskRetryScheduled(
            aggregate_id=state.id,
            version=_next(state, "retry"),
            attempt=state.attempt,
            error_type=error_type,
            error_message=error_message,
            execution_time=execution_time,
            retry_at=meta.timestamp + timedelta(seconds=defn.retry_delay),
            **_meta(meta),
        )
    return TaskFailed(
        aggregate_id=state.id,
        version=_next(state, "fail"),
        attempt=state.attempt,
        error_type=error_type,
        error_message=error_message,
        execution_time=execution_time,
        metadata=metadata or {},
        **_meta(meta),
    )


def cancel(state: TaskState, meta: EventMeta, *, reason: str = "") -> TaskCancelled:
    abandoned = state.attempt if state.status is TaskStatus.RUNNING else 0
    return TaskCancelled(
        aggregate_id=state.id,
        version=_next(state, "cancel"),
        reason=reason,
        abandoned_attempt=abandoned,
        **_meta(meta),
    )


def skip(state: TaskState, meta: EventMeta, *, dependency: str, dependency_status: TaskStatus) -> TaskSkipped:
    return TaskSkipped(
        aggregate_id=state.id,
        version=_next(state, "skip"),
        dependency=dependency,
        dependency_status=dependency_status,
        **_meta(meta),
    )


def discard_late_result(
    state: TaskState,
    meta: EventMeta,
    *,
    attempt: int,
    success: bool,
    execution_time: float,
    error_type: str | None,
) -> TaskLateResultDiscarded:
    return TaskLateResultDiscarded(
        aggregate_id=state.id,
        version=state.version + 1,
        attempt=attempt,
        success=success,
        execution_time=execution_time,
        error_type=error_type,
        **_meta(meta),
    )


def soft_timeout_reached(state: TaskState, meta: EventMeta) -> TaskSoftTimeoutReached:
    """The running attempt reached its task's ``soft_timeout``."""
    soft = state.definition.soft_timeout
    if state.status is not TaskStatus.RUNNING or soft is None:
        raise IllegalTransitionError(TASK.name, state.status.value, "soft_timeout", state.id)
    return TaskSoftTimeoutReached(
        aggregate_id=state.id,
        version=state.version + 1,
        attempt=state.attempt,
        soft_timeout=soft,
        **_meta(meta),
    )


def reuse(state: TaskState, meta: EventMeta, *, source: str, data: Any, execution_time: float) -> TaskReused:
    return TaskReused(
        aggregate_id=state.id,
        version=_next(state, "reuse"),
        source=source,
        data=data,
        execution_time=execution_time,
        **_meta(meta),
    )


def adopt(state: TaskState, meta: EventMeta, *, owner: str) -> TaskAdopted:
    return TaskAdopted(
        aggregate_id=state.id, version=state.version + 1, owner=owner, previous_owner=state.owner, **_meta(meta)
    )


def evolve(state: TaskState | None, event: Event) -> TaskState:
    """Apply ``event`` to ``state`` (``None`` before ``task.created``). Updates the
    state in place and returns it; never runs user code."""
    if isinstance(event, TaskCreated):
        return TaskState(
            id=event.aggregate_id,
            version=event.version,
            status=TaskStatus.PENDING,
            definition=event,
            owner=event.owner,
        )
    if state is None:
        raise CorruptHistoryError(f"{event.type} for task {event.aggregate_id} before task.created")
    state.version = event.version
    if isinstance(event, TaskStarted):
        state.status = TaskStatus.RUNNING
        state.attempt = event.attempt
        state.retry_at = None
    elif isinstance(event, TaskReady):
        state.status = TaskStatus.READY
    elif isinstance(event, TaskCompleted):
        state.status = TaskStatus.COMPLETED
    elif isinstance(event, TaskRetryScheduled):
        state.status = TaskStatus.READY
        state.retry_at = event.retry_at
    elif isinstance(event, TaskFailed):
        state.status = TaskStatus.FAILED
    elif isinstance(event, TaskCancelled):
        state.status = TaskStatus.CANCELLED
    elif isinstance(event, TaskSkipped):
        state.status = TaskStatus.SKIPPED
    elif isinstance(event, TaskAdopted):
        state.owner = event.owner
    elif isinstance(event, TaskReused):
        state.status = TaskStatus.COMPLETED
    # TaskLateResultDiscarded and TaskSoftTimeoutReached change nothing but the version.
    return state
