"""The Dask executor on a real ``LocalCluster(processes=True, n_workers=2)``: the W1
shape (many tiny independent tasks) and the W3 shape (fan-out / fan-in, see
bench/actions.py), soft and hard timeouts, errors. Every event is recorded by the
engine and the log verifies.

One cluster serves the whole module (starting one takes a second or two); each test
has its own orchestrator and store."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import executor_actions as xa
import pytest

from engine.dask_executor import DaskExecutor
from engine.executors import ActionCall, ActionResult, Executor, Job
from engine.models import Task
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.history import History
from replay_tools.verify import verify

M = xa.MODULE


class _Borrowed(Executor):
    """The module's Dask executor, lent to one orchestrator (whose close() would
    otherwise shut the shared cluster down)."""

    name = DaskExecutor.name
    timeout_metadata = DaskExecutor.timeout_metadata

    def __init__(self, inner: DaskExecutor) -> None:
        self.inner = inner

    def submit(self, job: Job) -> None:
        self.inner.submit(job)

    def run_action(self, call: ActionCall, done: Callable[[ActionResult], None]) -> None:
        self.inner.run_action(call, done)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        pass


@pytest.fixture(scope="module")
def dask() -> Iterator[DaskExecutor]:
    executor = DaskExecutor(n_workers=2)
    executor.start()
    yield executor
    executor.shutdown()


@pytest.fixture
def make(dask: DaskExecutor, tmp_path: Path) -> Iterator[Callable[..., TaskOrchestrator]]:
    made: list[TaskOrchestrator] = []

    def factory(max_workers: int = 16) -> TaskOrchestrator:
        url = f"sqlite:///{tmp_path / f'events-{len(made)}.db'}"
        orch = TaskOrchestrator(max_workers, store=url, registry=xa.registry(), executor=_Borrowed(dask))
        made.append(orch)
        return orch

    yield factory
    for orch in made:
        orch.close()


def _types_by_task(orch: TaskOrchestrator) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for recorded in History(orch.store).task_events():
        out.setdefault(recorded.event.aggregate_id, []).append(recorded.event.type)
    return out


def test_w1_many_tiny_independent_tasks(make: Callable[..., TaskOrchestrator]) -> None:
    n = 200
    orch = make()
    orch.add_tasks([Task(id=f"w1-{i}", module=M, action="inc", parameters={"i": i}) for i in range(n)])
    orch.add_task(Task(id="where", module=M, action="my_pid"))
    orch.start_execution()
    assert orch.wait_for_completion(120)
    for i in range(n):
        result = orch.get_task_result(f"w1-{i}")
        assert result is not None and result.success and result.data == i + 1, (i, result)
    assert orch.get_task_result("where").data != os.getpid()  # type: ignore[union-attr]
    seen = _types_by_task(orch)
    assert len(seen) == n + 1
    assert all(t == ["task.created", "task.ready", "task.started", "task.completed"] for t in seen.values())
    assert {e.worker for e in orch.task_events("w1-0") if e.type == "task.started"} == {"dask"}  # type: ignore[attr-defined]
    report = verify(orch.store)
    assert report.ok, report


def test_w3_fan_out_fan_in(make: Callable[..., TaskOrchestrator]) -> None:
    n, seed = 100, 7
    fans = [
        Task(id=f"w3-fan-{i}", module=M, action="fan_out", parameters={"i": i}, dependencies=["w3-root"])
        for i in range(n)
    ]
    tasks = [
        Task(id="w3-root", module=M, action="fan_root", parameters={"seed": seed}),
        *fans,
        Task(id="w3-reduce", module=M, action="fan_in", dependencies=[f.id for f in fans]),
    ]
    orch = make()
    orch.add_tasks(tasks)
    orch.start_execution()
    assert orch.wait_for_completion(120)
    for i in range(n):
        assert orch.get_task_result(f"w3-fan-{i}").data == seed + i  # type: ignore[union-attr]
    reduced = orch.get_task_result("w3-reduce")
    assert reduced is not None and reduced.success
    assert reduced.data == {
        "sum": seed * n + n * (n - 1) // 2,
        "count": n,
        "first": "w3-fan-0",
        "last": f"w3-fan-{n - 1}",
    }
    seen = _types_by_task(orch)
    assert len(seen) == n + 2 and all(t[-1] == "task.completed" for t in seen.values())
    report = verify(orch.store)
    assert report.ok, report


def test_errors_are_recorded_like_thread_errors(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    registry = orch.registry
    registry.register(M, "lambda", lambda: 1)
    orch.add_tasks(
        [
            Task(id="boom", module=M, action="boom", parameters={"message": "far away"}, max_retries=0),
            Task(id="lambda", module=M, action="lambda", max_retries=2),
            Task(id="not-json", module=M, action="not_json", max_retries=2),
        ]
    )
    orch.start_execution()
    assert orch.wait_for_completion(60)
    boom = orch.get_task_result("boom")
    assert boom is not None and (boom.error_type, boom.error_message) == ("RuntimeError", "far away")
    assert "far away" in boom.metadata["traceback"]
    assert orch.get_task_result("lambda").error_type == "ActionNotShippableError"  # type: ignore[union-attr]
    assert orch.get_task_result("not-json").error_type == "ResultNotSerializable"  # type: ignore[union-attr]
    assert [e.type for e in orch.task_events("lambda")].count("task.started") == 1
    assert verify(orch.store).ok


def test_soft_timeout_reaches_an_action_on_a_dask_worker(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    orch.start_execution()
    began = time.monotonic()
    orch.add_task(Task(id="coop", module=M, action="cooperative", soft_timeout=0.3, timeout=60, max_retries=0))
    assert orch.wait_for_completion(30)
    assert time.monotonic() - began < 20
    result = orch.get_task_result("coop")
    assert result is not None and result.success and result.data["stopped"] is True
    assert [e.type for e in orch.task_events("coop")][-2:] == ["task.soft_timeout_reached", "task.completed"]


def test_hard_timeout_cancels_the_future(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make()
    orch.start_execution()
    orch.add_task(
        Task(id="slow", module=M, action="ignores_stop", parameters={"seconds": 1.5}, timeout=0.3, max_retries=0)
    )
    orch.add_task(Task(id="after", module=M, action="inc", parameters={"i": 1}))
    assert orch.wait_for_completion(30)
    failed: Any = orch.task_events("slow")[-1]
    assert failed.type == "task.failed"
    assert failed.error_type == "TimeoutError"
    assert failed.metadata["abandoned"] is True and failed.metadata["future_cancelled"] is True
    assert orch.get_task_result("after").data == 2  # type: ignore[union-attr]
    time.sleep(0.2)  # a cancelled future brings nothing back late
    assert "task.late_result_discarded" not in [e.type for e in orch.task_events("slow")]
    assert verify(orch.store).ok
