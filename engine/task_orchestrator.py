"""The spec's ``TaskOrchestrator``, on the event log.

How a task moves (every arrow is an event, committed before anyone acts on it)::

    add_task ──task.created──► PENDING ──task.ready──► READY ──task.started──► RUNNING
                                                          ▲                      │
                                   task.retry_scheduled ──┘   task.completed / task.failed
                                      (after retry_delay)      task.cancelled / timeout

Threading model (no thread ever waits for a commit while holding the lock):

* **Decisions** happen under one lock, in whichever thread has news: the caller of
  ``add_task``/``cancel_task``, a worker whose action returned, or the timer thread
  (deadlines, retry delays). A decision updates the write model (``TaskState`` per task,
  the ready heap, the slot count) and hands the resulting events to the store *in the
  same critical section*, so the log's order is the decision order.
* **Commits** are the store's: its committer thread groups whatever is queued into one
  transaction, applies it to the task view, then runs our callback, which dispatches the
  attempts whose ``task.started`` just became durable to the executor.
* **Admission**: READY tasks by priority, then age (creation order), while fewer than
  ``max_workers`` attempts hold a slot and execution is started.

Data passing: an action that declares ``dependency_results`` receives
``{dependency id: result data}``, read from the committed task view.

Where actions run is the executor's business (engine/executors.py: threads, worker
processes, a Dask cluster); everything recorded is decided here, whichever it is.

Timeouts: an attempt's deadline is fixed when it is admitted (``task.started`` carries
it). At the deadline the timer thread records the attempt as failed with
``error_type="TimeoutError"`` (retried if retries are left) and asks the executor to
end the work: a thread is abandoned (metadata ``abandoned``; its late result is
recorded as ``task.late_result_discarded``), a worker process is killed (``killed``),
a Dask future is cancelled. At ``soft_timeout`` seconds into an attempt the timer
records ``task.soft_timeout_reached`` and sets the stop flag an action declaring
``cancel_token`` can read; if it then returns, its outcome is recorded as usual.

Tasks created by an earlier process are loaded into the views and can be depended on;
this orchestrator only schedules tasks it created itself (recovery of other processes'
in-flight tasks is not part of this class).
"""

from __future__ import annotations

import copy
import functools
import heapq
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from domain import task as T
from domain.enums import TaskStatus
from domain.errors import (
    DependencyCycleError,
    DuplicateIdError,
    ExecutionNotStartedError,
    NotFoundError,
    OrchestrationError,
    ValidationError,
)
from domain.events import Event, EventMeta, Recorded, event_type_name
from domain.lifecycles import TASK
from domain.task import TASK_EVENT_TYPES, TaskState
from domain.workflow import output_path, substitute
from engine.clock import Runtime
from engine.codec import json_problem
from engine.config import default_store_url, executor_settings_from_env, resolve_executor, resolve_max_workers
from engine.executors import ActionCall, ActionResult, AttemptControl, Executor, make_executor, run_here
from engine.leases import DEFAULT_LEASE_TTL, LeaseKeeper
from engine.models import Task, TaskResult
from engine.recovery import RecoveryReport, recover_tasks
from engine.registry import DEFAULT_REGISTRY, ActionRegistry
from engine.resource_locks import LockTable, ResourceKey
from engine.store import EventStore, open_store
from engine.task_input import definition_of, task_from_options
from projections.tasks import TaskRecord, TaskView
from projections.tasks import apply as apply_task_event

__all__ = ["TaskOrchestrator"]

TASK_TOPICS = tuple(event_type_name(cls) for cls in TASK_EVENT_TYPES)
_FINAL = TASK.final
_result_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class _Attempt:
    """One admitted attempt, from ``task.started`` until its outcome is recorded."""

    task_id: str
    number: int
    deadline: datetime | None
    started_event_id: str
    definition: T.TaskCreated
    sync: bool = False
    abandoned: bool = False
    finished: threading.Event | None = None  # only synchronous attempts are waited on
    control: AttemptControl = field(default_factory=AttemptControl)  # stop / kill requests to the executor
    soft_fired: bool = False


@dataclass(frozen=True)
class _GroupLimit:
    max_parallel: int
    fifo: bool  # sequential groups run in creation order, ignoring priority


_FINAL_EVENTS = (T.TaskCompleted, T.TaskFailed, T.TaskCancelled, T.TaskSkipped)


class _Watcher:
    """Calls ``callback`` once all of ``remaining`` are final and committed."""

    __slots__ = ("callback", "remaining")

    def __init__(self, remaining: int, callback: Callable[[], None]) -> None:
        self.remaining = remaining
        self.callback = callback


class _Ticket:
    """Lets a caller wait (outside the lock) for the commit of its decision."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error


@dataclass
class _Outcome:
    success: bool
    data: Any = None
    error_type: str = ""
    error_message: str = ""
    execution_time: float = 0.0
    retryable: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    lost: bool = False  # no result: the executor ended the work when asked (nothing to record)


class TaskOrchestrator:
    """Runs tasks with dependencies, priorities, retries, timeouts and cancellation,
    recording every state change in an event store.

    ``store`` is a URL or an open :class:`EventStore` (shared, not closed by us);
    default: the SQLite file in ``$CODOMYRMEX_ORCHESTRATION_DIR``.

    ``executor``: where actions run, an :class:`Executor` (shut down by :meth:`close`)
    or a name, ``"threads"``, ``"processes"`` or ``"dask"``; default
    ``$CODOMYRMEX_EXECUTOR``, else threads (the other executors' settings come from
    their environment variables, see engine/config.py).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        store: EventStore | str | None = None,
        registry: ActionRegistry | None = None,
        runtime: Runtime | None = None,
        executor: Executor | str | None = None,
        actor: str = "system",
        correlation_id: str | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
    ) -> None:
        self._max_workers = resolve_max_workers(max_workers)
        self.runtime = runtime or Runtime()
        self.registry = registry if registry is not None else DEFAULT_REGISTRY
        if isinstance(store, EventStore):
            self.store, self._owns_store = store, False
        else:
            self.store, self._owns_store = open_store(store or default_store_url()), True
        self.instance_id = self.runtime.ids.new_id()
        self.actor = actor
        self.correlation_id = correlation_id or f"orchestrator:{self.instance_id}"
        if isinstance(executor, Executor):
            self._executor = executor
        else:
            self._executor = make_executor(
                resolve_executor(executor), max_workers=self._max_workers, **executor_settings_from_env()
            )
        # an executor that runs actions in the job's own thread (threads): called directly
        self._runs_in_place = type(self._executor).run_action is Executor.run_action
        self.lease = LeaseKeeper(self.store, self.runtime, self.instance_id, ttl=lease_ttl, on_lost=self._lease_lost)

        self._lock = threading.RLock()
        self._timer_wake = threading.Condition(self._lock)  # new deadline / retry / stop
        self._settled = threading.Condition(self._lock)  # commits caught up, tasks final
        self._states: dict[str, TaskState] = {}
        self._dependents: dict[str, list[str]] = {}
        self._unmet: dict[str, int] = {}
        self._age: dict[str, int] = {}
        self._ages = itertools.count()
        self._ready: list[tuple[int, int, str]] = []
        self._delayed: list[tuple[datetime, int, str]] = []
        self._deadlines: list[tuple[datetime, int, str, int]] = []
        self._soft_deadlines: list[tuple[datetime, int, str, int]] = []
        self._running: dict[str, _Attempt] = {}
        self._slots_used = 0
        self._owned: set[str] = set()
        self._open_owned = 0
        # Created, but the creation is not durable yet: only the commit that creates
        # them may start them (another commit could make it durable before the
        # creation fails, recording events of tasks that never existed).
        self._uncommitted: set[str] = set()
        self._parked: list[tuple[int, int, str]] = []
        self._sync_tasks: set[str] = set()
        self._inflight = 0
        self._started = False
        self._closed = False
        self._timer: threading.Thread | None = None
        self._store_errors: list[BaseException] = []
        self._watchers: dict[str, list[_Watcher]] = {}
        self._group_limits: dict[str, _GroupLimit] = {}
        self._group_running: dict[str, int] = {}
        self._group_blocked: dict[str, list[tuple[int, int, str]]] = {}
        self._locks = LockTable()
        self._resource_blocked: list[tuple[tuple[int, int, str], list[ResourceKey]]] = []
        self._resources_freed = threading.Condition(self._lock)

        self._view_lock = threading.Lock()
        self.view = TaskView()
        self._unsubscribe = self.store.subscribe(
            self._on_committed_events, history=self._load_history, types=TASK_TOPICS
        )

    # -- configuration ---------------------------------------------------------

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def executor(self) -> Executor:
        """Where actions run (engine/executors.py)."""
        return self._executor

    def _meta(self, causation_id: str = "", state: TaskState | None = None) -> EventMeta:
        """Envelope for a decision; about a task, it keeps that task's actor and
        correlation (a workflow run's steps carry the run's)."""
        if state is not None:
            created = state.definition
            return EventMeta(
                timestamp=self.runtime.clock.now(),
                actor=created.actor,
                correlation_id=created.correlation_id,
                causation_id=causation_id,
            )
        return EventMeta(
            timestamp=self.runtime.clock.now(),
            actor=self.actor,
            correlation_id=self.correlation_id,
            causation_id=causation_id,
        )

    # -- history and views -----------------------------------------------------

    def _load_history(self, records: Iterator[Recorded]) -> None:
        """Fold the log's task events into the view and the write model."""
        states: dict[str, TaskState] = {}
        for recorded in records:
            apply_task_event(self.view, recorded)
            event = recorded.event
            states[event.aggregate_id] = T.evolve(states.get(event.aggregate_id), event)
        for task_id, state in states.items():
            self._states[task_id] = state
            self._age[task_id] = next(self._ages)
            for dep in state.definition.dependencies:
                self._dependents.setdefault(dep, []).append(task_id)

    def _on_committed_events(self, batch: Sequence[Recorded]) -> None:
        """Own commits and other processes' (the store follows the log and hands each
        event over once, in log order). Other processes' task events also move this
        process's write model of their tasks, which recovery and dependencies read."""
        with self._view_lock:
            for recorded in batch:
                if recorded.event.KIND == "task":
                    apply_task_event(self.view, recorded)
        if self.store.delivering_foreign:
            with self._lock:
                for recorded in batch:
                    event = recorded.event
                    if event.KIND == "task" and event.aggregate_id not in self._owned:
                        self._states[event.aggregate_id] = T.evolve(self._states.get(event.aggregate_id), event)
                        self._age.setdefault(event.aggregate_id, next(self._ages))

    # -- commands: adding ------------------------------------------------------

    def create_task(self, name: str, module: str, action: str, **kwargs: Any) -> Task:
        """Build a task from keyword options (``parameters``, ``dependencies``,
        ``priority``, ``timeout``, ``max_retries``, ``resources``, ``retry_delay``,
        ``description``, ``tags``, ``metadata``, ``id``), add it, return it as recorded."""
        task = task_from_options(name, module, action, kwargs)
        task_id = self.add_task(task)
        got = self.get_task(task_id)
        assert got is not None
        return got

    def add_task(self, task: Task) -> str:
        """Record ``task`` (durably) and return its id."""
        return self.add_tasks([task])[0]

    def add_tasks(
        self,
        tasks: Iterable[Task],
        *,
        correlation_id: str | None = None,
        actor: str | None = None,
        aliases: dict[str, dict[str, str]] | None = None,
        with_events: Sequence[Event] = (),
        group: str = "",
        reused: dict[str, tuple[str, Any, float]] | None = None,
    ) -> list[str]:
        """Record several tasks in one commit. Dependencies may point at tasks earlier
        or later in the same call; a cycle is rejected and nothing is recorded.

        ``correlation_id``/``actor`` stamp these tasks' events (default: this
        orchestrator's). ``aliases[task_id]`` names dependencies for ``{{alias.output}}``
        references in that task's parameters. ``with_events`` (other aggregates' events,
        e.g. a workflow run's creation) are committed in the same transaction, first.
        ``group`` puts the tasks in a group limited by :meth:`set_group_limit`.
        ``reused[task_id] = (source task, data, execution time)`` completes that task
        with ``source``'s recorded result instead of running it (``task.reused``)."""
        definitions = [definition_of(t) for t in tasks]
        if not definitions:
            return []
        aliases = aliases or {}
        self._check_open()
        self.lease.ensure()  # this engine owns what it creates: a live lease first
        with self._lock:
            self._check_open()
            order = self._check_new_graph(definitions)
            meta = self._meta()
            if correlation_id is not None or actor is not None:
                meta = EventMeta(
                    timestamp=meta.timestamp,
                    actor=actor if actor is not None else meta.actor,
                    correlation_id=correlation_id if correlation_id is not None else meta.correlation_id,
                )
            created = [
                T.create(task_id, meta, owner=self.instance_id, aliases=aliases.get(task_id, {}), group=group, **defn)
                for task_id, defn in order
            ]
            # Encode (and size-check) before any state changes: a failure records nothing.
            encoded = {id(event): self.store.codec.encode(event) for event in (*with_events, *created)}
            events: list[Event] = list(with_events)
            new_ids = {event.aggregate_id for event in created}
            self._uncommitted |= new_ids
            for event in created:
                events.append(event)
                self._register_new(event, events, (reused or {}).get(event.aggregate_id))
            dispatch: list[_Attempt] = []
            self._admit(events, dispatch, allow=new_ids)
            ticket = self._commit(events, dispatch, wait=True, encoded=encoded, created=new_ids)
        self._wait_commit(ticket)
        return [task_id for task_id, _ in definitions]

    def _check_new_graph(self, definitions: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        """Duplicate ids, unknown dependencies, cycles; returns dependency order."""
        new: dict[str, dict[str, Any]] = {}
        for task_id, defn in definitions:
            if task_id in self._states or task_id in new:
                raise DuplicateIdError(f"task id {task_id!r} is already used", details={"task_id": task_id})
            new[task_id] = defn
        for task_id, defn in new.items():
            unknown = [d for d in defn["dependencies"] if d not in self._states and d not in new]
            if unknown:
                raise ValidationError(
                    f"task {task_id!r} depends on unknown task id(s) {unknown}",
                    code="UNKNOWN_DEPENDENCY",
                    details={"task_id": task_id, "unknown": unknown},
                    suggestions=["Add the dependencies first (or in the same add_tasks call)."],
                )
        order: list[tuple[str, dict[str, Any]]] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(task_id: str, path: list[str]) -> None:
            mark = state.get(task_id)
            if mark == 2:
                return
            if mark == 1:
                cycle = [*path[path.index(task_id) :], task_id]
                raise DependencyCycleError(
                    f"dependency cycle (each task depends on the next): {' -> '.join(cycle)}", details={"cycle": cycle}
                )
            state[task_id] = 1
            for dep in new[task_id]["dependencies"]:
                if dep in new:
                    visit(dep, [*path, task_id])
            state[task_id] = 2
            order.append((task_id, new[task_id]))

        for task_id in new:
            visit(task_id, [])
        return order

    def _register_new(
        self, created: T.TaskCreated, events: list[Event], reuse: tuple[str, Any, float] | None = None
    ) -> None:
        task_id = created.aggregate_id
        state = T.evolve(None, created)
        self._states[task_id] = state
        self._age[task_id] = next(self._ages)
        self._owned.add(task_id)
        self._open_owned += 1
        for dep in created.dependencies:
            self._dependents.setdefault(dep, []).append(task_id)
        if reuse is not None:  # completes at once, with the original's result
            source, data, execution_time = reuse
            meta = self._meta(created.event_id, state)
            self._decide(events, T.reuse(state, meta, source=source, data=data, execution_time=execution_time))
            return
        self._schedule_pending(state, events, created.event_id)

    # -- decisions (called with the lock held) ----------------------------------

    def _decide(self, events: list[Event], event: Event) -> TaskState:
        """Apply a decided event to the write model and queue it for the batch."""
        state = self._states[event.aggregate_id]
        was_final = state.status in _FINAL
        T.evolve(state, event)
        events.append(event)
        if state.status in _FINAL and not was_final:
            self._unmet.pop(state.id, None)
            if state.id in self._owned:
                self._open_owned -= 1
            self._propagate(state, events, event.event_id)
        return state

    def _make_ready(self, state: TaskState, events: list[Event], causation_id: str) -> None:
        self._decide(events, T.ready(state, self._meta(causation_id, state)))
        self._push_ready(state)

    def _push_ready(self, state: TaskState) -> None:
        """Queue a READY task: by priority then age, or by age alone in a group whose
        mode is sequential."""
        limit = self._group_limits.get(state.definition.group)
        rank = 0 if limit is not None and limit.fifo else -state.definition.priority
        heapq.heappush(self._ready, (rank, self._age[state.id], state.id))

    def _propagate(self, state: TaskState, events: list[Event], causation_id: str) -> None:
        """A task reached a final state: release or skip its dependents."""
        for dependent_id in self._dependents.get(state.id, ()):
            dependent = self._states[dependent_id]
            if dependent.status not in (TaskStatus.PENDING, TaskStatus.READY):
                continue
            if state.status is TaskStatus.COMPLETED:
                left = self._unmet.get(dependent_id, 0) - 1
                if left > 0:
                    self._unmet[dependent_id] = left
                elif dependent.status is TaskStatus.PENDING:
                    self._unmet.pop(dependent_id, None)
                    self._make_ready(dependent, events, causation_id)
            else:
                self._decide(
                    events,
                    T.skip(
                        dependent,
                        self._meta(causation_id, dependent),
                        dependency=state.id,
                        dependency_status=state.status,
                    ),
                )

    def _admit(self, events: list[Event], dispatch: list[_Attempt], allow: set[str] | None = None) -> None:
        """Start READY tasks while slots are free (priority, then age). Tasks whose
        creation is not durable yet wait, unless ``allow``ed (they commit together)."""
        if not self._started:
            return
        now = None
        while self._ready and self._slots_used < self._max_workers:
            entry = heapq.heappop(self._ready)
            task_id = entry[2]
            state = self._states.get(task_id)
            if state is None or state.status is not TaskStatus.READY or task_id in self._sync_tasks:
                continue  # stale heap entry (or a task whose creation failed)
            if task_id in self._uncommitted and (allow is None or task_id not in allow):
                self._parked.append(entry)
                continue
            group = state.definition.group
            limit = self._group_limits.get(group)
            if limit is not None and self._group_running.get(group, 0) >= limit.max_parallel:
                self._group_blocked.setdefault(group, []).append(entry)  # back when the group frees a slot
                continue
            if state.retry_at is not None:
                now = now or self.runtime.clock.now()
                if state.retry_at > now:
                    heapq.heappush(self._delayed, (state.retry_at, self._age[task_id], task_id))
                    continue
            resources = state.definition.resources
            if resources and not self._locks.try_acquire(resources):
                # stays READY; reconsidered when a holder releases (engine/resource_locks.py)
                self._resource_blocked.append((entry, self._locks.wait(resources)))
                continue
            dispatch.append(self._start_attempt(state, events))

    def _start_attempt(self, state: TaskState, events: list[Event], *, sync: bool = False) -> _Attempt:
        started = T.start(state, self._meta(f"task:{state.id}@{state.version}", state), worker=self._executor.name)
        self._decide(events, started)
        attempt = _Attempt(
            state.id,
            started.attempt,
            started.deadline,
            started.event_id,
            state.definition,
            sync=sync,
            finished=threading.Event() if sync else None,
        )
        self._running[state.id] = attempt
        self._slots_used += 0 if sync else 1
        group = state.definition.group
        if group:
            self._group_running[group] = self._group_running.get(group, 0) + 1
        if started.deadline is not None:
            heapq.heappush(self._deadlines, (started.deadline, self._age[state.id], state.id, started.attempt))
            self._timer_wake.notify()
        soft = state.definition.soft_timeout
        if soft is not None:
            due = started.timestamp + timedelta(seconds=soft)
            heapq.heappush(self._soft_deadlines, (due, self._age[state.id], state.id, started.attempt))
            self._timer_wake.notify()
        return attempt

    def _end_attempt(self, attempt: _Attempt) -> None:
        if self._running.get(attempt.task_id) is attempt:
            del self._running[attempt.task_id]
            self._slots_used -= 0 if attempt.sync else 1
            if attempt.definition.resources:
                self._locks.release(attempt.definition.resources)
                for entry, keys in self._resource_blocked:  # let them try again
                    self._locks.stop_waiting(keys)
                    heapq.heappush(self._ready, entry)
                self._resource_blocked.clear()
                self._resources_freed.notify_all()
            group = attempt.definition.group
            if group:
                self._group_running[group] -= 1
                for entry in self._group_blocked.pop(group, ()):
                    heapq.heappush(self._ready, entry)
            if not self._running:
                self._settled.notify_all()
        if attempt.finished is not None:
            attempt.finished.set()

    def _record_outcome(self, attempt: _Attempt, outcome: _Outcome, events: list[Event]) -> None:
        state = self._states[attempt.task_id]
        meta = self._meta(attempt.started_event_id, state)
        if attempt.abandoned or self._running.get(attempt.task_id) is not attempt:
            self._decide(
                events,
                T.discard_late_result(
                    state,
                    meta,
                    attempt=attempt.number,
                    success=outcome.success,
                    execution_time=outcome.execution_time,
                    error_type=outcome.error_type or None,
                ),
            )
            return
        self._end_attempt(attempt)
        if outcome.success:
            self._decide(
                events,
                T.complete(
                    state, meta, data=outcome.data, execution_time=outcome.execution_time, metadata=outcome.metadata
                ),
            )
            return
        failed = T.attempt_failed(
            state,
            meta,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            execution_time=outcome.execution_time,
            retryable=outcome.retryable,
            metadata=outcome.metadata,
        )
        self._decide(events, failed)
        if isinstance(failed, T.TaskRetryScheduled) and not attempt.sync:
            heapq.heappush(self._delayed, (failed.retry_at, self._age[state.id], state.id))
            self._timer_wake.notify()

    # -- committing ------------------------------------------------------------

    def _commit(
        self,
        events: list[Event],
        dispatch: list[_Attempt],
        *,
        wait: bool = False,
        encoded: dict[int, bytes] | None = None,
        created: set[str] | None = None,
    ) -> _Ticket | None:
        """Queue the decided events (lock held); dispatch attempts once durable.
        ``encoded`` maps ``id(event)`` to bytes already produced for some events;
        ``created`` names the tasks these events create (see ``_uncommitted``)."""
        if not events:
            return None
        ticket = _Ticket() if wait else None

        def committed(recorded: Sequence[Recorded] | None, error: BaseException | None) -> None:
            if error is not None and recorded is None:
                self._on_store_error(error, dispatch, created or set())
            else:
                for attempt in dispatch:
                    if not attempt.sync:
                        self._executor.submit(functools.partial(self._run_attempt, attempt))
            fire: list[Callable[[], None]] = []
            with self._lock:
                if created and recorded is not None:
                    self._creation_durable(created)
                self._inflight -= 1
                if self._inflight == 0:
                    self._settled.notify_all()
                if self._watchers and recorded:
                    fire = self._finished_watchers(recorded)
            for callback in fire:
                callback()
            if ticket is not None:
                ticket.error = error
                ticket.done.set()

        if encoded:
            encode = self.store.codec.encode
            data = [encoded.get(id(e)) or encode(e) for e in events]
            self.store.append_async(events, committed, encoded=data)
        else:
            self.store.append_async(events, committed)
        self._inflight += 1
        return ticket

    def _finished_watchers(self, recorded: Sequence[Recorded]) -> list[Callable[[], None]]:
        fire = []
        for r in recorded:
            if isinstance(r.event, _FINAL_EVENTS):
                for watcher in self._watchers.pop(r.event.aggregate_id, ()):
                    watcher.remaining -= 1
                    if watcher.remaining == 0:
                        fire.append(watcher.callback)
        return fire

    def set_group_limit(self, group: str, max_parallel: int, *, sequential: bool = False) -> None:
        """At most ``max_parallel`` tasks of ``group`` (a session) run at once; a
        ``sequential`` group runs one at a time in creation order. Tasks join a group
        through ``add_tasks(..., group=...)``."""
        if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
            raise ValidationError(f"max_parallel must be an integer >= 1, got {max_parallel!r}")
        with self._lock:
            self._group_limits[group] = _GroupLimit(1 if sequential else max_parallel, sequential)

    def clear_group_limit(self, group: str) -> None:
        with self._lock:
            self._group_limits.pop(group, None)
            for entry in self._group_blocked.pop(group, ()):
                heapq.heappush(self._ready, entry)

    def when_final(self, task_ids: Iterable[str], callback: Callable[[], None]) -> None:
        """Call ``callback()`` once every one of ``task_ids`` is in a final state and
        that is committed: at once (in this thread) if they already are, else on the
        store's committer thread. The callback must be quick and must not block."""
        with self._lock:
            with self._view_lock:
                pending = {t for t in task_ids if (rec := self.view.tasks.get(t)) is None or rec.status not in _FINAL}
            unknown = [t for t in pending if t not in self._states]
            if unknown:
                raise NotFoundError(f"unknown task id(s) {sorted(unknown)}")
            if pending:
                watcher = _Watcher(len(pending), callback)
                for t in pending:
                    self._watchers.setdefault(t, []).append(watcher)
                return
        callback()

    @staticmethod
    def _wait_commit(ticket: _Ticket | None) -> None:
        if ticket is not None:
            ticket.wait()

    def _creation_durable(self, created: set[str]) -> None:
        """(Lock held) the tasks of ``created`` exist in the log: they may start."""
        self._uncommitted -= created
        if self._parked:
            for entry in self._parked:
                heapq.heappush(self._ready, entry)
            self._parked.clear()
            events: list[Event] = []
            dispatch: list[_Attempt] = []
            self._admit(events, dispatch)
            self._commit(events, dispatch)

    def _on_store_error(self, error: BaseException, dispatch: list[_Attempt], created: set[str]) -> None:
        """A batch did not commit: the write model is ahead of the log. The tasks it
        created are forgotten at once (nothing may start them); the rest is rebuilt
        from the log once the queue is idle, so decisions resume from the truth."""
        with self._lock:
            self._store_errors.append(error)
            for attempt in dispatch:
                attempt.abandoned = True
                self._end_attempt(attempt)
            for task_id in created:
                self._forget(task_id)
            self._parked = [entry for entry in self._parked if entry[2] not in created]
        threading.Thread(target=self._resync, name="task-orchestrator-resync", daemon=True).start()

    def _forget(self, task_id: str) -> None:
        """(Lock held) drop a task whose creation failed from the write model."""
        self._uncommitted.discard(task_id)
        state = self._states.pop(task_id, None)
        if task_id in self._owned:
            self._owned.discard(task_id)
            if state is not None and state.status not in _FINAL:
                self._open_owned -= 1
        self._unmet.pop(task_id, None)
        self._dependents.pop(task_id, None)
        if state is not None:
            for dep in state.definition.dependencies:
                dependents = self._dependents.get(dep)
                if dependents and task_id in dependents:
                    dependents.remove(task_id)
        self._settled.notify_all()

    def _resync(self) -> None:
        self.store.flush()
        with self._lock:
            states: dict[str, TaskState] = {}
            for recorded in self.store.read(types=TASK_TOPICS):
                event = recorded.event
                states[event.aggregate_id] = T.evolve(states.get(event.aggregate_id), event)
            for task_id in list(self._states):
                if task_id not in states:
                    self._states.pop(task_id)
                    if task_id in self._owned:
                        self._owned.discard(task_id)
                        self._open_owned -= 1
                else:
                    self._states[task_id] = states[task_id]
            self._settled.notify_all()

    # -- running actions (worker threads) --------------------------------------

    def _execute(self, attempt: _Attempt, done: Callable[[_Outcome], None]) -> None:
        """Resolve the action of ``attempt`` and its inputs, and hand it to the executor,
        which runs it (here, in a worker process, on a Dask worker) and reports back:
        ``done(outcome)`` is called once, from whichever thread."""
        defn = attempt.definition
        try:
            entry = self.registry.resolve(defn.module, defn.action)
            kwargs = self._resolve_outputs(defn) if defn.aliases else dict(defn.parameters)
        except OrchestrationError as e:
            done(_Outcome(False, error_type=type(e).__name__, error_message=str(e), retryable=False))
            return
        if entry.wants_dependency_results:
            with self._view_lock:
                kwargs["dependency_results"] = {dep: self._result_data(dep) for dep in defn.dependencies}
        call = ActionCall(
            attempt.task_id,
            attempt.number,
            defn.module,
            defn.action,
            entry.fn,
            kwargs,
            entry.wants_cancel_token,
            attempt.control,
            self.runtime.clock.monotonic,
        )
        if self._runs_in_place:
            done(self._outcome_of(defn, run_here(call)))
            return
        reported = False

        def report(result: ActionResult) -> None:
            nonlocal reported
            reported = True
            done(self._outcome_of(defn, result))

        try:
            self._executor.run_action(call, report)
        except Exception as e:
            if reported:
                raise  # from done(): not the executor's failure
            # the executor could not take the action (shut down, cluster unreachable)
            done(_Outcome(False, error_type=type(e).__name__, error_message=str(e) or repr(e)))

    def _outcome_of(self, defn: T.TaskCreated, result: ActionResult) -> _Outcome:
        """What an action gave, checked as a result the log can hold."""
        if result.lost:
            return _Outcome(False, lost=True)
        if not result.ok:
            return _Outcome(
                False,
                error_type=result.error_type,
                error_message=result.error_message,
                execution_time=result.execution_time,
                retryable=result.retryable,
                metadata={"traceback": result.traceback} if result.traceback else {},
            )
        elapsed = result.execution_time
        try:
            problem = json_problem(result.value, "result")
            if problem is not None:
                raise TypeError(problem)
            encoded = _result_encoder.encode(result.value)
        except (TypeError, ValueError, OverflowError) as e:
            return _Outcome(
                False,
                error_type="ResultNotSerializable",
                error_message=f"result of {defn.module}.{defn.action} is not JSON-compatible: {e}",
                execution_time=elapsed,
                retryable=False,
            )
        limit = self.store.codec.max_event_bytes - 4096
        if len(encoded) > limit:
            return _Outcome(
                False,
                error_type="ResultTooLarge",
                error_message=f"result of {defn.module}.{defn.action} is {len(encoded)} bytes (limit {limit})",
                execution_time=elapsed,
                retryable=False,
            )
        return _Outcome(True, data=msgspec.json.decode(encoded), execution_time=elapsed)

    def _resolve_outputs(self, defn: T.TaskCreated) -> dict[str, Any]:
        """Parameters with ``{{alias.output[.path]}}`` replaced by the committed results
        of the aliased dependencies (read from the view, so a replay sees the same)."""

        def lookup(name: str, path: str | None) -> Any:
            task_id = defn.aliases.get(name)
            if path is None or task_id is None:
                raise ValidationError(f"task {defn.aggregate_id!r}: unresolvable reference {{{{{name}}}}}")
            with self._view_lock:
                data = self._result_data(task_id)
            return output_path(data, path, f"task {defn.aggregate_id!r}: {{{{{name}.output{path}}}}}")

        resolved: dict[str, Any] = substitute(defn.parameters, lookup)
        return resolved

    def _result_data(self, task_id: str) -> Any:
        record = self.view.tasks.get(task_id)
        return record.result.data if record is not None and record.result is not None else None

    def _run_attempt(self, attempt: _Attempt) -> None:
        self._execute(attempt, functools.partial(self._finish_attempt, attempt))

    def _finish_attempt(self, attempt: _Attempt, outcome: _Outcome) -> None:
        with self._lock:
            if outcome.lost:  # the work was ended on our request; why is already recorded
                self._end_attempt(attempt)  # (if a timeout or a cancel has not already)
                return
            if self._closed:
                # Closed while this attempt ran past stop_execution's grace period:
                # there is no store to record into. The log keeps it RUNNING, which
                # is what recovery of in-flight work looks for.
                return
            events: list[Event] = []
            self._record_outcome(attempt, outcome, events)
            dispatch: list[_Attempt] = []
            self._admit(events, dispatch)
            self._commit(events, dispatch)

    # -- timers ----------------------------------------------------------------

    def _timer_loop(self) -> None:
        with self._lock:
            while self._started:
                events: list[Event] = []
                now = self.runtime.clock.now()
                self._expire_deadlines(now, events)
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, task_id = heapq.heappop(self._delayed)
                    state = self._states.get(task_id)
                    if state is not None and state.status is TaskStatus.READY:
                        self._push_ready(state)
                dispatch: list[_Attempt] = []
                self._admit(events, dispatch)
                self._commit(events, dispatch)
                self._timer_wake.wait(self._next_wakeup(now))

    def _next_wakeup(self, now: datetime) -> float:
        due = [h[0][0] for h in (self._delayed, self._deadlines, self._soft_deadlines) if h]
        if not due:
            return 0.5
        return min(0.5, max(0.0, (min(due) - now).total_seconds()))

    def _expire_deadlines(self, now: datetime, events: list[Event]) -> None:
        while self._soft_deadlines and self._soft_deadlines[0][0] <= now:
            _, _, task_id, number = heapq.heappop(self._soft_deadlines)
            attempt = self._running.get(task_id)
            if attempt is not None and attempt.number == number:
                self._soft_timeout_reached(attempt, events)
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, task_id, number = heapq.heappop(self._deadlines)
            attempt = self._running.get(task_id)
            if attempt is None or attempt.number != number:
                continue
            state = self._states[task_id]
            timeout = state.definition.timeout or 0.0
            self._record_outcome(
                attempt,
                _Outcome(
                    False,
                    error_type="TimeoutError",
                    error_message=f"attempt {number} exceeded its timeout of {timeout:g}s",
                    execution_time=timeout,
                    metadata={"deadline": deadline.isoformat(), **self._end_work(attempt)},
                ),
                events,
            )
            attempt.abandoned = True

    def _end_work(self, attempt: _Attempt) -> dict[str, Any]:
        """Hard timeout (lock held): the executor ends the attempt's work as it can;
        what it did goes into the record (``abandoned``, ``killed``, ...)."""
        done = attempt.control.kill()
        return done if done is not None else dict(self._executor.timeout_metadata)

    def _soft_timeout_reached(self, attempt: _Attempt, events: list[Event]) -> None:
        """Soft timeout (lock held): record it, then raise the action's stop flag."""
        if attempt.soft_fired or attempt.abandoned or self._running.get(attempt.task_id) is not attempt:
            return
        attempt.soft_fired = True
        state = self._states[attempt.task_id]
        self._decide(events, T.soft_timeout_reached(state, self._meta(attempt.started_event_id, state)))
        attempt.control.request_stop()

    # -- execution control -----------------------------------------------------

    def start_execution(self) -> None:
        """Start admitting READY tasks (and the timer thread for deadlines/retries)."""
        with self._lock:
            self._check_open()
            if self._started:
                return
            self._started = True
            self._timer = threading.Thread(target=self._timer_loop, name="task-orchestrator-timer", daemon=True)
            self._timer.start()
            events: list[Event] = []
            dispatch: list[_Attempt] = []
            self._admit(events, dispatch)
            self._commit(events, dispatch)

    def stop_execution(self) -> None:
        """Stop admitting tasks; wait up to 5 s for running attempts to finish (their
        outcomes are still recorded if they finish later)."""
        with self._lock:
            if not self._started:
                return
            self._started = False
            self._timer_wake.notify_all()
            timer = self._timer
            self._settled.wait_for(lambda: not self._running and self._inflight == 0, 5.0)
        if timer is not None:
            timer.join(5.0)

    def wait_for_completion(self, timeout: float | None = None) -> bool:
        """True once every task this orchestrator created is in a final state and
        recorded; False if ``timeout`` seconds pass first."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0):
            raise ValidationError(f"timeout must be a number >= 0 or None, got {timeout!r}")
        with self._lock:
            if timeout is None and not self._started and self._open_owned and not self._sync_tasks:
                raise ExecutionNotStartedError(
                    f"{self._open_owned} task(s) are waiting, but execution is not started: "
                    "wait_for_completion() would never return"
                )
            return self._settled.wait_for(lambda: self._open_owned == 0 and self._inflight == 0, timeout)

    def execute_task(self, task: Task) -> TaskResult:
        """Run one task now, in the calling thread's time, outside the worker limit,
        including its retries; returns its final result. A new task is added first; its
        dependencies must already be COMPLETED."""
        if not isinstance(task, Task):
            raise ValidationError(f"execute_task expects a Task, got {type(task).__name__}")
        with self._lock:
            known = task.id in self._states
        if not known:
            self.add_task_for_sync(task)
        while True:
            with self._lock:
                state = self._states[task.id]
                if state.status in _FINAL:
                    break
                if state.status is not TaskStatus.READY:
                    raise ValidationError(
                        f"task {task.id!r} is {state.status.value}; execute_task runs READY tasks "
                        "(with completed dependencies)"
                    )
                self._sync_tasks.add(task.id)
                wait_s = (state.retry_at - self.runtime.clock.now()).total_seconds() if state.retry_at else 0.0
            if wait_s > 0:
                threading.Event().wait(wait_s)
            self._run_sync_attempt(task.id)
        with self._lock:
            self._sync_tasks.discard(task.id)
        self.store.flush()
        result = self.get_task_result(task.id)
        assert result is not None
        return result

    def add_task_for_sync(self, task: Task) -> None:
        task_id, defn = definition_of(task)
        with self._lock:
            for dep in defn["dependencies"]:
                dep_state = self._states.get(dep)
                if dep_state is None or dep_state.status is not TaskStatus.COMPLETED:
                    raise ValidationError(
                        f"execute_task: dependency {dep!r} of {task_id!r} is not completed",
                        suggestions=["Use add_task() and start_execution() for tasks that must wait."],
                    )
            self._sync_tasks.add(task_id)
        try:
            self.add_task(task)
        except BaseException:
            with self._lock:
                self._sync_tasks.discard(task_id)
            raise

    def _run_sync_attempt(self, task_id: str) -> None:
        with self._lock:
            events: list[Event] = []
            resources = self._states[task_id].definition.resources
            if resources:  # synchronous runs respect resource exclusivity too
                self._resources_freed.wait_for(lambda: self._locks.try_acquire(resources))
            attempt = self._start_attempt(self._states[task_id], events, sync=True)
            ticket = self._commit(events, [], wait=True)
        self._wait_commit(ticket)
        outcome: list[_Outcome] = []
        ran = threading.Event()

        def finished(result: _Outcome) -> None:
            outcome.append(result)
            ran.set()
            assert attempt.finished is not None
            attempt.finished.set()

        self._executor.submit(functools.partial(self._execute, attempt, finished))
        timeout = attempt.definition.timeout
        soft = attempt.definition.soft_timeout
        assert attempt.finished is not None
        if soft is not None and not attempt.finished.wait(soft):  # set by the action's end, or by cancel_task
            with self._lock:
                events = []
                self._soft_timeout_reached(attempt, events)
                ticket = self._commit(events, [], wait=True)
            self._wait_commit(ticket)
            attempt.finished.wait(None if timeout is None else timeout - soft)
        elif soft is None:
            attempt.finished.wait(timeout)
        with self._lock:
            events = []
            if outcome:
                if not outcome[0].lost:
                    self._record_outcome(attempt, outcome[0], events)
            else:
                if self._running.get(task_id) is attempt:  # timed out (not cancelled)
                    self._record_outcome(
                        attempt,
                        _Outcome(
                            False,
                            error_type="TimeoutError",
                            error_message=f"attempt {attempt.number} exceeded its timeout of {timeout or 0:g}s",
                            execution_time=float(timeout or 0.0),
                            metadata=self._end_work(attempt),
                        ),
                        events,
                    )
                attempt.abandoned = True
                threading.Thread(target=self._record_late, args=(attempt, ran, outcome), daemon=True).start()
            ticket = self._commit(events, [], wait=True)
        self._wait_commit(ticket)

    def _record_late(self, attempt: _Attempt, ran: threading.Event, outcome: list[_Outcome]) -> None:
        """Wait for an abandoned synchronous attempt and record its discarded result."""
        ran.wait()
        if outcome[0].lost:
            return  # ended on our request: there is no late result
        with self._lock:
            events: list[Event] = []
            self._record_outcome(attempt, outcome[0], events)
            if not self._closed:
                self._commit(events, [])

    # -- cancellation ----------------------------------------------------------

    def cancel_task(self, task_id: str, reason: str = "") -> bool:
        """Cancel a PENDING, READY or RUNNING task (a running attempt is abandoned;
        its dependents are skipped). False if the task is unknown or already final."""
        with self._lock:
            state = self._states.get(task_id)
            if state is None:
                return False
            if state.status in _FINAL:
                ticket = None
            else:
                events: list[Event] = []
                attempt = self._running.get(task_id)
                self._decide(events, T.cancel(state, self._meta(state=state), reason=reason))
                if attempt is not None:
                    attempt.abandoned = True
                    self._end_attempt(attempt)
                    attempt.control.request_stop()  # a cooperative action can stop now
                    attempt.control.kill()  # a worker process is killed; a thread is abandoned
                dispatch: list[_Attempt] = []
                self._admit(events, dispatch)
                ticket = self._commit(events, dispatch, wait=True)
        if ticket is None:
            # Its final event may still be on its way to the store: answer once it
            # is committed, so a read right after this sees the final state.
            self.store.flush()
            return False
        self._wait_commit(ticket)
        return True

    # -- queries (committed views) ---------------------------------------------

    def get_task(self, task_id: str) -> Task | None:
        with self._view_lock:
            record = self.view.tasks.get(task_id)
            return Task.from_record(record) if record is not None else None

    def task_records(self, task_ids: Iterable[str]) -> list[TaskRecord | None]:
        """The committed view's records of these tasks, read under one lock; for
        engine-internal readers that must not copy a ``Task`` per step. Read-only."""
        with self._view_lock:
            tasks = self.view.tasks
            return [tasks.get(t) for t in task_ids]

    def get_task_result(self, task_id: str) -> TaskResult | None:
        """The final result (success, failure, cancellation or skip with its reason);
        None while the task is not final or if it is unknown."""
        with self._view_lock:
            record = self.view.tasks.get(task_id)
            if record is None or record.result is None or record.status not in _FINAL:
                return None
            return TaskResult.from_record(record.result)

    def list_tasks(self, status: TaskStatus | None = None) -> list[Task]:
        if status is not None and not isinstance(status, TaskStatus):
            try:
                status = TaskStatus(status)
            except ValueError as e:
                raise ValidationError(f"unknown task status {status!r}") from e
        with self._view_lock:
            return [Task.from_record(r) for r in self.view.tasks.values() if status is None or r.status is status]

    def get_execution_stats(self) -> dict[str, Any]:
        with self._view_lock:
            return self.view.stats()

    def task_events(self, task_id: str) -> list[Event]:
        """Every recorded event of one task, in order."""
        events = self.store.read_stream(f"task:{task_id}")
        if not events:
            raise NotFoundError(f"no task {task_id!r} in {self.store.url}")
        return events

    # -- lifecycle -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OrchestrationError("this TaskOrchestrator is closed", code="CLOSED")

    def close(self) -> None:
        """Stop execution, commit what is queued, release threads (and the store if
        this orchestrator opened it)."""
        if self._closed:
            return
        self.stop_execution()
        self.store.flush()
        with self._lock:
            open_owned = self._open_owned
        self.lease.release(open_tasks=open_owned)
        with self._lock:
            self._closed = True
        self._unsubscribe()
        self._executor.shutdown(wait=True, timeout=5.0)
        if self._owns_store:
            self.store.close()

    # -- recovery (engine/recovery.py) -------------------------------------------

    def recover(self, policy: str = "resume") -> RecoveryReport:
        """Adopt the open tasks of engines whose lease expired (crashed or stalled
        processes), per ``policy`` (``resume``, ``fail`` or ``off``); see
        :mod:`engine.recovery`. Adopted READY tasks run once execution is started."""
        self._check_open()
        return recover_tasks(self, policy)

    def others_open_tasks(self) -> dict[str, TaskState]:
        """Copies of the open tasks other engines own, as this process knows them (call
        ``store.catch_up()`` first to include what they committed lately)."""
        with self._lock:
            return {
                task_id: copy.copy(state)
                for task_id, state in self._states.items()
                if task_id not in self._owned and state.status not in _FINAL and state.owner != self.instance_id
            }

    def task_owner(self, task_id: str) -> str | None:
        """The engine instance that owns ``task_id`` as far as this process knows."""
        with self._lock:
            state = self._states.get(task_id)
            return None if state is None else state.owner

    def install_adopted(
        self,
        task_ids: Sequence[str],
        adopted: dict[str, TaskState],
        committed: Sequence[Event],
        policy: str,
    ) -> None:
        """Own the tasks of a committed adoption and schedule them like new ones."""
        with self._lock:
            for task_id in task_ids:
                state = adopted[task_id]
                self._states[task_id] = state
                self._age.setdefault(task_id, next(self._ages))
                self._owned.add(task_id)
                if state.status not in _FINAL:
                    self._open_owned += 1
                for dep in state.definition.dependencies:
                    dependents = self._dependents.setdefault(dep, [])
                    if task_id not in dependents:
                        dependents.append(task_id)
            events: list[Event] = []
            last = {e.aggregate_id: e.event_id for e in committed}
            for task_id in task_ids:
                state = self._states[task_id]
                if state.status is TaskStatus.READY:
                    self._push_ready(state)
                elif state.status is TaskStatus.PENDING:
                    self._schedule_pending(state, events, last[task_id])
                elif state.status in _FINAL:  # an interrupted attempt without retries left
                    self._propagate(state, events, last[task_id])
            if policy == "fail":
                for task_id in task_ids:
                    state = self._states[task_id]
                    if state.status not in _FINAL:
                        reason = "owner lost; recovery policy 'fail'"
                        self._decide(events, T.cancel(state, self._meta(last[task_id], state), reason=reason))
            dispatch: list[_Attempt] = []
            self._admit(events, dispatch)
            self._commit(events, dispatch)
            self._settled.notify_all()

    def _schedule_pending(self, state: TaskState, events: list[Event], cause: str) -> None:
        """A PENDING task (new, or taken over): wait for its open dependencies, be
        skipped if one ended without completing, or go READY."""
        unmet = 0
        for dep in state.definition.dependencies:
            dep_state = self._states[dep]
            if dep_state.status is TaskStatus.COMPLETED:
                continue
            if dep_state.status in _FINAL:
                self._decide(
                    events,
                    T.skip(state, self._meta(cause, state), dependency=dep, dependency_status=dep_state.status),
                )
                return
            unmet += 1
        if unmet:
            self._unmet[state.id] = unmet
        else:
            self._make_ready(state, events, causation_id=cause)

    def _lease_lost(self) -> None:
        """Another engine took this one's lease over (it stalled past the TTL): its
        tasks are no longer this engine's. Running attempts are abandoned (their
        outcomes would conflict with the new owner's events), and their work is ended as
        the executor can (a worker process is killed), since the new owner runs it again."""
        with self._lock:
            for attempt in self._running.values():
                attempt.abandoned = True
                attempt.control.request_stop()
                attempt.control.kill()
            self._owned.clear()
            self._open_owned = 0
            self._ready.clear()
            self._settled.notify_all()

    def __enter__(self) -> TaskOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
