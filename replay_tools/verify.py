"""Verify a store's log: one pass over every committed row, reporting what contradicts
the domain's rules instead of raising.

Rules (the ``rule`` of each :class:`Violation`):

``contiguous-versions``
    each stream's versions are 1, 2, 3, ... without gaps or repeats (a deleted row
    shows up as a gap).
``legal-transition``
    the first event of a task, workflow run, session or project stream is its creation
    event, and every status change is a legal transition of its lifecycle (the trigger
    maps of :mod:`domain.task`, :mod:`domain.workflow`, :mod:`domain.session`,
    :mod:`domain.project` and :mod:`domain.lease`); resources and allocations are rebuilt with
    :func:`domain.resource.evolve`, and the :class:`CorruptHistoryError` or
    :class:`IllegalTransitionError` it raises is reported.
``causation``
    a non-empty ``causation_id`` shaped like an event id (``<kind>:<id>@<version>``,
    which includes workflow definitions ``workflow:<name>@<version>``) names an event
    at an earlier position of the log.
``undecodable``
    a row the codec cannot decode (malformed JSON, wrong shape, unknown type). The row
    is skipped and the pass goes on; a failure of the store itself ends the pass.
``hash-chain``
    every row's bytes (ids, version, type, JSON) match the link stored with it, each link
    follows from the one before (see :mod:`engine.chain`), and the store's chain head
    names the last row and its link. This is what catches an edited row whose JSON still
    decodes and obeys every other rule, and a deleted last row. After a broken link the
    pass goes on from the stored link, so each tampered row is reported once, where it
    is. Rows written before the chain existed carry no link (:attr:`VerifyReport.unchained`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import domain  # noqa: F401 -- registers every event type, so any event decodes
from domain import lease as lease_domain
from domain import project as project_domain
from domain import resource as resource_domain
from domain.errors import CorruptHistoryError, IllegalTransitionError, StoreError
from domain.events import Event
from domain.lifecycles import LEASE, PROJECT, SESSION, TASK, WORKFLOW_RUN, Lifecycle
from domain.session import SESSION_TRIGGER_OF, SessionCreated
from domain.task import TRIGGER_OF, TaskCreated
from domain.workflow import RUN_TRIGGER_OF, WorkflowRunCreated
from engine import chain
from engine.recorders import ChainHead
from engine.store import EventStore
from replay_tools.history import History, opened_store

__all__ = ["RULES", "VerifyReport", "Violation", "verify"]

RULES: tuple[str, ...] = ("contiguous-versions", "legal-transition", "causation", "undecodable", "hash-chain")

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
    head: str = chain.GENESIS
    """The link of the last row, recomputed from the log: keep it elsewhere to notice a
    rewrite of the whole log later."""
    unchained: int = 0
    """Rows written before the hash chain existed (no link of their own)."""

    def text(self) -> str:
        """A readable multi-line report: a summary line, then violations by rule."""
        older = f" ({self.unchained} written before the hash chain)" if self.unchained else ""
        if self.ok:
            return f"OK: {self.events} events{older}, no violations; chain head {self.head}"
        lines = [f"FAILED: {self.events} events{older}, {len(self.violations)} violation(s)"]
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
    "lease": _Checked(LEASE, lease_domain.LeaseAcquired, lease_domain.LEASE_TRIGGER_OF),
}


def _destination(lifecycle: Lifecycle[Any], trigger: str) -> Enum | None:
    """Where ``trigger`` leads, whatever the source (one row per trigger in the tables)."""
    for _, t, dest in lifecycle.edges():
        if t == trigger:
            return dest  # type: ignore[no-any-return]
    return None


class _ChainCheck:
    """The ``hash-chain`` rule, fed one raw row at a time."""

    def __init__(self, report: Callable[[int | None, str, str, str], None], legacy: int) -> None:
        self.report = report
        self.legacy = legacy  # rows up to here were written before the chain existed
        self.previous: str | None = chain.GENESIS  # None: unknown (the row before lost its link)
        self.last_link = chain.GENESIS
        self.position = 0
        self.unchained = 0
        self.chained = False

    def row(self, position: int, originator_id: str, version: int, topic: str, state: bytes) -> None:
        body, stored = chain.unseal(state)
        self.position = position
        if stored is None:
            if self.chained or position > self.legacy:  # a row of a chained log without a link: rewritten
                self.report(position, f"{originator_id}@{version}", "hash-chain", "the row has lost its chain link")
                self.previous = None
                return
            self.unchained += 1  # written before the chain existed: the links are virtual
            self.previous = chain.link(self.previous or chain.GENESIS, originator_id, version, topic, body)
            self.last_link = self.previous
            return
        self.chained = True
        if self.previous is not None and stored != chain.link(self.previous, originator_id, version, topic, body):
            self.report(
                position,
                f"{originator_id}@{version}",
                "hash-chain",
                "the row does not match its chain link: this row was edited, or the row before it was "
                "edited or deleted",
            )
        self.previous = stored  # go on from what is stored: each tampered row is reported once
        self.last_link = stored

    def finish(self, head: ChainHead | None) -> None:
        if head is None:
            self.report(None, "", "hash-chain", "the store's chain head is missing (deleted?)")
            return
        if head.position == self.position and (self.previous is None or head.link == self.previous):
            return
        self.report(
            head[0],
            "",
            "hash-chain",
            f"the chain head names position {head[0]} with link {head[1][:12]}..., but the log ends at "
            f"position {self.position} with link {self.last_link[:12]}...: rows at the end were deleted, "
            "or the head or the last row was edited",
        )


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
        head = store.chain_head()
        links = _ChainCheck(report, head.legacy if head is not None else 0)
        decode = store.codec.decode
        try:
            for _ in range(3):  # a live store may grow while it is read: catch up with its head
                for position, originator_id, version, topic, state in store.raw_rows(start=last + 1):
                    count += 1
                    last = position
                    links.row(position, originator_id, version, topic, state)
                    try:
                        event = decode(topic, state)
                    except StoreError as e:
                        report(position, "", "undecodable", f"{topic}: {e}")
                        continue
                    _check_event(position, event, report, versions, statuses, seen, book)
                head = store.chain_head()
                if head is None or head.position <= last:
                    break
            links.finish(head)
        except StoreError as e:
            report(last + 1 if count else None, "", "undecodable", f"reading stopped: {e}")
    return VerifyReport(
        ok=not violations,
        events=count,
        violations=tuple(violations),
        head=links.last_link,
        unchained=links.unchained,
    )


def _check_event(
    position: int,
    event: Event,
    report: Callable[[int | None, str, str, str], None],
    versions: dict[str, int],
    statuses: dict[str, Enum],
    seen: set[str],
    book: resource_domain.ResourceBook,
) -> None:
    """The per-event rules: versions, transitions, causation."""
    eid, stream = event.event_id, event.stream_id
    expected = versions.get(stream, 0) + 1
    if event.version != expected:
        what = "a gap" if event.version > expected else "a repeat"
        report(position, eid, "contiguous-versions", f"{stream}: version {event.version}, expected {expected} ({what})")
    versions[stream] = max(versions.get(stream, 0), event.version)
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
    cause = event.causation_id
    if cause and _EVENT_ID.match(cause) and cause not in seen:
        report(position, eid, "causation", f"causation_id {cause!r} names no earlier event")
    seen.add(eid)


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
