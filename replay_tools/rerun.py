"""Re-run a past workflow run and compare it with the original (a determinism check).

:func:`rerun` reads run ``run_id`` and the exact definition version it was created
from (the ``workflow.defined`` event of that workflow at the run's
``definition_version``) from the source log alone, then defines that workflow (same
name, same steps) in a *separate* target store (``memory://`` by default, or e.g. a
``sqlite:///`` file that is not the source) and executes it with the run's recorded
parameters, using the caller's :class:`ActionRegistry` (the user's current actions).
Only this execution runs user code; the source store is only read.

The two runs are then compared step by step in the definition's dependency order:

* ``status``: the step task's final status (``unknown`` if the task was never recorded);
* ``result``: the result data, for steps completed in both runs;
* ``error_type``: the error type, for steps failed in both runs;
* ``attempts``: how many attempts the step made.

The first difference in that order is the report's ``first_divergence``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

from domain.errors import NotFoundError, ValidationError
from domain.workflow import StepSpec, WorkflowDefined, step_order
from engine.models import WorkflowStep
from engine.registry import ActionRegistry
from engine.results import run_coroutine
from engine.store import EventStore, sqlite_path
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_manager import WorkflowManager
from projections.tasks import TaskRecord
from replay_tools.diff import RunSnapshot, _belongs, _snapshot
from replay_tools.history import History, opened_store

__all__ = ["Divergence", "RerunReport", "rerun"]


@dataclass(frozen=True, slots=True)
class Divergence:
    """One difference between the original and the re-executed step."""

    step: str
    field: str
    """``status``, ``result``, ``error_type`` or ``attempts``."""
    original: Any
    new: Any


@dataclass(frozen=True, slots=True)
class RerunReport:
    """The outcome of :func:`rerun`."""

    original_run: str
    new_run: str
    target: str
    same: bool
    first_divergence: Divergence | None
    divergences: tuple[Divergence, ...]
    steps: tuple[str, ...] = ()
    """The compared steps, in dependency order."""

    def text(self) -> str:
        """One line: no divergence, or the first divergence."""
        d = self.first_divergence
        if d is None:
            return f"no divergence: {len(self.steps)} steps behave the same"
        return f"first divergence at step {d.step}: {d.field} {d.original!r} -> {d.new!r}"


def _url_of(source: History | EventStore | str) -> str:
    if isinstance(source, History):
        return source.store.url
    if isinstance(source, EventStore):
        return source.url
    return source


def _same_store(source_url: str, target: str) -> bool:
    if target.split("://", 1)[0].lower() == "memory":
        return False  # every memory:// URL opens a fresh store
    if source_url == target:
        return True
    try:
        return os.path.realpath(sqlite_path(source_url)) == os.path.realpath(sqlite_path(target))
    except Exception:  # noqa: BLE001 -- not both SQLite URLs: only equal URLs are the same store
        return False


def _definition(store: EventStore, workflow: str, version: int) -> list[StepSpec]:
    for recorded in store.read(types=("workflow.defined",)):
        event = recorded.event
        if isinstance(event, WorkflowDefined) and event.aggregate_id == workflow and event.version == version:
            return list(event.steps)
    raise NotFoundError(
        f"no definition of workflow {workflow!r} version {version} in the source store",
        details={"kind": "workflow", "id": workflow, "version": version},
    )


def _workflow_step(spec: StepSpec) -> WorkflowStep:
    return WorkflowStep(
        name=spec.name,
        module=spec.module,
        action=spec.action,
        parameters=dict(spec.parameters),
        dependencies=list(spec.dependencies),
        timeout=cast(Any, spec.timeout),  # recorded as seconds (float); accepted as is
        max_retries=spec.max_retries,
        retry_delay=spec.retry_delay,
        soft_timeout=spec.soft_timeout,
    )


def _status(task: TaskRecord | None) -> str:
    return str(task.status.value) if task is not None else "unknown"


def _compare(order: list[str], a: RunSnapshot, b: RunSnapshot) -> list[Divergence]:
    out: list[Divergence] = []
    for step in order:
        ta, tb = a.steps.get(step), b.steps.get(step)
        sa, sb = _status(ta), _status(tb)
        if sa != sb:
            out.append(Divergence(step, "status", sa, sb))
        ra = ta.result if ta is not None else None
        rb = tb.result if tb is not None else None
        if sa == sb == "completed" and (ra.data if ra else None) != (rb.data if rb else None):
            out.append(Divergence(step, "result", ra.data if ra else None, rb.data if rb else None))
        if sa == sb == "failed" and (ra.error_type if ra else None) != (rb.error_type if rb else None):
            out.append(Divergence(step, "error_type", ra.error_type if ra else None, rb.error_type if rb else None))
        aa, ab = (ta.attempts if ta else 0), (tb.attempts if tb else 0)
        if aa != ab:
            out.append(Divergence(step, "attempts", aa, ab))
    return out


def rerun(
    source_store_or_url: History | EventStore | str,
    run_id: str,
    *,
    registry: ActionRegistry,
    target: str = "memory://",
) -> RerunReport:
    """Re-execute run ``run_id`` of the source into ``target`` and compare (see the
    module docstring). An unknown run (or a missing definition version) raises
    :class:`NotFoundError`; a target that is the source store raises
    :class:`ValidationError`. The source store is never written."""
    if not isinstance(target, str) or "://" not in target:
        raise ValidationError(f"target must be a store URL such as memory:// or sqlite:///path, got {target!r}")
    if _same_store(_url_of(source_store_or_url), target):
        raise ValidationError(
            f"target {target!r} is the source store; re-run into a separate store",
            suggestions=["Use target='memory://' or another sqlite:///path."],
        )
    with opened_store(source_store_or_url) as store:
        recorded = list(store.read())
        original = _snapshot([r for r in recorded if _belongs(r, run_id)], run_id)
        specs = _definition(store, original.run.workflow, original.run.definition_version)
    order = step_order(original.run.workflow, specs)

    orchestrator = TaskOrchestrator(store=target, registry=registry)
    try:
        manager = WorkflowManager(orchestrator=orchestrator, workflows_dir=None, load_files=False)
        try:
            manager.create_workflow(original.run.workflow, [_workflow_step(s) for s in specs], save=False)
            execution = run_coroutine(manager.execute_workflow(original.run.workflow, dict(original.run.parameters)))
            orchestrator.store.flush()
            new = _snapshot([r for r in orchestrator.store.read() if _belongs(r, execution.run_id)], execution.run_id)
        finally:
            manager.close()
    finally:
        orchestrator.close()

    divergences = _compare(order, original, new)
    return RerunReport(
        original_run=run_id,
        new_run=execution.run_id,
        target=target,
        same=not divergences,
        first_divergence=divergences[0] if divergences else None,
        divergences=tuple(divergences),
        steps=tuple(order),
    )
