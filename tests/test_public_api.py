"""The spec's import path exports exactly these names (a change here is an API change)."""

import codomyrmex.logistics.orchestration.project as api

EXPECTED = {
    "ActionRegistry",
    "OrchestrationEngine",
    "OrchestrationSession",
    "WorkflowExecution",
    "WorkflowManager",
    "WorkflowStep",
    "get_orchestration_engine",
    "get_project_manager",
    "get_resource_manager",
    "Resource",
    "ResourceAllocation",
    "ResourceLimits",
    "ResourceManager",
    "Project",
    "ProjectManager",
    "get_task_orchestrator",
    "get_workflow_manager",
    "OrchestrationError",
    "OrchestrationMode",
    "ProjectManagementError",
    "ProjectStatus",
    "ProjectType",
    "ResourceAllocationError",
    "ResourceStatus",
    "ResourceType",
    "SessionStatus",
    "Task",
    "TaskExecutionError",
    "TaskOrchestrator",
    "TaskPriority",
    "TaskResource",
    "TaskResult",
    "TaskStatus",
    "WorkflowExecutionError",
    "WorkflowStatus",
    "action",
    "register_action",
}


def test_exported_names_are_pinned() -> None:
    assert set(api.__all__) == EXPECTED
    import types

    public = {n for n, v in vars(api).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public - {"annotations"} <= EXPECTED
    for name in EXPECTED:
        assert getattr(api, name) is not None


def test_spec_enums_have_the_spec_members() -> None:
    assert [m.name for m in api.TaskStatus] == [
        "PENDING", "READY", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED"
    ]  # fmt: skip
    assert [m.name for m in api.TaskPriority] == ["LOW", "NORMAL", "HIGH", "CRITICAL"]
    assert [m.name for m in api.WorkflowStatus] == ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
    assert [m.name for m in api.ProjectStatus] == ["PLANNING", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED", "FAILED"]
    assert [m.name for m in api.ResourceType] == [
        "CPU", "MEMORY", "DISK", "NETWORK", "FILE", "DATABASE", "EXTERNAL_API", "GPU", "QUEUE", "LOCK", "SEMAPHORE"
    ]  # fmt: skip
    assert [m.name for m in api.ResourceStatus] == ["AVAILABLE", "IN_USE", "RESERVED", "MAINTENANCE", "UNAVAILABLE"]
    assert [m.name for m in api.OrchestrationMode] == ["SEQUENTIAL", "PARALLEL", "PRIORITY", "RESOURCE_AWARE"]
    assert [m.name for m in api.SessionStatus] == ["PENDING", "ACTIVE", "COMPLETED", "CANCELLED", "FAILED"]


def test_spec_exceptions_share_one_root() -> None:
    for name in ("WorkflowExecutionError", "TaskExecutionError", "ResourceAllocationError", "ProjectManagementError"):
        assert issubclass(getattr(api, name), api.OrchestrationError)


def test_compatibility_submodules() -> None:
    from codomyrmex.logistics.orchestration.project import orchestration_engine, task_orchestrator, workflow_manager

    assert orchestration_engine.OrchestrationEngine is api.OrchestrationEngine
    assert workflow_manager.WorkflowManager is api.WorkflowManager
    assert workflow_manager.get_workflow_manager is api.get_workflow_manager
    assert task_orchestrator.TaskOrchestrator is api.TaskOrchestrator
    for module in (orchestration_engine, task_orchestrator, workflow_manager):
        for name in module.__all__:
            assert getattr(module, name) is not None
