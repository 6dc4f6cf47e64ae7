"""Resource-aware sessions: their resource_requirements are allocated (recorded) before
their first work and released when they end; requirements that cannot be met fail the
execution with the recorded reasons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.models import Task
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[OrchestrationEngine]:
    registry = ActionRegistry()
    registry.register("t", "inc", lambda i: i + 1)
    eng = OrchestrationEngine(data_dir=str(tmp_path / "data"), registry=registry)
    yield eng
    eng.close()


def task(i: int) -> Task:
    return Task(module="t", action="inc", parameters={"i": i})


def test_requirements_are_held_while_the_session_works_and_released_on_close(engine: OrchestrationEngine) -> None:
    sid = engine.create_session("ann", mode="resource_aware", resource_requirements={"cpu": {"cores": 1}})
    holder = f"session:{sid}"
    assert engine.resource_manager.get_user_allocations(holder) == []  # nothing until it works
    assert engine.execute_task(task(1), session_id=sid)["success"]
    (allocation,) = engine.resource_manager.get_user_allocations(holder)
    assert allocation["resource_id"] == "system_cpu"
    usage = engine.resource_manager.get_resource_usage("system_cpu")
    assert usage["allocated"]["cores"] == 1
    assert engine.execute_task(task(2), session_id=sid)["success"]  # still one allocation
    assert len(engine.resource_manager.get_user_allocations(holder)) == 1
    granted = [r.event for r in engine.store.read(types=("allocation.granted",))]
    assert [e.actor for e in granted] == ["ann"]
    assert engine.close_session(sid) is True
    assert engine.resource_manager.get_user_allocations(holder) == []
    assert engine.resource_manager.get_resource_usage("system_cpu")["allocated"].get("cores", 0) == 0
    assert [r.event.type for r in engine.store.read(types=("allocation.released",))] == ["allocation.released"]


def test_unmeetable_requirements_fail_the_execution_with_the_reason(engine: OrchestrationEngine) -> None:
    sid = engine.create_session("bob", mode="resource_aware", resource_requirements={"cpu": {"cores": 100_000}})
    result = engine.execute_task(task(1), session_id=sid)
    assert result["success"] is False
    assert result["error_type"] == "ResourceAllocationError"
    assert result["error_code"] == "RESOURCES_UNAVAILABLE"
    assert "cores" in result["error"]
    assert result["suggestions"]
    assert engine.resource_manager.get_rejections(f"session:{sid}")  # the log says why
    flow = engine.execute_complex_workflow(
        {"steps": [{"name": "a", "module": "t", "action": "inc", "parameters": {"i": 1}}]}, session_id=sid
    )
    assert flow["success"] is False
    assert flow["error_code"] == "RESOURCES_UNAVAILABLE"
    assert engine.task_orchestrator.get_execution_stats()["total_tasks"] == 0  # nothing ran


def test_other_modes_do_not_allocate(engine: OrchestrationEngine) -> None:
    sid = engine.create_session("cy", mode="parallel", resource_requirements={"cpu": {"cores": 100_000}})
    assert engine.execute_task(task(1), session_id=sid)["success"]
    assert engine.resource_manager.get_user_allocations(f"session:{sid}") == []


def test_engine_reports_resources(engine: OrchestrationEngine) -> None:
    status = engine.get_system_status()
    assert status["resource_manager"]["total_resources"] >= 3
    health = engine.health_check()
    assert health["components"]["resource_manager"]["status"] in ("healthy", "degraded")
    assert "resources" in engine.get_metrics()


def test_spec_resource_manager_example_runs_through_the_spec_path(tmp_path: Path) -> None:
    from codomyrmex.logistics.orchestration.project import ResourceManager

    manager = ResourceManager(store="memory://", data_dir=tmp_path)
    try:
        allocation = manager.allocate_resources(
            "task_123",
            {"cpu": {"cores": 1}, "memory": {"gb": 1}, "disk": {"gb": 1}},
            timeout=60,
        )
        assert allocation == {"cpu": "system_cpu", "memory": "system_memory", "disk": "system_disk"}
        assert manager.deallocate_resources("task_123") is True
    finally:
        manager.close()
