"""Orchestration sessions, and the record of event handlers that failed.

``session:<id>`` follows the ``SESSION`` lifecycle: ``session.created`` (PENDING, with
every option the spec names) and ``session.activated`` (ACTIVE) are committed together
by ``create_session``; ``session.closed`` (COMPLETED), ``session.expired`` (CANCELLED,
recorded by the engine when ``timeout_seconds`` has passed) and ``session.cancelled``
end it. The session's ``user_id`` is the actor of every event the session causes.

``handler:<event name>`` collects ``handler.failed`` events: a user's event handler
that raised, with its error, so a broken handler is visible in the log and breaks
nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from domain.enums import OrchestrationMode, SessionStatus
from domain.events import Event, register_event_types

__all__ = [
    "SESSION_TRIGGER_OF",
    "HandlerFailed",
    "SessionActivated",
    "SessionCancelled",
    "SessionClosed",
    "SessionCreated",
    "SessionExpired",
]


class _SessionEvent(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "session"


class SessionCreated(_SessionEvent, frozen=True, kw_only=True, tag="session.created"):
    USER_DATA_FIELDS: ClassVar[tuple[str, ...]] = ("resource_requirements", "metadata")

    user_id: str
    mode: OrchestrationMode = OrchestrationMode.RESOURCE_AWARE
    max_parallel_tasks: int = 4
    max_parallel_workflows: int = 2
    timeout_seconds: float | None = None
    resource_requirements: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    owner: str = ""
    """The engine instance that created it (see ``domain/lease.py``): if that engine
    is lost, recovery closes the session and releases what it held."""


class SessionActivated(_SessionEvent, frozen=True, kw_only=True, tag="session.activated"):
    pass


class SessionClosed(_SessionEvent, frozen=True, kw_only=True, tag="session.closed"):
    reason: str = ""


class SessionExpired(_SessionEvent, frozen=True, kw_only=True, tag="session.expired"):
    timeout_seconds: float


class SessionCancelled(_SessionEvent, frozen=True, kw_only=True, tag="session.cancelled"):
    reason: str = ""


class HandlerFailed(Event, frozen=True, kw_only=True, tag="handler.failed"):
    """An event handler raised. ``aggregate_id`` is the handler event name."""

    KIND: ClassVar[str] = "handler"

    handler: str
    error_type: str
    error_message: str
    trigger_position: int


register_event_types(SessionCreated, SessionActivated, SessionClosed, SessionExpired, SessionCancelled, HandlerFailed)

SESSION_TRIGGER_OF: dict[type[Event], str] = {
    SessionActivated: "activate",
    SessionClosed: "close",
    SessionExpired: "expire",
    SessionCancelled: "cancel",
}
FINAL_SESSION = (SessionStatus.COMPLETED, SessionStatus.CANCELLED, SessionStatus.FAILED)
