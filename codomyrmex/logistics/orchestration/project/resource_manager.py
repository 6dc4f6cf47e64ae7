"""Compatibility module: the names the original ``resource_manager`` module had."""

from domain.enums import ResourceStatus, ResourceType
from engine.defaults import get_resource_manager
from engine.resource_manager import ResourceManager
from engine.resource_models import Resource, ResourceAllocation, ResourceLimits

__all__ = [
    "Resource",
    "ResourceAllocation",
    "ResourceLimits",
    "ResourceManager",
    "ResourceStatus",
    "ResourceType",
    "get_resource_manager",
]
