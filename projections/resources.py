"""The resource view, folded from ``resource.*`` and ``allocation.*`` events.

``apply(view, recorded) -> view`` reads only its arguments, ignores other kinds of
events (and does not move ``position`` for them), so the live view and a view rebuilt
with ``fold(store.read())`` are equal by construction; the property tests check it.

What it holds:

* every resource with its definition, status, allocated amount per capacity key
  (recomputed from the active allocations, see :func:`domain.resource.total`), current
  users (user -> number of active allocations), total allocations ever granted and
  total usage time (``held_seconds`` of every finished allocation: released at its
  release, expired at its ``expires_at``, revoked at its revocation);
* every allocation ever granted, with its status and end;
* every rejected request with what was unmet and why (no allocation belongs to it);
* a per-user index of allocation ids, in grant order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from domain.enums import AllocationStatus, ResourceStatus, ResourceType
from domain.events import Recorded
from domain.resource import (
    AllocationExpired,
    AllocationGranted,
    AllocationRejected,
    AllocationReleased,
    AllocationRevoked,
    LimitsSpec,
    Number,
    ResourceAdded,
    ResourceAllocated,
    ResourceReleased,
    ResourceStatusChanged,
    total,
    utilization,
)

__all__ = ["KINDS", "AllocationRecord", "RejectionRecord", "ResourceRecord", "ResourceView", "apply", "fold"]

KINDS: frozenset[str] = frozenset({"resource", "allocation"})
"""The event kinds this view folds; :func:`apply` ignores every other event."""


@dataclass(slots=True)
class ResourceRecord:
    id: str
    name: str
    type: ResourceType
    description: str
    capacity: dict[str, Number]
    limits: LimitsSpec
    metadata: dict[str, Any]
    tags: list[str]
    source: str
    created_at: datetime
    updated_at: datetime
    status: ResourceStatus = ResourceStatus.AVAILABLE
    status_reason: str = ""
    allocated: dict[str, Number] = field(default_factory=dict)
    active: dict[str, dict[str, Number]] = field(default_factory=dict)  # allocation id -> amounts
    users: dict[str, int] = field(default_factory=dict)  # user -> active allocations here
    total_allocations: int = 0
    total_usage_time: float = 0.0
    version: int = 1

    def utilization(self) -> dict[str, float]:
        """Percent in use per capacity key."""
        return utilization(self.allocated, self.capacity)

    def _recount(self) -> None:
        self.allocated = {key: total(a[key] for a in self.active.values() if key in a) for key in self.capacity}


@dataclass(slots=True)
class AllocationRecord:
    id: str
    request_id: str
    requirement: str
    resource_id: str
    user_id: str
    amounts: dict[str, Number]
    allocated_at: datetime
    actor: str
    timeout: float | None = None
    expires_at: datetime | None = None
    status: AllocationStatus = AllocationStatus.ACTIVE
    ended_at: datetime | None = None
    held_seconds: float = 0.0
    end_reason: str = ""


@dataclass(slots=True)
class RejectionRecord:
    request_id: str
    user_id: str
    requirements: dict[str, dict[str, Number]]
    unmet: dict[str, list[str]]
    reason: str
    at: datetime
    actor: str


@dataclass
class ResourceView:
    resources: dict[str, ResourceRecord] = field(default_factory=dict)
    allocations: dict[str, AllocationRecord] = field(default_factory=dict)
    rejections: dict[str, RejectionRecord] = field(default_factory=dict)
    by_user: dict[str, list[str]] = field(default_factory=dict)
    position: int = 0

    def active(self, user_id: str | None = None) -> list[AllocationRecord]:
        """ACTIVE allocations (of ``user_id``, or all), in grant order."""
        ids = self.by_user.get(user_id, []) if user_id is not None else list(self.allocations)
        return [a for a in (self.allocations[i] for i in ids) if a.status is AllocationStatus.ACTIVE]

    def snapshot(self) -> dict[str, Any]:
        """Plain data, for comparing views (live vs rebuilt) and for export."""
        out: dict[str, Any] = msgspec.to_builtins(
            {
                "resources": self.resources,
                "allocations": self.allocations,
                "rejections": self.rejections,
                "by_user": self.by_user,
                "position": self.position,
            }
        )
        return out


def _added(view: ResourceView, e: ResourceAdded) -> None:
    rec = ResourceRecord(
        id=e.aggregate_id,
        name=e.name,
        type=e.resource_type,
        description=e.description,
        capacity=dict(e.capacity),
        limits=e.limits,
        metadata=dict(e.metadata),
        tags=list(e.tags),
        source=e.source,
        created_at=e.timestamp,
        updated_at=e.timestamp,
        version=e.version,
    )
    rec._recount()
    view.resources[rec.id] = rec


def _resource_event(view: ResourceView, e: ResourceStatusChanged | ResourceAllocated | ResourceReleased) -> None:
    rec = view.resources[e.aggregate_id]
    rec.version = e.version
    rec.updated_at = e.timestamp
    rec.status = e.status
    if isinstance(e, ResourceStatusChanged):
        rec.status_reason = e.reason
        return
    if isinstance(e, ResourceAllocated):
        rec.active[e.allocation_id] = dict(e.amounts)
        rec.users[e.user_id] = rec.users.get(e.user_id, 0) + 1
        rec.total_allocations += 1
    else:
        rec.active.pop(e.allocation_id, None)
        left = rec.users.get(e.user_id, 0) - 1
        if left > 0:
            rec.users[e.user_id] = left
        else:
            rec.users.pop(e.user_id, None)
        rec.total_usage_time += e.held_seconds
    rec._recount()


def _granted(view: ResourceView, e: AllocationGranted) -> None:
    view.allocations[e.aggregate_id] = AllocationRecord(
        id=e.aggregate_id,
        request_id=e.request_id,
        requirement=e.requirement,
        resource_id=e.resource_id,
        user_id=e.user_id,
        amounts=dict(e.amounts),
        allocated_at=e.timestamp,
        actor=e.actor,
        timeout=e.timeout,
        expires_at=e.expires_at,
    )
    view.by_user.setdefault(e.user_id, []).append(e.aggregate_id)


_ENDS: dict[type[Any], tuple[AllocationStatus, str]] = {
    AllocationReleased: (AllocationStatus.RELEASED, "released"),
    AllocationExpired: (AllocationStatus.EXPIRED, "expired"),
    AllocationRevoked: (AllocationStatus.REVOKED, "revoked"),
}


def _ended(view: ResourceView, e: AllocationReleased | AllocationExpired | AllocationRevoked) -> None:
    rec = view.allocations[e.aggregate_id]
    rec.status, rec.end_reason = _ENDS[type(e)]
    if isinstance(e, AllocationRevoked) and e.reason:
        rec.end_reason = f"revoked: {e.reason}"
    rec.ended_at = e.timestamp
    rec.held_seconds = e.held_seconds


def _rejected(view: ResourceView, e: AllocationRejected) -> None:
    view.rejections[e.aggregate_id] = RejectionRecord(
        request_id=e.aggregate_id,
        user_id=e.user_id,
        requirements={k: dict(v) for k, v in e.requirements.items()},
        unmet={k: list(v) for k, v in e.unmet.items()},
        reason=e.reason,
        at=e.timestamp,
        actor=e.actor,
    )


def apply(view: ResourceView, recorded: Recorded) -> ResourceView:
    e = recorded.event
    if e.KIND not in KINDS:
        return view
    view.position = recorded.position
    if isinstance(e, ResourceAdded):
        _added(view, e)
    elif isinstance(e, ResourceStatusChanged | ResourceAllocated | ResourceReleased):
        _resource_event(view, e)
    elif isinstance(e, AllocationGranted):
        _granted(view, e)
    elif isinstance(e, AllocationReleased | AllocationExpired | AllocationRevoked):
        _ended(view, e)
    elif isinstance(e, AllocationRejected):
        _rejected(view, e)
    return view


def fold(events: Iterable[Recorded], view: ResourceView | None = None) -> ResourceView:
    view = view if view is not None else ResourceView()
    for recorded in events:
        apply(view, recorded)
    return view
