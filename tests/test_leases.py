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


def test_recovery_closes_the_sessions_of_a_lost_engine_and_releases_what_they_held(tmp_path: Path) -> None:
    from engine.orchestration_engine import OrchestrationEngine

    registry = ActionRegistry()
    registry.register("t", "inc", lambda i: i + 1)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    lost = OrchestrationEngine(store_url=url, data_dir=str(tmp_path / "a"), registry=registry, lease_ttl=0.4)
    sid = lost.create_session("ann", mode="resource_aware", resource_requirements={"cpu": {"cores": 1}})
    kept = lost.create_session("bo", mode="parallel")
    assert lost.execute_task(Task(module="t", action="inc", parameters={"i": 1}), session_id=sid)["success"]
    assert len(lost.resource_manager.get_user_allocations(f"session:{sid}")) == 1
    lost.task_orchestrator.lease.pause()  # the engine's process is gone: no more heartbeats
    time.sleep(0.5)
    other = OrchestrationEngine(store_url=url, data_dir=str(tmp_path / "b"), registry=registry)
    try:
        assert set(other.released_sessions) == {sid, kept}
        closed = {r.event.aggregate_id: r.event for r in other.store.read(types=("session.closed",))}
        assert "was lost" in closed[sid].reason
        assert other.resource_manager.get_user_allocations(f"session:{sid}") == []
        assert [r.event.type for r in other.store.read(types=("allocation.released",))] == ["allocation.released"]
        assert verify(other.store).ok
    finally:
        other.close()
        lost.close()


def test_a_cleanly_closed_engine_keeps_its_sessions(tmp_path: Path) -> None:
    from engine.orchestration_engine import OrchestrationEngine

    url = f"sqlite:///{tmp_path / 'events.db'}"
    first = OrchestrationEngine(store_url=url, data_dir=str(tmp_path / "a"))
    sid = first.create_session("ann")
    first.close()
    with OrchestrationEngine(store_url=url, data_dir=str(tmp_path / "a")) as again:
        assert again.released_sessions == ()
        session = again.get_session(sid)
        assert session is not None and session.status.value == "active"
