"""The event envelope and the registry of event types.

Every event is a frozen, keyword-only ``msgspec.Struct`` whose tag (``type``) is a
stable name such as ``task.started``, independent of Python class and module names. The
envelope fields every event carries:

``aggregate_id`` and ``version``
    which aggregate the event belongs to and its position in that aggregate's stream
    (1, 2, 3, ... without gaps; the store enforces uniqueness, which is the optimistic
    concurrency guard).
``timestamp``
    when it happened, UTC, timezone-aware, from the injected clock.
``actor``
    who caused it: a session's ``user_id`` or ``"system"``.
``correlation_id``
    the unit of work it belongs to (a session, a workflow run, an orchestrator run).
``causation_id``
    the id of the event that caused it (``""`` when a user command caused it).
``schema``
    the payload's schema version; older versions are upcast on read.

The global position is not part of the event: the store assigns it on commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

import msgspec

__all__ = [
    "EVENT_TYPES",
    "UPCASTERS",
    "Event",
    "EventMeta",
    "Recorded",
    "event_schema",
    "event_type_name",
    "register_event_types",
    "register_upcaster",
    "upcasters_for",
]


class EventMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Envelope fields shared by the events of one decision."""

    timestamp: datetime
    actor: str = "system"
    correlation_id: str = ""
    causation_id: str = ""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event. Subclasses pass ``tag="kind.verb"`` and set ``KIND``."""

    KIND: ClassVar[str] = ""
    TYPE: ClassVar[str] = ""  # the stable type name, set by register_event_types
    # Fields holding arbitrary user data (``Any``/dicts): the codec checks that they
    # survive JSON unchanged; typed fields are guaranteed by their types.
    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ()

    aggregate_id: str
    version: int
    timestamp: datetime
    actor: str = "system"
    correlation_id: str = ""
    causation_id: str = ""
    schema: int = 1

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def event_id(self) -> str:
        """Stable, unique id: ``<kind>:<aggregate id>@<version>``."""
        return f"{self.KIND}:{self.aggregate_id}@{self.version}"

    @property
    def stream_id(self) -> str:
        """The store's stream (originator) id: aggregate ids are unique per kind."""
        return f"{self.KIND}:{self.aggregate_id}"


EVENT_TYPES: dict[str, type[Event]] = {}


def register_event_types(*types: type[Event]) -> None:
    """Make event types known to the codec and the schema by their stable names."""
    for cls in types:
        name = event_type_name(cls)
        if EVENT_TYPES.get(name, cls) is not cls:
            raise TypeError(f"event type name {name!r} is already taken by {EVENT_TYPES[name]}")
        EVENT_TYPES[name] = cls
        cls.TYPE = name


def event_type_name(cls: type[Event]) -> str:
    tag = cls.__struct_config__.tag
    # msgspec defaults a subclass's tag to its class name; a stable name is explicit
    # and dotted ("kind.verb"), so a forgotten tag= is caught here.
    if not isinstance(tag, str) or "." not in tag:
        raise TypeError(f"{cls.__name__} is not a concrete event type (no explicit 'kind.verb' tag)")
    return tag


class Recorded(msgspec.Struct, frozen=True):
    """An event as committed: with the global position the store gave it."""

    position: int
    event: Event


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[str, dict[int, Upcaster]] = {}
_NO_UPCASTERS: Mapping[int, Upcaster] = MappingProxyType({})
UPCASTERS: Mapping[str, Mapping[int, Upcaster]] = MappingProxyType(_UPCASTERS)
"""Every registered upcaster: type name -> schema -> function (read-only, live)."""


def register_upcaster(type_name: str, from_schema: int, fn: Upcaster) -> None:
    """Register ``fn`` to turn the raw dict of ``type_name`` at ``from_schema`` into the
    dict of schema ``from_schema + 1``. Applied in sequence on read."""
    _UPCASTERS.setdefault(type_name, {})[from_schema] = fn


def upcasters_for(type_name: str) -> Mapping[int, Upcaster]:
    return _UPCASTERS.get(type_name, _NO_UPCASTERS)


def event_schema(types: Iterable[type[Event]] | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the given event types (default: all registered)."""
    chosen = tuple(types) if types is not None else tuple(EVENT_TYPES[name] for name in sorted(EVENT_TYPES))
    (schemas, components) = msgspec.json.schema_components(chosen, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "codomyrmex-orchestration events",
        "anyOf": list(schemas),
        "$defs": components,
    }
