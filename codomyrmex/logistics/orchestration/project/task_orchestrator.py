"""Compatibility module: the names the original ``task_orchestrator`` module had."""

from domain.enums import ResourceType, TaskPriority, TaskStatus
from engine.defaults import get_task_orchestrator
from engine.models import Task, TaskResource, TaskResult
from engine.task_orchestrator import TaskOrchestrator

__all__ = [
    "ResourceType",
    "Task",
    "TaskOrchestrator",
    "TaskPriority",
    "TaskResource",
    "TaskResult",
    "TaskStatus",
    "get_task_orchestrator",
]
