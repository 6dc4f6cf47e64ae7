"""Leases: an engine's work is taken over by another only after its lease expired;
the heartbeat keeps it alive; a clean close releases it; the stalled owner's late
writes conflict instead of overwriting."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from domain.enums import LeaseStatus, TaskStatus
from domain.errors import ValidationError
from engine.leases import read_leases
from engine.models import Task
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.verify import verify


def blocking_registry(gate: threading.Event, ran: list[str]) -> ActionRegistry:
    registry = ActionRegistry()

    def work(name: str) -> str:
        ran.append(name)
        gate.wait(10)
        return name

    registry.register("lease", "work", work)
    return registry


def test_heartbeat_renews_and_close_releases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    orch = TaskOrchestrator(1, store=url, registry=blocking_registry(threading.Event(), []), lease_ttl=0.3)
    orch.add_task(Task(id="t", name="t", module="lease", action="work", parameters={"name": "t"}))
    time.sleep(0.45)
    orch.close()
    with TaskOrchestrator(1, store=url) as other:
        lease = read_leases(other.store)[orch.instance_id]
        assert lease.status is LeaseStatus.RELEASED
        assert lease.version >= 3  # acquired, renewed at least once, released
        assert verify(other.store).ok


def test_a_stalled_owner_loses_its_work_only_after_expiry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    gate, ran_a, ran_b = threading.Event(), [], []
    a = TaskOrchestrator(1, store=url, registry=blocking_registry(gate, ran_a), lease_ttl=0.6)
    a.add_tasks(
        [
            Task(
                id="x",
                name="x",
                module="lease",
                action="work",
                parameters={"name": "x"},
                max_retries=1,
                retry_delay=0.0,
            ),
            Task(id="y", name="y", module="lease", action="work", parameters={"name": "y"}, dependencies=["x"]),
        ]
    )
    a.start_execution()
    deadline = time.monotonic() + 5
    while not ran_a and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran_a == ["x"]
    a.lease.pause()  # the owner stalls: no more heartbeats
    free = threading.Event()
    free.set()
    b = TaskOrchestrator(1, store=url, registry=blocking_registry(free, ran_b), lease_ttl=5.0)
    try:
        early = b.recover()
        assert early.tasks == () and early.alive == (a.instance_id,)  # not before expiry
        time.sleep(0.7)
        report = b.recover()
        assert set(report.tasks) == {"x", "y"}
        assert report.taken_over[0].interrupted == ("x",)
        b.start_execution()
        assert b.wait_for_completion(10)
        assert ran_b == ["x", "y"]
        gate.set()  # the stalled owner wakes up: its outcome must not be recorded
        time.sleep(0.3)
        x = b.get_task("x")
        assert x is not None and x.status is TaskStatus.COMPLETED
        assert verify(b.store).ok
        lease = read_leases(b.store)[a.instance_id]
        assert lease.status is LeaseStatus.TAKEN_OVER
        completed = [r for r in b.store.read(types=("task.completed",)) if r.event.aggregate_id == "x"]
        assert len(completed) == 1
    finally:
        b.close()
        a.close()


def test_recover_rejects_an_unknown_policy(tmp_path: Path) -> None:
    with TaskOrchestrator(1, store="memory://") as orch:
        with pytest.raises(ValidationError, match="recovery policy"):
            orch.recover("sometimes")
        assert orch.recover("off").tasks == ()
    with pytest.raises(ValidationError, match="lease_ttl"):
        TaskOrchestrator(1, store="memory://", lease_ttl=-1)
