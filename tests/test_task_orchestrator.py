"""TaskOrchestrator behaviour: scheduling, data passing, retries, timeouts,
cancellation, skipping, history, and the audit trail each leaves."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import pytest

from domain.enums import TaskPriority, TaskStatus
from domain.errors import ExecutionNotStartedError, UnknownActionError, ValidationError
from domain.lifecycles import TASK
from domain.task import TRIGGER_OF
from engine.models import Task
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.history import History


@pytest.fixture
def registry() -> ActionRegistry:
    reg = ActionRegistry()
    reg.register("t", "inc", lambda i: i + 1)
    reg.register("t", "echo", lambda value=None: value)
    reg.register("t", "sleep", lambda seconds: time.sleep(seconds) or seconds)

    def add_all(dependency_results: dict[str, Any], extra: int = 0) -> int:
        return sum(dependency_results.values()) + extra

    reg.register("t", "add_all", add_all)

    def boom(message: str = "boom") -> None:
        raise RuntimeError(message)

    reg.register("t", "boom", boom)
    return reg


@pytest.fixture
def make(registry: ActionRegistry) -> Iterator[Callable[..., TaskOrchestrator]]:
    made: list[TaskOrchestrator] = []

    def factory(store: str = "memory://", max_workers: int = 4, **kw: Any) -> TaskOrchestrator:
        orch = TaskOrchestrator(max_workers=max_workers, store=store, registry=kw.pop("registry", registry), **kw)
        made.append(orch)
        return orch

    yield factory
    for orch in made:
        orch.close()


def statuses(orch: TaskOrchestrator, *ids: str) -> list[TaskStatus]:
    return [orch.get_task(i).status for i in ids]  # type: ignore[union-attr]


def event_types(orch: TaskOrchestrator, task_id: str) -> list[str]:
    return [e.type for e in orch.task_events(task_id)]


def assert_log_is_legal(orch: TaskOrchestrator) -> None:
    """Every status change in the log is a legal transition of the task lifecycle."""
    states: dict[str, TaskStatus] = {}
    for recorded in History(orch.store).task_events():
        event = recorded.event
        if event.type == "task.created":
            assert event.aggregate_id not in states
            states[event.aggregate_id] = TASK.initial
            continue
        trigger = TRIGGER_OF.get(type(event))
        if trigger is not None:
            states[event.aggregate_id] = TASK.decide(states[event.aggregate_id], trigger)


def test_dependencies_pass_results_in_declared_order(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    a = orch.add_task(Task(id="a", module="t", action="inc", parameters={"i": 1}))
    b = orch.add_task(Task(id="b", module="t", action="inc", parameters={"i": 10}))
    seen: list[dict[str, Any]] = []

    def capture(dependency_results: dict[str, Any]) -> list[str]:
        seen.append(dependency_results)
        return list(dependency_results)

    orch.registry.register("t", "capture", capture)
    c = orch.add_task(Task(id="c", module="t", action="capture", dependencies=[b, a]))
    orch.start_execution()
    assert orch.wait_for_completion(10)
    assert seen == [{"b": 11, "a": 2}]
    assert orch.get_task_result(c).data == ["b", "a"]  # type: ignore[union-attr]
    assert_log_is_legal(orch)


def test_chain_and_fan_in(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    orch.start_execution()
    prev = orch.add_task(Task(module="t", action="inc", parameters={"i": 0}))
    for _ in range(20):
        prev = orch.add_task(Task(module="t", action="add_all", dependencies=[prev], parameters={"extra": 1}))
    fan = orch.add_tasks([Task(module="t", action="inc", parameters={"i": i}) for i in range(50)])
    total = orch.add_task(Task(module="t", action="add_all", dependencies=fan))
    assert orch.wait_for_completion(20)
    assert orch.get_task_result(prev).data == 21  # type: ignore[union-attr]
    assert orch.get_task_result(total).data == sum(range(1, 51))  # type: ignore[union-attr]


def test_priority_then_age_with_one_worker(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make(max_workers=1)
    order: list[str] = []
    orch.registry.register("t", "note", lambda name: order.append(name))
    plan = [
        ("low1", TaskPriority.LOW),
        ("norm1", TaskPriority.NORMAL),
        ("crit", TaskPriority.CRITICAL),
        ("high", TaskPriority.HIGH),
        ("norm2", TaskPriority.NORMAL),
        ("low2", TaskPriority.LOW),
    ]
    orch.add_tasks([Task(id=n, module="t", action="note", parameters={"name": n}, priority=p) for n, p in plan])
    orch.start_execution()
    assert orch.wait_for_completion(10)
    assert order == ["crit", "high", "norm1", "norm2", "low1", "low2"]


def test_never_more_than_max_workers_running(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make(max_workers=3)
    lock = threading.Lock()
    running = peak = 0

    def probe() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return peak

    orch.registry.register("t", "probe", probe)
    orch.add_tasks([Task(module="t", action="probe") for _ in range(30)])
    orch.start_execution()
    assert orch.wait_for_completion(20)
    assert peak == 3
    assert orch.get_execution_stats()["completed"] == 30


def test_retries_with_delay_then_success(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)}")
        return "ok"

    orch.registry.register("t", "flaky", flaky)
    tid = orch.add_task(Task(module="t", action="flaky", max_retries=2, retry_delay=0.1))
    orch.start_execution()
    assert orch.wait_for_completion(10)
    result = orch.get_task_result(tid)
    assert result is not None and result.success and result.data == "ok"
    assert result.metadata["attempt"] == 3
    assert len(calls) == 3
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(calls))
    assert event_types(orch, tid) == [
        "task.created", "task.ready",
        "task.started", "task.retry_scheduled",
        "task.started", "task.retry_scheduled",
        "task.started", "task.completed",
    ]  # fmt: skip
    assert orch.get_task(tid).retry_count == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (1, 2), (3, 4)])
def test_max_retries_counts_retries_after_the_first_attempt(
    make: Callable[..., TaskOrchestrator], max_retries: int, attempts: int
) -> None:
    orch = make()
    orch.start_execution()
    tid = orch.add_task(Task(module="t", action="boom", max_retries=max_retries, retry_delay=0))
    assert orch.wait_for_completion(10)
    result = orch.get_task_result(tid)
    assert result is not None and not result.success
    assert (result.error_type, result.error_message) == ("RuntimeError", "boom")
    assert event_types(orch, tid).count("task.started") == attempts
    assert orch.get_task(tid).status is TaskStatus.FAILED  # type: ignore[union-attr]


def test_timeout_is_recorded_at_the_deadline_and_late_result_discarded(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make(max_workers=1)
    orch.start_execution()
    began = time.monotonic()
    slow = orch.add_task(Task(module="t", action="sleep", parameters={"seconds": 1.0}, timeout=0.2, max_retries=0))
    quick = orch.add_task(Task(module="t", action="inc", parameters={"i": 1}))
    assert orch.wait_for_completion(5)
    finished = time.monotonic() - began
    assert finished < 0.9, "the timeout must not wait for the abandoned thread"
    result = orch.get_task_result(slow)
    assert result is not None and result.error_type == "TimeoutError"
    # the slot of the abandoned attempt was given to the next task
    assert orch.get_task_result(quick).data == 2  # type: ignore[union-attr]
    deadline = time.monotonic() + 3
    while "task.late_result_discarded" not in event_types(orch, slow) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert event_types(orch, slow)[-2:] == ["task.failed", "task.late_result_discarded"]
    assert orch.get_task(slow).status is TaskStatus.FAILED  # type: ignore[union-attr]
    assert_log_is_legal(orch)


def test_timed_out_attempt_is_retried(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    calls = []

    def slow_then_fast() -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return "fast"

    orch.registry.register("t", "stf", slow_then_fast)
    orch.start_execution()
    tid = orch.add_task(Task(module="t", action="stf", timeout=0.1, max_retries=1, retry_delay=0))
    assert orch.wait_for_completion(5)
    assert orch.get_task_result(tid).data == "fast"  # type: ignore[union-attr]
    types = event_types(orch, tid)
    assert types[:6] == [
        "task.created", "task.ready", "task.started", "task.retry_scheduled", "task.started", "task.completed"
    ]  # fmt: skip


def test_failure_skips_dependents_transitively_independent_work_finishes(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    a = orch.add_task(Task(id="a", module="t", action="boom", max_retries=0))
    b = orch.add_task(Task(id="b", module="t", action="inc", parameters={"i": 1}, dependencies=[a]))
    c = orch.add_task(Task(id="c", module="t", action="inc", parameters={"i": 1}, dependencies=[b]))
    d = orch.add_task(Task(id="d", module="t", action="inc", parameters={"i": 1}))
    orch.start_execution()
    assert orch.wait_for_completion(5)
    assert statuses(orch, a, b, c, d) == [
        TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.SKIPPED, TaskStatus.COMPLETED
    ]  # fmt: skip
    skipped = orch.get_task_result(c)
    assert skipped is not None and skipped.error_type == "DependencyNotCompleted" and "b" in skipped.error_message
    # a task added later on a failed dependency is skipped at once
    e = orch.add_task(Task(module="t", action="inc", parameters={"i": 1}, dependencies=[a]))
    assert orch.get_task(e).status is TaskStatus.SKIPPED  # type: ignore[union-attr]
    assert_log_is_legal(orch)


def test_cancel_pending_and_running(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make(max_workers=1)
    gate = threading.Event()
    orch.registry.register("t", "wait_gate", lambda: gate.wait(5))
    running = orch.add_task(Task(id="run", module="t", action="wait_gate", max_retries=0))
    pending = orch.add_task(Task(id="pend", module="t", action="inc", parameters={"i": 1}))
    child = orch.add_task(Task(id="child", module="t", action="inc", parameters={"i": 1}, dependencies=[pending]))
    orch.start_execution()
    deadline = time.monotonic() + 3
    while orch.get_task(running).status is not TaskStatus.RUNNING and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    assert orch.cancel_task(pending, reason="not needed") is True
    assert orch.get_task(child).status is TaskStatus.SKIPPED  # type: ignore[union-attr]
    assert orch.cancel_task(running) is True
    assert orch.wait_for_completion(2)
    assert orch.get_task(running).status is TaskStatus.CANCELLED  # type: ignore[union-attr]
    assert orch.get_task_result(pending).error_message == "cancelled: not needed"  # type: ignore[union-attr]
    assert orch.cancel_task(running) is False  # already final
    assert orch.cancel_task("nope") is False
    gate.set()
    deadline = time.monotonic() + 3
    while "task.late_result_discarded" not in event_types(orch, running) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert event_types(orch, running)[-2:] == ["task.cancelled", "task.late_result_discarded"]
    assert_log_is_legal(orch)


def test_unknown_action_fails_once_with_a_clear_error(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    orch.start_execution()
    tid = orch.add_task(Task(module="nonexistent_module", action="nonexistent_action", max_retries=3))
    assert orch.wait_for_completion(5)
    result = orch.get_task_result(tid)
    assert result is not None and result.error_type == UnknownActionError.__name__
    assert "nonexistent_module" in result.error_message and "nonexistent_action" in result.error_message
    assert event_types(orch, tid).count("task.started") == 1  # not retried: it cannot succeed


@pytest.mark.parametrize("value", [object(), float("nan"), {"blob": b"bytes"}, {1: "int key"}])
def test_unserializable_result_fails_the_task(make: Callable[..., TaskOrchestrator], value: object) -> None:
    orch = make()
    orch.registry.register("t", "obj", lambda: value)
    orch.start_execution()
    tid = orch.add_task(Task(module="t", action="obj"))
    assert orch.wait_for_completion(5)
    result = orch.get_task_result(tid)
    assert result is not None
    assert result.error_type == "ResultNotSerializable"
    assert orch.get_task(tid).status is TaskStatus.FAILED  # type: ignore[union-attr]


def test_wait_for_completion_contract(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    assert orch.wait_for_completion() is True  # nothing to wait for
    orch.add_task(Task(module="t", action="inc", parameters={"i": 1}))
    with pytest.raises(ExecutionNotStartedError):
        orch.wait_for_completion()
    assert orch.wait_for_completion(timeout=0.05) is False
    with pytest.raises(ValidationError):
        orch.wait_for_completion(timeout=-1)
    orch.start_execution()
    assert orch.wait_for_completion(5) is True


def test_execute_task_runs_synchronously_with_retries(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    result = orch.execute_task(Task(module="t", action="inc", parameters={"i": 41}))
    assert result.success and result.data == 42
    failed = orch.execute_task(Task(module="t", action="boom", max_retries=1, retry_delay=0))
    assert not failed.success and failed.error_type == "RuntimeError" and failed.metadata["attempt"] == 2
    timed = orch.execute_task(
        Task(module="t", action="sleep", parameters={"seconds": 0.5}, timeout=0.05, max_retries=0)
    )
    assert timed.error_type == "TimeoutError"
    with pytest.raises(ValidationError):
        orch.execute_task("not a task")  # type: ignore[arg-type]
    pending = orch.add_task(Task(id="p", module="t", action="inc", parameters={"i": 1}))
    with pytest.raises(ValidationError):
        orch.execute_task(Task(module="t", action="inc", parameters={"i": 1}, dependencies=[pending]))


def test_get_and_list_tasks(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    task = orch.create_task(
        "named", "t", "inc",
        parameters={"i": 1}, priority=TaskPriority.HIGH, timeout=30, max_retries=1, tags=["x"], metadata={"k": 1},
    )  # fmt: skip
    assert (task.name, task.module, task.action, task.priority, task.timeout) == (
        "named",
        "t",
        "inc",
        TaskPriority.HIGH,
        30,
    )
    assert task.status is TaskStatus.READY and task.tags == ["x"] and task.metadata == {"k": 1}
    assert orch.get_task("missing") is None and orch.get_task_result("missing") is None
    assert orch.get_task_result(task.id) is None  # not final yet
    assert [t.id for t in orch.list_tasks(TaskStatus.READY)] == [task.id]
    assert orch.list_tasks(TaskStatus.COMPLETED) == []
    with pytest.raises(ValidationError):
        orch.list_tasks("sideways")  # type: ignore[arg-type]
    assert Task(module="t", action="inc").name == ""
    auto = orch.add_task(Task(module="t", action="inc", parameters={"i": 1}))
    assert orch.get_task(auto).name == "t.inc"  # type: ignore[union-attr]


def test_stats_add_up(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    orch.start_execution()
    orch.add_tasks([Task(module="t", action="inc", parameters={"i": i}) for i in range(10)])
    orch.add_task(Task(module="t", action="boom", max_retries=1, retry_delay=0))
    assert orch.wait_for_completion(5)
    stats = orch.get_execution_stats()
    assert stats["total_tasks"] == 11 and stats["completed"] == 10 and stats["failed"] == 1
    assert sum(stats[k] for k in ("pending", "ready", "running", "completed", "failed", "cancelled", "skipped")) == 11
    assert stats["total_execution_time"] > 0
    assert stats["average_execution_time"] == pytest.approx(stats["total_execution_time"] / 12)  # 10 + 2 attempts


def test_history_survives_a_restart(make: Callable[..., TaskOrchestrator], sqlite_url: str) -> None:
    first = make(store=sqlite_url)
    first.start_execution()
    a = first.add_task(Task(id="a", module="t", action="inc", parameters={"i": 1}))
    assert first.wait_for_completion(5)
    before = first.view.snapshot()
    first.close()
    second = make(store=sqlite_url)
    assert second.view.snapshot() == before
    assert second.get_task_result(a).data == 2  # type: ignore[union-attr]
    b = second.add_task(Task(module="t", action="add_all", dependencies=[a]))
    second.start_execution()
    assert second.wait_for_completion(5)
    assert second.get_task_result(b).data == 2  # type: ignore[union-attr]
    assert History(second.store).task_view().snapshot() == second.view.snapshot()


def test_rebuilt_view_equals_live_view(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    orch.start_execution()
    ids = orch.add_tasks([Task(module="t", action="inc", parameters={"i": i}) for i in range(20)])
    orch.add_task(Task(module="t", action="boom", max_retries=1, retry_delay=0, dependencies=ids[:2]))
    assert orch.wait_for_completion(5)
    orch.store.flush()
    history = History(orch.store)
    assert history.task_view().snapshot() == orch.view.snapshot()
    # and up to any position: the prefix fold equals folding the prefix
    middle = orch.store.max_position() // 2
    partial = history.task_view(stop=middle)
    assert partial.position == middle
    assert sum(1 for _ in history.events(stop=middle)) == middle


def _run_deterministic() -> list[tuple[Any, ...]]:
    from datetime import datetime

    from engine.clock import Runtime

    registry = ActionRegistry()
    registry.register("t", "inc", lambda i: i + 1)
    registry.register("t", "add_all", lambda dependency_results: sum(dependency_results.values()))
    orch = TaskOrchestrator(max_workers=1, store="memory://", registry=registry, runtime=Runtime.deterministic("run"))
    try:
        ids = orch.add_tasks([Task(id=f"t{i}", module="t", action="inc", parameters={"i": i}) for i in range(5)])
        orch.add_task(Task(id="sum", module="t", action="add_all", dependencies=ids))
        orch.start_execution()
        assert orch.wait_for_completion(5)
        out = []
        for recorded in History(orch.store).task_events():
            e = recorded.event
            assert datetime(2026, 1, 1, tzinfo=UTC) <= e.timestamp < datetime(2026, 1, 2, tzinfo=UTC)
            payload = {
                k: getattr(e, k) for k in e.__struct_fields__ if k not in ("timestamp", "execution_time", "deadline")
            }
            out.append((recorded.position, e.type, tuple(sorted(payload.items(), key=lambda kv: kv[0]))))
        return out
    finally:
        orch.close()


def test_injected_runtime_makes_runs_reproducible() -> None:
    """Same inputs, deterministic clock and ids, one worker: the same log (timestamps
    come from the injected clock; measured durations are the only difference)."""
    first, second = _run_deterministic(), _run_deterministic()
    assert first == second
    assert any("run-000001" in str(item) for item in first[0][2])  # correlation id from the injected ids


@pytest.mark.postgres
def test_history_survives_a_restart_on_postgresql(make: Callable[..., TaskOrchestrator], pg_url: str) -> None:
    first = make(store=pg_url)
    first.start_execution()
    a = first.add_task(Task(id="a", module="t", action="inc", parameters={"i": 1}))
    b = first.add_task(Task(id="b", module="t", action="boom", max_retries=1, retry_delay=0))
    assert first.wait_for_completion(10)
    before = first.view.snapshot()
    first.close()
    second = make(store=pg_url)
    assert second.view.snapshot() == before
    assert second.get_task_result(a).data == 2  # type: ignore[union-attr]
    assert second.get_task(b).status is TaskStatus.FAILED  # type: ignore[union-attr]
    assert History(second.store).task_view().snapshot() == second.view.snapshot()
    assert_log_is_legal(second)
