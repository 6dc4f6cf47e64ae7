"""Compatibility module: the names the original ``workflow_manager`` module had."""

from domain.enums import WorkflowStatus
from engine.defaults import get_workflow_manager
from engine.models import WorkflowExecution, WorkflowStep
from engine.workflow_manager import WorkflowManager

__all__ = ["WorkflowExecution", "WorkflowManager", "WorkflowStatus", "WorkflowStep", "get_workflow_manager"]
