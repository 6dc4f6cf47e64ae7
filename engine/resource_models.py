"""The spec's resource data models, as plain dataclasses users build and read.

They are the API's vocabulary, not the state: :meth:`ResourceManager.add_resource`
records a ``Resource`` as a ``resource.added`` event, and ``list_resources`` answers
with ``Resource`` objects rebuilt from the resource view (fresh copies: changing one
changes nothing). ``allocated``, ``total_allocations``, ``total_usage_time`` and
``current_users`` are derived from the allocations in the log, and ``created_at`` /
``updated_at`` are the log's timestamps.

``ResourceLimits`` is not spelled out by the spec; its fields are the original
project's. What each one enforces is documented in :mod:`domain.resource`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from domain.enums import ResourceStatus, ResourceType
from domain.resource import LimitsSpec, utilization
from projections.resources import AllocationRecord, ResourceRecord

__all__ = ["Resource", "ResourceAllocation", "ResourceLimits"]


@dataclass
class ResourceLimits:
    """Usage limits and quotas; ``None`` means no limit."""

    max_cpu_cores: int | None = None
    max_memory_gb: float | None = None
    max_disk_gb: float | None = None
    max_network_mbps: float | None = None
    max_concurrent_users: int | None = None
    max_requests_per_minute: int | None = None
    timeout_seconds: int | None = None

    def to_spec(self) -> LimitsSpec:
        return LimitsSpec(**{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_spec(cls, spec: LimitsSpec) -> ResourceLimits:
        return cls(**{name: getattr(spec, name) for name in LimitsSpec.__struct_fields__})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Resource:
    id: str
    name: str
    type: ResourceType
    description: str = ""
    status: ResourceStatus = ResourceStatus.AVAILABLE
    capacity: dict[str, Any] = field(default_factory=dict)
    allocated: dict[str, Any] = field(default_factory=dict)
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    total_allocations: int = 0
    total_usage_time: float = 0.0
    current_users: set[str] = field(default_factory=set)
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def get_utilization(self) -> dict[str, float]:
        """Percent of each capacity key that is allocated."""
        return utilization(self.allocated, self.capacity)

    def is_available(self) -> bool:
        """Whether it can take allocations (AVAILABLE, or IN_USE with room left)."""
        return self.status in (ResourceStatus.AVAILABLE, ResourceStatus.IN_USE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": ResourceType(self.type).value,
            "description": self.description,
            "status": ResourceStatus(self.status).value,
            "capacity": dict(self.capacity),
            "allocated": dict(self.allocated),
            "limits": self.limits.to_dict(),
            "total_allocations": self.total_allocations,
            "total_usage_time": self.total_usage_time,
            "current_users": sorted(self.current_users),
            "metadata": dict(self.metadata),
            "tags": list(self.tags),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_record(cls, rec: ResourceRecord) -> Resource:
        return cls(
            id=rec.id,
            name=rec.name,
            type=rec.type,
            description=rec.description,
            status=rec.status,
            capacity=dict(rec.capacity),
            allocated=dict(rec.allocated),
            limits=ResourceLimits.from_spec(rec.limits),
            total_allocations=rec.total_allocations,
            total_usage_time=rec.total_usage_time,
            current_users=set(rec.users),
            metadata=dict(rec.metadata),
            tags=list(rec.tags),
            created_at=rec.created_at,
            updated_at=rec.updated_at,
        )


@dataclass
class ResourceAllocation:
    id: str
    resource_id: str
    user_id: str
    allocated: dict[str, Any]
    allocated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether ``expires_at`` has passed at ``now`` (default: the system clock)."""
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at

    @classmethod
    def from_record(cls, rec: AllocationRecord) -> ResourceAllocation:
        return cls(
            id=rec.id,
            resource_id=rec.resource_id,
            user_id=rec.user_id,
            allocated=dict(rec.amounts),
            allocated_at=rec.allocated_at,
            expires_at=rec.expires_at,
            metadata={
                "request_id": rec.request_id,
                "requirement": rec.requirement,
                "status": rec.status.value,
                "timeout": rec.timeout,
                "ended_at": rec.ended_at.isoformat() if rec.ended_at else None,
                "end_reason": rec.end_reason,
            },
        )
