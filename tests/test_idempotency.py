"""Idempotency keys on execute_workflow and execute_task: the first call with a key
starts the work, every later call (concurrent, after a restart, from another engine)
gets that work back; a key reused for another request is refused."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.models import Task, WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry


@pytest.fixture
def ran() -> Counter[str]:
    return Counter()


def make_engine(tmp_path: Path, ran: Counter[str]) -> OrchestrationEngine:
    registry = ActionRegistry()
    lock = threading.Lock()

    def work(x: int) -> int:
        with lock:
            ran[f"work-{x}"] += 1
        return x * 2

    registry.register("idem", "work", work)
    engine = OrchestrationEngine(data_dir=str(tmp_path / "data"), registry=registry)
    engine.workflow_manager.create_workflow(
        "double", [WorkflowStep(name="d", module="idem", action="work", parameters={"x": "{{x}}"})]
    )
    return engine


def runs_of(engine: OrchestrationEngine) -> list[str]:
    return list(engine.workflow_manager.view.runs)


def test_a_repeated_workflow_call_returns_the_first_run(tmp_path: Path, ran: Counter[str]) -> None:
    engine = make_engine(tmp_path, ran)
    try:
        first = engine.execute_workflow("double", idempotency_key="order-17", x=21)
        again = engine.execute_workflow("double", idempotency_key="order-17", x=21)
        assert first["success"] and again["success"]
        assert again["run_id"] == first["run_id"]
        assert again["results"] == first["results"] == {"d": 42}
        assert ran["work-21"] == 1
        assert len(runs_of(engine)) == 1
        other = engine.execute_workflow("double", idempotency_key="order-18", x=21)
        assert other["run_id"] != first["run_id"] and ran["work-21"] == 2
    finally:
        engine.close()


def test_a_key_reused_for_another_request_is_refused(tmp_path: Path, ran: Counter[str]) -> None:
    engine = make_engine(tmp_path, ran)
    try:
        assert engine.execute_workflow("double", idempotency_key="k", x=1)["success"]
        refused = engine.execute_workflow("double", idempotency_key="k", x=2)
        assert not refused["success"]
        assert refused["error_code"] == "IDEMPOTENCY_KEY_REUSED"
        assert ran["work-2"] == 0 and len(runs_of(engine)) == 1
        bad = engine.execute_workflow("double", idempotency_key="", x=2)
        assert bad["error_code"] == "INVALID_IDEMPOTENCY_KEY"
        assert engine.execute_workflow("double", x=3)["success"]  # still usable
    finally:
        engine.close()


def test_concurrent_calls_with_one_key_start_one_run(tmp_path: Path, ran: Counter[str]) -> None:
    engine = make_engine(tmp_path, ran)
    results: list[dict[str, object]] = []
    try:
        threads = [
            threading.Thread(
                target=lambda: results.append(engine.execute_workflow("double", idempotency_key="same", x=5))
            )
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 6 and all(r["success"] for r in results)
        assert len({r["run_id"] for r in results}) == 1
        assert ran["work-5"] == 1
        assert len(runs_of(engine)) == 1
    finally:
        engine.close()


def test_the_key_survives_a_restart(tmp_path: Path, ran: Counter[str]) -> None:
    engine = make_engine(tmp_path, ran)
    try:
        first = engine.execute_workflow("double", idempotency_key="nightly-2026-11-25", x=4)
    finally:
        engine.close()
    engine = make_engine(tmp_path, ran)
    try:
        again = engine.execute_workflow("double", idempotency_key="nightly-2026-11-25", x=4)
        assert again["run_id"] == first["run_id"] and again["results"] == {"d": 8}
        assert ran["work-4"] == 1
    finally:
        engine.close()


def test_execute_task_with_a_key_runs_once(tmp_path: Path, ran: Counter[str]) -> None:
    engine = make_engine(tmp_path, ran)
    try:
        task = Task(id="t-1", name="w", module="idem", action="work", parameters={"x": 9})
        first = engine.execute_task(task, idempotency_key="task-key")
        retry = Task(id="t-2", name="w", module="idem", action="work", parameters={"x": 9})
        again = engine.execute_task(retry, idempotency_key="task-key")
        assert first["success"] and again["success"]
        assert again["task_id"] == "t-1" and again["result"]["data"] == 18
        assert ran["work-9"] == 1
        different = Task(id="t-3", name="w", module="idem", action="work", parameters={"x": 10})
        assert engine.execute_task(different, idempotency_key="task-key")["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    finally:
        engine.close()


def test_another_engine_on_the_same_store_gets_the_first_run(tmp_path: Path, ran: Counter[str]) -> None:
    """Two engines (as two processes would be) on one SQLite file: the second one's
    index does not know the key, the store does."""
    a = make_engine(tmp_path, ran)
    b = make_engine(tmp_path, ran)
    try:
        first = a.execute_workflow("double", idempotency_key="shared", x=6)
        again = b.execute_workflow("double", idempotency_key="shared", x=6)
        assert again["success"] and again["run_id"] == first["run_id"] and again["results"] == {"d": 12}
        assert ran["work-6"] == 1
        task = Task(id="ta", name="w", module="idem", action="work", parameters={"x": 7})
        assert a.execute_task(task, idempotency_key="shared-task")["success"]
        other = Task(id="tb", name="w", module="idem", action="work", parameters={"x": 7})
        result = b.execute_task(other, idempotency_key="shared-task")
        assert result["task_id"] == "ta" and result["result"]["data"] == 14
        assert ran["work-7"] == 1
    finally:
        b.close()
        a.close()


def test_a_second_engine_waits_for_the_first_engines_run_in_flight(tmp_path: Path) -> None:
    """Engine B repeats a key while engine A's task and run still run: B waits for A's
    work to end (following A's commits) and returns it, running nothing itself."""
    gate = threading.Event()
    ran: Counter[str] = Counter()

    def slow(x: int) -> int:
        ran[f"slow-{x}"] += 1
        gate.wait(10)
        return x * 3

    registry = ActionRegistry()
    registry.register("idem", "slow", slow)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    a = OrchestrationEngine(store_url=url, data_dir=str(tmp_path / "a"), registry=registry)
    b = OrchestrationEngine(store_url=url, data_dir=str(tmp_path / "b"), registry=registry)
    a.workflow_manager.create_workflow(
        "slow", [WorkflowStep(name="s", module="idem", action="slow", parameters={"x": 2})]
    )
    results: dict[str, dict[str, object]] = {}
    try:
        first_task = threading.Thread(
            target=lambda: results.update(
                a_task=a.execute_task(
                    Task(id="ta", module="idem", action="slow", parameters={"x": 1}), idempotency_key="t"
                )
            )
        )
        first_run = threading.Thread(
            target=lambda: results.update(a_run=a.execute_workflow("slow", idempotency_key="w"))
        )
        first_task.start()
        first_run.start()
        deadline = time.monotonic() + 10
        while sum(ran.values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = threading.Thread(
            target=lambda: results.update(
                b_task=b.execute_task(
                    Task(id="tb", module="idem", action="slow", parameters={"x": 1}), idempotency_key="t"
                ),
                b_run=b.execute_workflow("slow", idempotency_key="w"),
            )
        )
        second.start()
        time.sleep(0.3)
        assert "b_task" not in results  # still waiting for A's task
        gate.set()
        for t in (first_task, first_run, second):
            t.join(20)
        assert results["b_task"]["task_id"] == "ta" and results["b_task"]["result"]["data"] == 3
        assert results["b_run"]["run_id"] == results["a_run"]["run_id"]
        assert results["b_run"]["results"] == {"s": 6}
        assert dict(ran) == {"slow-1": 1, "slow-2": 1}
    finally:
        gate.set()
        b.close()
        a.close()
