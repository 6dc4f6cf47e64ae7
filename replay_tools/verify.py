"""Verify a store's log: one pass over every committed row, reporting what contradicts
the domain's rules instead of raising.

Rules (the ``rule`` of each :class:`Violation`):

``contiguous-versions``
    each stream's versions are 1, 2, 3, ... without gaps or repeats (a deleted row
    shows up as a gap).
``legal-transition``
    the first event of a task, workflow run, session or project stream is its creation
    event, and every status change is a legal transition of its lifecycle (the trigger
    maps of :mod:`domain.task`, :mod:`domain.workflow`, :mod:`domain.session` and
    :mod:`domain.project`); resources and allocations are rebuilt with
    :func:`domain.resource.evolve`, and the :class:`CorruptHistoryError` or
    :class:`IllegalTransitionError` it raises is reported.
``causation``
    a non-empty ``causation_id`` shaped like an event id (``<kind>:<id>@<version>``,
    which includes workflow definitions ``workflow:<name>@<version>``) names an event
    at an earlier position of the log.
``undecodable``
    a row the codec cannot decode (malformed JSON, wrong shape, unknown type). The row
    is skipped and the pass goes on; a failure of the store itself ends the pass.

Not in scope (yet): tamper detection of an edited row whose JSON still decodes and
still obeys these rules. That needs a hash chain over the rows, which the log does not
carry today.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from eventsourcing.persistence import PersistenceError

import domain  # noqa: F401 -- registers every event type, so any event decodes
from domain import project as project_domain
from domain import resource as resource_domain
from domain.errors import CorruptHistoryError, IllegalTransitionError, StoreError
from domain.events import Event
from domain.lifecycles import PROJECT, SESSION, TASK, WORKFLOW_RUN, Lifecycle
from domain.session import SESSION_TRIGGER_OF, SessionCreated
from domain.task import TRIGGER_OF, TaskCreated
from domain.workflow import RUN_TRIGGER_OF, WorkflowRunCreated
from engine.store import EventStore
from replay_tools.history import History, opened_store

__all__ = ["RULES", "VerifyReport", "Violation", "verify"]

RULES: tuple[str, ...] = ("contiguous-versions", "legal-transition", "causation", "undecodable")

_EVENT_ID = re.compile(r"^[A-Za-z_][\w.-]*:.+@\d+$")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule at one row of the log."""

    position: int | None
    """Global position of the row (``None``: unknown)."""
    event_id: str
    """The event's id (``""`` when the row could not be decoded)."""
    rule: str
    """One of :data:`RULES`."""
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify`."""

    ok: bool
    events: int
    """Rows read (decoded or not)."""
    violations: tuple[Violation, ...]

    def text(self) -> str:
        """A readable multi-line report: a summary line, then violations by rule."""
        if self.ok:
            return f"OK: {self.events} events, no violations"
        lines = [f"FAILED: {self.events} events, {len(self.violations)} violation(s)"]
        for rule in RULES:
            found = [v for v in self.violations if v.rule == rule]
            if not found:
                continue
            lines.append(f"{rule} ({len(found)}):")
            for v in found:
                where = "?" if v.position is None else str(v.position)
                lines.append(f"  @{where} {v.event_id or '<undecodable>'}: {v.message}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A lifecycle checked by trigger maps: its creation event and status triggers."""

    lifecycle: Lifecycle[Any]
    created: type[Event]
    trigger_of: Mapping[type[Event], str]


_CHECKED: dict[str, _Checked] = {
    "task": _Checked(TASK, TaskCreated, TRIGGER_OF),
    "workflow_run": _Checked(WORKFLOW_RUN, WorkflowRunCreated, RUN_TRIGGER_OF),
    "session": _Checked(SESSION, SessionCreated, SESSION_TRIGGER_OF),
    "project": _Checked(PROJECT, project_domain.ProjectCreated, project_domain.PROJECT_TRIGGER_OF),
}


def _destination(lifecycle: Lifecycle[Any], trigger: str) -> Enum | None:
    """Where ``trigger`` leads, whatever the source (one row per trigger in the tables)."""
    for _, t, dest in lifecycle.edges():
        if t == trigger:
            return dest  # type: ignore[no-any-return]
    return None


def _rows(store: EventStore) -> Iterator[tuple[int, str, bytes]]:
    """Raw ``(position, topic, state)`` rows in global order, so that one undecodable
    row does not hide the rest."""
    select_rows = getattr(store.recorder, "select_rows", None)
    position, page = 1, 1000
    while True:
        try:
            if select_rows is not None:
                rows: list[tuple[int, str, bytes]] = select_rows(position, page, None, ())
            else:
                rows = [(n.id, n.topic, n.state) for n in store.recorder.select_notifications(position, page)]
        except PersistenceError as e:
            raise StoreError(f"reading {store.url} failed: {e}") from e
        yield from rows
        if len(rows) < page:
            return
        position = rows[-1][0] + 1


def verify(store_or_url: History | EventStore | str) -> VerifyReport:
    """Check every rule of the module docstring in one pass over the log."""
    violations: list[Violation] = []
    versions: dict[str, int] = {}
    statuses: dict[str, Enum] = {}
    seen: set[str] = set()
    book = resource_domain.ResourceBook()
    count = 0
    last = 0

    def report(position: int | None, event_id: str, rule: str, message: str) -> None:
        violations.append(Violation(position, event_id, rule, message))

    with opened_store(store_or_url) as store:
        decode = store.codec.decode
        try:
            for position, topic, state in _rows(store):
                count += 1
                last = position
                try:
                    event = decode(topic, state)
                except StoreError as e:
                    report(position, "", "undecodable", f"{topic}: {e}")
                    continue
                eid, stream = event.event_id, event.stream_id
                # contiguous-versions
                expected = versions.get(stream, 0) + 1
                if event.version != expected:
                    what = "a gap" if event.version > expected else "a repeat"
                    report(
                        position,
                        eid,
                        "contiguous-versions",
                        f"{stream}: version {event.version}, expected {expected} ({what})",
                    )
                versions[stream] = max(versions.get(stream, 0), event.version)
                # legal-transition
                checked = _CHECKED.get(event.KIND)
                if checked is not None:
                    problem = _check_lifecycle(checked, event, statuses)
                    if problem:
                        report(position, eid, "legal-transition", problem)
                elif event.KIND in ("resource", "allocation"):
                    try:
                        resource_domain.evolve(book, event)
                    except (CorruptHistoryError, IllegalTransitionError) as e:
                        report(position, eid, "legal-transition", str(e))
                # causation
                cause = event.causation_id
                if cause and _EVENT_ID.match(cause) and cause not in seen:
                    report(position, eid, "causation", f"causation_id {cause!r} names no earlier event")
                seen.add(eid)
        except StoreError as e:
            report(last + 1 if count else None, "", "undecodable", f"reading stopped: {e}")
    return VerifyReport(ok=not violations, events=count, violations=tuple(violations))


def _check_lifecycle(checked: _Checked, event: Event, statuses: dict[str, Enum]) -> str:
    """Apply ``event``'s status change to ``statuses``; the problem found, or ``""``."""
    stream = event.stream_id
    lifecycle = checked.lifecycle
    if isinstance(event, checked.created):
        again = stream in statuses
        statuses[stream] = lifecycle.initial
        return f"{stream} is created twice" if again else ""
    status = statuses.get(stream)
    if status is None:
        return f"{event.type} for {stream} before {checked.created.TYPE}"
    trigger = checked.trigger_of.get(type(event))
    if trigger is None:
        return ""
    if lifecycle.can(status, trigger):
        statuses[stream] = lifecycle.decide(status, trigger)
        return ""
    dest = _destination(lifecycle, trigger)  # carry on from where the event says it is
    if dest is not None:
        statuses[stream] = dest
    return f"{lifecycle.name} {event.aggregate_id}: '{trigger}' ({event.type}) is not legal from {status.value}"
