"""Leases: which engine instance owns which open work, and until when.

``lease:<owner>`` (the owner is an orchestrator's instance id) follows the ``LEASE``
lifecycle. An orchestrator acquires its lease in the same commit as the first tasks it
creates, renews it by heartbeat (``lease.renewed`` moves ``expires_at``), and releases
it when it closes. Every task names its owner (``task.created.owner``, changed by
``task.adopted``); a run is owned by the owner of its steps.

Another engine may take the work of an owner over only **after** the lease expired
(``expires_at`` < its clock): ``lease.taken_over`` names the new owner and the tasks
and runs it adopts, and is committed in one transaction with the tasks'
``task.adopted`` events. Two engines that try at once append the same version of the
lease stream: the store's optimistic concurrency lets exactly one win. A stalled owner
that wakes up after its lease was taken over finds every adopted task's version moved
on, so its late writes conflict instead of overwriting (the final guard), and it drops
the tasks it no longer owns.

One lease per engine instance (not per run) keeps the heartbeat O(1) whatever the
number of runs in flight; expiry compares wall clocks of different machines, so the
TTL must exceed the clock skew between them (documented in the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import msgspec

from domain.enums import LeaseStatus
from domain.errors import CorruptHistoryError
from domain.events import Event, EventMeta, register_event_types
from domain.lifecycles import LEASE

__all__ = [
    "LEASE_TRIGGER_OF",
    "LeaseAcquired",
    "LeaseReleased",
    "LeaseRenewed",
    "LeaseState",
    "LeaseTakenOver",
    "acquire",
    "evolve",
    "release",
    "renew",
    "take_over",
]


class _LeaseEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "lease"


class LeaseAcquired(_LeaseEvent, frozen=True, kw_only=True, tag="lease.acquired"):
    """An engine instance starts owning work until ``expires_at`` (ACTIVE)."""

    host: str
    pid: int
    ttl: float
    expires_at: datetime


class LeaseRenewed(_LeaseEvent, frozen=True, kw_only=True, tag="lease.renewed"):
    """The heartbeat: still alive, owns its work until ``expires_at``."""

    expires_at: datetime


class LeaseReleased(_LeaseEvent, frozen=True, kw_only=True, tag="lease.released"):
    """The owner closed cleanly (RELEASED); its open work, if any, may be adopted at once."""

    open_tasks: int = 0


class LeaseTakenOver(_LeaseEvent, frozen=True, kw_only=True, tag="lease.taken_over"):
    """Another engine adopted this owner's open work (TAKEN_OVER): the record of a
    recovery (who, when, what)."""

    by: str
    expired_at: datetime | None
    tasks: list[str] = msgspec.field(default_factory=list)
    runs: list[str] = msgspec.field(default_factory=list)
    interrupted: list[str] = msgspec.field(default_factory=list)
    """Tasks that were RUNNING: their attempt is recorded as interrupted."""


register_event_types(LeaseAcquired, LeaseRenewed, LeaseReleased, LeaseTakenOver)

LEASE_TRIGGER_OF: dict[type[Event], str] = {
    LeaseRenewed: "renew",
    LeaseReleased: "release",
    LeaseTakenOver: "take_over",
}


@dataclass(slots=True)
class LeaseState:
    owner: str
    version: int
    status: LeaseStatus
    expires_at: datetime
    host: str = ""
    pid: int = 0

    def alive(self, now: datetime) -> bool:
        """Its owner may still be working: ACTIVE and not past its expiry."""
        return self.status is LeaseStatus.ACTIVE and self.expires_at >= now

    def expired(self, now: datetime) -> bool:
        """Its work may be adopted: released, or ACTIVE past its expiry."""
        return self.status is LeaseStatus.RELEASED or (self.status is LeaseStatus.ACTIVE and self.expires_at < now)


def _envelope(owner: str, version: int, meta: EventMeta) -> dict[str, object]:
    return {
        "aggregate_id": owner,
        "version": version,
        "timestamp": meta.timestamp,
        "actor": meta.actor,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
    }


def acquire(owner: str, meta: EventMeta, *, ttl: float, host: str, pid: int) -> LeaseAcquired:
    return LeaseAcquired(
        **_envelope(owner, 1, meta),  # type: ignore[arg-type]
        host=host,
        pid=pid,
        ttl=ttl,
        expires_at=meta.timestamp + timedelta(seconds=ttl),
    )


def renew(state: LeaseState, meta: EventMeta, *, ttl: float) -> LeaseRenewed:
    LEASE.decide(state.status, "renew", state.owner)
    return LeaseRenewed(
        **_envelope(state.owner, state.version + 1, meta),  # type: ignore[arg-type]
        expires_at=meta.timestamp + timedelta(seconds=ttl),
    )


def release(state: LeaseState, meta: EventMeta, *, open_tasks: int) -> LeaseReleased:
    LEASE.decide(state.status, "release", state.owner)
    return LeaseReleased(**_envelope(state.owner, state.version + 1, meta), open_tasks=open_tasks)  # type: ignore[arg-type]


def take_over(
    state: LeaseState,
    meta: EventMeta,
    *,
    by: str,
    tasks: list[str],
    runs: list[str],
    interrupted: list[str],
) -> LeaseTakenOver:
    """Only an expired lease (or a released one with open work) can be taken over."""
    if not state.expired(meta.timestamp):
        raise CorruptHistoryError(f"lease {state.owner} is alive until {state.expires_at.isoformat()}")
    LEASE.decide(state.status, "take_over", state.owner)
    return LeaseTakenOver(
        **_envelope(state.owner, state.version + 1, meta),  # type: ignore[arg-type]
        by=by,
        expired_at=state.expires_at if state.status is LeaseStatus.ACTIVE else None,
        tasks=tasks,
        runs=runs,
        interrupted=interrupted,
    )


def evolve(state: LeaseState | None, event: Event) -> LeaseState:
    if isinstance(event, LeaseAcquired):
        return LeaseState(
            event.aggregate_id, event.version, LeaseStatus.ACTIVE, event.expires_at, event.host, event.pid
        )
    if state is None:
        raise CorruptHistoryError(f"{event.type} for lease {event.aggregate_id} before lease.acquired")
    state.version = event.version
    if isinstance(event, LeaseRenewed):
        state.expires_at = event.expires_at
    elif isinstance(event, LeaseReleased):
        state.status = LeaseStatus.RELEASED
    elif isinstance(event, LeaseTakenOver):
        state.status = LeaseStatus.TAKEN_OVER
    return state
