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
from engine.models import Task, TaskResource, TaskResult
from engine.registry import ActionRegistry, action, register_action
from engine.task_orchestrator import TaskOrchestrator

__all__ = [
    "ActionRegistry",
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
]
