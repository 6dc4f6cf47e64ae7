"""Compatibility module: the names the original ``orchestration_engine`` module had."""

from domain.enums import OrchestrationMode, SessionStatus
from engine.defaults import get_orchestration_engine, set_default_engine
from engine.models import OrchestrationSession
from engine.orchestration_engine import OrchestrationEngine

__all__ = [
    "OrchestrationEngine",
    "OrchestrationMode",
    "OrchestrationSession",
    "SessionStatus",
    "get_orchestration_engine",
    "set_default_engine",
]
