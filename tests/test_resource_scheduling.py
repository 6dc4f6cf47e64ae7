"""Admission by declared TaskResources, measured inside the actions: exclusive access is
never shared, reads are, blocked tasks stay READY and start soon after a release, and
crossing requirements do not deadlock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.enums import ResourceType, TaskStatus
from engine.models import Task, TaskResource
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator


class Holdings:
    """What the running actions hold right now, checked on every entry."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, list[str]] = {}
        self.violations: list[str] = []
        self.peak: dict[str, int] = {}
        self.starts: dict[str, float] = {}
        self.ends: dict[str, float] = {}

    def enter(self, name: str, wants: list[list[str]]) -> None:
        with self.lock:
            self.starts[name] = time.monotonic()
            for key, mode in wants:
                current = self.held.setdefault(key, [])
                if current and (mode != "read" or any(m != "read" for m in current)):
                    self.violations.append(f"{name} got {mode} on {key} while {current} held")
                current.append(mode)
                self.peak[key] = max(self.peak.get(key, 0), len(current))

    def leave(self, name: str, wants: list[list[str]]) -> None:
        with self.lock:
            for key, mode in wants:
                self.held[key].remove(mode)
            self.ends[name] = time.monotonic()


@pytest.fixture
def setup() -> Iterator[tuple[TaskOrchestrator, Holdings, Callable[..., Task]]]:
    holdings = Holdings()
    registry = ActionRegistry()

    def use(name: str, wants: list[list[str]], seconds: float = 0.02, fail: bool = False) -> str:
        holdings.enter(name, wants)
        try:
            time.sleep(seconds)
            if fail:
                raise RuntimeError("fails on purpose")
            return name
        finally:
            holdings.leave(name, wants)

    registry.register("res", "use", use)
    orch = TaskOrchestrator(max_workers=4, store="memory://", registry=registry)

    def task(name: str, *wants: tuple[str, str], seconds: float = 0.02, **kw: Any) -> Task:
        return Task(
            id=name,
            module="res",
            action="use",
            parameters={
                "name": name,
                "wants": [[f"lock:{i}", m] for i, m in wants],
                "seconds": seconds,
                **kw.pop("params", {}),
            },
            resources=[TaskResource(type=ResourceType.LOCK, identifier=i, mode=m) for i, m in wants],
            max_retries=0,
            **kw,
        )

    yield orch, holdings, task
    orch.close()


def test_exclusive_is_never_shared(setup: tuple[TaskOrchestrator, Holdings, Callable[..., Task]]) -> None:
    orch, holdings, task = setup
    orch.add_tasks([task(f"w{i}", ("L", "exclusive" if i % 2 else "write")) for i in range(8)])
    orch.start_execution()
    assert orch.wait_for_completion(10)
    assert holdings.violations == []
    assert holdings.peak["lock:L"] == 1
    assert orch.get_execution_stats()["completed"] == 8


def test_reads_are_shared(setup: tuple[TaskOrchestrator, Holdings, Callable[..., Task]]) -> None:
    orch, holdings, task = setup
    orch.add_tasks([task(f"r{i}", ("L", "read"), seconds=0.2) for i in range(4)])
    orch.start_execution()
    assert orch.wait_for_completion(10)
    assert holdings.violations == []
    assert holdings.peak["lock:L"] == 4


def test_blocked_task_stays_ready_and_starts_soon_after_release(
    setup: tuple[TaskOrchestrator, Holdings, Callable[..., Task]],
) -> None:
    orch, holdings, task = setup
    orch.add_task(task("holder", ("L", "exclusive"), seconds=0.4))
    orch.start_execution()
    deadline = time.monotonic() + 3
    while "holder" not in holdings.starts and time.monotonic() < deadline:
        time.sleep(0.005)
    orch.add_task(task("waiter", ("L", "read")))
    orch.add_task(task("free", ("M", "exclusive")))  # an unrelated resource is not held up
    time.sleep(0.1)
    assert orch.get_task("waiter").status is TaskStatus.READY  # type: ignore[union-attr]
    assert orch.wait_for_completion(10)
    assert holdings.starts["free"] < holdings.ends["holder"]
    assert 0 <= holdings.starts["waiter"] - holdings.ends["holder"] < 0.2


def test_crossing_requirements_do_not_deadlock(setup: tuple[TaskOrchestrator, Holdings, Callable[..., Task]]) -> None:
    orch, holdings, task = setup
    orch.add_tasks(
        [task(f"ab{i}", ("A", "exclusive"), ("B", "exclusive")) for i in range(3)]
        + [task(f"ba{i}", ("B", "exclusive"), ("A", "exclusive")) for i in range(3)]
    )
    orch.start_execution()
    assert orch.wait_for_completion(10)
    assert holdings.violations == []
    assert orch.get_execution_stats()["completed"] == 6


@pytest.mark.parametrize("how", ["failure", "timeout", "cancel"])
def test_resources_are_released_however_the_holder_ends(
    setup: tuple[TaskOrchestrator, Holdings, Callable[..., Task]], how: str
) -> None:
    orch, holdings, task = setup
    if how == "failure":
        holder = task("holder", ("L", "exclusive"), params={"fail": True})
    elif how == "timeout":
        holder = task("holder", ("L", "exclusive"), seconds=2.0, timeout=0.2)
    else:
        holder = task("holder", ("L", "exclusive"), seconds=2.0)
    orch.add_task(holder)
    orch.start_execution()
    deadline = time.monotonic() + 3
    while "holder" not in holdings.starts and time.monotonic() < deadline:
        time.sleep(0.005)
    orch.add_task(task("next", ("L", "exclusive")))
    if how == "cancel":
        assert orch.cancel_task("holder")
    assert orch.wait_for_completion(5)
    assert orch.get_task("next").status is TaskStatus.COMPLETED  # type: ignore[union-attr]
    assert holdings.starts["next"] < holdings.starts["holder"] + 1.5


def test_execute_task_respects_exclusivity(setup: tuple[TaskOrchestrator, Holdings, Callable[..., Task]]) -> None:
    orch, holdings, task = setup
    orch.add_task(task("holder", ("L", "exclusive"), seconds=0.3))
    orch.start_execution()
    deadline = time.monotonic() + 3
    while "holder" not in holdings.starts and time.monotonic() < deadline:
        time.sleep(0.005)
    result = orch.execute_task(task("sync", ("L", "write")))
    assert result.success
    assert holdings.violations == []
    assert holdings.starts["sync"] >= holdings.ends["holder"]


MODES = st.sampled_from(["read", "write", "exclusive"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=st.lists(
        st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), MODES), min_size=0, max_size=3, unique_by=lambda x: x[0]),
        min_size=1,
        max_size=12,
    )
)
def test_any_mix_respects_the_compatibility_table(plans: list[list[tuple[str, str]]]) -> None:
    holdings = Holdings()
    registry = ActionRegistry()

    def use(name: str, wants: list[list[str]]) -> str:
        holdings.enter(name, wants)
        time.sleep(0.003)
        holdings.leave(name, wants)
        return name

    registry.register("res", "use", use)
    with TaskOrchestrator(max_workers=4, store="memory://", registry=registry) as orch:
        orch.add_tasks(
            [
                Task(
                    id=f"t{i}",
                    module="res",
                    action="use",
                    parameters={"name": f"t{i}", "wants": [[f"lock:{k}", m] for k, m in plan]},
                    resources=[TaskResource(type=ResourceType.LOCK, identifier=k, mode=m) for k, m in plan],
                )
                for i, plan in enumerate(plans)
            ]
        )
        orch.start_execution()
        assert orch.wait_for_completion(20)
        assert orch.get_execution_stats()["completed"] == len(plans)
    assert holdings.violations == []
