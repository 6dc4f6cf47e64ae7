"""The spec's ``OrchestrationEngine``: sessions, the execute_* entry points, event
handlers, and status, metrics and health read from the views.

Construction builds the parts (store, orchestrator, workflow manager) and loads state
from the log; it starts no thread. Threads start when they have work: the scheduler on
the first execution, the handler thread when a handler is registered, the session
janitor when a session with a timeout exists. ``close()`` (or ``with``) stops them.

Sessions: every option of the spec is recorded in ``session.created``. Limits are the
scheduler's: a session is a task group limited to ``max_parallel_tasks`` running tasks
(``sequential`` mode: one at a time, in creation order; ``priority``, ``parallel`` and
``resource_aware``: by priority, then age). At most ``max_parallel_workflows`` of a
session's workflows run at once; more wait for a slot. The session's ``user_id`` is the
actor on everything the session causes. A session past ``timeout_seconds`` is expired by
the engine (``session.expired``); executing in a closed or expired session is a
``ValueError``. ``resource_requirements`` are validated and recorded; admission by
resources comes with the ResourceManager.

Results: the execute_* methods return the spec's dicts. On failure they carry
``success: False`` and every key of the spec's Error Response Format (``error``,
``error_type``, ``error_code``, ``details``, ``suggestions``). An unknown ``session_id``
raises ``ValueError``, as the spec says.
"""

from __future__ import annotations

import contextlib
import functools
import math
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from domain.enums import LeaseStatus, OrchestrationMode, SessionStatus, TaskStatus, WorkflowStatus
from domain.errors import (
    ConcurrencyConflictError,
    NotFoundError,
    OrchestrationError,
    ResourceAllocationError,
    ValidationError,
    WorkflowExecutionError,
)
from domain.events import Event, EventMeta, Recorded
from domain.idempotency import check_key
from domain.idempotency import claim as idempotency_claim
from domain.idempotency import fingerprint as idempotency_fingerprint
from domain.lease import LeaseState
from domain.lifecycles import SESSION, TASK
from domain.session import (
    HandlerFailed,
    SessionActivated,
    SessionClosed,
    SessionCreated,
    SessionExpired,
)
from engine.builtins import register_missing_builtins
from engine.clock import Runtime
from engine.codec import json_problem
from engine.config import OrchestrationConfig, load_config
from engine.executors import Executor, executor_from_config
from engine.leases import read_leases
from engine.models import OrchestrationSession, Task, TaskResult, WorkflowExecution, WorkflowStep
from engine.project_manager import ProjectManager
from engine.recovery import RecoveryReport
from engine.registry import DEFAULT_REGISTRY, ActionRegistry
from engine.resource_manager import ResourceManager
from engine.results import failure, run_coroutine, workflow_result
from engine.store import apply_each, open_store
from engine.task_input import definition_of
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_manager import WorkflowManager
from projections.sessions import SessionView
from projections.sessions import apply as apply_session_event
from projections.tasks import FAILURE_RATE_DEGRADED, FAILURE_RATE_UNHEALTHY

__all__ = ["HANDLER_EVENTS", "OrchestrationEngine"]

T = TypeVar("T")

# handler event name <- stored event type
HANDLER_EVENTS: dict[str, str] = {
    "session.created": "session_created",
    "session.closed": "session_closed",
    "session.expired": "session_closed",
    "session.cancelled": "session_closed",
    "workflow_run.started": "workflow_started",
    "workflow_run.completed": "workflow_completed",
    "workflow_run.failed": "workflow_failed",
    "workflow_run.cancelled": "workflow_cancelled",
    "task.started": "task_started",
    "task.completed": "task_completed",
    "task.failed": "task_failed",
    "task.retry_scheduled": "task_retry",
    "task.cancelled": "task_cancelled",
    "task.skipped": "task_skipped",
}
SESSION_OPTIONS = {
    "mode",
    "max_parallel_tasks",
    "max_parallel_workflows",
    "timeout_seconds",
    "resource_requirements",
    "metadata",
}


def _int_option(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ValidationError(f"session option {name} must be an integer from 1 to 10000, got {value!r}")
    return value


class OrchestrationEngine:
    """Coordinates sessions, workflows and tasks on one event store."""

    def __init__(
        self,
        config: OrchestrationConfig | None = None,
        *,
        config_file: str | None = None,
        registry: ActionRegistry | None = None,
        runtime: Runtime | None = None,
        **overrides: Any,
    ) -> None:
        # executor=: a configuration value ("threads", "processes", "dask") like any
        # other override, or a ready Executor instance (used as is, closed with us)
        given = overrides.pop("executor") if isinstance(overrides.get("executor"), Executor) else None
        self.config = config if config is not None else load_config(config_file, **overrides)
        self.registry = registry if registry is not None else DEFAULT_REGISTRY
        if self.config.allow_imports:
            self.registry.allow_imports = tuple(
                dict.fromkeys((*self.registry.allow_imports, *self.config.allow_imports))
            )
        register_missing_builtins(
            self.registry, enable_shell=self.config.enable_shell, base_dir=str(self.config.data_dir)
        )
        self.store = open_store(self.config.store_url)
        self.task_orchestrator = TaskOrchestrator(
            self.config.max_workers,
            store=self.store,
            registry=self.registry,
            runtime=runtime,
            lease_ttl=self.config.lease_ttl,
            executor=given if given is not None else executor_from_config(self.config),
        )
        self.runtime = self.task_orchestrator.runtime
        self.workflow_manager = WorkflowManager(
            orchestrator=self.task_orchestrator,
            workflows_dir=self.config.workflows_dir,
            performance_monitoring=self.config.performance_monitoring,
        )
        self.resource_manager = ResourceManager(
            store=self.store,
            runtime=self.runtime,
            resource_config=self.config.resource_config,
            data_dir=self.config.data_dir,
        )
        self.project_manager = ProjectManager(
            workflow_manager=self.workflow_manager,
            projects_dir=self.config.projects_dir,
            templates_dir=self.config.templates_dir,
        )
        self._lock = threading.RLock()
        self._view_lock = threading.Lock()
        self.sessions = SessionView()
        self._versions: dict[str, int] = {}
        self._workflow_slots: dict[str, threading.BoundedSemaphore] = {}
        self._active_workflows: dict[str, int] = {}
        self._handlers: dict[str, list[Callable[[str, dict[str, Any]], Any]]] = {}
        self._handler_queue: queue.SimpleQueue[tuple[str, dict[str, Any], int] | None] = queue.SimpleQueue()
        self._handler_thread: threading.Thread | None = None
        self._janitor: threading.Thread | None = None
        self._janitor_wake = threading.Condition(self._lock)
        self._closed = False
        self.unrecorded_handler_failures: list[str] = []
        self._unsubscribe = self.store.subscribe(
            self._on_committed,
            history=apply_each(self._apply),
            types=(
                "session.created",
                "session.activated",
                "session.closed",
                "session.expired",
                "session.cancelled",
                "handler.failed",
            ),
        )
        for record in self.sessions.sessions.values():
            if record.status is SessionStatus.ACTIVE:
                self._limit_session(record.id, record.mode, record.max_parallel_tasks, record.max_parallel_workflows)
        if any(
            r.status is SessionStatus.ACTIVE and r.timeout_seconds is not None for r in self.sessions.sessions.values()
        ):
            self._ensure_janitor()  # sessions with a timeout survive a restart: keep expiring them
        self.last_recovery: RecoveryReport | None = None
        self.released_sessions: tuple[str, ...] = ()
        if self.config.recovery != "off":
            self.recover()

    # -- recovery ----------------------------------------------------------------

    def recover(self, policy: str | None = None) -> RecoveryReport:
        """Take over the work in flight of engines whose lease expired (see
        :mod:`engine.recovery`; ``policy`` defaults to the configured ``recovery``).
        Called by the constructor; call it again (e.g. periodically) for engines that
        die while this one runs. Adopted steps run at once; their runs are recorded
        as ended when their steps are final (:meth:`WorkflowManager.recover_runs`)."""
        report = self.task_orchestrator.recover(policy or self.config.recovery)
        if report.policy != "off":
            leases = read_leases(self.store)  # once, after the takeover, for runs and sessions
            self.workflow_manager.recover_runs(leases)
            self.released_sessions = self._release_lost_sessions(leases)
        if report.tasks:
            self.task_orchestrator.start_execution()
        self.last_recovery = report
        return report

    # -- views and notifications -------------------------------------------------

    def _apply(self, recorded: Recorded) -> None:
        event = recorded.event
        with self._view_lock:
            apply_session_event(self.sessions, recorded)
        if event.KIND == "session":
            self._versions[event.aggregate_id] = event.version
        elif event.KIND == "handler":
            self._versions[f"handler:{event.aggregate_id}"] = event.version

    def _on_committed(self, batch: Sequence[Recorded]) -> None:
        """Committer thread: fold session events; queue handler notifications (for
        this engine's own commits: other processes' engines notify their handlers)."""
        own = not self.store.delivering_foreign
        for recorded in batch:
            event = recorded.event
            if event.KIND in ("session", "handler"):
                self._apply(recorded)
            name = HANDLER_EVENTS.get(event.type)
            if own and name is not None and self._handlers.get(name):
                data: dict[str, Any] = {"position": recorded.position, "type": event.type, **_plain(event)}
                self._handler_queue.put((name, data, recorded.position))

    def register_event_handler(self, event: str, handler: Callable[[str, dict[str, Any]], Any]) -> None:
        """Call ``handler(event, data)`` after each committed event of that name (on the
        engine's handler thread, in log order). Names: the values of
        :data:`HANDLER_EVENTS`. A handler that raises is recorded as ``handler.failed``
        and the others still run."""
        known = sorted(set(HANDLER_EVENTS.values()))
        if event not in known:
            raise ValidationError(f"unknown event {event!r}; handlers can watch: {', '.join(known)}")
        if not callable(handler):
            raise ValidationError(f"handler for {event!r} is not callable: {handler!r}")
        with self._lock:
            self._handlers.setdefault(event, []).append(handler)
            if self._handler_thread is None:
                self._handler_thread = threading.Thread(
                    target=self._dispatch_handlers, name="engine-event-handlers", daemon=True
                )
                self._handler_thread.start()

    def _dispatch_handlers(self) -> None:
        while (item := self._handler_queue.get()) is not None:
            name, data, position = item
            for handler in list(self._handlers.get(name, ())):
                try:
                    handler(name, dict(data))
                except Exception as e:  # noqa: BLE001 -- a user's handler failing is recorded, not fatal
                    self._record_handler_failure(name, handler, e, position)

    def _record_handler_failure(self, name: str, handler: Callable[..., Any], error: Exception, position: int) -> None:
        with self._lock:
            version = self._versions.get(f"handler:{name}", 0) + 1
            self._versions[f"handler:{name}"] = version
            event = HandlerFailed(
                aggregate_id=name,
                version=version,
                timestamp=self.runtime.clock.now(),
                handler=getattr(handler, "__qualname__", repr(handler)),
                error_type=type(error).__name__,
                error_message=str(error) or repr(error),
                trigger_position=position,
            )
        if self._closed:
            return
        try:
            self.store.append([event])
        except OrchestrationError as e:  # the handler thread must outlive a failed write
            self.unrecorded_handler_failures.append(f"{name}: {error!r} (not recorded: {e})")

    # -- sessions ----------------------------------------------------------------

    def create_session(self, user_id: str = "system", **kwargs: Any) -> str:
        """Record a new ACTIVE session and return its id (options as in the spec)."""
        unknown = set(kwargs) - SESSION_OPTIONS
        if unknown:
            raise ValidationError(f"unknown session option(s) {sorted(unknown)}; known: {sorted(SESSION_OPTIONS)}")
        if not isinstance(user_id, str) or not user_id.strip():
            raise ValidationError(f"user_id must be a non-empty string, got {user_id!r}")
        try:
            mode = OrchestrationMode(kwargs.get("mode", OrchestrationMode.RESOURCE_AWARE))
        except ValueError as e:
            raise ValidationError(
                f"mode must be one of {[m.value for m in OrchestrationMode]}, got {kwargs.get('mode')!r}"
            ) from e
        max_tasks = _int_option("max_parallel_tasks", kwargs.get("max_parallel_tasks", 4))
        max_workflows = _int_option("max_parallel_workflows", kwargs.get("max_parallel_workflows", 2))
        timeout = kwargs.get("timeout_seconds", self.config.session_timeout)
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValidationError(f"timeout_seconds must be a number > 0 or None, got {timeout!r}")
        extras: dict[str, dict[str, Any]] = {}
        for key in ("resource_requirements", "metadata"):
            value = kwargs.get(key) or {}
            if not isinstance(value, Mapping):
                raise ValidationError(f"{key} must be a dict, got {type(value).__name__}")
            problem = json_problem(dict(value), key)
            if problem is not None:
                raise ValidationError(f"{key} must be JSON-compatible: {problem}")
            extras[key] = dict(value)
        requirements = extras["resource_requirements"]
        for rtype, amounts in requirements.items():
            if not isinstance(amounts, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in amounts.values()
            ):
                raise ValidationError(
                    f"resource_requirements[{rtype!r}] must map capacity keys to numbers >= 0, got {amounts!r}"
                )
        session_id = self.runtime.ids.new_id()
        now = self.runtime.clock.now()
        created = SessionCreated(
            aggregate_id=session_id,
            version=1,
            timestamp=now,
            actor=user_id,
            correlation_id=session_id,
            user_id=user_id,
            mode=mode,
            max_parallel_tasks=max_tasks,
            max_parallel_workflows=max_workflows,
            timeout_seconds=float(timeout) if timeout is not None else None,
            resource_requirements=extras["resource_requirements"],
            metadata=extras["metadata"],
            owner=self.task_orchestrator.instance_id,
        )
        SESSION.decide(SESSION.initial, "activate", session_id)
        activated = SessionActivated(
            aggregate_id=session_id,
            version=2,
            timestamp=now,
            actor=user_id,
            correlation_id=session_id,
            causation_id=created.event_id,
        )
        self._limit_session(session_id, mode, max_tasks, max_workflows)
        self.task_orchestrator.lease.ensure()  # the session's owner holds a lease (recovery looks at it)
        self.store.append([created, activated])
        if timeout is not None:
            self._ensure_janitor()
        return session_id

    def _limit_session(self, session_id: str, mode: OrchestrationMode, max_tasks: int, max_workflows: int) -> None:
        sequential = mode is OrchestrationMode.SEQUENTIAL
        self.task_orchestrator.set_group_limit(session_id, 1 if sequential else max_tasks, sequential=sequential)
        with self._lock:
            self._workflow_slots[session_id] = threading.BoundedSemaphore(1 if sequential else max_workflows)

    def get_session(self, session_id: str) -> OrchestrationSession | None:
        with self._view_lock:
            rec = self.sessions.sessions.get(session_id)
            if rec is None:
                return None
            return OrchestrationSession(
                session_id=rec.id,
                user_id=rec.user_id,
                mode=rec.mode,
                status=rec.status,
                max_parallel_tasks=rec.max_parallel_tasks,
                max_parallel_workflows=rec.max_parallel_workflows,
                timeout_seconds=rec.timeout_seconds,
                resource_requirements=dict(rec.resource_requirements),
                metadata=dict(rec.metadata),
                created_at=rec.created_at,
                ended_at=rec.ended_at,
                active_workflows=self._active_workflows.get(session_id, 0),
            )

    def close_session(self, session_id: str) -> bool:
        """Close an ACTIVE session (recorded). False if unknown or already ended."""
        return self._end_session(session_id, "close", lambda v, now, rec: SessionClosed(
            aggregate_id=session_id, version=v, timestamp=now, actor=rec.user_id,
            correlation_id=session_id, reason="closed by the user",
        ))  # fmt: skip

    def _end_session(self, session_id: str, trigger: str, make: Callable[[int, datetime, Any], Event]) -> bool:
        return bool(self._end_sessions([(session_id, make)], trigger))

    def _end_sessions(
        self, ending: Sequence[tuple[str, Callable[[int, datetime, Any], Event]]], trigger: str
    ) -> list[str]:
        """End the sessions that can take ``trigger``, in one commit, and release what
        they held; the ids ended. If the commit conflicts (another engine ended one
        first), a batch is retried one session at a time and those conflicts are
        skipped; a single session's conflict is raised."""
        with self._lock:
            events: list[Event] = []
            now = self.runtime.clock.now()
            for session_id, make in ending:
                with self._view_lock:
                    rec = self.sessions.sessions.get(session_id)
                if rec is not None and SESSION.can(rec.status, trigger):
                    events.append(make(self._versions[session_id] + 1, now, rec))
            if not events:
                return []
            try:
                self.store.append(events)
                ended = [e.aggregate_id for e in events]
            except ConcurrencyConflictError:
                if len(events) == 1:
                    raise
                ended = []
                for event in events:
                    with contextlib.suppress(ConcurrencyConflictError):
                        self.store.append([event])
                        ended.append(event.aggregate_id)
            for session_id in ended:
                self.task_orchestrator.clear_group_limit(session_id)
        for session_id in ended:
            self._release_session_resources(session_id)
        return ended

    def _session_resources(self, session_id: str) -> None:
        """A ``resource_aware`` session holds its ``resource_requirements`` while it runs
        work: allocated (and recorded) before its first execution, released when it
        ends. If they cannot be met, the execution fails with the recorded reasons."""
        with self._view_lock:
            rec = self.sessions.sessions.get(session_id)
        if rec is None or rec.mode is not OrchestrationMode.RESOURCE_AWARE or not rec.resource_requirements:
            return
        holder = f"session:{session_id}"
        with self._lock:
            if self.resource_manager.get_user_allocations(holder):
                return
            granted = self.resource_manager.allocate_resources(
                holder, dict(rec.resource_requirements), actor=rec.user_id
            )
        if granted is None:
            rejections = self.resource_manager.get_rejections(holder)
            reason = rejections[-1]["reason"] if rejections else "no resources fit"
            raise ResourceAllocationError(
                f"session {session_id} (resource_aware) cannot get its resource_requirements: {reason}",
                code="RESOURCES_UNAVAILABLE",
                details={"session_id": session_id, "requirements": rec.resource_requirements,
                         "unmet": rejections[-1]["unmet"] if rejections else {}},
                suggestions=[
                    "Lower the session's resource_requirements, free resources (close other sessions), "
                    "or use mode='parallel' to run without an allocation.",
                ],
            )  # fmt: skip

    def _release_lost_sessions(self, leases: Mapping[str, LeaseState]) -> tuple[str, ...]:
        """Close the ACTIVE sessions of engines that were lost (lease expired or taken
        over; not those that closed cleanly, whose sessions a user may go on using)
        and release what they held: recorded ``session.closed`` and allocation events."""
        now = self.runtime.clock.now()
        me = self.task_orchestrator.instance_id
        with self._view_lock:
            candidates = [
                (rec.id, rec.owner)
                for rec in self.sessions.sessions.values()
                if rec.status is SessionStatus.ACTIVE and rec.owner and rec.owner != me
            ]
        ending = []
        for session_id, owner in candidates:
            lease = leases.get(owner)
            if lease is None or not (
                lease.status is LeaseStatus.TAKEN_OVER or (lease.status is LeaseStatus.ACTIVE and lease.expired(now))
            ):
                continue
            reason = f"its engine {owner} was lost; closed by the recovery of engine {me}"
            ending.append((session_id, functools.partial(_lost_session_closed, session_id, reason)))
        return tuple(self._end_sessions(ending, "close"))

    def _release_session_resources(self, session_id: str) -> None:
        holder = f"session:{session_id}"
        if self.resource_manager.get_user_allocations(holder):
            self.resource_manager.deallocate_resources(holder)

    def _session_for(self, session_id: str | None) -> tuple[str, str, bool]:
        """(session id, user, temporary?) to run in; creates a temporary session when
        none is given. Unknown or ended sessions are ``ValueError``s."""
        if session_id is None:
            return self.create_session("system", metadata={"temporary": True}), "system", True
        with self._view_lock:
            rec = self.sessions.sessions.get(session_id)
        if rec is None:
            raise NotFoundError(f"session {session_id!r} not found")  # a LookupError ...
        if rec.status is not SessionStatus.ACTIVE:
            raise ValidationError(f"session {session_id!r} is {rec.status.value} ({rec.end_reason}); create a new one")
        return session_id, rec.user_id, False

    def _checked_session(self, session_id: str | None) -> tuple[str, str, bool]:
        try:
            return self._session_for(session_id)
        except NotFoundError as e:  # ... but the spec says ValueError
            raise ValidationError(str(e), code="SESSION_NOT_FOUND") from e

    def _resources_or_failure(self, session_id: str, **empty: Any) -> dict[str, Any] | None:
        """None when the session may run work now, else the failure dict to return."""
        try:
            self._session_resources(session_id)
        except OrchestrationError as e:
            return failure(e, **empty)
        return None

    def _ensure_janitor(self) -> None:
        with self._lock:
            if self._janitor is None and not self._closed:
                self._janitor = threading.Thread(
                    target=self._expire_sessions, name="engine-session-janitor", daemon=True
                )
                self._janitor.start()
            self._janitor_wake.notify_all()

    def _expire_sessions(self) -> None:
        """Record ``session.expired`` for every ACTIVE session past its timeout."""
        while True:
            with self._lock:
                if self._closed:
                    return
                now = self.runtime.clock.now()
                due: list[tuple[str, float]] = []
                wait = self.config.cleanup_interval
                with self._view_lock:
                    for rec in self.sessions.sessions.values():
                        if rec.status is SessionStatus.ACTIVE and rec.timeout_seconds is not None:
                            left = rec.timeout_seconds - (now - rec.created_at).total_seconds()
                            if left <= 0:
                                due.append((rec.id, rec.timeout_seconds))
                            else:
                                wait = min(wait, left)
            for sid, timeout in due:
                self._end_session(sid, "expire", functools.partial(_expired, sid, timeout))
            with self._lock:
                if self._closed:
                    return
                self._janitor_wake.wait(max(0.01, wait))

    # -- execution -----------------------------------------------------------------

    def execute_workflow(
        self,
        workflow_name: str,
        session_id: str | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Run a workflow in a session; the spec's result dict (plus ``results``,
        ``run_id``, ``status`` and ``errors``). With ``idempotency_key``, a repeated
        call returns the first call's run (waiting for it to end) instead of starting
        another; ``idempotency_key`` is therefore not a workflow parameter name."""
        sid, user, temporary = self._checked_session(session_id)
        try:
            blocked = self._resources_or_failure(sid, result=None, execution_time=None, steps_executed=0)
            if blocked is not None:
                return blocked
            return self._execute_in_session(workflow_name, params, sid, user, idempotency_key)
        finally:
            if temporary:
                self.close_session(sid)

    def resume_workflow(
        self, run_id: str, session_id: str | None = None, *, current_definition: bool = False
    ) -> dict[str, Any]:
        """Run an ended run again from where it failed: a new run (``restart_of``)
        reusing the completed steps' recorded results; the same result dict as
        :meth:`execute_workflow`. See :meth:`WorkflowManager.resume`."""
        return self._restart(
            lambda sid, user: self.workflow_manager.resume(
                run_id, current_definition=current_definition, session_id=sid, actor=user
            ),
            session_id,
        )

    def fork_workflow(
        self,
        run_id: str,
        from_step: str,
        session_id: str | None = None,
        *,
        parameters: dict[str, Any] | None = None,
        current_definition: bool = False,
    ) -> dict[str, Any]:
        """A new run (``forked_from``) that runs ``from_step`` and everything downstream
        again and reuses the rest. See :meth:`WorkflowManager.fork`."""
        return self._restart(
            lambda sid, user: self.workflow_manager.fork(
                run_id,
                from_step,
                parameters=parameters,
                current_definition=current_definition,
                session_id=sid,
                actor=user,
            ),
            session_id,
        )

    def _restart(
        self, start: Callable[[str, str], Coroutine[Any, Any, WorkflowExecution]], session_id: str | None
    ) -> dict[str, Any]:
        sid, user, temporary = self._checked_session(session_id)
        try:
            blocked = self._resources_or_failure(sid, result=None, execution_time=None, steps_executed=0)
            if blocked is not None:
                return blocked
            return self._execute_in_session("", {}, sid, user, start=start)
        finally:
            if temporary:
                self.close_session(sid)

    def _execute_in_session(
        self,
        name: str,
        params: dict[str, Any],
        sid: str,
        user: str,
        idempotency_key: str | None = None,
        start: Callable[[str, str], Coroutine[Any, Any, WorkflowExecution]] | None = None,
    ) -> dict[str, Any]:
        slot = self._workflow_slots[sid]
        with slot:
            with self._lock:
                self._active_workflows[sid] = self._active_workflows.get(sid, 0) + 1
            try:
                execution = run_coroutine(
                    start(sid, user)
                    if start is not None
                    else self.workflow_manager.execute_workflow(
                        name, params, session_id=sid, actor=user, idempotency_key=idempotency_key
                    )
                )
            except OrchestrationError as e:
                return failure(e, result=None, execution_time=None, steps_executed=0, session_id=sid)
            except TimeoutError as e:
                err = WorkflowExecutionError(f"workflow {name!r} timed out: {e}", code="WORKFLOW_TIMEOUT")
                return failure(err, result=None, execution_time=None, steps_executed=0, session_id=sid)
            finally:
                with self._lock:
                    self._active_workflows[sid] -= 1
        return workflow_result(execution, session_id=sid)

    def execute_task(
        self, task: Task | dict[str, Any], session_id: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Run one task in a session (its limits apply); ``{"success", "result",
        "task_id"}`` plus the error keys on failure. With ``idempotency_key``, a
        repeated call returns the first call's task (once final) instead of adding
        another; the key must not be reused for a different task definition."""
        sid, user, temporary = self._checked_session(session_id)
        try:
            blocked = self._resources_or_failure(sid, result=None, task_id=getattr(task, "id", None))
            if blocked is not None:
                return blocked
            if isinstance(task, dict):
                try:
                    task = Task(**task)
                except TypeError as e:
                    return failure(ValidationError(f"invalid task dict: {e}"), result=None, task_id=None)
            if not isinstance(task, Task):
                return failure(ValidationError(f"expected a Task or dict, got {type(task).__name__}"),
                                result=None, task_id=None)  # fmt: skip
            done = threading.Event()
            task_id = task.id
            try:
                claimed = self._claim_task(task, idempotency_key, sid, user)
                if claimed is not None:
                    task_id = claimed
                else:
                    self.task_orchestrator.start_execution()
                self.task_orchestrator.when_final([task_id], done.set)
            except OrchestrationError as e:
                return failure(e, result=None, task_id=task.id)
            done.wait()
            got = self.task_orchestrator.get_task(task_id)
            assert got is not None
            assert got.result is not None
            out: dict[str, Any] = {"success": got.result.success, "result": got.result.to_dict(), "task_id": task_id}
            if not got.result.success:
                out.update(_task_failure(got.id, got.status, got.result))
            return out
        finally:
            if temporary:
                self.close_session(sid)

    def _claim_task(self, task: Task, key: str | None, sid: str, user: str) -> str | None:
        """Add ``task`` (with the claim of ``key``, in one commit); the id of the task an
        earlier call with ``key`` added instead, if any."""
        if key is None:
            self.task_orchestrator.add_tasks([task], correlation_id=sid, actor=user, group=sid)
            return None
        key = check_key(key)
        _, request = definition_of(task)  # what the task asks for; its id and runtime fields aside
        fp = idempotency_fingerprint("task", f"{task.module}.{task.action}", request)
        claims = self.workflow_manager.claims
        existing = claims.existing(key, "task", fp)
        if existing is not None:
            return self._known_task(existing)
        meta = EventMeta(timestamp=self.runtime.clock.now(), actor=user, correlation_id=sid)
        claim = idempotency_claim(key, meta, kind="task", target=task.id, fingerprint=fp)
        try:
            self.task_orchestrator.add_tasks([task], correlation_id=sid, actor=user, group=sid, with_events=[claim])
        except ConcurrencyConflictError as e:
            if e.details.get("stream_id") != f"idempotency:{key}":
                raise
            existing = claims.existing(key, "task", fp)  # a concurrent call won
            assert existing is not None
            return self._known_task(existing)
        return None

    def _known_task(self, task_id: str) -> str:
        """Wait until the task an earlier call added is final. If another process
        added it, the store's catch-up brings that process's events into the views."""
        orch = self.task_orchestrator
        while True:
            if orch.task_owner(task_id) != orch.instance_id:
                self.store.catch_up()
            record = orch.get_task(task_id)
            if record is not None and TASK.is_final(record.status):
                return task_id
            time.sleep(0.05)

    def execute_project_workflow(
        self, project_name: str, workflow_name: str, session_id: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """Run a workflow for a project (its path and config become parameters; the run
        is linked to the project) in a session; the dict of :meth:`execute_workflow`
        plus ``project``."""
        sid, user, temporary = self._checked_session(session_id)
        try:
            blocked = self._resources_or_failure(sid, result=None, execution_time=None, steps_executed=0)
            if blocked is not None:
                return blocked
            with self._workflow_slots[sid]:
                result = self.project_manager.run_project_workflow(
                    project_name, workflow_name, params, session_id=sid, actor=user
                )
            result.setdefault("session_id", sid)
            return result
        finally:
            if temporary:
                self.close_session(sid)

    def execute_complex_workflow(
        self, workflow_definition: dict[str, Any], session_id: str | None = None
    ) -> dict[str, Any]:
        """Run the original module's ad-hoc definition format::

            {"steps": [{"name", "module", "action", "parameters", "dependencies"?}],
             "dependencies": {step: [step names]},
             "parallel_groups": [[step names]]}

        ``dependencies`` (both forms) order the steps; ``parallel_groups`` name steps
        that may run side by side, and are checked (a group whose steps depend on each
        other is an error). The definition is recorded as workflow ``complex-<run>``."""
        sid, user, temporary = self._checked_session(session_id)
        try:
            blocked = self._resources_or_failure(sid, results={}, execution_stats={})
            if blocked is not None:
                return blocked
            try:
                name, steps = self._complex_definition(workflow_definition)
                self.workflow_manager.create_workflow(name, steps, save=False)
            except OrchestrationError as e:
                return failure(e, results={}, execution_stats={})
            outcome = self._execute_in_session(name, {}, sid, user)
            run_id = outcome.get("run_id")
            stats = self._run_stats(run_id) if run_id else {}
            result = {"success": outcome["success"], "results": outcome.get("results", {}),
                      "execution_stats": stats, "error": outcome.get("error")}  # fmt: skip
            if not outcome["success"]:
                result.update({k: outcome[k] for k in ("error", "error_type", "error_code", "details", "suggestions")})
            result["run_id"] = run_id
            return result
        finally:
            if temporary:
                self.close_session(sid)

    def _complex_definition(self, definition: dict[str, Any]) -> tuple[str, list[WorkflowStep]]:
        if not isinstance(definition, dict):
            raise ValidationError(f"workflow_definition must be a dict, got {type(definition).__name__}")
        unknown = set(definition) - {"steps", "dependencies", "parallel_groups", "name"}
        if unknown:
            raise ValidationError(f"unknown workflow_definition key(s) {sorted(unknown)}")
        raw_steps = definition.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ValidationError("workflow_definition['steps'] must be a non-empty list of step dicts")
        deps_map = definition.get("dependencies") or {}
        if not isinstance(deps_map, dict):
            raise ValidationError("workflow_definition['dependencies'] must map step names to lists of step names")
        steps: list[WorkflowStep] = []
        for i, raw in enumerate(raw_steps):
            if not isinstance(raw, dict):
                raise ValidationError(f"step {i} must be a dict, got {type(raw).__name__}")
            extra = set(raw) - {
                "name",
                "module",
                "action",
                "parameters",
                "dependencies",
                "timeout",
                "soft_timeout",
                "max_retries",
            }
            if extra:
                raise ValidationError(f"step {raw.get('name', i)!r}: unknown key(s) {sorted(extra)}")
            name = raw.get("name")
            if not isinstance(name, str):
                raise ValidationError(f"step {i} needs a string 'name', got {name!r}")
            deps = list(raw.get("dependencies") or [])
            for d in deps_map.get(name, []):
                if d not in deps:
                    deps.append(d)
            steps.append(
                WorkflowStep(
                    name=name,
                    module=raw.get("module"),  # type: ignore[arg-type]
                    action=raw.get("action"),  # type: ignore[arg-type]
                    parameters=raw.get("parameters") or {},
                    dependencies=deps,
                    timeout=raw.get("timeout"),
                    soft_timeout=raw.get("soft_timeout"),
                    max_retries=raw.get("max_retries", 0),
                )
            )
        names = {s.name for s in steps}
        unknown_keys = [k for k in deps_map if k not in names]
        if unknown_keys:
            raise ValidationError(f"dependencies name unknown step(s) {unknown_keys}")
        groups = definition.get("parallel_groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            raise ValidationError("parallel_groups must be a list of lists of step names")
        by_name = {s.name: s for s in steps}
        upstream: dict[str, set[str]] = {}

        def ancestors(step: str) -> set[str]:
            if step not in upstream:
                upstream[step] = set()  # guards against cycles (reported by create_workflow)
                for d in by_name[step].dependencies:
                    if d in by_name:
                        upstream[step] |= {d} | ancestors(d)
            return upstream[step]

        for group in groups:
            missing = [g for g in group if g not in names]
            if missing:
                raise ValidationError(f"parallel group {group} names unknown step(s) {missing}")
            for member in group:
                clash = sorted(ancestors(member) & set(group))
                if clash:
                    raise ValidationError(
                        f"parallel group {group}: step {member!r} depends on {clash} in the same group"
                    )
        return f"complex-{self.runtime.ids.new_id()}", steps

    def _run_stats(self, run_id: str) -> dict[str, Any]:
        run = self.workflow_manager.view.runs.get(run_id)
        if run is None:
            return {}
        counts = dict.fromkeys(("completed", "failed", "skipped", "cancelled"), 0)
        total_time = 0.0
        for task in self.task_orchestrator.task_records(run.step_tasks.values()):
            if task is None:
                continue
            if task.status.value in counts:
                counts[task.status.value] += 1
            if task.result is not None:
                total_time += task.result.execution_time
        return {
            "total_steps": len(run.step_tasks),
            **counts,
            "total_execution_time": total_time,
            "duration": run.duration,
            "status": run.status.value,
        }

    # -- status, metrics, health ----------------------------------------------------

    def get_system_status(self) -> dict[str, Any]:
        stats = self.task_orchestrator.get_execution_stats()
        with self._lock:
            handlers = {name: len(hs) for name, hs in self._handlers.items()}
        with self._view_lock:
            active = self.sessions.active()
        return {
            "timestamp": datetime.now(UTC).isoformat(),
            "orchestration_engine": {"active_sessions": active, "event_handlers": handlers},
            "workflow_manager": {
                "total_workflows": len(self.workflow_manager.view.definitions),
                "running_workflows": self.workflow_manager.running_workflows(),
            },
            "task_orchestrator": {k: stats[k] for k in ("total_tasks", "pending", "running", "completed", "failed")},
            "project_manager": self.project_manager.get_projects_summary(),
            "resource_manager": self.resource_manager.get_resource_usage(),
            "performance": {
                "store_url": self.store.url,
                "events": self.store.stats.events,
                "commits": self.store.stats.commits,
                "average_task_time": stats["average_execution_time"],
                "executor": self.task_orchestrator.executor.describe(),
            },
        }

    def get_metrics(self) -> dict[str, Any]:
        with self._view_lock:
            sessions = list(self.sessions.sessions.values())
            handler_failures = len(self.sessions.handler_failures)
        runs = list(self.workflow_manager.view.runs.values())
        return {
            "timestamp": datetime.now(UTC).isoformat(),
            "sessions": {
                "total": len(sessions),
                **{s.value: sum(1 for r in sessions if r.status is s) for s in SessionStatus},
            },
            "workflows": {
                "definitions": len(self.workflow_manager.view.definitions),
                "runs": len(runs),
                **{s.value: sum(1 for r in runs if r.status is s) for s in WorkflowStatus},
            },
            "tasks": self.task_orchestrator.get_execution_stats(),
            "projects": self.project_manager.get_projects_summary(),
            "resources": self.resource_manager.get_resource_usage(),
            "store": {
                "url": self.store.url,
                "position": self.store.max_position(),
                "commits": self.store.stats.commits,
                "largest_batch": self.store.stats.largest_batch,
                "conflicts": self.store.stats.conflicts,
            },
            "handlers": {"failures": handler_failures},
        }

    def health_check(self) -> dict[str, Any]:
        """Healthy unless something real is wrong; every reason is listed in ``issues``."""
        issues: list[str] = []
        unhealthy = False
        try:
            position = self.store.max_position()
            store_status = "healthy"
        except OrchestrationError as e:
            position, store_status, unhealthy = -1, "unhealthy", True
            issues.append(f"event store unreachable: {e}")
        if self.store.stats.listener_errors:
            issues.append(f"{len(self.store.stats.listener_errors)} projection failure(s): views may be stale")
        stats = self.task_orchestrator.get_execution_stats()
        finished = stats["completed"] + stats["failed"]
        rate = stats["failed"] / finished if finished >= 10 else 0.0
        task_status = "healthy"
        if rate >= FAILURE_RATE_UNHEALTHY:
            task_status, unhealthy = "unhealthy", True
        elif rate >= FAILURE_RATE_DEGRADED:
            task_status = "degraded"
        if task_status != "healthy":
            issues.append(f"task failure rate {rate:.0%} over {finished} finished tasks")
        now = datetime.now(UTC)
        stuck = [
            t.id
            for t in self.task_orchestrator.list_tasks(TaskStatus.RUNNING)
            if t.timeout is not None and t.started_at is not None
            and (now - t.started_at).total_seconds() > t.timeout + 30
        ]  # fmt: skip
        if stuck:
            task_status = "degraded" if task_status == "healthy" else task_status
            issues.append(f"{len(stuck)} task(s) RUNNING more than 30 s past their timeout: {stuck[:5]}")
        wf_status = "healthy"
        if self.workflow_manager.load_errors:
            wf_status = "degraded"
            issues.extend(f"workflow file {f}: {err}" for f, err in self.workflow_manager.load_errors)
        project_summary = self.project_manager.get_projects_summary()
        resource_health = self.resource_manager.health_check()
        issues.extend(f"resources: {issue}" for issue in resource_health["issues"])
        if resource_health["status"] == "unhealthy":
            unhealthy = True
        issues.extend(f"project template {err}" for err in project_summary["template_errors"])
        with self._view_lock:
            failures = len(self.sessions.handler_failures)
        if failures:
            issues.append(f"{failures} event handler failure(s) recorded (see handler.failed events)")
        statuses = [store_status, task_status, wf_status]
        overall = "unhealthy" if unhealthy else ("degraded" if issues or "degraded" in statuses else "healthy")
        return {
            "overall_status": overall,
            "timestamp": now.isoformat(),
            "components": {
                "workflow_manager": {
                    "status": wf_status,
                    "details": {
                        "workflows": len(self.workflow_manager.view.definitions),
                        "load_errors": len(self.workflow_manager.load_errors),
                    },
                },
                "task_orchestrator": {
                    "status": task_status,
                    "details": {
                        "failure_rate": rate,
                        "finished": finished,
                        "store": store_status,
                        "position": position,
                    },
                },
                "project_manager": {
                    "status": "degraded" if project_summary["template_errors"] else "healthy",
                    "details": project_summary,
                },
                "resource_manager": {"status": resource_health["status"], "details": resource_health},
            },
            "issues": issues,
        }

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Stop every thread the engine started and close the store."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._janitor_wake.notify_all()
        self._handler_queue.put(None)
        for thread in (self._janitor, self._handler_thread):
            if thread is not None:
                thread.join(5)
        self._unsubscribe()
        self.project_manager.close()
        self.resource_manager.close()
        self.workflow_manager.close()
        self.task_orchestrator.close()
        self.store.close()

    def __enter__(self) -> OrchestrationEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lost_session_closed(session_id: str, reason: str, version: int, now: datetime, rec: Any) -> Event:
    return SessionClosed(
        aggregate_id=session_id,
        version=version,
        timestamp=now,
        actor=rec.user_id,
        correlation_id=session_id,
        reason=reason,
    )


def _expired(session_id: str, timeout: float, version: int, now: datetime, rec: Any) -> Event:
    return SessionExpired(
        aggregate_id=session_id,
        version=version,
        timestamp=now,
        actor="system",
        correlation_id=session_id,
        timeout_seconds=timeout,
    )


def _plain(event: Event) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(event)
    return data


def _task_failure(task_id: str, status: TaskStatus, result: TaskResult) -> dict[str, Any]:
    from domain.errors import TaskExecutionError

    final = TASK.is_final(status)
    err = TaskExecutionError(
        f"task {task_id} {status.value}: {result.error_type}: {result.error_message}",
        code="TASK_FAILED" if final else "TASK_NOT_FINISHED",
        details={"task_id": task_id, "status": status.value, "error_type": result.error_type},
        suggestions=["Check the action's error above; retry with corrected parameters or a fixed action."],
    )
    return err.to_response()
