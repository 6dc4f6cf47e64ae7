"""Session view and the handler-failure log, folded from events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from domain.enums import OrchestrationMode, SessionStatus
from domain.events import Recorded
from domain.session import (
    HandlerFailed,
    SessionActivated,
    SessionCancelled,
    SessionClosed,
    SessionCreated,
    SessionExpired,
)

__all__ = ["KINDS", "SessionRecord", "SessionView", "apply", "fold"]

KINDS: frozenset[str] = frozenset({"session", "handler"})
"""The event kinds this view folds; :func:`apply` ignores every other event."""


@dataclass(slots=True)
class SessionRecord:
    id: str
    user_id: str
    mode: OrchestrationMode
    max_parallel_tasks: int
    max_parallel_workflows: int
    timeout_seconds: float | None
    resource_requirements: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    status: SessionStatus = SessionStatus.PENDING
    ended_at: datetime | None = None
    end_reason: str = ""
    owner: str = ""


@dataclass
class SessionView:
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    handler_failures: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0

    def active(self) -> int:
        return sum(1 for s in self.sessions.values() if s.status is SessionStatus.ACTIVE)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(
            {"sessions": self.sessions, "handler_failures": self.handler_failures, "position": self.position}
        )
        return out


def _end(rec: SessionRecord, status: SessionStatus, at: datetime, reason: str) -> None:
    rec.status = status
    rec.ended_at = at
    rec.end_reason = reason


def apply(view: SessionView, recorded: Recorded) -> SessionView:
    event = recorded.event
    if event.KIND not in KINDS:
        return view  # position is that of the last session/handler event, as live
    view.position = recorded.position
    if isinstance(event, HandlerFailed):
        view.handler_failures.append(
            {
                "event": event.aggregate_id,
                "handler": event.handler,
                "error": f"{event.error_type}: {event.error_message}",
                "at": event.timestamp.isoformat(),
                "position": recorded.position,
            }
        )
        return view
    if isinstance(event, SessionCreated):
        view.sessions[event.aggregate_id] = SessionRecord(
            id=event.aggregate_id,
            user_id=event.user_id,
            mode=event.mode,
            max_parallel_tasks=event.max_parallel_tasks,
            max_parallel_workflows=event.max_parallel_workflows,
            timeout_seconds=event.timeout_seconds,
            resource_requirements=event.resource_requirements,
            metadata=event.metadata,
            created_at=event.timestamp,
            owner=event.owner,
        )
        return view
    rec = view.sessions[event.aggregate_id]
    if isinstance(event, SessionActivated):
        rec.status = SessionStatus.ACTIVE
    elif isinstance(event, SessionClosed):
        _end(rec, SessionStatus.COMPLETED, event.timestamp, event.reason or "closed")
    elif isinstance(event, SessionExpired):
        _end(rec, SessionStatus.CANCELLED, event.timestamp, f"expired after {event.timeout_seconds:g}s")
    elif isinstance(event, SessionCancelled):
        _end(rec, SessionStatus.CANCELLED, event.timestamp, event.reason or "cancelled")
    return view


def fold(events: Iterable[Recorded], view: SessionView | None = None) -> SessionView:
    view = view if view is not None else SessionView()
    for recorded in events:
        apply(view, recorded)
    return view
