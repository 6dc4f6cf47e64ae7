"""The timeline of a workflow run, a task, a session, a project or the whole store:
its events in log order, filterable, with causation links.

Only reads the store: events are decoded and described, never applied to anything
that could run an action.

What a selection holds:

* ``run``: the run's own events and every event correlated with the run (its steps'
  task events);
* ``task``: the task's stream;
* ``session``: the session's events, events correlated with the session, the tasks
  started in it (``task.created`` with ``group`` = the session) and the runs started
  in it (``workflow_run.created`` with ``session_id`` = the session), with everything
  correlated with those runs;
* ``project``: the project's stream and the selection of every run linked to it
  (``project.workflow_linked``);
* nothing: the whole store.

Several selectors together select the union. Filters (``types``, ``actor``,
``correlation_id``, ``since``/``until``, inclusive) then narrow it, and ``caused`` links
are computed among the entries that remain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from sys import intern
from typing import Any

import msgspec

import domain  # noqa: F401 -- registers every event type, so any event decodes
from domain.errors import NotFoundError, ValidationError
from domain.events import EVENT_TYPES, Event, Recorded
from domain.project import ProjectWorkflowLinked
from domain.task import TaskCreated
from domain.workflow import WorkflowRunCreated
from engine.store import EventStore
from replay_tools.history import History, gc_paused, opened_store

__all__ = ["Timeline", "TimelineEntry", "timeline"]

_ENVELOPE = frozenset({"aggregate_id", "version", "timestamp", "actor", "correlation_id", "causation_id", "schema"})
_VALUE_CHARS = 40
_SUMMARY_CHARS = 160


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of a timeline."""

    position: int
    """Global position in the log."""
    event_id: str
    """Stable id, ``<kind>:<aggregate id>@<version>``."""
    type: str
    """Stable type name, e.g. ``task.started``."""
    kind: str
    """Aggregate kind, e.g. ``task`` or ``workflow_run``."""
    aggregate_id: str
    """Id of the aggregate the event belongs to."""
    version: int
    """Position of the event in its aggregate's stream."""
    timestamp: datetime
    """When it happened (UTC, timezone-aware)."""
    actor: str
    """Who caused it: a session's user or ``system``."""
    correlation_id: str
    """The unit of work it belongs to (run, session, ...)."""
    causation_id: str
    """Id of the event (or command) that caused it; ``""`` for a user command."""
    caused: tuple[str, ...]
    """Ids of the timeline's events whose causation id is this event's id, in log order."""
    summary: str
    """One short line of the event's own (non-envelope) fields."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """Selected events in log order."""

    entries: tuple[TimelineEntry, ...]
    """The entries, ordered by position."""

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[TimelineEntry]:
        return iter(self.entries)

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The entries' event ids, in log order."""
        return tuple(e.event_id for e in self.entries)

    def get(self, event_id: str) -> TimelineEntry | None:
        """The entry of ``event_id``, or ``None`` when it is not in the timeline."""
        for entry in self.entries:
            if entry.event_id == event_id:
                return entry
        return None


def timeline(
    history_or_url: History | EventStore | str,
    *,
    run: str | None = None,
    task: str | None = None,
    session: str | None = None,
    project: str | None = None,
    types: Sequence[str] = (),
    actor: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Timeline:
    """The events of a run, task, session or project (default: the whole store), in log
    order, filtered, with causation links. Unknown ids raise :class:`NotFoundError`;
    unknown type names and naive datetimes raise :class:`ValidationError`."""
    if isinstance(types, str):
        types = (types,)
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(
            f"unknown event type(s) {unknown}; known types: {sorted(EVENT_TYPES)}",
            details={"types": unknown},
        )
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ValidationError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
    wanted = frozenset(types)
    with opened_store(history_or_url) as store, gc_paused():
        selected = _select(store, run=run, task=task, session=session, project=project, types=wanted)
        entries: list[TimelineEntry] = []
        caused: dict[str, list[str]] = {}
        for r in selected:
            e = r.event
            if (
                (actor is None or e.actor == actor)
                and (correlation_id is None or e.correlation_id == correlation_id)
                and (since is None or e.timestamp >= since)
                and (until is None or e.timestamp <= until)
            ):
                entry = _entry(r)
                entries.append(entry)
                if e.causation_id:
                    caused.setdefault(e.causation_id, []).append(entry.event_id)
    # Links among the kept entries; an entry is complete before anyone sees it.
    for entry in entries:
        links = caused.get(entry.event_id)
        if links:
            object.__setattr__(entry, "caused", tuple(links))
    return Timeline(tuple(entries))


def _select(
    store: EventStore,
    *,
    run: str | None,
    task: str | None,
    session: str | None,
    project: str | None,
    types: frozenset[str],
) -> Iterator[Recorded]:
    """The selected events of type ``types`` (any when empty), in log order, streamed
    (one pass; a session or project needs a first pass over the events that name its
    runs and tasks)."""
    if run is None and task is None and session is None and project is None:
        yield from store.read(types=sorted(types))
        return
    end = store.max_position()  # both passes read the same log
    streams: set[str] = set()  # "<kind>:<id>"
    correlations: set[str] = set()
    if task is not None:
        _require(store, "task", task)
        streams.add(f"task:{task}")
    if run is not None:
        _require(store, "workflow_run", run)
        streams.add(f"workflow_run:{run}")
        correlations.add(run)
    if session is not None:
        _require(store, "session", session)
        streams.add(f"session:{session}")
        correlations.add(session)
        for r in store.read(types=(TaskCreated.TYPE, WorkflowRunCreated.TYPE), stop=end):
            e = r.event
            if isinstance(e, TaskCreated) and e.group == session:
                streams.add(e.stream_id)
            elif isinstance(e, WorkflowRunCreated) and e.session_id == session:
                streams.add(e.stream_id)
                correlations.add(e.aggregate_id)
    if project is not None:
        _require(store, "project", project)
        streams.add(f"project:{project}")
        for r in store.read(types=(ProjectWorkflowLinked.TYPE,), stop=end):
            e = r.event
            if isinstance(e, ProjectWorkflowLinked) and e.aggregate_id == project:
                streams.add(f"workflow_run:{e.run_id}")
                correlations.add(e.run_id)
    ids: dict[str, set[str]] = {}  # kind -> aggregate ids: streams without building each event's stream id
    for stream in streams:
        kind, _, aggregate_id = stream.partition(":")
        ids.setdefault(kind, set()).add(aggregate_id)
    none: set[str] = set()
    for r in store.read(types=sorted(types), stop=end):
        e = r.event
        if e.correlation_id in correlations or e.aggregate_id in ids.get(e.KIND, none):
            yield r


_NOUNS = {"task": "task", "workflow_run": "workflow run", "session": "session", "project": "project"}


def _require(store: EventStore, kind: str, aggregate_id: str) -> None:
    if not store.read_stream(f"{kind}:{aggregate_id}"):
        raise NotFoundError(
            f"no {_NOUNS[kind]} {aggregate_id!r} in this store",
            details={"kind": kind, "id": aggregate_id},
            suggestions=[f"List the store's {_NOUNS[kind]}s with timeline(url, types=['{kind}.created'])."],
        )


def _entry(r: Recorded) -> TimelineEntry:
    """The entry of ``r``, without its ``caused`` links (set once all are known).
    Strings that repeat across entries (ids of aggregates, actors, correlations) are
    interned: a timeline of the whole store holds one copy of each."""
    e = r.event
    return TimelineEntry(
        position=r.position,
        event_id=e.event_id,
        type=e.type,
        kind=e.KIND,
        aggregate_id=intern(e.aggregate_id),
        version=e.version,
        timestamp=e.timestamp,
        actor=intern(e.actor),
        correlation_id=intern(e.correlation_id),
        causation_id=e.causation_id,
        caused=(),
        summary=_summarize(e),
    )


_OWN_FIELDS: dict[type[Event], tuple[str, ...]] = {}


def _summarize(event: Event) -> str:
    """One short line of ``event``'s own fields: ``name=value`` pairs, long values cut;
    empty ones (``""``, ``[]``, ``{}``, ``null``) left out. Fields past the cut are not
    looked at."""
    cls = type(event)
    names = _OWN_FIELDS.get(cls)
    if names is None:
        names = _OWN_FIELDS[cls] = tuple(n for n in cls.__struct_fields__ if n not in _ENVELOPE)
    parts = []
    length = -1  # of " ".join(parts)
    for name in names:
        value = getattr(event, name)
        if value is None or (isinstance(value, str | list | dict) and not value):
            continue
        if type(value) is not str:  # a plain str is its own builtin form
            value = msgspec.to_builtins(value)
        part = f"{name}={_short(value)}"
        parts.append(part)
        length += len(part) + 1
        if length > _SUMMARY_CHARS:
            break  # cut anyway: the rest cannot change the first _SUMMARY_CHARS - 1 characters
    line = " ".join(parts)
    return line if len(line) <= _SUMMARY_CHARS else line[: _SUMMARY_CHARS - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "null"
    elif type(value) is int:  # msgspec writes ints as str() does
        text = str(value)
    else:
        text = msgspec.json.encode(value).decode()
    text = " ".join(text.split())
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"
