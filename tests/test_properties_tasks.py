"""Property tests: a RuleBasedStateMachine drives a TaskOrchestrator through random
adds (with dependencies, priorities, retries and scripted failures), cancellations and
runs, and checks the engine's invariants after every step.

The machine drives a bare orchestrator (tasks added before execution starts, batches,
cancellations), which :class:`replay_tools.testing.EngineStateMachine` does not offer;
the action, the outcome scripts and the invariant checks are the public ones of
:mod:`replay_tools.testing`."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.enums import TaskPriority, TaskStatus
from domain.lifecycles import TASK
from engine.models import Task
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.testing import (
    ScriptedAction,
    assert_dependencies_completed_first,
    assert_live_views_match_log,
    assert_log_verifies,
    outcome_scripts,
)

REPO = Path(__file__).resolve().parents[1]
OUTCOMES = outcome_scripts()


def snapshot_json(view_snapshot: dict[str, Any]) -> str:
    return msgspec.json.encode(view_snapshot).decode()


class TaskLifecycleMachine(RuleBasedStateMachine):
    store_url = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.registry = ActionRegistry()
        self.actions = ScriptedAction()
        self.registry.register("prop", "scripted", self.actions)
        url = self.store_url.format(tmp=self.tmp.name)
        self.orch = TaskOrchestrator(max_workers=3, store=url, registry=self.registry)
        self.ids: list[str] = []
        self.counter = 0

    @initialize(start=st.booleans())
    def maybe_start(self, start: bool) -> None:
        if start:
            self.orch.start_execution()

    def _task(self, outcomes: list[str], retries: int, deps: list[str], priority: TaskPriority) -> Task:
        self.counter += 1
        tid = f"t{self.counter}"
        return Task(
            id=tid,
            module="prop",
            action="scripted",
            parameters={"key": tid, "outcomes": outcomes},
            dependencies=deps,
            max_retries=retries,
            retry_delay=0,
            priority=priority,
        )

    @rule(
        outcomes=OUTCOMES,
        retries=st.integers(0, 2),
        dep_picks=st.lists(st.integers(0, 10_000), max_size=3, unique=True),
        priority=st.sampled_from(TaskPriority),
    )
    def add_task(self, outcomes: list[str], retries: int, dep_picks: list[int], priority: TaskPriority) -> None:
        deps = sorted({self.ids[i % len(self.ids)] for i in dep_picks}) if self.ids else []
        task = self._task(outcomes, retries, deps, priority)
        self.orch.add_task(task)
        self.ids.append(task.id)

    @rule(size=st.integers(1, 5), outcomes=OUTCOMES)
    def add_batch(self, size: int, outcomes: list[str]) -> None:
        batch: list[Task] = []
        for _ in range(size):
            deps = [batch[-1].id] if batch else []
            batch.append(self._task(outcomes, 1, deps, TaskPriority.NORMAL))
        self.orch.add_tasks(batch)
        self.ids.extend(t.id for t in batch)

    @precondition(lambda self: bool(self.ids))
    @rule(pick=st.integers(0, 10_000))
    def cancel(self, pick: int) -> None:
        tid = self.ids[pick % len(self.ids)]
        before = self.orch.get_task(tid)
        assert before is not None
        cancelled = self.orch.cancel_task(tid)
        if cancelled:
            assert self.orch.get_task(tid).status is TaskStatus.CANCELLED  # type: ignore[union-attr]
        else:
            assert TASK.is_final(before.status) or TASK.is_final(self.orch.get_task(tid).status)  # type: ignore[union-attr]

    @rule()
    def run_to_completion(self) -> None:
        self.orch.start_execution()
        done = self.orch.wait_for_completion(timeout=20)
        if not done:
            o = self.orch
            raise AssertionError(
                f"not finished: running={ {k: (a.number, a.abandoned) for k, a in o._running.items()} } "
                f"slots={o._slots_used} ready={o._ready} delayed={o._delayed} open={o._open_owned} "
                f"inflight={o._inflight} states={ {k: (s.status.value, s.attempt) for k, s in o._states.items()} }"
            )
        for task in self.orch.list_tasks():
            assert TASK.is_final(task.status), f"{task.id} is {task.status} after wait_for_completion"
            result = self.orch.get_task_result(task.id)
            assert result is not None
            if task.status is TaskStatus.COMPLETED:
                assert result.success and result.data["key"] == task.id
                assert result.data["inputs"] == sorted(task.dependencies)

    def _live_tasks(self) -> dict[str, Any]:
        with self.orch._view_lock:
            snapshot: dict[str, Any] = self.orch.view.snapshot()
        return snapshot

    @invariant()
    def view_equals_fold_of_log(self) -> None:
        # tasks may still be running in the background: rebuilt == live, not caught up
        assert_live_views_match_log(self.orch.store, {"tasks": self._live_tasks}, caught_up=False)

    @invariant()
    def every_status_change_is_legal(self) -> None:
        assert_log_verifies(self.orch.store)

    @invariant()
    def dependencies_completed_before_start(self) -> None:
        assert_dependencies_completed_first(self.orch.store)

    def teardown(self) -> None:
        try:
            self.orch.close()
        finally:
            self.tmp.cleanup()


TaskLifecycleMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestTaskLifecycle = TaskLifecycleMachine.TestCase


REBUILD = """
import sys, msgspec
from replay_tools.history import History
with History.open(sys.argv[1]) as h:
    print(msgspec.json.encode(h.task_view(stop=int(sys.argv[2])).snapshot()).decode())
"""


class SQLiteTaskLifecycleMachine(TaskLifecycleMachine):
    """The same machine on a durable SQLite store; at the end a *new process* rebuilds
    the views from the file alone and must print exactly the live views."""

    store_url = "sqlite:///{tmp}/events.db"

    def teardown(self) -> None:
        try:
            self.orch.store.flush()
            with self.orch._view_lock:
                live = self.orch.view.snapshot()
            url = self.store_url.format(tmp=self.tmp.name)
            out = subprocess.run(
                [sys.executable, "-c", REBUILD, url, str(live["position"])],
                capture_output=True, text=True, check=True, cwd=REPO, timeout=60,
            )  # fmt: skip
            assert json.loads(out.stdout) == json.loads(snapshot_json(live))
        finally:
            super().teardown()


SQLiteTaskLifecycleMachine.TestCase.settings = settings(
    max_examples=8, stateful_step_count=10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestSQLiteTaskLifecycle = SQLiteTaskLifecycleMachine.TestCase
