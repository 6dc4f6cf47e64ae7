"""Module-level accessors for users of the original module (``get_workflow_manager()``
and friends): thin wrappers over one explicitly built default ``OrchestrationEngine``.

The default engine is built on first use from the configuration (environment, config
file, defaults), never at import time. Code that wants control builds its own engine and
may install it with :func:`set_default_engine`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.orchestration_engine import OrchestrationEngine
    from engine.project_manager import ProjectManager
    from engine.resource_manager import ResourceManager
    from engine.task_orchestrator import TaskOrchestrator
    from engine.workflow_manager import WorkflowManager

__all__ = [
    "get_orchestration_engine",
    "get_project_manager",
    "get_resource_manager",
    "get_task_orchestrator",
    "get_workflow_manager",
    "set_default_engine",
]

_lock = threading.Lock()
_engine: OrchestrationEngine | None = None


def get_orchestration_engine() -> OrchestrationEngine:
    """The default engine, built on first call."""
    global _engine
    with _lock:
        if _engine is None:
            from engine.orchestration_engine import OrchestrationEngine

            _engine = OrchestrationEngine()
        return _engine


def set_default_engine(engine: OrchestrationEngine | None) -> OrchestrationEngine | None:
    """Install ``engine`` as the default (None forgets it); returns the previous one,
    which the caller may close."""
    global _engine
    with _lock:
        previous, _engine = _engine, engine
        return previous


def get_workflow_manager() -> WorkflowManager:
    return get_orchestration_engine().workflow_manager


def get_task_orchestrator() -> TaskOrchestrator:
    return get_orchestration_engine().task_orchestrator


def get_project_manager() -> ProjectManager:
    return get_orchestration_engine().project_manager


def get_resource_manager() -> ResourceManager:
    return get_orchestration_engine().resource_manager
