"""The spec's enumerations, exactly as the API names them.

Status enums are ``str`` enums whose values are the lower-case names the spec's
return dicts use (``"planning"``, ``"active"``, ...), so a status can be compared with
the enum or with its string and is encoded in events by value. ``TaskPriority`` is an
``int`` enum so that priorities order naturally (``CRITICAL > HIGH > NORMAL > LOW``).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "AllocationStatus",
    "OrchestrationMode",
    "ProjectStatus",
    "ProjectType",
    "ResourceStatus",
    "ResourceType",
    "SessionStatus",
    "TaskPriority",
    "TaskStatus",
    "WorkflowStatus",
]


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class TaskPriority(IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4


class ProjectStatus(StrEnum):
    PLANNING = "planning"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    FAILED = "failed"


class ProjectType(StrEnum):
    """Project types named by the upstream templates; ``CUSTOM`` when none applies."""

    AI_ANALYSIS = "ai_analysis"
    DATA_PIPELINE = "data_pipeline"
    WEB_APPLICATION = "web_application"
    CUSTOM = "custom"


class ResourceType(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    DISK = "disk"
    NETWORK = "network"
    FILE = "file"
    DATABASE = "database"
    EXTERNAL_API = "external_api"
    GPU = "gpu"
    QUEUE = "queue"
    LOCK = "lock"
    SEMAPHORE = "semaphore"


class ResourceStatus(StrEnum):
    AVAILABLE = "available"
    IN_USE = "in_use"
    RESERVED = "reserved"
    MAINTENANCE = "maintenance"
    UNAVAILABLE = "unavailable"


class OrchestrationMode(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    PRIORITY = "priority"
    RESOURCE_AWARE = "resource_aware"


class SessionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class AllocationStatus(StrEnum):
    """Lifecycle of one resource allocation (not in the spec, which keeps allocations
    as plain records; the event log needs their lifecycle to be explicit)."""

    PENDING = "pending"
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REVOKED = "revoked"


class LeaseStatus(StrEnum):
    """Lifecycle of an engine instance's lease on the work it owns (not in the spec:
    durable execution needs ownership to be explicit in the log)."""

    ACTIVE = "active"
    RELEASED = "released"
    TAKEN_OVER = "taken_over"
