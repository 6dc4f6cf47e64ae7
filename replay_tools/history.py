"""Reading a store after the fact: the ordered events of a task (or of all tasks) and
the task views rebuilt from the log alone.

Only reads. Applying events runs projection code, never an action, so replaying a
history is safe whatever the actions did.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from domain.events import Recorded
from domain.task import TASK_EVENT_TYPES
from engine.store import EventStore, open_store
from projections.tasks import TaskView, fold

__all__ = ["TASK_TOPICS", "History", "gc_paused", "opened_store"]

TASK_TOPICS: tuple[str, ...] = tuple(cls.TYPE for cls in TASK_EVENT_TYPES)


@dataclass
class History:
    """A read-only window on one store. Open with a URL or an :class:`EventStore`."""

    store: EventStore
    owns_store: bool = False

    @classmethod
    def open(cls, url: str) -> History:
        return cls(open_store(url), owns_store=True)

    def events(
        self,
        *,
        types: Sequence[str] = (),
        start: int = 1,
        stop: int | None = None,
    ) -> Iterator[Recorded]:
        """Committed events in log order (optionally of some types, between positions)."""
        return self.store.read(start=start, stop=stop, types=types)

    def task_events(self, task_id: str | None = None, *, stop: int | None = None) -> list[Recorded]:
        """Every event of one task (or of all tasks), in log order, with positions."""
        recorded = self.store.read(types=TASK_TOPICS, stop=stop)
        if task_id is None:
            return list(recorded)
        return [r for r in recorded if r.event.aggregate_id == task_id]

    def task_view(self, *, stop: int | None = None) -> TaskView:
        """The task list and statistics as of position ``stop`` (default: the end).
        Its ``position`` is that of the last task event folded, as in a live view."""
        with gc_paused():
            return fold(self.store.read(stop=stop, types=TASK_TOPICS))

    def close(self) -> None:
        if self.owns_store:
            self.store.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class opened_store:
    """The store of a :class:`History`, an :class:`EventStore` as it is, or a store
    opened from a URL and closed on exit: the one way every replay tool takes its
    source."""

    def __init__(self, source: History | EventStore | str) -> None:
        self.source = source
        self.owned: EventStore | None = None

    def __enter__(self) -> EventStore:
        if isinstance(self.source, History):
            return self.source.store
        if isinstance(self.source, EventStore):
            return self.source
        self.owned = open_store(self.source)
        return self.owned

    def __exit__(self, *exc: object) -> None:
        if self.owned is not None:
            self.owned.close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a replay builds many long-lived
    objects (views, timeline entries). They are all reachable, so the collections it
    would run meanwhile find nothing, yet each full one walks every object built so far:
    about a third of a fold's time over 1,000,000 events. Reference counting still frees
    everything else at once. On exit the collector is re-enabled if it was enabled on
    entry, so nested uses keep it paused until the outermost one ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
