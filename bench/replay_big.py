"""The replay tools on a large SQLite log (``REPLAY1M``): the log's generator and the
measurements run in child processes.

**The log.** Real domain events, built by the domain's decisions the way the engine
makes them, appended through :func:`engine.store.open_store` in large batches (so every
row is what the store writes). A simulated engine (one orchestrator, ``WORKERS`` worker
slots, ``CONCURRENT_RUNS`` workflow runs in flight) runs workflow runs of 10 steps, each
run of one of four definitions (a fan-in ETL, a chain, a fan-out/fan-in, a build
pipeline). A run is recorded as the engine records it: ``workflow_run.created`` and
``workflow_run.started`` with its steps' ``task.created`` (and the roots'
``task.ready``) in one commit, then each step through ``ready``/``started``/
``completed``; an attempt fails now and then (``retry_scheduled`` then a new
``started``, or ``failed`` when no retry is left, which skips the dependents and fails
the run); a few runs are cancelled mid-way (open steps ``cancelled``, an abandoned
attempt's late result ``late_result_discarded``). Most runs belong to a session
(``session.created``/``activated``/``closed``, its user as the actor); one definition is
redefined half-way. Times come from a simulated clock, ids from a seeded generator: the
same version and size give the same log. The log is cut at exactly ``n`` events, so
the last few runs are still in flight, as in a live store.

While appending, the generator counts what the log holds (tasks, runs and sessions by
status, by the domain's meaning of each event type, independently of the projections)
at the end and at the midpoint, and picks a run for the run timeline. The children
check their results against these counts.

The file is cached (``--cache-dir``, default ``<tmp>/codomyrmex-bench-cache``) under a
name holding :data:`GENERATOR_VERSION` and ``n``; bump the version whenever the
generator changes what it writes.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import resource
import sqlite3
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain import task as T
from domain.enums import OrchestrationMode, SessionStatus, TaskStatus, WorkflowStatus
from domain.events import Event, EventMeta
from domain.lifecycles import SESSION, TASK
from domain.session import SessionActivated, SessionClosed, SessionCreated
from domain.workflow import (
    RunState,
    StepSpec,
    WorkflowRunCancelled,
    WorkflowRunCompleted,
    WorkflowRunCreated,
    WorkflowRunFailed,
    WorkflowRunStarted,
    define,
    evolve_run,
    implied_dependencies,
    open_run,
    step_order,
    substitute,
)
from engine.store import TABLE, open_store

GENERATOR_VERSION = 1
SEED = 1_000_003
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WORKERS = 8  # the orchestrator's worker slots
CONCURRENT_RUNS = 6  # workflow runs in flight
RUNS_PER_SESSION = 40
NO_SESSION_SHARE = 0.1  # runs started outside any session
USERS = ("ana", "bo", "chen", "dita", "eli")
APPEND_BATCH = 20_000  # events per store.append
FAIL_P = 0.03  # an attempt fails
TIMEOUT_SHARE = 0.2  # of failures: a timeout
NOT_RETRYABLE_SHARE = 0.1  # of failures: not retryable (fails at once)
CANCEL_P = 0.0005  # per step completion: the run is cancelled
PAGE = 1000  # rows per page of the raw baseline scan (the store reads 1,000 too)

# name -> [(step, dependencies)], 10 steps each
SHAPES: dict[str, list[tuple[str, list[str]]]] = {
    "etl": [
        ("extract", []),
        ("clean_a", ["extract"]),
        ("clean_b", ["extract"]),
        ("clean_c", ["extract"]),
        ("merge", ["clean_a", "clean_b", "clean_c"]),
        ("index", ["merge"]),
        ("stats", ["merge"]),
        ("report", ["index", "stats"]),
        ("publish", ["report"]),
        ("notify", ["publish"]),
    ],
    "chain": [(f"s{k}", [f"s{k - 1}"] if k else []) for k in range(10)],
    "fanout": [
        ("split", []),
        *[(f"part{k}", ["split"]) for k in range(8)],
        ("combine", [f"part{k}" for k in range(8)]),
    ],
    "build": [
        ("checkout", []),
        ("deps", ["checkout"]),
        ("lint", ["deps"]),
        ("unit", ["deps"]),
        ("integration", ["deps"]),
        ("docs", ["checkout"]),
        ("package", ["lint", "unit", "integration"]),
        ("sign", ["package"]),
        ("upload", ["sign", "docs"]),
        ("announce", ["upload"]),
    ],
}

# What each event type leaves its aggregate's status at (the domain's lifecycles):
# the generator's own count of the log, independent of the projections.
TASK_STATUS_AFTER: dict[type[Event], TaskStatus] = {
    T.TaskCreated: TaskStatus.PENDING,
    T.TaskReady: TaskStatus.READY,
    T.TaskStarted: TaskStatus.RUNNING,
    T.TaskCompleted: TaskStatus.COMPLETED,
    T.TaskRetryScheduled: TaskStatus.READY,
    T.TaskFailed: TaskStatus.FAILED,
    T.TaskCancelled: TaskStatus.CANCELLED,
    T.TaskSkipped: TaskStatus.SKIPPED,
}
RUN_STATUS_AFTER: dict[type[Event], WorkflowStatus] = {
    WorkflowRunCreated: WorkflowStatus.PENDING,
    WorkflowRunStarted: WorkflowStatus.RUNNING,
    WorkflowRunCompleted: WorkflowStatus.COMPLETED,
    WorkflowRunFailed: WorkflowStatus.FAILED,
    WorkflowRunCancelled: WorkflowStatus.CANCELLED,
}
SESSION_STATUS_AFTER: dict[type[Event], SessionStatus] = {
    SessionCreated: SessionStatus.PENDING,
    SessionActivated: SessionStatus.ACTIVE,
    SessionClosed: SessionStatus.COMPLETED,
}


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# =============================================================================
# the generator
# =============================================================================


@dataclass
class _Run:
    state: RunState
    workflow: str
    steps: list[str]  # step order of the definition
    task_ids: dict[str, str]
    dependents: dict[str, list[str]]  # task id -> dependent task ids
    unmet: dict[str, int]
    session: _Session | None
    open: int
    cancel_requested: bool = False
    problems: dict[str, str] = field(default_factory=dict)  # task id -> "error type: message"


@dataclass
class _Session:
    id: str
    user: str
    version: int = 2
    runs_left: int = RUNS_PER_SESSION
    open_runs: int = 0


@dataclass
class _Attempt:
    task_id: str
    started_event_id: str
    execution_time: float


@dataclass
class _Count:
    """What the written log holds, kept as it is written."""

    tasks: dict[str, TaskStatus] = field(default_factory=dict)
    runs: dict[str, WorkflowStatus] = field(default_factory=dict)
    sessions: dict[str, SessionStatus] = field(default_factory=dict)
    definitions: set[str] = field(default_factory=set)
    types: Counter[str] = field(default_factory=Counter)
    position: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "tasks": len(self.tasks),
            "task_status": dict(Counter(s.value for s in self.tasks.values())),
            "runs": len(self.runs),
            "run_status": dict(Counter(s.value for s in self.runs.values())),
            "sessions": len(self.sessions),
            "session_status": dict(Counter(s.value for s in self.sessions.values())),
            "definitions": len(self.definitions),
            "types": dict(self.types),
        }


class _Sim:
    """A simulated engine deciding events with the domain's functions."""

    def __init__(self, n: int, url: str) -> None:
        self.n = n
        self.rng = random.Random(SEED)
        self.now = START
        self.store = open_store(url)
        self.buffer: list[Event] = []
        self.written = 0
        self.count = _Count()
        self.mid: dict[str, Any] | None = None
        self.sample_run = ""
        self.sample_events = 0
        self.commits = 0
        self.orchestrator = self._new_id()
        self.definitions: dict[str, tuple[int, list[StepSpec]]] = {}
        self.tasks: dict[str, T.TaskState] = {}
        self.task_run: dict[str, _Run] = {}
        self.runs: dict[str, _Run] = {}
        self.ready: deque[str] = deque()
        self.delayed: list[tuple[datetime, int, str]] = []
        self.running: dict[str, _Attempt] = {}
        self.finishing: list[tuple[datetime, int, _Attempt]] = []  # (finish time, seq, attempt)
        self.late: list[tuple[datetime, int, T.TaskState, _Attempt]] = []  # abandoned attempts
        self.session: _Session | None = None
        self.seq = 0
        self.runs_started = 0
        self.done = False

    # -- ids, time, output ---------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _tick(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def emit(self, events: list[Event]) -> None:
        """One commit's events (the engine's commit boundaries are not kept: batches are
        appended APPEND_BATCH events at a time)."""
        self.commits += 1
        self.buffer.extend(events)
        if len(self.buffer) >= APPEND_BATCH:
            self.flush()

    def flush(self) -> None:
        room = self.n - self.written
        batch = self.buffer[:room]
        self.buffer = []
        if batch:
            recorded = self.store.append(batch)
            if recorded[0].position != self.written + 1 or recorded[-1].position != self.written + len(batch):
                raise RuntimeError("the store gave unexpected positions")
            for event in batch:
                self._account(event)
            self.written += len(batch)
        if self.written >= self.n:
            self.done = True

    def _account(self, event: Event) -> None:
        c = self.count
        c.position += 1
        c.types[event.type] += 1
        cls = type(event)
        kind = event.KIND
        if kind == "task":
            status = TASK_STATUS_AFTER.get(cls)
            if status is not None:
                c.tasks[event.aggregate_id] = status
        elif kind == "workflow_run":
            c.runs[event.aggregate_id] = RUN_STATUS_AFTER[cls]
        elif kind == "session":
            c.sessions[event.aggregate_id] = SESSION_STATUS_AFTER[cls]
        elif kind == "workflow":
            c.definitions.add(event.aggregate_id)
        if self.sample_run:
            if event.correlation_id == self.sample_run or event.stream_id == f"workflow_run:{self.sample_run}":
                self.sample_events += 1
        elif isinstance(event, WorkflowRunCreated) and c.position > self.n // 2:
            self.sample_run = event.aggregate_id
            self.sample_events = 1
        if c.position == self.n // 2:
            self.mid = c.summary()

    # -- definitions and sessions ---------------------------------------------

    def define_all(self, *, redefine: str | None = None) -> None:
        events: list[Event] = []
        meta = EventMeta(timestamp=self.now)
        for name, shape in SHAPES.items():
            if redefine is not None and name != redefine:
                continue
            version = self.definitions[name][0] + 1 if name in self.definitions else 1
            specs = []
            for step, deps in shape:
                params: dict[str, Any] = {"part": "{{part}}", "op": step}
                if deps:
                    params["input"] = "{{" + deps[0] + ".output}}"
                specs.append(
                    StepSpec(
                        name=step,
                        module="bench",
                        action=f"{name}_{step}",
                        parameters=params,
                        dependencies=deps,
                        timeout=30.0 if name == "build" else None,
                        max_retries=2 if version == 1 else 3,
                        retry_delay=0.05,
                    )
                )
            events.append(define(name, version, specs, meta, source="api"))
            self.definitions[name] = (version, specs)
        self.emit(events)

    def _session_for_run(self) -> _Session | None:
        if self.rng.random() < NO_SESSION_SHARE:
            return None
        if self.session is None or self.session.runs_left == 0:
            sid = self._new_id()
            user = self.rng.choice(USERS)
            created = SessionCreated(
                aggregate_id=sid,
                version=1,
                timestamp=self.now,
                actor=user,
                correlation_id=sid,
                user_id=user,
                mode=OrchestrationMode.PARALLEL,
                max_parallel_tasks=WORKERS,
                max_parallel_workflows=CONCURRENT_RUNS,
                metadata={"client": "bench"},
            )
            SESSION.decide(SESSION.initial, "activate", sid)
            activated = SessionActivated(
                aggregate_id=sid,
                version=2,
                timestamp=self.now,
                actor=user,
                correlation_id=sid,
                causation_id=created.event_id,
            )
            self.emit([created, activated])
            self.session = _Session(sid, user)
        self.session.runs_left -= 1
        self.session.open_runs += 1
        return self.session

    def _session_run_ended(self, session: _Session) -> None:
        session.open_runs -= 1
        if session.runs_left == 0 and session.open_runs == 0:
            SESSION.decide(SessionStatus.ACTIVE, "close", session.id)
            session.version += 1
            self.emit(
                [
                    SessionClosed(
                        aggregate_id=session.id,
                        version=session.version,
                        timestamp=self.now,
                        actor=session.user,
                        correlation_id=session.id,
                        reason="closed by the user",
                    )
                ]
            )

    # -- runs ------------------------------------------------------------------

    def start_run(self) -> None:
        self.runs_started += 1
        name = self.rng.choice(tuple(SHAPES))
        version, specs = self.definitions[name]
        session = self._session_for_run()
        actor = session.user if session else "system"
        group = session.id if session else ""
        run_id = self._new_id()
        parameters = {"part": f"part-{self.runs_started:07d}"}
        by_name = {s.name: s for s in specs}
        order = step_order(name, specs)
        task_ids = {s.name: f"{run_id}/{s.name}" for s in specs}
        names = set(by_name)
        meta = EventMeta(timestamp=self.now, actor=actor, correlation_id=run_id)
        created_run, started_run = open_run(
            run_id,
            meta,
            workflow=name,
            definition_version=version,
            parameters=parameters,
            step_tasks=task_ids,
            session_id=group,
        )
        run_state = evolve_run(evolve_run(None, created_run), started_run)
        run = _Run(run_state, name, [s.name for s in specs], task_ids, {}, {}, session, open=len(specs))
        self.runs[run_id] = run
        events: list[Event] = [created_run, started_run]

        def global_param(ref: str, path: str | None) -> Any:
            return "{{" + ref + ".output" + path + "}}" if path is not None else parameters[ref]

        for step_name in order:
            step = by_name[step_name]
            deps = implied_dependencies(step, names)
            tid = task_ids[step_name]
            created = T.create(
                tid,
                meta,
                name=f"{name}.{step_name}",
                module=step.module,
                action=step.action,
                parameters=substitute(step.parameters, global_param),
                dependencies=[task_ids[d] for d in deps],
                timeout=step.timeout,
                max_retries=step.max_retries,
                retry_delay=step.retry_delay,
                metadata={"workflow": name, "run_id": run_id, "step": step_name},
                owner=self.orchestrator,
                aliases={d: task_ids[d] for d in deps},
                group=group,
            )
            state = T.evolve(None, created)
            self.tasks[tid] = state
            self.task_run[tid] = run
            events.append(created)
            for d in deps:
                run.dependents.setdefault(task_ids[d], []).append(tid)
            run.unmet[tid] = len(deps)
            if not deps:
                self._make_ready(state, events, created.event_id)
        self._admit(events)
        self.emit(events)

    def _meta(self, state: T.TaskState, causation_id: str = "") -> EventMeta:
        d = state.definition
        return EventMeta(timestamp=self.now, actor=d.actor, correlation_id=d.correlation_id, causation_id=causation_id)

    def _decide(self, events: list[Event], event: Event) -> None:
        state = self.tasks[event.aggregate_id]
        was_final = TASK.is_final(state.status)
        T.evolve(state, event)
        events.append(event)
        if TASK.is_final(state.status) and not was_final:
            run = self.task_run[state.id]
            run.open -= 1
            if isinstance(event, T.TaskFailed):
                run.problems[state.id] = f"{event.error_type}: {event.error_message}"
            elif isinstance(event, T.TaskSkipped):
                why = f"skipped: dependency {event.dependency} ended {event.dependency_status.value}"
                run.problems[state.id] = f"DependencyNotCompleted: {why}"
            elif isinstance(event, T.TaskCancelled):
                run.problems[state.id] = f"TaskCancelled: cancelled: {event.reason}"
            self._propagate(run, state, events, event.event_id)

    def _make_ready(self, state: T.TaskState, events: list[Event], causation_id: str) -> None:
        self._decide(events, T.ready(state, self._meta(state, causation_id)))
        self.ready.append(state.id)

    def _propagate(self, run: _Run, state: T.TaskState, events: list[Event], causation_id: str) -> None:
        for dep_id in run.dependents.get(state.id, ()):
            dependent = self.tasks[dep_id]
            if dependent.status not in (TaskStatus.PENDING, TaskStatus.READY):
                continue
            if state.status is TaskStatus.COMPLETED:
                run.unmet[dep_id] -= 1
                if run.unmet[dep_id] == 0 and dependent.status is TaskStatus.PENDING:
                    self._make_ready(dependent, events, causation_id)
            else:
                skipped = T.skip(
                    dependent,
                    self._meta(dependent, causation_id),
                    dependency=state.id,
                    dependency_status=state.status,
                )
                self._decide(events, skipped)

    def _admit(self, events: list[Event]) -> None:
        while self.delayed and self.delayed[0][0] <= self.now:
            _, _, tid = heapq.heappop(self.delayed)
            self.ready.append(tid)
        while self.ready and len(self.running) < WORKERS:
            tid = self.ready.popleft()
            state = self.tasks.get(tid)
            if state is None or state.status is not TaskStatus.READY:
                continue  # cancelled or skipped meanwhile
            if state.retry_at is not None and state.retry_at > self.now:
                heapq.heappush(self.delayed, (state.retry_at, self._next_seq(), tid))
                continue
            started = T.start(state, self._meta(state, f"task:{tid}@{state.version}"), worker="thread:task-worker")
            self._decide(events, started)
            seconds = self.rng.expovariate(1 / 0.004)
            attempt = _Attempt(tid, started.event_id, seconds)
            self.running[tid] = attempt
            finish = self.now + timedelta(seconds=seconds)
            heapq.heappush(self.finishing, (finish, self._next_seq(), attempt))

    def _finish(self, attempt: _Attempt) -> None:
        """An attempt ended: record its outcome with the next admissions (one commit)."""
        tid = attempt.task_id
        if self.running.get(tid) is not attempt:
            return  # abandoned (cancelled): its late result is in self.late
        del self.running[tid]
        state = self.tasks[tid]
        run = self.task_run[tid]
        events: list[Event] = []
        meta = self._meta(state, attempt.started_event_id)
        rng = self.rng
        if rng.random() < FAIL_P:
            timeout = rng.random() < TIMEOUT_SHARE and state.definition.timeout is not None
            retryable = rng.random() >= NOT_RETRYABLE_SHARE
            self._decide(
                events,
                T.attempt_failed(
                    state,
                    meta,
                    error_type="TimeoutError" if timeout else "ConnectionError",
                    error_message=(
                        f"attempt {state.attempt} exceeded {state.definition.timeout:g}s"
                        if timeout
                        else f"upstream {rng.randrange(10)} reset the connection"
                    ),
                    execution_time=attempt.execution_time,
                    retryable=retryable,
                ),
            )
            if state.status is TaskStatus.READY:  # a retry, eligible at retry_at
                assert state.retry_at is not None
                heapq.heappush(self.delayed, (state.retry_at, self._next_seq(), tid))
        else:
            data = {"rows": rng.randrange(100_000), "step": state.definition.metadata["step"], "ok": True}
            self._decide(events, T.complete(state, meta, data=data, execution_time=attempt.execution_time))
            if rng.random() < CANCEL_P:
                run.cancel_requested = True
        if run.cancel_requested:
            self._cancel_run(run, events)
        self._admit(events)
        self.emit(events)
        self._end_runs_if_final(run)

    def _cancel_run(self, run: _Run, events: list[Event]) -> None:
        """The engine's abort: cancel the open steps (in step order); a running attempt
        is abandoned and its late result recorded when it ends."""
        for step in run.steps:
            tid = run.task_ids[step]
            state = self.tasks[tid]
            if TASK.is_final(state.status):
                continue
            attempt = self.running.pop(tid, None)
            self._decide(events, T.cancel(state, self._meta(state), reason="run cancelled by the user"))
            if attempt is not None:
                due = self.now + timedelta(seconds=attempt.execution_time)
                heapq.heappush(self.late, (due, self._next_seq(), state, attempt))

    def _end_runs_if_final(self, run: _Run) -> None:
        if run.open:
            return
        state = run.state
        started = state.started_at or state.created.timestamp
        duration = (self.now - started).total_seconds()
        env: dict[str, Any] = {
            "aggregate_id": state.id,
            "version": state.version + 1,
            "timestamp": self.now,
            "actor": state.created.actor,
            "correlation_id": state.id,
        }
        errors = []
        for step in run.steps:
            task = self.tasks[run.task_ids[step]]
            if task.status is not TaskStatus.COMPLETED:
                errors.append(f"step {step!r} {task.status.value}: {run.problems[task.id]}")
        end: Event
        if run.cancel_requested:
            end = WorkflowRunCancelled(reason="run cancelled by the user", duration=duration, **env)
        elif errors:
            end = WorkflowRunFailed(reason="step_failed", errors=errors, duration=duration, **env)
        else:
            end = WorkflowRunCompleted(duration=duration, **env)
        evolve_run(state, end)  # checks the transition
        self.emit([end])
        del self.runs[state.id]
        for tid in run.task_ids.values():
            self.task_run.pop(tid, None)
            if tid not in self.running:
                self.tasks.pop(tid, None)
        if run.session is not None:
            self._session_run_ended(run.session)

    # -- the loop --------------------------------------------------------------

    def run(self) -> None:
        self.define_all()
        redefined = False
        while not self.done:
            while len(self.runs) < CONCURRENT_RUNS and not self.done:
                self.start_run()
                self._tick(0.2)
            if not redefined and self.written + len(self.buffer) > self.n // 2:
                self.define_all(redefine="etl")
                redefined = True
            late_due = self.late[0][0] if self.late else None
            finish_due = self.finishing[0][0] if self.finishing else None
            retry_due = self.delayed[0][0] if self.delayed else None
            if late_due is not None and (finish_due is None or late_due <= finish_due):
                _, _, state, abandoned = heapq.heappop(self.late)
                self.now = max(self.now, late_due)
                late = T.discard_late_result(
                    state,
                    self._meta(state, abandoned.started_event_id),
                    attempt=state.attempt,
                    success=True,
                    execution_time=abandoned.execution_time,
                    error_type=None,
                )
                T.evolve(state, late)
                self.emit([late])
                if state.id not in self.task_run:
                    self.tasks.pop(state.id, None)
            elif finish_due is not None:
                _, _, attempt = heapq.heappop(self.finishing)
                self.now = max(self.now, finish_due) + timedelta(microseconds=self.rng.randrange(50, 400))
                self._finish(attempt)
            elif retry_due is not None:
                self.now = max(self.now, retry_due)
                events: list[Event] = []
                self._admit(events)
                self.emit(events)
            else:  # pragma: no cover -- every open run has a running, ready or delayed step
                raise RuntimeError("the simulation is stuck")
        self.flush()

    def close(self) -> None:
        self.store.close()


def build_log(path: Path, n: int) -> dict[str, Any]:
    """Write the ``n``-event log to ``path`` (a new file); return its description."""
    if path.exists():
        raise RuntimeError(f"{path} already exists")
    t0 = time.perf_counter()
    sim = _Sim(n, f"sqlite:///{path.resolve()}")
    try:
        sim.run()
    finally:
        sim.close()
    seconds = time.perf_counter() - t0
    if sim.written != n or sim.mid is None or not sim.sample_run:
        raise RuntimeError(f"the generator wrote {sim.written} events, expected {n}")
    for suffix in ("-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():  # the last connection's close normally removes them
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            break
    return {
        "generator_version": GENERATOR_VERSION,
        "events": n,
        "build_seconds": seconds,
        "build_commits_simulated": sim.commits,
        "bytes": path.stat().st_size,
        "end": sim.count.summary(),
        "mid": sim.mid,
        "sample_run": sim.sample_run,
        "sample_run_events": sim.sample_events,
    }


def default_cache_dir() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / "codomyrmex-bench-cache"


def ensure_log(cache_dir: Path, n: int) -> tuple[Path, dict[str, Any], bool]:
    """The cached log of ``n`` events (built if missing): (path, description, built now)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"replay-g{GENERATOR_VERSION}-n{n}"
    path, meta_path = cache_dir / f"{stem}.db", cache_dir / f"{stem}.json"
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text()), False
    tmp = cache_dir / f"{stem}.building-{os.getpid()}.db"
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    meta = build_log(tmp, n)
    os.replace(tmp, path)
    meta_tmp = cache_dir / f"{stem}.json.{os.getpid()}"
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, meta_path)  # written last: a .json means a complete .db
    return path, meta, True


# =============================================================================
# measurements (each in a fresh child process)
# =============================================================================


def run_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Make sure the cached log exists; time its build when it had to be built."""
    path, meta, built = ensure_log(Path(spec["cache_dir"]), spec["n"])
    return {
        "events": spec["n"],
        "seconds": meta["build_seconds"] if built else None,
        "built": built,
        "path": str(path),
        "meta": meta,
        "rss_kib": _rss(),
        "errors": [],
    }


def _check_counts(state: Any, want: dict[str, Any]) -> list[str]:
    """A ``State`` against the generator's count of the log."""
    errors: list[str] = []
    got_tasks = {s.value: n for s, n in state.tasks.counts.items() if n}
    want_tasks = {k: v for k, v in want["task_status"].items() if v}
    if state.position != want["position"]:
        errors.append(f"state position {state.position}, expected {want['position']}")
    if len(state.tasks.tasks) != want["tasks"] or got_tasks != want_tasks:
        errors.append(f"tasks {len(state.tasks.tasks)} {got_tasks}, expected {want['tasks']} {want_tasks}")
    got_runs = {k: v for k, v in state.workflow_summary.items() if v and k != "total"}
    want_runs = {k: v for k, v in want["run_status"].items() if v}
    if state.workflow_summary["total"] != want["runs"] or got_runs != want_runs:
        errors.append(f"runs {state.workflow_summary}, expected {want['runs']} {want_runs}")
    got_sessions = dict(Counter(s.status.value for s in state.sessions.sessions.values()))
    if got_sessions != want["session_status"]:
        errors.append(f"sessions {got_sessions}, expected {want['session_status']}")
    if len(state.workflows.definitions) != want["definitions"]:
        errors.append(f"{len(state.workflows.definitions)} definitions, expected {want['definitions']}")
    return errors


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    return out, seconds, _rss()


def run_measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement of ``spec["op"]`` on the cached log, in this fresh process.
    ``events`` is what the measured pass reads (a run's timeline reads the whole log)."""
    op, path, meta = spec["op"], Path(spec["path"]), spec["meta"]
    errors: list[str] = []
    extra: dict[str, Any] = {}
    open_seconds = None
    if op in SCANS:
        count, seconds, rss = _timed(lambda: _raw_scan(path, op))
        events = meta["events"]
        if count != events:
            errors.append(f"{op}: {count} rows, expected {events}")
    else:
        t0 = time.perf_counter()
        store = open_store(f"sqlite:///{path.resolve()}")
        open_seconds = time.perf_counter() - t0
        try:
            events, seconds, rss, errors, extra = _measure_tool(op, store, spec, meta)
        finally:
            store.close()
    return {
        "events": events,
        "seconds": seconds,
        "open_seconds": open_seconds,
        "rss_kib": rss,
        "errors": errors,
        "extra": extra,
    }


SCANS = ("scan-untyped", "scan-only", "scan-typed")


def _raw_scan(path: Path, op: str) -> int:
    """The floor: every row of the table read with ``sqlite3`` (pages of PAGE rows by
    rowid, as the store reads) and decoded with msgspec (untyped to dicts, or typed
    to the event Structs as the codec does)."""
    import msgspec

    from domain.events import EVENT_TYPES

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        decode = msgspec.json.decode
        typed = {name: msgspec.json.Decoder(cls).decode for name, cls in EVENT_TYPES.items()}
        sql = f"SELECT rowid, topic, state FROM {TABLE} WHERE rowid>=? ORDER BY rowid LIMIT ?"
        count, position = 0, 1
        while True:
            rows = conn.execute(sql, (position, PAGE)).fetchall()
            if op == "scan-untyped":
                for _, _, state in rows:
                    decode(state)
            elif op == "scan-typed":
                for _, topic, state in rows:
                    typed[topic](state)
            count += len(rows)
            if len(rows) < PAGE:
                return count
            position = rows[-1][0] + 1
    finally:
        conn.close()


def _measure_tool(
    op: str, store: Any, spec: dict[str, Any], meta: dict[str, Any]
) -> tuple[int, float, int, list[str], dict[str, Any]]:
    """(events read, seconds, peak RSS KiB, errors, extra) of one replay tool."""
    errors: list[str] = []
    extra: dict[str, Any] = {}
    n = meta["events"]
    if op in ("state-end", "state-mid"):
        from replay_tools.state import state_at

        position = n if op == "state-end" else n // 2
        state, seconds, rss = _timed(lambda: state_at(store, position=position))
        errors += _check_counts(state, meta["end"] if op == "state-end" else meta["mid"])
        extra = {"tasks": len(state.tasks.tasks), "runs": state.workflow_summary["total"]}
        return position, seconds, rss, errors, extra
    if op == "timeline-run":
        from replay_tools.timeline import timeline

        run_id = meta["sample_run"]
        tl, seconds, rss = _timed(lambda: timeline(store, run=run_id))
        want = meta["sample_run_events"]
        positions = [e.position for e in tl]
        if len(tl) != want or positions != sorted(positions) or tl.entries[0].type != "workflow_run.created":
            errors.append(f"run timeline: {len(tl)} entries, expected {want} starting with workflow_run.created")
        extra = {"run": run_id, "entries": len(tl)}
        return n, seconds, rss, errors, extra
    if op == "timeline-all":
        from replay_tools.timeline import timeline

        def walk() -> tuple[int, int, int]:
            count = last = caused = 0
            for entry in timeline(store):  # built whole (the API returns a Timeline), then walked
                count += 1
                if entry.position <= last:
                    raise AssertionError(f"position {entry.position} after {last}")
                last = entry.position
                caused += len(entry.caused)
            return count, last, caused

        (count, last, caused), seconds, rss = _timed(walk)
        if count != n or last != n:
            errors.append(f"whole timeline: {count} entries ending at {last}, expected {n}")
        extra = {"caused_links": caused}
        return count, seconds, rss, errors, extra
    if op == "export":
        from replay_tools.exchange import export_events

        out = Path(spec["tmpdir"]) / "export.jsonl"
        summary, seconds, rss = _timed(lambda: export_events(store, out))
        with out.open("rb") as f:
            lines = sum(1 for _ in f)
        if summary.events != n or lines != n or summary.last_position != n:
            errors.append(f"export wrote {summary.events} events in {lines} lines (last {summary.last_position})")
        extra = {"bytes": out.stat().st_size}
        out.unlink()
        return summary.events, seconds, rss, errors, extra
    if op == "verify":
        from replay_tools.verify import verify

        report, seconds, rss = _timed(lambda: verify(store))
        if not report.ok or report.events != n:
            errors.append(f"verify read {report.events} events: {report.text()[:2000]}")
        return report.events, seconds, rss, errors, extra
    raise ValueError(f"unknown replay measurement {op!r}")


def run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["op"] == "build":
        return run_build(spec)
    return run_measure(spec)
