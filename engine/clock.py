"""The one place where time and identity enter the engine.

Everything that stamps an event or names a new thing asks a :class:`Runtime`, so tests
and re-runs can inject a deterministic clock and id sequence (the equivalent of
Temporal's ``workflow.now()`` and ``workflow.uuid4()``).
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "Clock",
    "IdGenerator",
    "Runtime",
    "SequentialIds",
    "SteppingClock",
    "SystemClock",
    "UuidIds",
]


class Clock(Protocol):
    def now(self) -> datetime:
        """Current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations)."""
        ...


class IdGenerator(Protocol):
    def new_id(self) -> str: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.perf_counter()


class SteppingClock:
    """A deterministic clock: starts at ``start`` and advances by ``step`` on every
    reading, so two runs that make the same calls see the same timestamps."""

    def __init__(
        self,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        step: timedelta = timedelta(milliseconds=1),
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("SteppingClock needs a timezone-aware start")
        self._now = start
        self._step = step
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            current = self._now
            self._now = current + self._step
            return current

    def monotonic(self) -> float:
        return time.perf_counter()

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class UuidIds:
    def new_id(self) -> str:
        return str(uuid.uuid4())


class SequentialIds:
    """Deterministic ids ``<prefix>-000001``, ``<prefix>-000002``, ..."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            return f"{self._prefix}-{next(self._counter):06d}"


@dataclass(frozen=True)
class Runtime:
    """Clock and id generator, injected together."""

    clock: Clock = field(default_factory=SystemClock)
    ids: IdGenerator = field(default_factory=UuidIds)
    host: str = field(default_factory=socket.gethostname)
    """Recorded in leases (which machine owns work); fixed for byte-stable histories."""
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def deterministic(cls, prefix: str = "id") -> Runtime:
        return cls(clock=SteppingClock(), ids=SequentialIds(prefix))
