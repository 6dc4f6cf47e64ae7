"""Resources and their allocations: events, write-side state, and the decisions
commands make. Pure: no clock, no ids, no I/O (timestamps come in an :class:`EventMeta`,
new ids from a function the caller passes).

Two aggregates:

``resource:<id>``  (lifecycle ``RESOURCE``)
    ``resource.added`` records the whole definition (name, type, capacity, limits,
    metadata, tags, where it came from); the resource starts AVAILABLE.
    ``resource.status_changed`` records an operator trigger (``reserve``,
    ``unreserve``, ``start_maintenance``, ``end_maintenance``, ``disable``, ``enable``).
    ``resource.allocated`` (trigger ``allocate``: AVAILABLE/IN_USE -> IN_USE) and
    ``resource.released`` (``release_some``: IN_USE -> IN_USE while other allocations
    remain; ``release_all``: IN_USE -> AVAILABLE for the last one) move the capacity.
    Every grant and every release writes to the resource's own stream, so the stream
    version is the optimistic-concurrency guard on its capacity: two writers that
    decided from the same version cannot both commit.

``allocation:<id>``  (lifecycle ``ALLOCATION``)
    ``allocation.granted`` (PENDING -> ACTIVE: resource, user, amounts, expiry, the
    request it belongs to), then one of ``allocation.released``,
    ``allocation.expired`` or ``allocation.revoked`` (the resource was disabled).
    ``allocation.rejected`` (PENDING -> REJECTED) is recorded on the stream of the
    *request* (``allocation:<request id>``): a rejected request owns no allocation, and
    the event says which requirements could not be met and why, per candidate.

Requests are all-or-nothing: :func:`request` returns either every grant of the
request (one ``allocation.granted`` + ``resource.allocated`` pair per requirement, to
be committed in one transaction) or exactly one ``allocation.rejected``.

Best fit: for each requirement the candidates are the resources of that type that are
AVAILABLE or IN_USE, have every requested capacity key, have room for the amounts
(within their limits) and accept one more user. The chosen one is the candidate whose
utilization *after* the allocation would be lowest, measured as the highest percentage
over the requested keys; ties go to the resource added first. So load spreads over
equal resources, and a small request does not fill a nearly full one while an emptier
one has room.

Limits (``LimitsSpec``, the spec's ``ResourceLimits``) are enforced at allocation:
``max_cpu_cores`` caps ``cores`` of a CPU resource, ``max_memory_gb``/``max_disk_gb``
cap ``gb`` of a memory/disk resource, ``max_network_mbps`` caps ``mbps`` of a network
resource, ``max_requests_per_minute`` caps ``requests_per_minute`` of any resource,
``max_concurrent_users`` bounds the distinct users holding it, and ``timeout_seconds``
bounds an allocation's lifetime (an allocation without a timeout gets this one).

Arithmetic: a resource's allocated amount per key is recomputed from its active
allocations (an exact integer sum when every amount is an integer, ``math.fsum``
otherwise), never accumulated, so grant/release order cannot leave rounding residue and
"allocated equals the sum of the active allocations" holds exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, TypeGuard

import msgspec

from domain.enums import AllocationStatus, ResourceStatus, ResourceType
from domain.errors import CorruptHistoryError, ValidationError
from domain.events import Event, EventMeta, register_event_types
from domain.lifecycles import ALLOCATION, RESOURCE

__all__ = [
    "ALLOCATION_EVENT_TYPES",
    "OPERATOR_TRIGGERS",
    "RESOURCE_EVENT_TYPES",
    "RESOURCE_TOPICS",
    "AllocationExpired",
    "AllocationGranted",
    "AllocationRejected",
    "AllocationReleased",
    "AllocationRevoked",
    "AllocationState",
    "LimitsSpec",
    "Number",
    "ResourceAdded",
    "ResourceAllocated",
    "ResourceBook",
    "ResourceReleased",
    "ResourceState",
    "ResourceStatusChanged",
    "allocatable",
    "change_status",
    "check_amounts",
    "check_requirements",
    "check_timeout",
    "define",
    "due",
    "evolve",
    "release",
    "request",
    "total",
    "utilization",
]

Number = int | float
RESOURCE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/\-]{0,127}$")
OPERATOR_TRIGGERS = ("reserve", "unreserve", "start_maintenance", "end_maintenance", "disable", "enable")
ReleaseReason = Literal["released", "expired", "revoked"]


class LimitsSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A resource's limits, as recorded (the spec's ``ResourceLimits``); ``None`` = no limit."""

    max_cpu_cores: int | float | None = None
    max_memory_gb: int | float | None = None
    max_disk_gb: int | float | None = None
    max_network_mbps: int | float | None = None
    max_concurrent_users: int | None = None
    max_requests_per_minute: int | float | None = None
    timeout_seconds: int | float | None = None


# -- events ------------------------------------------------------------------------------


class _ResourceEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "resource"


class ResourceAdded(_ResourceEvent, frozen=True, kw_only=True, tag="resource.added"):
    """A resource exists, AVAILABLE. ``source``: ``"api"``, ``"system"`` (measured on
    this machine) or ``"config:<file>"``."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("capacity", "metadata")

    name: str
    resource_type: ResourceType
    description: str = ""
    capacity: dict[str, int | float] = msgspec.field(default_factory=dict)
    limits: LimitsSpec = msgspec.field(default_factory=LimitsSpec)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[str] = msgspec.field(default_factory=list)
    source: str = "api"


class ResourceStatusChanged(_ResourceEvent, frozen=True, kw_only=True, tag="resource.status_changed"):
    """An operator trigger fired; ``status`` is where it led."""

    trigger: str
    status: ResourceStatus
    reason: str = ""


class ResourceAllocated(_ResourceEvent, frozen=True, kw_only=True, tag="resource.allocated"):
    """Trigger ``allocate``: ``amounts`` of this resource now belong to the allocation."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("amounts",)

    allocation_id: str
    user_id: str
    amounts: dict[str, int | float]
    status: ResourceStatus = ResourceStatus.IN_USE


class ResourceReleased(_ResourceEvent, frozen=True, kw_only=True, tag="resource.released"):
    """The allocation's ``amounts`` came back (``release_some`` while others remain,
    ``release_all`` for the last); ``held_seconds`` adds to the usage time."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("amounts",)

    allocation_id: str
    user_id: str
    amounts: dict[str, int | float]
    trigger: Literal["release_some", "release_all"]
    status: ResourceStatus
    reason: ReleaseReason = "released"
    held_seconds: float = 0.0


class _AllocationEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "allocation"


class AllocationGranted(_AllocationEvent, frozen=True, kw_only=True, tag="allocation.granted"):
    """One requirement of request ``request_id`` is held on ``resource_id`` (ACTIVE)."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("amounts",)

    request_id: str
    requirement: str
    resource_id: str
    user_id: str
    amounts: dict[str, int | float]
    timeout: float | None = None
    expires_at: datetime | None = None


class AllocationReleased(_AllocationEvent, frozen=True, kw_only=True, tag="allocation.released"):
    resource_id: str
    user_id: str
    held_seconds: float = 0.0


class AllocationExpired(_AllocationEvent, frozen=True, kw_only=True, tag="allocation.expired"):
    """Its ``expires_at`` passed; ``held_seconds`` counts up to ``expires_at``."""

    resource_id: str
    user_id: str
    expires_at: datetime
    held_seconds: float = 0.0


class AllocationRevoked(_AllocationEvent, frozen=True, kw_only=True, tag="allocation.revoked"):
    """Taken back because its resource was disabled."""

    resource_id: str
    user_id: str
    reason: str = ""
    held_seconds: float = 0.0


class AllocationRejected(_AllocationEvent, frozen=True, kw_only=True, tag="allocation.rejected"):
    """Request ``aggregate_id`` could not be met, so nothing of it was granted.
    ``unmet``: requirement key -> why each candidate resource could not take it."""

    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("requirements",)

    user_id: str
    requirements: dict[str, dict[str, int | float]]
    unmet: dict[str, list[str]]
    reason: str
    timeout: float | None = None


RESOURCE_EVENT_TYPES: tuple[type[_ResourceEvent], ...] = (
    ResourceAdded,
    ResourceStatusChanged,
    ResourceAllocated,
    ResourceReleased,
)
ALLOCATION_EVENT_TYPES: tuple[type[_AllocationEvent], ...] = (
    AllocationGranted,
    AllocationReleased,
    AllocationExpired,
    AllocationRevoked,
    AllocationRejected,
)
register_event_types(*RESOURCE_EVENT_TYPES, *ALLOCATION_EVENT_TYPES)
RESOURCE_TOPICS: tuple[str, ...] = tuple(cls.TYPE for cls in (*RESOURCE_EVENT_TYPES, *ALLOCATION_EVENT_TYPES))

_END_TRIGGER: dict[type[Event], str] = {
    AllocationReleased: "release",
    AllocationExpired: "expire",
    AllocationRevoked: "revoke",
}


# -- arithmetic --------------------------------------------------------------------------


def total(values: Iterable[Number]) -> Number:
    """Exact sum: an ``int`` when every value is one, else the correctly rounded
    ``math.fsum`` (independent of order)."""
    items = list(values)
    if all(isinstance(v, int) for v in items):
        return sum(items)
    return math.fsum(items)


def utilization(allocated: Mapping[str, Number], capacity: Mapping[str, Number]) -> dict[str, float]:
    """Percent of each capacity key in use (0 for a zero capacity with nothing used)."""
    out: dict[str, float] = {}
    for key, cap in capacity.items():
        used = allocated.get(key, 0)
        out[key] = 100.0 * used / cap if cap > 0 else (0.0 if used <= 0 else 100.0)
    return out


def _limit_caps(resource_type: ResourceType, limits: LimitsSpec) -> dict[str, Number]:
    caps: dict[str, Number] = {}
    typed = (
        (ResourceType.CPU, "cores", limits.max_cpu_cores),
        (ResourceType.MEMORY, "gb", limits.max_memory_gb),
        (ResourceType.DISK, "gb", limits.max_disk_gb),
        (ResourceType.NETWORK, "mbps", limits.max_network_mbps),
    )
    for rtype, key, cap in typed:
        if cap is not None and resource_type is rtype:
            caps[key] = cap
    if limits.max_requests_per_minute is not None:
        caps["requests_per_minute"] = limits.max_requests_per_minute
    return caps


def allocatable(added: ResourceAdded) -> dict[str, Number]:
    """Per capacity key, how much may be allocated in total: the capacity, lowered by
    the limits that apply to that key."""
    caps = _limit_caps(added.resource_type, added.limits)
    return {k: min(v, caps[k]) if k in caps else v for k, v in added.capacity.items()}


# -- input checks (pure; raise ValidationError, record nothing) -------------------------


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_amounts(value: object, where: str, *, allow_empty: bool) -> dict[str, Number]:
    """A mapping of capacity key -> finite number >= 0."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a dict of capacity key -> amount, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValidationError(f"{where} names no capacity key; give e.g. {{'cores': 2}}")
    out: dict[str, Number] = {}
    for key, amount in value.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"{where}: capacity key {key!r} is not a non-empty string")
        if not _is_number(amount):
            raise ValidationError(
                f"{where}[{key!r}] must be a finite number, got {amount!r}", details={"key": key, "value": repr(amount)}
            )
        if amount < 0:
            raise ValidationError(f"{where}[{key!r}] must be >= 0, got {amount!r}", details={"key": key})
        out[key] = amount
    return out


def check_requirements(requirements: object) -> dict[str, dict[str, Number]]:
    """``{resource type value: {capacity key: amount}}``; keys are normalised to the
    type's value (``ResourceType.CPU`` -> ``"cpu"``)."""
    if not isinstance(requirements, Mapping):
        raise ValidationError(
            f"requirements must be a dict like {{'cpu': {{'cores': 2}}}}, got {type(requirements).__name__}"
        )
    out: dict[str, dict[str, Number]] = {}
    known = [t.value for t in ResourceType]
    for key, amounts in requirements.items():
        try:
            rtype = ResourceType(key)
        except ValueError:
            raise ValidationError(
                f"requirement key {key!r} is not a resource type; known: {known}",
                code="UNKNOWN_RESOURCE_TYPE",
                details={"key": repr(key), "known": known},
            ) from None
        out[rtype.value] = check_amounts(amounts, f"requirements[{rtype.value!r}]", allow_empty=False)
    return out


def check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if not _is_number(timeout) or not timeout > 0:
        raise ValidationError(f"timeout must be a number of seconds > 0, or None; got {timeout!r}")
    return float(timeout)


def _check_limits(limits: LimitsSpec, where: str) -> None:
    for name in LimitsSpec.__struct_fields__:
        value = getattr(limits, name)
        if value is None:
            continue
        if not _is_number(value) or value < 0:
            raise ValidationError(f"{where}: limits.{name} must be a finite number >= 0 or None, got {value!r}")
    if limits.max_concurrent_users is not None and (
        not isinstance(limits.max_concurrent_users, int) or limits.max_concurrent_users < 1
    ):
        raise ValidationError(f"{where}: limits.max_concurrent_users must be an integer >= 1 or None")
    if limits.timeout_seconds is not None and not limits.timeout_seconds > 0:
        raise ValidationError(f"{where}: limits.timeout_seconds must be > 0 or None")


# -- state -------------------------------------------------------------------------------


@dataclass(slots=True)
class ResourceState:
    """Write-side state of one resource: its definition, status and active allocations."""

    added: ResourceAdded
    version: int
    status: ResourceStatus = ResourceStatus.AVAILABLE
    active: dict[str, ResourceAllocated] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.added.aggregate_id

    def allocated(self, extra: Mapping[str, Number] | None = None) -> dict[str, Number]:
        """Allocated amount per capacity key (plus ``extra``, for "what if")."""
        out: dict[str, Number] = {}
        for key in self.added.capacity:
            values = [a.amounts[key] for a in self.active.values() if key in a.amounts]
            if extra is not None and key in extra:
                values.append(extra[key])
            out[key] = total(values)
        return out

    def users(self) -> set[str]:
        return {a.user_id for a in self.active.values()}

    def why_not(self, user_id: str, amounts: Mapping[str, Number]) -> str | None:
        """Why this resource cannot take ``amounts`` for ``user_id`` now (None: it can)."""
        if self.status not in (ResourceStatus.AVAILABLE, ResourceStatus.IN_USE):
            return f"{self.id}: status {self.status.value}"
        missing = [k for k in amounts if k not in self.added.capacity]
        if missing:
            return f"{self.id}: has no capacity key(s) {missing}"
        cap = self.added.limits.max_concurrent_users
        users = self.users()
        if cap is not None and user_id not in users and len(users) >= cap:
            return f"{self.id}: max_concurrent_users {cap} reached"
        room = allocatable(self.added)
        after = self.allocated(amounts)
        short = [
            f"{k} needs {amounts[k]}, free {total([room[k], -self.allocated()[k]])} of {room[k]}"
            for k in amounts
            if after[k] > room[k]
        ]
        return f"{self.id}: {'; '.join(short)}" if short else None

    def fit_score(self, amounts: Mapping[str, Number]) -> float:
        """Highest utilization (percent) over the requested keys after taking ``amounts``."""
        after = self.allocated(amounts)
        pct = utilization({k: after[k] for k in amounts}, {k: self.added.capacity[k] for k in amounts})
        return max(pct.values(), default=0.0)


@dataclass(slots=True)
class AllocationState:
    granted: AllocationGranted
    version: int
    status: AllocationStatus = AllocationStatus.ACTIVE

    @property
    def id(self) -> str:
        return self.granted.aggregate_id


@dataclass
class ResourceBook:
    """Write-side state of every resource and allocation (in log order)."""

    resources: dict[str, ResourceState] = field(default_factory=dict)
    allocations: dict[str, AllocationState] = field(default_factory=dict)
    rejected: dict[str, AllocationRejected] = field(default_factory=dict)
    # ACTIVE allocations in grant order, overall and per user: an index kept by evolve()
    # so that asking for a user's allocations does not scan the whole history.
    active_all: dict[str, AllocationState] = field(default_factory=dict)
    active_by_user: dict[str, dict[str, AllocationState]] = field(default_factory=dict)

    def active(self, user_id: str | None = None) -> list[AllocationState]:
        if user_id is None:
            return list(self.active_all.values())
        return list(self.active_by_user.get(user_id, {}).values())


def _next(state_version: int, event: Event) -> None:
    if event.version != state_version + 1:
        raise CorruptHistoryError(
            f"{event.stream_id}: version {event.version} follows {state_version} (a gap or a repeat in the log)"
        )


def evolve(book: ResourceBook, event: Event) -> ResourceBook:
    """Apply one resource or allocation event (others are ignored). Status changes are
    checked against the lifecycles, so a log that contradicts them is reported."""
    if isinstance(event, ResourceAdded):
        if event.aggregate_id in book.resources:
            raise CorruptHistoryError(f"resource {event.aggregate_id} is added twice")
        book.resources[event.aggregate_id] = ResourceState(added=event, version=event.version)
        return book
    if isinstance(event, _ResourceEvent):
        res = book.resources.get(event.aggregate_id)
        if res is None:
            raise CorruptHistoryError(f"{event.type} for resource {event.aggregate_id} before resource.added")
        _next(res.version, event)
        if isinstance(event, ResourceStatusChanged):
            res.status = RESOURCE.decide(res.status, event.trigger, res.id)
        elif isinstance(event, ResourceAllocated):
            res.status = RESOURCE.decide(res.status, "allocate", res.id)
            res.active[event.allocation_id] = event
        elif isinstance(event, ResourceReleased):
            res.status = RESOURCE.decide(res.status, event.trigger, res.id)
            if res.active.pop(event.allocation_id, None) is None:
                raise CorruptHistoryError(f"resource {res.id} releases {event.allocation_id}, which it does not hold")
            if (event.trigger == "release_all") != (not res.active):
                raise CorruptHistoryError(f"resource {res.id}: {event.trigger} with {len(res.active)} still held")
        res.version = event.version
        return book
    if isinstance(event, AllocationGranted):
        ALLOCATION.decide(ALLOCATION.initial, "grant", event.aggregate_id)
        granted = AllocationState(granted=event, version=event.version)
        book.allocations[event.aggregate_id] = granted
        book.active_all[granted.id] = granted
        book.active_by_user.setdefault(event.user_id, {})[granted.id] = granted
    elif isinstance(event, AllocationRejected):
        ALLOCATION.decide(ALLOCATION.initial, "reject", event.aggregate_id)
        book.rejected[event.aggregate_id] = event
    elif isinstance(event, _AllocationEvent):
        alloc = book.allocations.get(event.aggregate_id)
        if alloc is None:
            raise CorruptHistoryError(f"{event.type} for allocation {event.aggregate_id} before allocation.granted")
        _next(alloc.version, event)
        alloc.status = ALLOCATION.decide(alloc.status, _END_TRIGGER[type(event)], alloc.id)
        alloc.version = event.version
        if alloc.status is not AllocationStatus.ACTIVE:
            book.active_all.pop(alloc.id, None)
            mine = book.active_by_user.get(alloc.granted.user_id)
            if mine is not None:
                mine.pop(alloc.id, None)
                if not mine:
                    del book.active_by_user[alloc.granted.user_id]
    return book


# -- decisions ---------------------------------------------------------------------------


def _env(aggregate_id: str, version: int, meta: EventMeta, *, correlation: str = "", cause: str = "") -> dict[str, Any]:
    return {
        "aggregate_id": aggregate_id,
        "version": version,
        "timestamp": meta.timestamp,
        "actor": meta.actor,
        "correlation_id": correlation or meta.correlation_id,
        "causation_id": cause or meta.causation_id,
    }


def define(
    *,
    resource_id: object,
    name: object,
    resource_type: object,
    description: object = "",
    capacity: object = None,
    limits: LimitsSpec | None = None,
    metadata: object = None,
    tags: object = None,
    source: str = "api",
    meta: EventMeta,
) -> ResourceAdded:
    """The ``resource.added`` event of a valid definition (raises ValidationError)."""
    if not isinstance(resource_id, str) or not RESOURCE_ID.match(resource_id):
        raise ValidationError(
            f"resource id {resource_id!r} is not valid: use letters, digits and '_.:@/-' (at most 128)",
            details={"id": repr(resource_id)},
        )
    where = f"resource {resource_id!r}"
    try:
        if not isinstance(resource_type, str):
            raise ValueError(resource_type)
        rtype = ResourceType(resource_type)
    except ValueError:
        raise ValidationError(
            f"{where}: type {resource_type!r} is not a resource type; known: {[t.value for t in ResourceType]}",
            code="UNKNOWN_RESOURCE_TYPE",
        ) from None
    if name is None or name == "":
        name = resource_id
    if not isinstance(name, str):
        raise ValidationError(f"{where}: name must be a string, got {name!r}")
    if not isinstance(description, str):
        raise ValidationError(f"{where}: description must be a string, got {description!r}")
    amounts = check_amounts({} if capacity is None else capacity, f"{where}: capacity", allow_empty=True)
    limits = limits if limits is not None else LimitsSpec()
    _check_limits(limits, where)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise ValidationError(f"{where}: metadata must be a dict with string keys")
    if tags is None:
        tags = []
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise ValidationError(f"{where}: tags must be a list of strings, got {tags!r}")
    return ResourceAdded(
        **_env(resource_id, 1, meta),
        name=name,
        resource_type=rtype,
        description=description,
        capacity=amounts,
        limits=limits,
        metadata=dict(metadata),
        tags=list(tags),
        source=source,
    )


def request(
    book: ResourceBook,
    *,
    request_id: str,
    user_id: str,
    requirements: Mapping[str, Mapping[str, Number]],
    timeout: float | None,
    new_id: Callable[[], str],
    meta: EventMeta,
) -> list[Event]:
    """Decide an all-or-nothing request (``requirements`` already passed
    :func:`check_requirements`): every grant, or one rejection naming what was unmet.

    A requirement naming a capacity key that no resource of its type has is malformed
    (ValidationError); one that no resource can take *now* (or no resource of the type
    exists) is unmet and rejected."""
    chosen: dict[str, ResourceState] = {}
    unmet: dict[str, list[str]] = {}
    for key, amounts in requirements.items():
        rtype = ResourceType(key)
        of_type = [r for r in book.resources.values() if r.added.resource_type is rtype]
        if of_type and not any(all(k in r.added.capacity for k in amounts) for r in of_type):
            keys = sorted({k for r in of_type for k in r.added.capacity})
            raise ValidationError(
                f"requirements[{key!r}] names capacity key(s) {sorted(set(amounts) - set(keys))} that no {key} "
                f"resource has; known keys: {keys}",
                code="UNKNOWN_CAPACITY_KEY",
                details={"requirement": key, "known_keys": keys},
            )
        reasons: list[str] = []
        candidates: list[ResourceState] = []
        for res in of_type:
            problem = res.why_not(user_id, amounts)
            if problem is None:
                candidates.append(res)
            else:
                reasons.append(problem)
        if not of_type:
            reasons.append(f"no resource of type {key!r}")
        if candidates:
            order = {rid: i for i, rid in enumerate(book.resources)}
            chosen[key] = min(candidates, key=lambda r: (r.fit_score(amounts), order[r.id]))
        else:
            unmet[key] = reasons
    plain = {k: dict(v) for k, v in requirements.items()}
    if unmet:
        reason = "; ".join(f"{k} {dict(requirements[k])}: {', '.join(v)}" for k, v in unmet.items())
        return [
            AllocationRejected(
                **_env(request_id, 1, meta, correlation=request_id),
                user_id=user_id,
                requirements=plain,
                unmet=unmet,
                reason=reason,
                timeout=timeout,
            )
        ]
    events: list[Event] = []
    for key, res in chosen.items():
        allocation_id = new_id()
        bounds = [float(t) for t in (timeout, res.added.limits.timeout_seconds) if t is not None]
        lifetime = min(bounds) if bounds else None
        granted = AllocationGranted(
            **_env(allocation_id, 1, meta, correlation=request_id),
            request_id=request_id,
            requirement=key,
            resource_id=res.id,
            user_id=user_id,
            amounts=plain[key],
            timeout=lifetime,
            expires_at=meta.timestamp + timedelta(seconds=lifetime) if lifetime is not None else None,
        )
        RESOURCE.decide(res.status, "allocate", res.id)
        events.append(granted)
        events.append(
            ResourceAllocated(
                **_env(res.id, res.version + 1, meta, correlation=request_id, cause=granted.event_id),
                allocation_id=allocation_id,
                user_id=user_id,
                amounts=plain[key],
            )
        )
    return events


def release(
    book: ResourceBook,
    allocation_ids: Iterable[str],
    *,
    reason: ReleaseReason,
    meta: EventMeta,
    note: str = "",
) -> list[Event]:
    """Events that end the given ACTIVE allocations (released, expired or revoked) and
    give their amounts back; a resource's last active allocation is ``release_all``."""
    versions: dict[str, int] = {}
    remaining: dict[str, set[str]] = {}
    events: list[Event] = []
    for allocation_id in allocation_ids:
        alloc = book.allocations[allocation_id]
        g = alloc.granted
        ALLOCATION.decide(alloc.status, {"released": "release", "expired": "expire", "revoked": "revoke"}[reason])
        res = book.resources[g.resource_id]
        held = remaining.setdefault(res.id, set(res.active))
        held.discard(allocation_id)
        trigger: Literal["release_some", "release_all"] = "release_some" if held else "release_all"
        status = RESOURCE.decide(res.status, trigger, res.id)
        version = versions.get(res.id, res.version) + 1
        versions[res.id] = version
        end = meta.timestamp
        if reason == "expired" and g.expires_at is not None:
            end = min(end, g.expires_at)
        seconds = max(0.0, (end - g.timestamp).total_seconds())
        env = _env(allocation_id, alloc.version + 1, meta, correlation=g.request_id, cause=g.event_id)
        ended: Event
        if reason == "released":
            ended = AllocationReleased(**env, resource_id=res.id, user_id=g.user_id, held_seconds=seconds)
        elif reason == "expired":
            assert g.expires_at is not None
            ended = AllocationExpired(
                **env, resource_id=res.id, user_id=g.user_id, expires_at=g.expires_at, held_seconds=seconds
            )
        else:
            ended = AllocationRevoked(**env, resource_id=res.id, user_id=g.user_id, reason=note, held_seconds=seconds)
        events.append(ended)
        events.append(
            ResourceReleased(
                **_env(res.id, version, meta, correlation=g.request_id, cause=ended.event_id),
                allocation_id=allocation_id,
                user_id=g.user_id,
                amounts=g.amounts,
                trigger=trigger,
                status=status,
                reason=reason,
                held_seconds=seconds,
            )
        )
    return events


def change_status(book: ResourceBook, resource_id: str, trigger: str, *, reason: str, meta: EventMeta) -> list[Event]:
    """An operator trigger on a resource. ``disable`` of an IN_USE resource first
    revokes its allocations (they cannot be served by a disabled resource)."""
    if trigger not in OPERATOR_TRIGGERS:
        raise ValidationError(
            f"trigger {trigger!r} cannot be fired by hand; use one of {list(OPERATOR_TRIGGERS)} "
            "(allocate/release_* follow the allocations)",
            details={"trigger": trigger},
        )
    res = book.resources[resource_id]
    RESOURCE.decide(res.status, trigger, resource_id)
    events: list[Event] = []
    version = res.version
    if trigger == "disable" and res.active:
        note = f"resource {resource_id} was disabled" + (f": {reason}" if reason else "")
        events = release(book, list(res.active), reason="revoked", meta=meta, note=note)
        version += len(res.active)
        status = RESOURCE.decide(ResourceStatus.AVAILABLE, trigger, resource_id)
    else:
        status = RESOURCE.decide(res.status, trigger, resource_id)
    events.append(
        ResourceStatusChanged(**_env(resource_id, version + 1, meta), trigger=trigger, status=status, reason=reason)
    )
    return events


def due(book: ResourceBook, now: datetime) -> list[str]:
    """ACTIVE allocations whose ``expires_at`` is at or before ``now`` (earliest first)."""
    found = [
        (a.granted.expires_at, a.id)
        for a in book.active()
        if a.granted.expires_at is not None and a.granted.expires_at <= now
    ]
    return [aid for _, aid in sorted(found)]
