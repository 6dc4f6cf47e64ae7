"""The spec's ``WorkflowManager``: workflow definitions and runs on the event log.

A run is one ``workflow_run`` aggregate plus one task per step in the
:class:`TaskOrchestrator` (task id ``<run id>/<step>``, correlation id = the run id), all
created in one commit. Steps run through the orchestrator's scheduler, so dependencies,
retries, per-step timeouts, skipping and cancellation are the tasks' own. When every
step is final (and committed) the run is recorded COMPLETED (all steps completed) or
FAILED (with one error string per failed, timed-out or skipped step). A whole-run
``timeout`` cancels the steps still open, records the run FAILED with reason
``"timeout"``, and raises ``asyncio.TimeoutError``; cancelling the awaiting coroutine
records it CANCELLED. A run is never left RUNNING by this process.

Parameters: ``{{name}}`` is replaced by the run's global parameter when the run is
created (so the recorded task parameters show the value used); ``{{step.output}}``
(``{{step.output.key}}``) is resolved from the recorded result of that step just before
the action runs, and implies a dependency on it. An unknown ``{{name}}`` is a
``ValueError`` before anything is recorded.

``estimated_duration`` in :meth:`list_workflows` is the mean measured duration of the
workflow's completed runs when there are any, else the longest chain of step timeouts
through the dependency graph (a step without a timeout counts ``DEFAULT_STEP_ESTIMATE``
seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from domain.enums import TaskStatus, WorkflowStatus
from domain.errors import ConcurrencyConflictError, NotFoundError, OrchestrationError, ValidationError
from domain.events import Event, EventMeta, Recorded
from domain.idempotency import check_key, fingerprint
from domain.idempotency import claim as idempotency_claim
from domain.lease import LeaseState
from domain.lifecycles import TASK, WORKFLOW_RUN
from domain.workflow import (
    RunState,
    StepSpec,
    WorkflowDefined,
    WorkflowRunCancelled,
    WorkflowRunCompleted,
    WorkflowRunCreated,
    WorkflowRunFailed,
    define,
    evolve_run,
    implied_dependencies,
    open_run,
    references,
    step_order,
    substitute,
    validate_steps,
)
from engine.builtins import register_missing_builtins
from engine.config import load_config
from engine.executors import executor_from_config
from engine.idempotency import Claims
from engine.leases import read_leases
from engine.models import Task, WorkflowExecution, WorkflowStep
from engine.registry import DEFAULT_REGISTRY
from engine.store import apply_each
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_files import parse_workflow_file, step_spec, write_workflow_file
from projections.workflows import DefinitionRecord, WorkflowView
from projections.workflows import apply as apply_workflow_event

__all__ = ["DEFAULT_STEP_ESTIMATE", "WorkflowManager"]

DEFAULT_STEP_ESTIMATE = 60
WORKFLOW_TOPICS = (
    "workflow.defined",
    "workflow_run.created",
    "workflow_run.started",
    "workflow_run.completed",
    "workflow_run.failed",
    "workflow_run.cancelled",
)


class WorkflowManager:
    """Defines, stores and runs workflows. Shares the orchestrator's event store."""

    def __init__(
        self,
        *,
        orchestrator: TaskOrchestrator | None = None,
        store: str | None = None,
        workflows_dir: str | Path | None = None,
        performance_monitoring: bool = True,
        load_files: bool = True,
    ) -> None:
        self._owns_orchestrator = orchestrator is None
        if orchestrator is None:
            config = load_config(store_url=store, workflows_dir=workflows_dir)
            registry = DEFAULT_REGISTRY
            register_missing_builtins(registry, enable_shell=config.enable_shell, base_dir=str(config.data_dir))
            orchestrator = TaskOrchestrator(
                config.max_workers, store=config.store_url, registry=registry, executor=executor_from_config(config)
            )
            workflows_dir = config.workflows_dir
            performance_monitoring = config.performance_monitoring and performance_monitoring
        self.orchestrator = orchestrator
        self.store = self.orchestrator.store
        self.runtime = self.orchestrator.runtime
        self.workflows_dir = Path(workflows_dir) if workflows_dir is not None else None
        self.performance_monitoring = performance_monitoring
        self.load_errors: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._view_lock = threading.Lock()
        self.view = WorkflowView()
        self._runs: dict[str, RunState] = {}
        self._active: set[str] = set()  # runs this process is driving to their end
        self._recovered_done = threading.Condition(self._lock)
        self._to_finish: list[str] = []
        self._finisher: threading.Thread | None = None
        self._unsubscribe = self.store.subscribe(
            self._on_committed, history=apply_each(self._apply), types=WORKFLOW_TOPICS
        )
        self.claims = Claims(self.store)
        if load_files and self.workflows_dir is not None and self.workflows_dir.is_dir():
            self.load_directory(self.workflows_dir)

    # -- views -----------------------------------------------------------------

    def _apply(self, recorded: Recorded) -> None:
        event = recorded.event
        with self._view_lock:
            apply_workflow_event(self.view, recorded)
        if event.KIND == "workflow_run":
            self._runs[event.aggregate_id] = evolve_run(self._runs.get(event.aggregate_id), event)

    def _on_committed(self, batch: Sequence[Recorded]) -> None:
        for recorded in batch:
            event = recorded.event
            if event.KIND in ("workflow", "workflow_run"):
                self._apply(recorded)

    def _meta(self, actor: str = "system", correlation_id: str = "", causation_id: str = "") -> EventMeta:
        return EventMeta(
            timestamp=self.runtime.clock.now(),
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )

    # -- definitions -----------------------------------------------------------

    def create_workflow(self, name: str, steps: list[WorkflowStep], save: bool = True) -> bool:
        """Record a new version of workflow ``name`` (and, with ``save``, write its JSON
        file to the workflows directory first). Returns True; raises ``ValueError``
        (a :class:`ValidationError`) on an invalid name or steps, ``OSError`` if the file
        cannot be written (then nothing is recorded)."""
        if not isinstance(steps, list):
            raise ValidationError(f"steps must be a list of WorkflowStep, got {type(steps).__name__}")
        specs = [step_spec(s, f"workflow {name!r} step {i}") for i, s in enumerate(steps)]
        validate_steps(name, specs)
        if save:
            if self.workflows_dir is None:
                raise ValidationError(
                    "create_workflow(save=True) needs a workflows directory; pass workflows_dir= or save=False"
                )
            write_workflow_file(self.workflows_dir, name, specs)
        self._define(name, specs, source="api")
        return True

    def _define(self, name: str, specs: list[StepSpec], source: str) -> bool:
        with self._lock:
            with self._view_lock:
                current = self.view.definitions.get(name)
            if current is not None and current.steps == specs:
                return False
            event = define(name, (current.version if current else 0) + 1, specs, self._meta(), source=source)
            self.store.append([event])
        return True

    def load_directory(self, directory: Path) -> list[str]:
        """Record every ``*.json`` workflow in ``directory`` whose content differs from
        its latest recorded version. A malformed file is reported in ``load_errors``
        (file name and reason) and the others still load. Returns the names loaded."""
        loaded = []
        for path in sorted(directory.glob("*.json")):
            try:
                name, specs = parse_workflow_file(path)
                validate_steps(name, specs)
                self._define(name, specs, source=f"file:{path.name}")
            except OrchestrationError as e:
                self.load_errors.append((path.name, str(e)))
                continue
            loaded.append(name)
        return loaded

    def get_workflow(self, name: str) -> list[WorkflowStep] | None:
        with self._view_lock:
            record = self.view.definitions.get(name)
        if record is None:
            return None
        return [
            WorkflowStep(
                name=s.name,
                module=s.module,
                action=s.action,
                parameters=dict(s.parameters),
                dependencies=list(s.dependencies),
                timeout=_step_timeout(s.timeout),
                max_retries=s.max_retries,
                retry_delay=s.retry_delay,
                soft_timeout=s.soft_timeout,
            )
            for s in record.steps
        ]

    def list_workflows(self) -> dict[str, dict[str, Any]]:
        with self._view_lock:
            definitions = list(self.view.definitions.values())
            durations: dict[str, list[float]] = {}
            for run in self.view.runs.values():
                if run.status is WorkflowStatus.COMPLETED and run.duration is not None:
                    durations.setdefault(run.workflow, []).append(run.duration)
        out: dict[str, dict[str, Any]] = {}
        for d in definitions:
            measured = durations.get(d.name)
            out[d.name] = {
                "steps": len(d.steps),
                "modules": sorted({s.module for s in d.steps}),
                "estimated_duration": (
                    math.ceil(sum(measured) / len(measured)) if measured else _critical_path(d.name, d.steps)
                ),
                "has_dependencies": any(implied_dependencies(s, {x.name for x in d.steps}) for s in d.steps),
                "created_time": d.created_at.isoformat(),
            }
        return out

    # -- runs --------------------------------------------------------------------

    async def execute_workflow(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        timeout: float | None = None,
        *,
        session_id: str = "",
        actor: str = "system",
        idempotency_key: str | None = None,
    ) -> WorkflowExecution:
        """Run the latest version of ``name``; see the module docstring. Inside a
        session (``session_id``) the steps are limited by the session's limits and
        ``actor`` (its user) stamps every event.

        With an ``idempotency_key``, the first call starts the run and every later call
        with the same key (in this process or another, before or after a restart)
        returns that run once it has ended, instead of starting another; a key used
        for a different workflow or different parameters raises ``ValidationError``."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ValidationError(f"timeout must be a number > 0 or None, got {timeout!r}")
        claim: tuple[str, str] | None = None
        if idempotency_key is not None:
            key = check_key(idempotency_key)
            claim = (key, fingerprint("workflow_run", name, parameters or {}))
            existing = self.claims.existing(key, "workflow_run", claim[1])
            if existing is not None:
                return await asyncio.to_thread(self._wait_for_run, existing)
        try:
            run_id, task_ids = await asyncio.to_thread(
                self._start_run, name, parameters or {}, timeout, session_id, actor, claim
            )
        except ConcurrencyConflictError as e:
            if claim is None or e.details.get("stream_id") != f"idempotency:{claim[0]}":
                raise
            existing = self.claims.existing(claim[0], "workflow_run", claim[1])  # a concurrent call won
            assert existing is not None
            return await asyncio.to_thread(self._wait_for_run, existing)
        try:
            return await self._drive(run_id, task_ids, name, timeout)
        finally:
            with self._lock:
                self._active.discard(run_id)

    async def _drive(
        self, run_id: str, task_ids: dict[str, str], name: str, timeout: float | None
    ) -> WorkflowExecution:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not finished.done():
                finished.set_result(None)

        def done() -> None:  # on the store's committer thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(resolve)

        self.orchestrator.when_final(task_ids.values(), done)
        try:
            await asyncio.wait_for(asyncio.shield(finished), timeout)
        except TimeoutError:
            await asyncio.to_thread(
                self._abort_run, run_id, "timeout", f"workflow {name!r} exceeded its timeout of {timeout:g}s"
            )
            raise
        except asyncio.CancelledError:
            await asyncio.shield(
                asyncio.to_thread(self._abort_run, run_id, "cancelled", "the caller cancelled the run")
            )
            raise
        return await asyncio.to_thread(self._finish_run, run_id)

    def _start_run(
        self,
        name: str,
        parameters: dict[str, Any],
        timeout: float | None,
        session_id: str,
        actor: str,
        claim: tuple[str, str] | None = None,
        restart: _Restart | None = None,
    ) -> tuple[str, dict[str, str]]:
        definition: DefinitionRecord | _Restart | None
        if restart is not None:
            definition = restart
        else:
            with self._view_lock:
                definition = self.view.definitions.get(name)
        if definition is None:
            raise ValidationError(f"workflow {name!r} not found", code="UNKNOWN_WORKFLOW")
        if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
            raise ValidationError(f"parameters must be a dict with string keys, got {parameters!r:.100}")
        steps = {s.name: s for s in definition.steps}
        missing = sorted(
            {ref for s in definition.steps for ref, path in references(s.parameters) if path is None} - set(parameters)
        )
        if missing:
            raise ValidationError(
                f"workflow {name!r} needs parameter(s) {missing} (referenced as {{{{name}}}}); "
                f"got {sorted(parameters)}",
                code="UNKNOWN_PARAMETER",
                details={"missing": missing},
            )
        run_id = self.runtime.ids.new_id()
        task_ids = {step: f"{run_id}/{step}" for step in steps}
        with self._lock:
            self._active.add(run_id)

        def global_param(ref: str, path: str | None) -> Any:
            if path is not None:  # a step output: resolved when the step runs
                return "{{" + ref + ".output" + path + "}}"
            return parameters[ref]

        tasks, aliases = [], {}
        names = set(steps)
        for step_name in step_order(name, definition.steps):
            step = steps[step_name]
            deps = implied_dependencies(step, names)
            tid = task_ids[step_name]
            aliases[tid] = {d: task_ids[d] for d in deps}
            tasks.append(
                Task(
                    id=tid,
                    name=f"{name}.{step_name}",
                    module=step.module,
                    action=step.action,
                    parameters=substitute(step.parameters, global_param),
                    dependencies=[task_ids[d] for d in deps],
                    timeout=step.timeout,  # type: ignore[arg-type]
                    max_retries=step.max_retries,
                    retry_delay=step.retry_delay,
                    soft_timeout=step.soft_timeout,
                    metadata={"workflow": name, "run_id": run_id, "step": step_name},
                )
            )
        meta = self._meta(actor, correlation_id=run_id)
        created, started = open_run(
            run_id,
            meta,
            workflow=name,
            definition_version=definition.version,
            parameters=parameters,
            step_tasks=task_ids,
            timeout=float(timeout) if timeout is not None else None,
            session_id=session_id,
            **(restart.lineage if restart is not None else {}),
        )
        with_events: list[Event] = [created, started]
        if claim is not None:
            with_events.append(
                idempotency_claim(claim[0], meta, kind="workflow_run", target=run_id, fingerprint=claim[1])
            )
        try:
            reused = {task_ids[step]: source for step, source in restart.reused.items()} if restart else None
            self.orchestrator.add_tasks(
                tasks,
                correlation_id=run_id,
                actor=actor,
                aliases=aliases,
                with_events=with_events,
                group=session_id,
                reused=reused,
            )
        except BaseException:
            with self._lock:
                self._active.discard(run_id)
            raise
        self.orchestrator.start_execution()
        return run_id, task_ids

    def _wait_for_run(self, run_id: str, poll: float = 0.05) -> WorkflowExecution:
        """Block until ``run_id`` (started by an earlier call, maybe in another
        process) has ended; its execution from the log."""
        while True:
            with self._lock:
                local = run_id in self._active
            state = self._runs.get(run_id) if local else self._known_run(run_id)
            if state is not None and WORKFLOW_RUN.is_final(state.status):
                return self.get_execution(run_id)
            time.sleep(poll if local else 4 * poll)

    def _known_run(self, run_id: str) -> RunState:
        """``run_id``'s state, after folding in what other processes committed (the
        store hands their events over, in log order, once)."""
        self.store.catch_up()
        state = self._runs.get(run_id)
        if state is None:
            raise NotFoundError(f"no workflow run {run_id!r} in {self.store.url}")
        return state

    def _step_outcomes(self, run_id: str) -> tuple[dict[str, Any], list[str], dict[str, Any], list[str]]:
        """(results, errors, per-step metrics, open step task ids) of a run, from the
        committed task view."""
        run = self.view.runs[run_id]
        results: dict[str, Any] = {}
        errors: list[str] = []
        metrics: dict[str, Any] = {}
        open_tasks: list[str] = []
        records = self.orchestrator.task_records(run.step_tasks.values())
        for (step, task_id), task in zip(run.step_tasks.items(), records, strict=True):
            if task is None:
                continue
            res = task.result
            metrics[step] = {
                "status": task.status.value,
                "execution_time": res.execution_time if res else 0.0,
                "attempts": task.attempts,
                "retries": task.retry_count,
            }
            if task.status is TaskStatus.COMPLETED and res is not None:
                results[step] = res.data
            elif TASK.is_final(task.status) and res is not None:
                errors.append(f"step {step!r} {task.status.value}: {res.error_type}: {res.error_message}")
            elif not TASK.is_final(task.status):
                open_tasks.append(task_id)
        return results, errors, metrics, open_tasks

    def _record_end(self, run_id: str, make: Any) -> None:
        with self._lock:
            state = self._runs[run_id]
            if WORKFLOW_RUN.is_final(state.status):
                return
            started = state.started_at or state.created.timestamp
            now = self.runtime.clock.now()
            event: Event = make(state, (now - started).total_seconds(), now)
            self.store.append([event])

    def _finish_run(self, run_id: str) -> WorkflowExecution:
        self.store.flush()
        with self._view_lock:
            outcomes = self._step_outcomes(run_id)
        self._record_end(run_id, functools.partial(self._end_event, run_id, outcomes[1]))
        return self.get_execution(run_id, outcomes)

    @staticmethod
    def _end_event(run_id: str, errors: list[str], state: RunState, duration: float, now: datetime) -> Event:
        """``workflow_run.completed``, or ``failed`` when a step's error is in ``errors``."""
        env = _Envelope(run_id, state.version + 1, now, state.created.actor).fields()
        if errors:
            WORKFLOW_RUN.decide(state.status, "fail", run_id)
            return WorkflowRunFailed(reason="step_failed", errors=errors, duration=duration, **env)
        WORKFLOW_RUN.decide(state.status, "complete", run_id)
        return WorkflowRunCompleted(duration=duration, **env)

    def _abort_run(self, run_id: str, reason: str, message: str) -> None:
        """End a run that is still open: cancel its open steps, record the run."""
        with self._view_lock:
            _, _, _, open_tasks = self._step_outcomes(run_id)
        for task_id in open_tasks:
            self.orchestrator.cancel_task(task_id, reason=message)
        self.store.flush()
        with self._view_lock:
            _, errors, _, _ = self._step_outcomes(run_id)

        def make(state: RunState, duration: float, now: datetime) -> Event:
            env = _Envelope(run_id, state.version + 1, now, state.created.actor).fields()
            if reason == "cancelled":
                WORKFLOW_RUN.decide(state.status, "cancel", run_id)
                return WorkflowRunCancelled(reason=message, duration=duration, **env)
            WORKFLOW_RUN.decide(state.status, "fail", run_id)
            return WorkflowRunFailed(reason=reason, errors=[message, *errors], duration=duration, **env)

        self._record_end(run_id, make)

    def get_execution(
        self, run_id: str, outcomes: tuple[dict[str, Any], list[str], dict[str, Any], list[str]] | None = None
    ) -> WorkflowExecution:
        """A run as the spec's ``WorkflowExecution``, from the committed views."""
        with self._view_lock:
            run = self.view.runs.get(run_id)
            if run is None:
                raise NotFoundError(f"no workflow run {run_id!r}")
            results, errors, metrics, _ = outcomes if outcomes is not None else self._step_outcomes(run_id)
            return WorkflowExecution(
                workflow_name=run.workflow,
                status=run.status,
                start_time=run.started_at,
                end_time=run.ended_at,
                results=results,
                errors=list(run.errors) if run.errors else errors,
                performance_metrics={
                    "run_id": run_id,
                    "definition_version": run.definition_version,
                    "duration": run.duration,
                    "steps": metrics,
                },
                run_id=run_id,
            )

    def get_performance_summary(self, workflow_name: str | None = None) -> dict[str, Any]:
        """Run statistics from the views: the spec's keys. With performance monitoring
        disabled in the configuration, an ``error`` says so (the log still has it all)."""
        if not self.performance_monitoring:
            return {"error": "performance monitoring is disabled (performance_monitoring: false in the configuration)"}
        with self._view_lock:
            if workflow_name is not None and workflow_name not in self.view.definitions:
                raise ValidationError(f"workflow {workflow_name!r} not found", code="UNKNOWN_WORKFLOW")
            runs = [r for r in self.view.runs.values() if workflow_name in (None, r.workflow)]
            step_tasks = [(r.workflow, t) for r in runs for t in r.step_tasks.values()]
        ended = [r for r in runs if r.duration is not None]
        per_workflow: dict[str, dict[str, Any]] = {}
        for r in runs:
            s = per_workflow.setdefault(
                r.workflow, {"executions": 0, "completed": 0, "failed": 0, "cancelled": 0, "durations": []}
            )
            s["executions"] += 1
            if r.status is WorkflowStatus.COMPLETED:
                s["completed"] += 1
            elif r.status is WorkflowStatus.FAILED:
                s["failed"] += 1
            elif r.status is WorkflowStatus.CANCELLED:
                s["cancelled"] += 1
            if r.duration is not None:
                s["durations"].append(r.duration)
        for s in per_workflow.values():
            d = s.pop("durations")
            s.update(
                average_duration=sum(d) / len(d) if d else 0.0,
                min_duration=min(d) if d else 0.0,
                max_duration=max(d) if d else 0.0,
            )
        modules: dict[str, dict[str, Any]] = {}
        for _, task_id in step_tasks:
            task = self.orchestrator.get_task(task_id)
            if task is None:
                continue
            m = modules.setdefault(task.module, {"steps": 0, "completed": 0, "failed": 0, "total_time": 0.0})
            m["steps"] += 1
            if task.status is TaskStatus.COMPLETED:
                m["completed"] += 1
            elif task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED):
                m["failed"] += 1
            if task.result is not None:
                m["total_time"] += task.result.execution_time
        return {
            "performance_stats": per_workflow,
            "total_workflows_executed": len(runs),
            "successful_executions": sum(1 for r in runs if r.status is WorkflowStatus.COMPLETED),
            "failed_executions": sum(1 for r in runs if r.status is WorkflowStatus.FAILED),
            "average_execution_time": sum(r.duration or 0.0 for r in ended) / len(ended) if ended else 0.0,
            "module_usage_stats": modules,
        }

    # -- resume and fork ---------------------------------------------------------

    async def resume(
        self,
        run_id: str,
        *,
        current_definition: bool = False,
        timeout: float | None = None,
        session_id: str = "",
        actor: str = "system",
    ) -> WorkflowExecution:
        """Run an ended run again as a new run (``restart_of`` ``run_id``): its
        COMPLETED steps keep their recorded results without running
        (``task.reused``); every other step and everything downstream of it runs.
        ``current_definition``: the workflow's latest version instead of the run's."""
        restart = self._plan_restart(run_id, None, None, current_definition)
        return await self._run_restart(restart, timeout, session_id, actor)

    async def fork(
        self,
        run_id: str,
        from_step: str,
        *,
        parameters: dict[str, Any] | None = None,
        current_definition: bool = False,
        timeout: float | None = None,
        session_id: str = "",
        actor: str = "system",
    ) -> WorkflowExecution:
        """A new run (``forked_from`` ``run_id``) in which ``from_step`` and every step
        downstream of it run again, with the run's parameters updated by
        ``parameters``; the other steps keep their recorded results (those that did
        not complete run again too)."""
        restart = self._plan_restart(run_id, from_step, parameters, current_definition)
        return await self._run_restart(restart, timeout, session_id, actor)

    async def _run_restart(
        self, restart: _Restart, timeout: float | None, session_id: str, actor: str
    ) -> WorkflowExecution:
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ValidationError(f"timeout must be a number > 0 or None, got {timeout!r}")
        run_id, task_ids = await asyncio.to_thread(
            self._start_run, restart.name, restart.parameters, timeout, session_id, actor, None, restart
        )
        try:
            return await self._drive(run_id, task_ids, restart.name, timeout)
        finally:
            with self._lock:
                self._active.discard(run_id)

    def _plan_restart(
        self, run_id: str, from_step: str | None, overrides: dict[str, Any] | None, current: bool
    ) -> _Restart:
        """Which steps of ``run_id`` a resume (``from_step`` None) or fork reuses."""
        if not isinstance(run_id, str) or not run_id:
            raise ValidationError(f"run_id must be a non-empty string, got {run_id!r}")
        if overrides is not None and (
            not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides)
        ):
            raise ValidationError(f"parameters must be a dict with string keys, got {overrides!r:.100}")
        state = self._known_run(run_id)
        if not WORKFLOW_RUN.is_final(state.status):
            raise ValidationError(
                f"run {run_id!r} is {state.status.value}: only an ended run can be resumed or forked",
                code="RUN_NOT_ENDED",
            )
        name = state.created.workflow
        if current:
            with self._view_lock:
                latest = self.view.definitions.get(name)
            if latest is None:
                raise NotFoundError(f"workflow {name!r} has no definition")
            version, specs = latest.version, list(latest.steps)
        else:
            version, specs = state.created.definition_version, self._recorded_steps(name, state.created)
        names = {s.name for s in specs}
        if from_step is not None and from_step not in names:
            raise ValidationError(
                f"step {from_step!r} is not a step of {name!r} version {version} (steps: {sorted(names)})",
                code="UNKNOWN_STEP",
            )
        children: dict[str, set[str]] = {n: set() for n in names}
        for spec in specs:
            for dep in implied_dependencies(spec, names):
                children[dep].add(spec.name)
        original = state.created.step_tasks
        records = dict(zip(original, self.orchestrator.task_records(original.values()), strict=True))
        again = {n for n in names if (r := records.get(n)) is None or r.status is not TaskStatus.COMPLETED}
        if from_step is not None:
            again.add(from_step)
        stack = list(again)
        while stack:  # everything downstream runs again too
            for child in children[stack.pop()]:
                if child not in again:
                    again.add(child)
                    stack.append(child)
        reused: dict[str, tuple[str, Any, float]] = {}
        for step in sorted(names - again):
            record = records[step]
            assert record is not None
            assert record.result is not None
            reused[step] = (original[step], record.result.data, record.result.execution_time)
        lineage: dict[str, Any] = {"reused_steps": sorted(reused)}
        if from_step is None:
            lineage["restart_of"] = run_id
        else:
            lineage.update(forked_from=run_id, from_step=from_step)
        parameters = {**state.created.parameters, **(overrides or {})}
        return _Restart(name, version, specs, parameters, reused, lineage)

    def _recorded_steps(self, name: str, created: WorkflowRunCreated) -> list[StepSpec]:
        for event in self.store.read_stream(f"workflow:{name}"):
            if isinstance(event, WorkflowDefined) and event.version == created.definition_version:
                return list(event.steps)
        raise NotFoundError(f"no definition of workflow {name!r} version {created.definition_version} in the log")

    # -- recovery ----------------------------------------------------------------

    def recover_runs(self, leases: Mapping[str, LeaseState] | None = None) -> list[str]:
        """Finish the runs nobody is finishing: open runs this process is not running
        whose steps it now owns (adopted by :meth:`TaskOrchestrator.recover`) or whose
        steps are all final while their creator's lease expired (the process died
        between its last step and the run's end). Each is recorded COMPLETED or FAILED
        once its steps are final, exactly as a live run would be; of two engines doing
        this at once, the run's version lets one record it. A recovered run's whole-run
        timeout is not re-armed (its steps keep their own timeouts). ``leases``: the
        folded leases if the caller has just read them. Returns their ids."""
        self.store.flush()
        self.store.catch_up()  # runs other processes started
        if leases is None:
            leases = read_leases(self.store)
        now = self.runtime.clock.now()
        me = self.orchestrator.instance_id
        recovered: list[str] = []
        for run_id, state in list(self._runs.items()):
            if WORKFLOW_RUN.is_final(state.status) or run_id in self._active:
                continue
            task_ids = list(state.created.step_tasks.values())
            owners = {self.orchestrator.task_owner(t) for t in task_ids}
            if None in owners:
                continue  # steps this process cannot see: not recoverable from here
            records = self.orchestrator.task_records(task_ids)
            mine_or_final = all(
                owner == me or (r is not None and TASK.is_final(r.status))
                for owner, r in zip((self.orchestrator.task_owner(t) for t in task_ids), records, strict=True)
            )
            dead = all(o == me or (lease := leases.get(o or "")) is None or not lease.alive(now) for o in owners)
            if not (mine_or_final and dead):
                continue
            self._active.add(run_id)
            recovered.append(run_id)
            self.orchestrator.when_final(task_ids, functools.partial(self._finish_recovered_soon, run_id))
        return recovered

    def _finish_recovered_soon(self, run_id: str) -> None:
        """when_final callback (must not block): queue the run for the one finisher
        thread, which records the ends of all queued runs in one commit."""
        with self._lock:
            self._to_finish.append(run_id)
            if self._finisher is None or not self._finisher.is_alive():
                self._finisher = threading.Thread(target=self._finish_recovered, name="recovered-runs")
                self._finisher.start()

    def _finish_recovered(self) -> None:
        while True:
            with self._lock:
                run_ids, self._to_finish = self._to_finish, []
                if not run_ids:
                    self._finisher = None
                    return
            self.store.flush()
            events: list[Event] = []
            with self._lock:
                now = self.runtime.clock.now()
                for run_id in run_ids:
                    state = self._runs[run_id]
                    if WORKFLOW_RUN.is_final(state.status):
                        continue
                    with self._view_lock:
                        errors = self._step_outcomes(run_id)[1]
                    duration = (now - (state.started_at or state.created.timestamp)).total_seconds()
                    events.append(self._end_event(run_id, errors, state, duration, now))
            try:
                self.store.append(events)
            except ConcurrencyConflictError:  # another engine ended some first: record the others
                for event in events:
                    with contextlib.suppress(ConcurrencyConflictError):  # that run is ended either way
                        self.store.append([event])
            with self._lock:
                self._active.difference_update(run_ids)
                self._recovered_done.notify_all()

    def wait_recovered(self, timeout: float | None = None) -> bool:
        """Wait until every recovered run is recorded as ended."""
        with self._lock:
            return self._recovered_done.wait_for(lambda: not self._active, timeout)

    def running_workflows(self) -> int:
        with self._view_lock:
            return self.view.running()

    def close(self) -> None:
        self._unsubscribe()
        self.claims.close()
        if self._owns_orchestrator:
            self.orchestrator.close()

    def __enter__(self) -> WorkflowManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Restart(NamedTuple):
    """A resume or fork, planned: what ``_start_run`` needs instead of the latest
    definition (``version`` and ``steps`` stand for a ``DefinitionRecord``)."""

    name: str
    version: int
    steps: list[StepSpec]
    parameters: dict[str, Any]
    reused: dict[str, tuple[str, Any, float]]
    lineage: dict[str, Any]


class _Envelope(NamedTuple):
    run_id: str
    version: int
    timestamp: datetime
    actor: str

    def fields(self) -> dict[str, Any]:
        return {
            "aggregate_id": self.run_id,
            "version": self.version,
            "timestamp": self.timestamp,
            "actor": self.actor,
            "correlation_id": self.run_id,
        }


def _critical_path(name: str, steps: list[StepSpec]) -> int:
    by_name = {s.name: s for s in steps}
    names = set(by_name)
    longest: dict[str, float] = {}
    for n in step_order(name, steps):
        step = by_name[n]
        own = step.timeout if step.timeout is not None else DEFAULT_STEP_ESTIMATE
        longest[n] = own + max((longest[d] for d in implied_dependencies(step, names)), default=0.0)
    return math.ceil(max(longest.values(), default=0.0))


def _step_timeout(seconds: float | None) -> Any:
    """A recorded step timeout for ``WorkflowStep`` (whose field is typed ``int``): whole
    seconds as ``int``, anything else as recorded (1.5 stays 1.5, not dropped)."""
    if seconds is None:
        return None
    return int(seconds) if float(seconds).is_integer() else seconds
