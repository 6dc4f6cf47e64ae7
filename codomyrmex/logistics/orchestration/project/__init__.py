"""The spec's import path: ``from codomyrmex.logistics.orchestration.project import ...``.

A thin re-export of the public API implemented in ``domain`` and ``engine``; the set of
names is pinned by ``tests/test_public_api.py``.
"""

from domain.enums import (
    OrchestrationMode,
    ProjectStatus,
    ProjectType,
    ResourceStatus,
    ResourceType,
    SessionStatus,
    TaskPriority,
    TaskStatus,
    WorkflowStatus,
)
from domain.errors import (
    OrchestrationError,
    ProjectManagementError,
    ResourceAllocationError,
    TaskExecutionError,
    WorkflowExecutionError,
)
from engine.defaults import (
    get_orchestration_engine,
    get_project_manager,
    get_resource_manager,
    get_task_orchestrator,
    get_workflow_manager,
)
from engine.models import OrchestrationSession, Task, TaskResource, TaskResult, WorkflowExecution, WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.project_manager import ProjectManager
from engine.project_models import Project
from engine.registry import ActionRegistry, action, register_action
from engine.resource_manager import ResourceManager
from engine.resource_models import Resource, ResourceAllocation, ResourceLimits
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_manager import WorkflowManager

__all__ = [
    "ActionRegistry",
    "OrchestrationEngine",
    "OrchestrationError",
    "OrchestrationMode",
    "OrchestrationSession",
    "Project",
    "ProjectManagementError",
    "ProjectManager",
    "ProjectStatus",
    "ProjectType",
    "Resource",
    "ResourceAllocation",
    "ResourceAllocationError",
    "ResourceLimits",
    "ResourceManager",
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
    "WorkflowExecution",
    "WorkflowExecutionError",
    "WorkflowManager",
    "WorkflowStatus",
    "WorkflowStep",
    "action",
    "get_orchestration_engine",
    "get_project_manager",
    "get_resource_manager",
    "get_task_orchestrator",
    "get_workflow_manager",
    "register_action",
]
