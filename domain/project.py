"""The project aggregate: its events, its state and the decisions commands make.

``project:<name>`` (the aggregate id is the project's name) follows the ``PROJECT``
lifecycle::

    project.created            PLANNING; everything the template gave it
    project.activated          PLANNING -> ACTIVE  (trigger activate: its first workflow run)
    project.paused             ACTIVE -> PAUSED     (pause)
    project.resumed            PAUSED -> ACTIVE     (resume)
    project.completed          ACTIVE -> COMPLETED  (complete)
    project.failed             PLANNING/ACTIVE/PAUSED -> FAILED  (fail)
    project.archived           any but ARCHIVED -> ARCHIVED, final  (archive)
    project.milestone_added    a named milestone and its data (status unchanged)
    project.workflow_linked    a workflow run belongs to the project, with its outcome

One event type per trigger (not one ``status_changed`` event with a trigger field), as
for tasks, runs and sessions: each type says what happened, and a reader of the log
needs no lookup table to know the state a project went to.

Decisions are pure functions ``(state, args, meta) -> event``: status changes ask
``PROJECT.decide`` (an illegal trigger raises :class:`IllegalTransitionError` and
nothing is recorded); an ARCHIVED project takes no milestones and no runs.

**Runs and metrics.** A project does not copy its runs' data: ``project.workflow_linked``
names the run (its id in the log), the workflow, its outcome (a ``WorkflowStatus``, or
``None`` when it is not known yet) and its duration. The project's metrics are folded
from these links: runs linked, completed, failed, cancelled, total duration. A second
link of the same run id updates the first (so a link recorded when a run starts can be
completed by one recorded when it ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from domain.enums import ProjectStatus, ProjectType, WorkflowStatus
from domain.errors import CorruptHistoryError, ProjectManagementError, ValidationError
from domain.events import Event, EventMeta, register_event_types
from domain.lifecycles import PROJECT, PROJECT_TRANSITIONS

__all__ = [
    "PROJECT_EVENT_TYPES",
    "PROJECT_TRIGGER_OF",
    "STATUS_AFTER",
    "ProjectActivated",
    "ProjectArchived",
    "ProjectCompleted",
    "ProjectCreated",
    "ProjectFailed",
    "ProjectMilestoneAdded",
    "ProjectPaused",
    "ProjectResumed",
    "ProjectState",
    "ProjectStatusChanged",
    "ProjectWorkflowLinked",
    "add_milestone",
    "change_status",
    "create",
    "evolve",
    "link_workflow",
    "validate_name",
]

# Like workflow names, and never "." or "..": a name is also a directory name.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class _ProjectEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "project"


class ProjectCreated(_ProjectEvent, frozen=True, kw_only=True, tag="project.created"):
    """A project was created (status PLANNING). ``path`` is absolute; ``directories``
    and ``files`` are what was made inside it, relative to it. ``project_type`` is the
    spec's ``type`` and ``project_version`` its ``version`` (``type`` and ``version`` are
    envelope fields of every event: the tag and the aggregate version)."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("config",)

    project_type: ProjectType = ProjectType.CUSTOM
    template: str | None = None
    template_version: str = ""
    description: str = ""
    author: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    path: str
    project_version: str = "1.0.0"
    workflows: list[str] = msgspec.field(default_factory=list)
    required_modules: list[str] = msgspec.field(default_factory=list)
    optional_modules: list[str] = msgspec.field(default_factory=list)
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    directories: list[str] = msgspec.field(default_factory=list)
    files: list[str] = msgspec.field(default_factory=list)


class ProjectStatusChanged(_ProjectEvent, frozen=True, kw_only=True):
    """Base of the one-per-trigger status events (not itself an event type)."""

    reason: str = ""


class ProjectActivated(ProjectStatusChanged, frozen=True, kw_only=True, tag="project.activated"):
    pass


class ProjectPaused(ProjectStatusChanged, frozen=True, kw_only=True, tag="project.paused"):
    pass


class ProjectResumed(ProjectStatusChanged, frozen=True, kw_only=True, tag="project.resumed"):
    pass


class ProjectCompleted(ProjectStatusChanged, frozen=True, kw_only=True, tag="project.completed"):
    pass


class ProjectFailed(ProjectStatusChanged, frozen=True, kw_only=True, tag="project.failed"):
    pass


class ProjectArchived(ProjectStatusChanged, frozen=True, kw_only=True, tag="project.archived"):
    pass


class ProjectMilestoneAdded(_ProjectEvent, frozen=True, kw_only=True, tag="project.milestone_added"):
    """Milestone ``milestone`` was reached (at the event's timestamp) with ``data``.
    The same name again replaces the earlier data in the views; the log keeps both."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("data",)

    milestone: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class ProjectWorkflowLinked(_ProjectEvent, frozen=True, kw_only=True, tag="project.workflow_linked"):
    """Workflow run ``run_id`` (of ``workflow``) belongs to the project. ``outcome``
    and ``duration`` are the run's when known (``None``: still running)."""

    workflow: str
    run_id: str
    outcome: WorkflowStatus | None = None
    duration: float | None = None


# The status event of each PROJECT trigger, and back.
_EVENT_FOR: dict[str, type[ProjectStatusChanged]] = {
    "activate": ProjectActivated,
    "pause": ProjectPaused,
    "resume": ProjectResumed,
    "complete": ProjectCompleted,
    "fail": ProjectFailed,
    "archive": ProjectArchived,
}
PROJECT_TRIGGER_OF: dict[type[Event], str] = {cls: trigger for trigger, cls in _EVENT_FOR.items()}
# Each trigger has one row in the PROJECT table, so one destination whatever the
# source: the views set the status from the event type alone (never re-deciding).
STATUS_AFTER: dict[type[Event], ProjectStatus] = {_EVENT_FOR[trigger]: dest for trigger, _, dest in PROJECT_TRANSITIONS}
if set(_EVENT_FOR) != PROJECT.triggers or len(STATUS_AFTER) != len(PROJECT_TRANSITIONS):
    raise RuntimeError("the project status events and the PROJECT lifecycle table disagree")  # pragma: no cover

PROJECT_EVENT_TYPES: tuple[type[_ProjectEvent], ...] = (
    ProjectCreated,
    *_EVENT_FOR.values(),
    ProjectMilestoneAdded,
    ProjectWorkflowLinked,
)
register_event_types(*PROJECT_EVENT_TYPES)


@dataclass(slots=True)
class ProjectState:
    """Write-side state of one project: what decisions need."""

    id: str
    version: int
    status: ProjectStatus


def validate_name(name: object) -> str:
    """A project name: letters, digits, ``_``, ``-``, ``.`` (not first), at most 128. It
    is also the project's directory name, so ``/``, ``..`` and the like never pass."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"project name {name!r} is not valid: use letters, digits, '_', '-' and '.' "
            "(not first), at most 128 characters",
            code="INVALID_PROJECT_NAME",
            details={"name": repr(name)},
        )
    return name


def _meta(meta: EventMeta) -> dict[str, Any]:
    return {
        "timestamp": meta.timestamp,
        "actor": meta.actor,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
    }


def create(name: str, meta: EventMeta, **definition: Any) -> ProjectCreated:
    return ProjectCreated(aggregate_id=validate_name(name), version=1, **_meta(meta), **definition)


def change_status(state: ProjectState, trigger: str, meta: EventMeta, *, reason: str = "") -> ProjectStatusChanged:
    """The event for ``trigger``; :class:`IllegalTransitionError` when the PROJECT
    lifecycle does not allow it from the current status."""
    PROJECT.decide(state.status, trigger, state.id)
    return _EVENT_FOR[trigger](aggregate_id=state.id, version=state.version + 1, reason=reason, **_meta(meta))


def _open(state: ProjectState, what: str) -> int:
    if PROJECT.is_final(state.status):
        raise ProjectManagementError(
            f"project {state.id!r} is {state.status.value}: it takes no more {what}",
            code="PROJECT_ARCHIVED",
            details={"project": state.id, "status": state.status.value},
            suggestions=["Create a new project for new work; an archived project is read-only."],
        )
    return state.version + 1


def add_milestone(
    state: ProjectState, meta: EventMeta, *, milestone: str, data: dict[str, Any]
) -> ProjectMilestoneAdded:
    return ProjectMilestoneAdded(
        aggregate_id=state.id, version=_open(state, "milestones"), milestone=milestone, data=data, **_meta(meta)
    )


def link_workflow(
    state: ProjectState,
    meta: EventMeta,
    *,
    workflow: str,
    run_id: str,
    outcome: WorkflowStatus | None,
    duration: float | None,
) -> ProjectWorkflowLinked:
    return ProjectWorkflowLinked(
        aggregate_id=state.id,
        version=_open(state, "workflow runs"),
        workflow=workflow,
        run_id=run_id,
        outcome=outcome,
        duration=duration,
        **_meta(meta),
    )


def evolve(state: ProjectState | None, event: Event) -> ProjectState:
    """Apply ``event`` (``None`` before ``project.created``); in place, returns it."""
    if isinstance(event, ProjectCreated):
        return ProjectState(id=event.aggregate_id, version=event.version, status=PROJECT.initial)
    if state is None:
        raise CorruptHistoryError(f"{event.type} for project {event.aggregate_id} before project.created")
    state.version = event.version
    after = STATUS_AFTER.get(type(event))
    if after is not None:
        state.status = after
    return state
