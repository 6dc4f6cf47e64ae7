"""The spec's ``ResourceManager``: resources and allocations on the event log.

Every resource, grant, release, expiry, revocation and rejection is an event (see
:mod:`domain.resource` for the aggregates, the best-fit rule and what the limits
enforce); every answer is read from the resource view (:mod:`projections.resources`),
which is the fold of those events, live or rebuilt.

Concurrency: decisions are made under one lock, from the write-side state, and
appended with ``store.append`` before the lock is released, so two threads of one
manager never decide from the same state. Every grant and release also writes to the
resource's own stream, so a writer outside this manager (another manager on the same
store or the same database file) that decided from an older version gets a
``ConcurrencyConflictError`` from the store. The manager then catches up from the log
and decides again (up to ``MAX_CONFLICT_RETRIES`` times). Capacity is never negative
and never over-allocated, whatever the interleaving.

Choices where the spec is open:

* ``allocate_resources`` returns ``{requirement key: resource id}`` as the spec says,
  and ``None`` when the request cannot be satisfied *now*. The rejection is recorded
  (``allocation.rejected``: which requirement, and why for each candidate), and nothing
  of the request is granted. Malformed input raises ``ValidationError`` and records
  nothing: a key that is not a ``ResourceType`` value, an amount that is not a finite
  number >= 0, a capacity key that no resource of that type has, a ``timeout`` <= 0.
  A request for a type that has no resource at all is unsatisfiable, not malformed.
  An empty request returns ``{}`` and records nothing. The allocation ids are in
  ``get_user_allocations`` (with ``requirement`` and ``request_id``).
* ``deallocate_resources`` returns True when it released at least one allocation, and
  False when there was nothing active to release (already released or expired ones
  are skipped). ``allocation_ids=None`` means all of the user's allocations; ``[]``
  means none. An unknown id raises ``NotFoundError``, and another user's id raises
  ``ValidationError``. In both cases nothing is released.
* ``get_resource_usage`` has exactly the spec's keys. ``total_allocations`` counts the
  allocations ever granted, in both shapes. An unknown ``resource_id`` raises
  ``NotFoundError``. Utilization is a percentage rounded to 2 decimals.
* ``get_user_allocations`` lists the user's ACTIVE allocations, in grant order.
* ``add_resource`` records the definition. Its ``status`` is applied through the
  lifecycle (``reserved``, ``maintenance`` and ``unavailable`` each record one
  trigger). ``in_use``, non-zero ``allocated`` amounts, ``current_users`` and usage
  counters are derived from allocations, so giving them is a ``ValidationError``.
* Allocations with a timeout (or on a resource with ``limits.timeout_seconds``) expire
  at ``expires_at``. A background thread, started with the first such allocation (or
  at start-up when the log has one), records ``allocation.expired`` events by the
  manager's clock, and the capacity comes back. ``expire_allocations(now)`` does the
  same on demand.
* Operators change a resource's status with ``set_resource_status(id, trigger)``.
  Disabling a resource that is in use revokes its allocations first.

Default resources
-----------------
With ``system_resources=True``, three resources describe this machine, measured with
psutil: ``system_cpu`` (``{"cores": logical CPUs}``), ``system_memory`` (``{"gb":
total RAM}``) and ``system_disk`` (``{"gb": total size of the file system holding the
data directory}``). Each is recorded only if the log has no resource with that id yet,
so a restart keeps the recorded definition. A different measurement (another machine)
is reported by ``health_check``.

Resource configuration file
---------------------------
``resource_config`` (argument, ``$CODOMYRMEX_RESOURCE_CONFIG``, or ``resource_config``
in the config file) names a JSON file with more resources::

    {
      "resources": [
        {"id": "gpu0", "name": "GPU 0", "type": "gpu",
         "capacity": {"memory_gb": 24, "units": 1},
         "limits": {"max_concurrent_users": 2, "timeout_seconds": 3600},
         "tags": ["cuda"], "metadata": {"model": "L4"}},
        {"id": "openai", "type": "external_api", "capacity": {"requests_per_minute": 60}},
        {"id": "deploy-lock", "type": "lock", "capacity": {"holders": 1}},
        {"id": "scratch", "type": "disk", "capacity": {"gb": 100}, "status": "maintenance"}
      ]
    }

Per entry, ``id`` and ``type`` (a ``ResourceType`` value) are required. ``name``
defaults to the id. ``description``, ``capacity`` (capacity key -> number >= 0),
``limits`` (the ``ResourceLimits`` fields), ``metadata`` (an object), ``tags`` (a list
of strings) and ``status`` (the initial status; not ``in_use``) are optional. Unknown
keys, duplicate ids, malformed JSON and a missing file raise ``ValidationError`` naming
the file (and the entry). Nothing of the file is recorded then. Config entries are
recorded before the default resources, so an entry with a ``system_*`` id replaces
that default. An entry whose id is already in the log is not recorded again; if its
definition differs from the recorded one, ``health_check`` says so (the log wins).
"""

from __future__ import annotations

import itertools
import json
import platform
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from domain.enums import AllocationStatus, ResourceStatus, ResourceType
from domain.errors import (
    ConcurrencyConflictError,
    NotFoundError,
    OrchestrationError,
    StoreError,
    ValidationError,
)
from domain.events import Event, EventMeta, Recorded
from domain.resource import (
    RESOURCE_TOPICS,
    AllocationGranted,
    AllocationRejected,
    LimitsSpec,
    ResourceAdded,
    ResourceBook,
    change_status,
    check_requirements,
    check_timeout,
    define,
    due,
    evolve,
    release,
    request,
)
from engine.clock import Runtime
from engine.codec import json_problem
from engine.config import load_config
from engine.resource_models import Resource, ResourceAllocation, ResourceLimits
from engine.store import EventStore, open_store
from projections.resources import ResourceRecord, ResourceView
from projections.resources import apply as apply_resource_event

__all__ = [
    "EXPIRY_POLL_SECONDS",
    "MAX_CONFLICT_RETRIES",
    "SYSTEM_RESOURCE_IDS",
    "ResourceManager",
    "load_resource_file",
    "system_resource_definitions",
]

MAX_CONFLICT_RETRIES = 5
EXPIRY_POLL_SECONDS = 1.0  # the expiry thread's longest sleep (an injected clock may jump)
OVERDUE_GRACE_SECONDS = 5.0  # an ACTIVE allocation this far past expires_at is a health issue
UTILIZATION_WARNING = 90.0
SYSTEM_RESOURCE_IDS = ("system_cpu", "system_memory", "system_disk")
_KINDS = ("resource", "allocation")
_CONFIG_KEYS = frozenset({"id", "name", "type", "description", "capacity", "limits", "metadata", "tags", "status"})
_INITIAL_TRIGGER = {
    ResourceStatus.AVAILABLE: None,
    ResourceStatus.RESERVED: "reserve",
    ResourceStatus.MAINTENANCE: "start_maintenance",
    ResourceStatus.UNAVAILABLE: "disable",
}

Definition = dict[str, Any]  # keyword arguments of domain.resource.define, plus "status"


class ResourceManager:
    """Allocates resources to users, all-or-nothing, best fit, on the event log."""

    def __init__(
        self,
        *,
        store: EventStore | str | None = None,
        runtime: Runtime | None = None,
        resource_config: str | Path | None = None,
        data_dir: str | Path | None = None,
        system_resources: bool = True,
    ) -> None:
        config = load_config(
            data_dir=data_dir,
            resource_config=resource_config,
            store_url=store if isinstance(store, str) else None,
        )
        self.runtime = runtime or Runtime()
        self.data_dir = config.data_dir
        self.resource_config = config.resource_config
        self._owns_store = not isinstance(store, EventStore)
        self.store: EventStore = store if isinstance(store, EventStore) else open_store(config.store_url)
        self._lock = threading.RLock()  # one decision (decide + append) at a time
        self._view_lock = threading.Lock()  # guards the book and the view
        self._book = ResourceBook()
        self.view = ResourceView()
        self._notes: list[str] = []  # definition differences found at start-up
        self._expiry_error = ""
        self._closed = False
        self._thread_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._expiry_thread: threading.Thread | None = None
        try:
            self._unsubscribe = self.store.subscribe(self._on_committed, history=self._load, types=RESOURCE_TOPICS)
            definitions: list[Definition] = []
            if self.resource_config is not None:
                source = config.describe()["resource_config"]["source"]
                definitions += load_resource_file(self.resource_config, source)
            if system_resources:
                taken = {d["resource_id"] for d in definitions}
                definitions += [d for d in system_resource_definitions(self.data_dir) if d["resource_id"] not in taken]
            self._add_definitions(definitions)
        except BaseException:
            self._unsubscribe_quietly()
            if self._owns_store:
                self.store.close()
            raise
        if self._next_expiry() is not None:
            self._ensure_expiry_thread()

    # -- the log ---------------------------------------------------------------

    def _apply_locked(self, recorded: Recorded) -> None:
        if recorded.position <= self.view.position:
            return  # already applied (a catch-up read it before the listener delivered it)
        evolve(self._book, recorded.event)
        apply_resource_event(self.view, recorded)

    def _load(self, records: Iterator[Recorded]) -> None:
        with self._view_lock:
            for recorded in records:
                self._apply_locked(recorded)

    def _on_committed(self, batch: Sequence[Recorded]) -> None:
        mine = [r for r in batch if r.event.KIND in _KINDS]
        if mine:
            with self._view_lock:
                for recorded in mine:
                    self._apply_locked(recorded)

    def _catch_up(self) -> None:
        """Apply what other writers committed (after a conflict): the store hands every
        listener the other processes' commits, in log order (as its follower does
        every ``follow_interval`` seconds anyway)."""
        self.store.flush()
        self.store.catch_up()

    def _meta(self, actor: str = "system", correlation_id: str = "") -> EventMeta:
        return EventMeta(timestamp=self.runtime.clock.now(), actor=actor, correlation_id=correlation_id)

    def _commit(self, decide: Callable[[], list[Event]]) -> list[Event]:
        """Decide from the current state and append; on a version conflict with
        another writer, catch up and decide again. Call with ``self._lock`` held."""
        self._check_open()
        for attempt in itertools.count(1):
            with self._view_lock:
                events = decide()
            if not events:
                return events
            try:
                self.store.append(events)
            except ConcurrencyConflictError:
                if attempt >= MAX_CONFLICT_RETRIES:
                    raise
                self._catch_up()
                continue
            return events
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this ResourceManager is closed", code="MANAGER_CLOSED")

    # -- resources ---------------------------------------------------------------

    def _definition_events(self, d: Definition, meta: EventMeta) -> list[Event]:
        spec = {k: v for k, v in d.items() if k != "status"}
        added = define(**spec, meta=meta)
        problem = json_problem(added.metadata, f"resource {added.aggregate_id!r} metadata")
        if problem is not None:
            raise ValidationError(f"{problem}; metadata is recorded, so it must be JSON data")
        status = ResourceStatus(d.get("status", ResourceStatus.AVAILABLE))
        if status not in _INITIAL_TRIGGER:
            raise ValidationError(
                f"resource {added.aggregate_id!r}: status {status.value!r} cannot be given; "
                f"in_use follows from allocations (use one of {[s.value for s in _INITIAL_TRIGGER]})"
            )
        events: list[Event] = [added]
        trigger = _INITIAL_TRIGGER[status]
        if trigger is not None:
            book = evolve(ResourceBook(), added)
            events += change_status(book, added.aggregate_id, trigger, reason="initial status", meta=meta)
        return events

    def _add_definitions(self, definitions: list[Definition]) -> None:
        """Record every definition whose id is not in the log yet, in one commit; note
        the differences of those that are."""
        meta = self._meta()
        checked = [(d, self._definition_events(d, meta)) for d in definitions]  # all valid, or nothing

        def decide() -> list[Event]:
            return [e for d, events in checked if d["resource_id"] not in self._book.resources for e in events]

        with self._lock:
            self._commit(decide)
            with self._view_lock:
                for d, events in checked:
                    recorded = self._book.resources[d["resource_id"]].added
                    note = _difference(d, events[0], recorded)
                    if note:
                        self._notes.append(note)

    def add_resource(self, resource: Resource) -> bool:
        """Record ``resource``; False (and nothing recorded) if its id exists."""
        if not isinstance(resource, Resource):
            raise ValidationError(f"add_resource() needs a Resource, got {type(resource).__name__}")
        where = f"resource {resource.id!r}"
        if any(v for v in (resource.allocated or {}).values()) or resource.current_users:
            raise ValidationError(f"{where}: allocated/current_users follow from allocations; leave them empty")
        if resource.total_allocations or resource.total_usage_time:
            raise ValidationError(f"{where}: total_allocations/total_usage_time follow from allocations; leave them 0")
        try:
            status = ResourceStatus(resource.status)
        except ValueError:
            raise ValidationError(f"{where}: status {resource.status!r} is not a ResourceStatus") from None
        meta = self._meta()
        events = self._definition_events(
            {
                "resource_id": resource.id,
                "name": resource.name,
                "resource_type": resource.type,
                "description": resource.description,
                "capacity": resource.capacity,
                "limits": _limits_spec(resource.limits, where),
                "metadata": resource.metadata,
                "tags": resource.tags,
                "status": status,
            },
            meta,
        )
        with self._lock:
            done = self._commit(lambda: [] if resource.id in self._book.resources else events)
        return bool(done)

    def set_resource_status(self, resource_id: str, trigger: str, reason: str = "") -> ResourceStatus:
        """Fire an operator trigger (``reserve``, ``unreserve``, ``start_maintenance``,
        ``end_maintenance``, ``disable``, ``enable``); returns the new status. Illegal
        from the current status: ``IllegalTransitionError``, nothing recorded."""
        if not isinstance(reason, str):
            raise ValidationError(f"reason must be a string, got {reason!r}")
        with self._lock:

            def decide() -> list[Event]:
                if resource_id not in self._book.resources:
                    raise NotFoundError(f"no resource {resource_id!r}")
                return change_status(self._book, resource_id, trigger, reason=reason, meta=self._meta())

            self._commit(decide)
            with self._view_lock:
                return self._book.resources[resource_id].status

    def list_resources(
        self, resource_type: ResourceType | None = None, status: ResourceStatus | None = None
    ) -> list[Resource]:
        """Resources (in the order they were added), optionally of one type and status."""
        rtype = _enum(ResourceType, resource_type, "resource_type")
        rstatus = _enum(ResourceStatus, status, "status")
        with self._view_lock:
            return [
                Resource.from_record(r)
                for r in self.view.resources.values()
                if rtype in (None, r.type) and rstatus in (None, r.status)
            ]

    def get_resource(self, resource_id: str) -> Resource | None:
        with self._view_lock:
            rec = self.view.resources.get(resource_id)
            return Resource.from_record(rec) if rec is not None else None

    # -- allocations ---------------------------------------------------------------

    def allocate_resources(
        self,
        user_id: str,
        requirements: dict[str, dict[str, Any]],
        timeout: int | None = None,
        *,
        actor: str | None = None,
    ) -> dict[str, str] | None:
        """Allocate every requirement (best fit) or nothing. Returns ``{requirement key:
        resource id}``, or None when the request cannot be satisfied now (the rejection
        is recorded). ``actor`` stamps the events (default: ``user_id``)."""
        _check_user(user_id)
        wanted = check_requirements(requirements)
        lifetime = check_timeout(timeout)
        if actor is not None and not isinstance(actor, str):
            raise ValidationError(f"actor must be a string, got {actor!r}")
        if not wanted:
            return {}
        request_id = self.runtime.ids.new_id()

        def decide() -> list[Event]:
            return request(
                self._book,
                request_id=request_id,
                user_id=user_id,
                requirements=wanted,
                timeout=lifetime,
                new_id=self.runtime.ids.new_id,
                meta=self._meta(actor or user_id, request_id),
            )

        with self._lock:
            events = self._commit(decide)
        if isinstance(events[0], AllocationRejected):
            return None
        grants = [e for e in events if isinstance(e, AllocationGranted)]
        if any(g.expires_at is not None for g in grants):
            self._ensure_expiry_thread()
        return {g.requirement: g.resource_id for g in grants}

    def deallocate_resources(
        self, user_id: str, allocation_ids: list[str] | None = None, *, actor: str | None = None
    ) -> bool:
        """Release the user's allocations (all of them, or the listed ones). True when
        something was released; False when nothing listed was still active."""
        _check_user(user_id)
        if allocation_ids is not None and (
            not isinstance(allocation_ids, list | tuple) or not all(isinstance(a, str) for a in allocation_ids)
        ):
            raise ValidationError(f"allocation_ids must be a list of allocation id strings, got {allocation_ids!r}")

        def decide() -> list[Event]:
            book = self._book
            if allocation_ids is None:
                ids = [a.id for a in book.active(user_id)]
            else:
                ids = list(dict.fromkeys(allocation_ids))
                for aid in ids:
                    alloc = book.allocations.get(aid)
                    if alloc is None:
                        raise NotFoundError(f"no allocation {aid!r}", details={"allocation_id": aid})
                    if alloc.granted.user_id != user_id:
                        raise ValidationError(
                            f"allocation {aid!r} belongs to another user, not {user_id!r}",
                            details={"allocation_id": aid, "user_id": user_id},
                        )
                ids = [aid for aid in ids if book.allocations[aid].status is AllocationStatus.ACTIVE]
            return release(book, ids, reason="released", meta=self._meta(actor or user_id))

        with self._lock:
            return bool(self._commit(decide))

    def expire_allocations(self, now: datetime | None = None) -> list[str]:
        """Record the expiry of every ACTIVE allocation whose ``expires_at`` is at or
        before ``now`` (default: the manager's clock); returns their ids."""
        if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
            raise ValidationError(f"now must be a timezone-aware datetime, got {now!r}")
        expired: list[str] = []

        def decide() -> list[Event]:
            expired[:] = due(self._book, now or self.runtime.clock.now())
            return release(self._book, expired, reason="expired", meta=self._meta())

        with self._lock:
            self._commit(decide)
        return list(expired)

    def get_user_allocations(self, user_id: str) -> list[dict[str, Any]]:
        """The user's ACTIVE allocations, in grant order, with their resource."""
        _check_user(user_id)
        with self._view_lock:
            out = []
            for a in self.view.active(user_id):
                res = self.view.resources[a.resource_id]
                out.append(
                    {
                        "allocation_id": a.id,
                        "resource_id": a.resource_id,
                        "resource_name": res.name,
                        "resource_type": res.type.value,
                        "requirement": a.requirement,
                        "request_id": a.request_id,
                        "allocated": dict(a.amounts),
                        "allocated_at": a.allocated_at.isoformat(),
                        "expires_at": a.expires_at.isoformat() if a.expires_at else None,
                        "status": a.status.value,
                    }
                )
            return out

    def get_allocation(self, allocation_id: str) -> ResourceAllocation | None:
        """One allocation in any status (``metadata`` says which, and the request)."""
        with self._view_lock:
            rec = self.view.allocations.get(allocation_id)
            return ResourceAllocation.from_record(rec) if rec is not None else None

    def get_rejections(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Rejected requests (of ``user_id``, or all), oldest first, with why."""
        with self._view_lock:
            return [
                {
                    "request_id": r.request_id,
                    "user_id": r.user_id,
                    "requirements": {k: dict(v) for k, v in r.requirements.items()},
                    "unmet": {k: list(v) for k, v in r.unmet.items()},
                    "reason": r.reason,
                    "rejected_at": r.at.isoformat(),
                }
                for r in self.view.rejections.values()
                if user_id in (None, r.user_id)
            ]

    # -- reading ---------------------------------------------------------------

    def get_resource_usage(self, resource_id: str | None = None) -> dict[str, Any]:
        """Usage of one resource, or system-wide; exactly the spec's keys."""
        with self._view_lock:
            if resource_id is not None:
                rec = self.view.resources.get(resource_id)
                if rec is None:
                    raise NotFoundError(f"no resource {resource_id!r}", details={"resource_id": resource_id})
                return {
                    "resource_id": rec.id,
                    "name": rec.name,
                    "type": rec.type.value,
                    "status": rec.status.value,
                    "capacity": dict(rec.capacity),
                    "allocated": dict(rec.allocated),
                    "utilization": {k: round(v, 2) for k, v in rec.utilization().items()},
                    "current_users": len(rec.users),
                    "total_allocations": rec.total_allocations,
                }
            records = list(self.view.resources.values())
            by_type = {t.value: 0 for t in ResourceType}
            per_type: dict[str, list[float]] = {}
            for rec in records:
                by_type[rec.type.value] += 1
                per_type.setdefault(rec.type.value, []).append(_mean_utilization(rec))
            return {
                "total_resources": len(records),
                "total_allocations": len(self.view.allocations),
                "resources_by_type": by_type,
                "utilization_summary": {t: round(sum(v) / len(v), 2) for t, v in per_type.items()},
            }

    def health_check(self) -> dict[str, Any]:
        """``status`` (healthy / degraded / unhealthy), per-resource details and the
        ``issues`` behind the status. Unhealthy: the store cannot be read, or no
        resource can take allocations. Degraded: any other issue (a resource in
        maintenance or unavailable, a capacity key over 90% allocated, an allocation
        overdue for expiry, the expiry thread stopped, a definition that differs from
        the log, no resources at all)."""
        now = self.runtime.clock.now()
        issues: list[str] = []
        fatal = False
        try:
            self.store.max_position()
        except StoreError as e:
            issues.append(f"the event store cannot be read: {e}")
            fatal = True
        details: dict[str, Any] = {}
        with self._view_lock:
            records = list(self.view.resources.values())
            overdue = [
                a
                for a in self.view.active()
                if a.expires_at is not None and (now - a.expires_at).total_seconds() > OVERDUE_GRACE_SECONDS
            ]
            for rec in records:
                pct = rec.utilization()
                healthy = True
                if rec.status in (ResourceStatus.MAINTENANCE, ResourceStatus.UNAVAILABLE):
                    healthy = False
                    why = f" ({rec.status_reason})" if rec.status_reason else ""
                    issues.append(f"resource {rec.id} ({rec.name}) is {rec.status.value}{why}")
                hot = {k: round(v, 2) for k, v in pct.items() if v > UTILIZATION_WARNING}
                if hot:
                    healthy = False
                    issues.append(f"resource {rec.id} ({rec.name}) is over {UTILIZATION_WARNING:g}% allocated: {hot}")
                details[rec.id] = {
                    "name": rec.name,
                    "type": rec.type.value,
                    "status": rec.status.value,
                    "utilization": {k: round(v, 2) for k, v in pct.items()},
                    "users": len(rec.users),
                    "active_allocations": len(rec.active),
                    "healthy": healthy,
                }
        for a in overdue:
            issues.append(f"allocation {a.id} on {a.resource_id} is past its expiry ({a.expires_at:%Y-%m-%dT%H:%M:%S})")
        thread = self._expiry_thread
        if thread is not None and not thread.is_alive() and not self._closed:
            issues.append("the allocation expiry thread has stopped")
        if self._expiry_error:
            issues.append(f"the last expiry attempt failed: {self._expiry_error}")
        issues.extend(self._notes)
        usable = [r for r in records if r.status in (ResourceStatus.AVAILABLE, ResourceStatus.IN_USE)]
        if not records:
            issues.append("no resources are registered")
        elif not usable:
            issues.append("no resource can take allocations")
            fatal = True
        return {
            "status": "unhealthy" if fatal else ("degraded" if issues else "healthy"),
            "checked_at": now.isoformat(),
            "resources": details,
            "issues": issues,
        }

    # -- expiry ----------------------------------------------------------------

    def _next_expiry(self) -> datetime | None:
        with self._view_lock:
            times = [a.granted.expires_at for a in self._book.active() if a.granted.expires_at is not None]
        return min(times) if times else None

    def _ensure_expiry_thread(self) -> None:
        with self._thread_lock:
            if self._closed:
                return
            if self._expiry_thread is None:
                self._expiry_thread = threading.Thread(target=self._expiry_loop, name="resource-expiry", daemon=True)
                self._expiry_thread.start()
            self._wake.set()

    def _expiry_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            nxt = self._next_expiry()
            wait = EXPIRY_POLL_SECONDS
            if nxt is not None:
                wait = min(wait, (nxt - self.runtime.clock.now()).total_seconds())
            if wait > 0:
                self._wake.wait(wait)
                continue
            try:
                self.expire_allocations()
                self._expiry_error = ""
            except OrchestrationError as e:  # a store failure: report it, try again later
                if self._closed:
                    return
                self._expiry_error = f"{type(e).__name__}: {e}"
                self._stop.wait(EXPIRY_POLL_SECONDS)

    # -- lifecycle ---------------------------------------------------------------

    def _unsubscribe_quietly(self) -> None:
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()

    def close(self) -> None:
        """Stop the expiry thread, detach from the store, close it if it is ours."""
        with self._thread_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._expiry_thread
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(10)
        self._unsubscribe_quietly()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> ResourceManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- helpers -------------------------------------------------------------------------------


def _check_user(user_id: object) -> None:
    if not isinstance(user_id, str) or not user_id:
        raise ValidationError(f"user_id must be a non-empty string, got {user_id!r}")


def _enum(cls: Any, value: object, name: str) -> Any:
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not one of {[m.value for m in cls]}") from None


def _limits_spec(limits: object, where: str) -> LimitsSpec:
    if limits is None:
        return LimitsSpec()
    if isinstance(limits, ResourceLimits):
        return limits.to_spec()
    if isinstance(limits, Mapping):
        unknown = sorted(set(limits) - set(LimitsSpec.__struct_fields__))
        if unknown:
            raise ValidationError(f"{where}: unknown limit(s) {unknown}; known: {list(LimitsSpec.__struct_fields__)}")
        return LimitsSpec(**dict(limits))
    raise ValidationError(f"{where}: limits must be a ResourceLimits or a dict, got {type(limits).__name__}")


def _mean_utilization(rec: ResourceRecord) -> float:
    pct = rec.utilization()
    return sum(pct.values()) / len(pct) if pct else 0.0


def _difference(d: Definition, wanted: Event, recorded: ResourceAdded) -> str:
    """Why the recorded definition of ``d``'s id differs from ``d`` ("" if it does not)."""
    assert isinstance(wanted, ResourceAdded)
    if wanted.source == "system":  # measured again: only the capacity is comparable
        if wanted.capacity != recorded.capacity:
            return (
                f"resource {recorded.aggregate_id}: measured {wanted.capacity} now, but {recorded.capacity} "
                "is recorded (the recorded definition is used)"
            )
        return ""
    fields = ("name", "resource_type", "description", "capacity", "limits", "metadata", "tags")
    changed = [f for f in fields if getattr(wanted, f) != getattr(recorded, f)]
    if wanted is not recorded and changed and wanted.source != "api":
        return (
            f"resource {recorded.aggregate_id}: {wanted.source.removeprefix('config:')} differs from the recorded "
            f"definition in {changed} (the recorded definition is used)"
        )
    return ""


def load_resource_file(path: Path, source: str = "argument") -> list[Definition]:
    """The resource definitions of a resource configuration file (see the module
    docstring), checked; ValidationError naming the file for anything malformed."""
    where = f"resource config {path} (from {source})"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationError(f"{where} does not exist", details={"path": str(path)}) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError(f"cannot read {where}: {e}", details={"path": str(path)}) from e
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as e:
        raise ValidationError(f"{where}: invalid JSON: {e}", details={"path": str(path)}) from e
    if not isinstance(data, dict) or set(data) - {"resources"} or not isinstance(data.get("resources", []), list):
        raise ValidationError(
            f'{where}: the top level must be {{"resources": [...]}}',
            details={"path": str(path)},
            suggestions=['Write {"resources": [{"id": "gpu0", "type": "gpu", "capacity": {"units": 1}}]}.'],
        )
    out: list[Definition] = []
    seen: set[str] = set()
    meta = EventMeta(timestamp=datetime(1970, 1, 1, tzinfo=UTC))  # define() only validates here
    for i, entry in enumerate(data.get("resources", [])):
        here = f"{where}: resources[{i}]"
        if not isinstance(entry, dict):
            raise ValidationError(f"{here} must be an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - _CONFIG_KEYS)
        if unknown:
            raise ValidationError(f"{here}: unknown key(s) {unknown}; known: {sorted(_CONFIG_KEYS)}")
        for key in ("id", "type"):
            if key not in entry:
                raise ValidationError(f"{here}: {key!r} is required")
        rid = entry["id"]
        if rid in seen:
            raise ValidationError(f"{here}: id {rid!r} is defined twice")
        seen.add(rid)
        try:
            d: Definition = {
                "resource_id": rid,
                "name": entry.get("name") or rid,
                "resource_type": entry["type"],
                "description": entry.get("description", ""),
                "capacity": entry.get("capacity", {}),
                "limits": _limits_spec(entry.get("limits"), f"resource {rid!r}"),
                "metadata": entry.get("metadata", {}),
                "tags": entry.get("tags", []),
                "source": f"config:{path}",
                "status": _enum(ResourceStatus, entry.get("status", "available"), f"resource {rid!r}: status"),
            }
            define(**{k: v for k, v in d.items() if k != "status"}, meta=meta)  # validates
            if d["status"] not in _INITIAL_TRIGGER:
                raise ValidationError(f"resource {rid!r}: status {d['status'].value!r} cannot be configured")
        except ValidationError as e:
            raise ValidationError(f"{where}: resources[{i}]: {e.message}", details={"path": str(path)}) from e
        except TypeError as e:  # a limits value msgspec could not take
            raise ValidationError(f"{here}: {e}", details={"path": str(path)}) from e
        out.append(d)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def system_resource_definitions(data_dir: Path) -> list[Definition]:
    """This machine's CPU cores, memory and the data directory's disk, via psutil."""
    cores = psutil.cpu_count() or 1
    memory_gb = round(psutil.virtual_memory().total / 2**30, 2)
    path = Path(data_dir).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    disk = psutil.disk_usage(str(path))
    host = platform.node()
    return [
        {
            "resource_id": "system_cpu",
            "name": "System CPU",
            "resource_type": ResourceType.CPU,
            "description": f"{cores} logical CPU cores of {host}",
            "capacity": {"cores": cores},
            "metadata": {"host": host, "measured_with": "psutil.cpu_count()"},
            "tags": ["system"],
            "source": "system",
        },
        {
            "resource_id": "system_memory",
            "name": "System Memory",
            "resource_type": ResourceType.MEMORY,
            "description": f"{memory_gb} GB of RAM of {host}",
            "capacity": {"gb": memory_gb},
            "metadata": {"host": host, "measured_with": "psutil.virtual_memory().total"},
            "tags": ["system"],
            "source": "system",
        },
        {
            "resource_id": "system_disk",
            "name": "System Disk",
            "resource_type": ResourceType.DISK,
            "description": f"the file system of {path} on {host}",
            "capacity": {"gb": round(disk.total / 2**30, 2)},
            "metadata": {
                "host": host,
                "path": str(path),
                "free_gb_when_measured": round(disk.free / 2**30, 2),
                "measured_with": "psutil.disk_usage(path).total",
            },
            "tags": ["system"],
            "source": "system",
        },
    ]
