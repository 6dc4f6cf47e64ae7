"""Workflow definitions and workflow runs: their events, states and decisions.

Two aggregates:

``workflow:<name>``  (definition)
    ``workflow.defined`` records version *n* of a definition (its steps, where it came
    from). Re-creating a workflow records the next version; runs name the version they
    ran, so an old run can always be explained by the definition it actually used.

``workflow_run:<run id>``  (run, lifecycle ``WORKFLOW_RUN``)
    ``workflow_run.created`` (PENDING; workflow, definition version, parameters as given,
    step -> task id) and ``workflow_run.started`` (RUNNING) are committed in the same
    transaction as the steps' ``task.created`` events; ``workflow_run.completed``,
    ``workflow_run.failed`` (with the errors, and why: a step failed, or the run's
    timeout) and ``workflow_run.cancelled`` end it.

Step parameters may reference global parameters as ``{{name}}`` and earlier steps'
results as ``{{step.output}}`` (optionally ``{{step.output.key.0}}``); a reference to a
step implies a dependency on it. :func:`references` finds them; the engine resolves them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from domain.enums import WorkflowStatus
from domain.errors import DependencyCycleError, ValidationError
from domain.events import Event, EventMeta, register_event_types
from domain.lifecycles import WORKFLOW_RUN

__all__ = [
    "REFERENCE",
    "RunState",
    "StepSpec",
    "WorkflowDefined",
    "WorkflowRunCancelled",
    "WorkflowRunCompleted",
    "WorkflowRunCreated",
    "WorkflowRunFailed",
    "WorkflowRunStarted",
    "define",
    "evolve_run",
    "open_run",
    "output_path",
    "references",
    "step_order",
    "substitute",
    "validate_steps",
]

# {{name}}, {{step.output}}, {{step.output.key.0}}
REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*)(\.output((?:\.[A-Za-z0-9_\-]+)*))?\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class StepSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a definition, as recorded (the spec's ``WorkflowStep``)."""

    name: str
    module: str
    action: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    dependencies: list[str] = msgspec.field(default_factory=list)
    timeout: float | None = None
    max_retries: int = 3
    retry_delay: float = 1.0
    soft_timeout: float | None = None


class _WorkflowEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "workflow"


class WorkflowDefined(_WorkflowEvent, frozen=True, kw_only=True, tag="workflow.defined"):
    """Version ``version`` (the aggregate version) of workflow ``aggregate_id``."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("description",)

    steps: list[StepSpec]
    source: str = "api"
    description: str = ""


class _RunEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "workflow_run"


class WorkflowRunCreated(_RunEvent, frozen=True, kw_only=True, tag="workflow_run.created"):
    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("parameters", "metadata")

    workflow: str
    definition_version: int
    restart_of: str = ""
    """The run this one resumes (its completed steps are reused)."""
    forked_from: str = ""
    """The run this one forks (from ``from_step`` on, the steps run again)."""
    from_step: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    step_tasks: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: float | None = None
    session_id: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    reused_steps: list[str] = msgspec.field(default_factory=list)
    """Steps that keep the original run's results (``task.reused``) instead of running."""


class WorkflowRunStarted(_RunEvent, frozen=True, kw_only=True, tag="workflow_run.started"):
    pass


class WorkflowRunCompleted(_RunEvent, frozen=True, kw_only=True, tag="workflow_run.completed"):
    duration: float


class WorkflowRunFailed(_RunEvent, frozen=True, kw_only=True, tag="workflow_run.failed"):
    reason: str  # "step_failed" | "timeout" | "error"
    errors: list[str] = msgspec.field(default_factory=list)
    duration: float = 0.0


class WorkflowRunCancelled(_RunEvent, frozen=True, kw_only=True, tag="workflow_run.cancelled"):
    reason: str = ""
    duration: float = 0.0


RUN_EVENT_TYPES: tuple[type[_RunEvent], ...] = (
    WorkflowRunCreated,
    WorkflowRunStarted,
    WorkflowRunCompleted,
    WorkflowRunFailed,
    WorkflowRunCancelled,
)
register_event_types(WorkflowDefined, *RUN_EVENT_TYPES)

RUN_TRIGGER_OF: dict[type[Event], str] = {
    WorkflowRunStarted: "start",
    WorkflowRunCompleted: "complete",
    WorkflowRunFailed: "fail",
    WorkflowRunCancelled: "cancel",
}


def references(value: Any) -> Iterator[tuple[str, str | None]]:
    """Every ``(name, output path or None)`` referenced in a parameter value.
    ``{{x}}`` -> ``("x", None)``; ``{{s.output.a}}`` -> ``("s", ".a")``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            for m in REFERENCE.finditer(item):
                yield m.group(1), (m.group(3) or "") if m.group(2) else None
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def substitute(value: Any, lookup: Callable[[str, str | None], Any]) -> Any:
    """``value`` with every ``{{...}}`` reference replaced by ``lookup(name, path)``.

    A string that is exactly one reference becomes the referenced value (its type is
    kept); a reference inside a longer string is formatted into it (strings as they
    are, other values as JSON). Dicts and lists are rebuilt; nothing is mutated."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole is not None and value.strip() == value:
            return lookup(whole.group(1), (whole.group(3) or "") if whole.group(2) else None)

        def one(m: re.Match[str]) -> str:
            found = lookup(m.group(1), (m.group(3) or "") if m.group(2) else None)
            return found if isinstance(found, str) else json.dumps(found)

        return REFERENCE.sub(one, value)
    if isinstance(value, dict):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    return value


def output_path(data: Any, path: str, where: str) -> Any:
    """Follow ``.key.0.key`` into a step's result."""
    for part in [p for p in path.split(".") if p]:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise ValidationError(f"{where}: the result has no {part!r} (path {path!r})")
    return data


def validate_steps(name: object, steps: list[StepSpec]) -> None:
    """Definition rules: a valid name, at least one step, unique step names, known
    dependencies (explicit or implied by ``{{step.output}}``), no cycles."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"workflow name {name!r} is not valid: use letters, digits, '_', '-', '.' (at most 128)",
            details={"name": repr(name)},
        )
    if not steps:
        raise ValidationError(f"workflow {name!r} has no steps", details={"name": name})
    seen: set[str] = set()
    for step in steps:
        if not _NAME.match(step.name):
            raise ValidationError(f"workflow {name!r}: step name {step.name!r} is not valid")
        if step.name in seen:
            raise ValidationError(f"workflow {name!r}: step name {step.name!r} is used twice")
        seen.add(step.name)
    step_order(name, steps)


def implied_dependencies(step: StepSpec, step_names: set[str]) -> list[str]:
    """Explicit dependencies, then steps referenced as ``{{step.output}}`` (in order)."""
    deps = list(step.dependencies)
    for ref, path in references(step.parameters):
        if path is not None and ref in step_names and ref not in deps:
            deps.append(ref)
    return deps


def step_order(name: str, steps: list[StepSpec]) -> list[str]:
    """Step names in an order where every step follows its dependencies; raises on
    unknown dependencies (naming the steps) and on cycles (naming the cycle)."""
    names = {s.name for s in steps}
    deps = {s.name: implied_dependencies(s, names) for s in steps}
    for step in steps:
        for ref, path in references(step.parameters):
            if path is not None and ref not in names:
                raise ValidationError(
                    f"workflow {name!r}: step {step.name!r} references "
                    f"{{{{{ref}.output}}}} but there is no step {ref!r}"
                )
        unknown = [d for d in step.dependencies if d not in names]
        if unknown:
            raise ValidationError(
                f"workflow {name!r}: step {step.name!r} depends on unknown step(s) {unknown}",
                code="UNKNOWN_DEPENDENCY",
                details={"step": step.name, "unknown": unknown},
            )
        if step.name in deps[step.name]:
            raise DependencyCycleError(f"workflow {name!r}: step {step.name!r} depends on itself")
    order: list[str] = []
    mark: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if mark.get(n) == 2:
            return
        if mark.get(n) == 1:
            cycle = [*path[path.index(n) :], n]
            raise DependencyCycleError(
                f"workflow {name!r}: dependency cycle (each step depends on the next): {' -> '.join(cycle)}",
                details={"cycle": cycle},
            )
        mark[n] = 1
        for d in deps[n]:
            visit(d, [*path, n])
        mark[n] = 2
        order.append(n)

    for step in steps:
        visit(step.name, [])
    return order


def define(name: str, version: int, steps: list[StepSpec], meta: EventMeta, *, source: str = "api") -> WorkflowDefined:
    validate_steps(name, steps)
    return WorkflowDefined(
        aggregate_id=name,
        version=version,
        steps=steps,
        source=source,
        timestamp=meta.timestamp,
        actor=meta.actor,
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
    )


def open_run(
    run_id: str,
    meta: EventMeta,
    *,
    workflow: str,
    definition_version: int,
    parameters: dict[str, Any],
    step_tasks: dict[str, str],
    timeout: float | None = None,
    session_id: str = "",
    **lineage: Any,
) -> tuple[WorkflowRunCreated, WorkflowRunStarted]:
    """A new run: ``workflow_run.created`` (caused by its definition version, correlated
    by the run id) and ``workflow_run.started``, committed together. ``lineage``: the
    ``restart_of``/``forked_from``/``from_step``/``reused_steps`` fields of a resume or
    fork."""
    WORKFLOW_RUN.decide(WORKFLOW_RUN.initial, "start", run_id)
    created = WorkflowRunCreated(
        aggregate_id=run_id,
        version=1,
        workflow=workflow,
        definition_version=definition_version,
        parameters=parameters,
        step_tasks=step_tasks,
        timeout=timeout,
        session_id=session_id,
        timestamp=meta.timestamp,
        actor=meta.actor,
        correlation_id=run_id,
        causation_id=f"workflow:{workflow}@{definition_version}",
        **lineage,
    )
    started = WorkflowRunStarted(
        aggregate_id=run_id,
        version=2,
        timestamp=meta.timestamp,
        actor=meta.actor,
        correlation_id=run_id,
        causation_id=created.event_id,
    )
    return created, started


@dataclass
class RunState:
    """Write-side state of a run."""

    id: str
    version: int
    status: WorkflowStatus
    created: WorkflowRunCreated
    started_at: datetime | None = None
    errors: list[str] = field(default_factory=list)


def evolve_run(state: RunState | None, event: Event) -> RunState:
    if isinstance(event, WorkflowRunCreated):
        return RunState(id=event.aggregate_id, version=event.version, status=WorkflowStatus.PENDING, created=event)
    if state is None:
        from domain.errors import CorruptHistoryError

        raise CorruptHistoryError(f"{event.type} for run {event.aggregate_id} before workflow_run.created")
    trigger = RUN_TRIGGER_OF.get(type(event))
    if trigger is not None:
        state.status = WORKFLOW_RUN.decide(state.status, trigger, state.id)
    state.version = event.version
    if isinstance(event, WorkflowRunStarted):
        state.started_at = event.timestamp
    elif isinstance(event, WorkflowRunFailed):
        state.errors = list(event.errors)
    return state
