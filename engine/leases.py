"""The lease an orchestrator holds on the work it owns, and its heartbeat.

The lease (``lease:<instance id>``, :mod:`domain.lease`) is acquired with a synchronous
append the first time the orchestrator creates work, renewed every ``ttl / 3`` seconds
by a heartbeat thread, and released on close. If a renewal conflicts, another engine
took the lease over after it expired (the process stalled for longer than the TTL):
the keeper stops renewing and reports the loss, and the orchestrator drops the tasks it
no longer owns (their streams moved on, so its late writes would conflict anyway).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from domain import lease as L
from domain.enums import LeaseStatus
from domain.errors import ConcurrencyConflictError, StoreError, ValidationError
from domain.events import EventMeta
from engine.clock import Runtime
from engine.store import EventStore

__all__ = ["DEFAULT_LEASE_TTL", "LEASE_TOPICS", "LeaseKeeper", "read_leases"]

DEFAULT_LEASE_TTL = 30.0
LEASE_TOPICS: tuple[str, ...] = tuple(
    cls.TYPE for cls in (L.LeaseAcquired, L.LeaseRenewed, L.LeaseReleased, L.LeaseTakenOver)
)
_log = logging.getLogger(__name__)


def read_leases(store: EventStore) -> dict[str, L.LeaseState]:
    """Every lease in the log, folded (a read of the lease events only)."""
    leases: dict[str, L.LeaseState] = {}
    for recorded in store.read(types=LEASE_TOPICS):
        event = recorded.event
        leases[event.aggregate_id] = L.evolve(leases.get(event.aggregate_id), event)
    return leases


class LeaseKeeper:
    """Holds one owner's lease: acquire once, renew by heartbeat, release on close."""

    def __init__(
        self,
        store: EventStore,
        runtime: Runtime,
        owner: str,
        *,
        ttl: float = DEFAULT_LEASE_TTL,
        actor: str = "system",
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise ValidationError(f"lease_ttl must be a number > 0, got {ttl!r}", code="INVALID_LEASE_TTL")
        self.store = store
        self.runtime = runtime
        self.owner = owner
        self.ttl = float(ttl)
        self.actor = actor
        self.on_lost = on_lost
        self.state: L.LeaseState | None = None
        self.lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _meta(self) -> EventMeta:
        return EventMeta(
            timestamp=self.runtime.clock.now(),
            actor=self.actor,
            correlation_id=f"lease:{self.owner}",
            causation_id="" if self.state is None else f"lease:{self.owner}@{self.state.version}",
        )

    def ensure(self) -> None:
        """Acquire the lease (once) and start the heartbeat."""
        with self._lock:
            if self.state is not None:
                return
            event = L.acquire(self.owner, self._meta(), ttl=self.ttl, host=self.runtime.host, pid=self.runtime.pid)
            self.store.append([event])
            self.state = L.evolve(None, event)
            self._thread = threading.Thread(target=self._beat, name=f"lease-{self.owner[:8]}", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except ConcurrencyConflictError:
                self._lose()
                return
            except StoreError as e:  # a store hiccup: the next beat tries again before expiry
                _log.warning("lease %s: renewal failed (%s); retrying", self.owner, e)

    def renew(self) -> None:
        with self._lock:
            if self.state is None or self.state.status is not LeaseStatus.ACTIVE or self.lost:
                return
            event = L.renew(self.state, self._meta(), ttl=self.ttl)
            self.store.append([event])
            L.evolve(self.state, event)

    def _lose(self) -> None:
        with self._lock:
            self.lost = True
        _log.error("lease %s was taken over by another engine: this engine no longer owns its work", self.owner)
        if self.on_lost is not None:
            self.on_lost()

    def pause(self) -> None:
        """Stop renewing without releasing (what a stalled or killed process does)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def release(self, open_tasks: int) -> None:
        """Stop the heartbeat and record the release (nothing if never acquired or lost)."""
        self.pause()
        with self._lock:
            if self.state is None or self.lost or self.state.status is not LeaseStatus.ACTIVE:
                return
            event = L.release(self.state, self._meta(), open_tasks=open_tasks)
            try:
                self.store.append([event])
            except ConcurrencyConflictError:
                self.lost = True  # taken over while closing: nothing of ours to release
                return
            L.evolve(self.state, event)
