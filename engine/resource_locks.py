"""Admission by declared resources: a reader-writer lock table over resource names.

A task's ``TaskResource(type, identifier, mode)`` names a resource. Compatibility, for
a task that wants a resource another running task holds:

=============  ==========  ===========  ===============
held \\ wanted  ``read``    ``write``    ``exclusive``
=============  ==========  ===========  ===============
``read``       shared      waits        waits
``write``      waits       waits        waits
``exclusive``  waits       waits        waits
=============  ==========  ===========  ===============

``write`` and ``exclusive`` are both exclusive (``write`` says why, ``exclusive`` says
it outright). A task's whole set is taken atomically, all or nothing, when it is
admitted, so two tasks that want A and B in opposite orders cannot deadlock: neither
ever holds one while waiting for the other. A task that cannot get its set stays READY
(not RUNNING) and is reconsidered whenever a holder releases. Waiting writers win over
new readers, so a stream of readers cannot starve a writer. Resources are released when
the attempt ends in any way: completion, failure, timeout, cancellation.

Nothing here is recorded separately: which task held what is derivable from the log,
because ``task.created`` carries the declared resources and ``task.started`` ...
``task.completed``/``failed``/``cancelled`` bound when they were held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from domain.task import ResourceSpec

__all__ = ["LockTable", "ResourceKey"]

ResourceKey = tuple[str, str]  # (resource type, identifier)


def _wanted(resources: Iterable[ResourceSpec]) -> dict[ResourceKey, bool]:
    """Key -> exclusive? (a task that names a resource twice wants the stronger mode)."""
    out: dict[ResourceKey, bool] = {}
    for r in resources:
        key = (r.type.value, r.identifier)
        out[key] = out.get(key, False) or r.mode != "read"
    return out


@dataclass
class LockTable:
    readers: dict[ResourceKey, int] = field(default_factory=dict)
    writers: set[ResourceKey] = field(default_factory=set)
    waiting_writers: dict[ResourceKey, int] = field(default_factory=dict)

    def try_acquire(self, resources: Iterable[ResourceSpec]) -> bool:
        """Take every wanted resource, or none (returns False)."""
        wanted = _wanted(resources)
        for key, exclusive in wanted.items():
            if key in self.writers:
                return False
            if exclusive and self.readers.get(key, 0):
                return False
            if not exclusive and self.waiting_writers.get(key, 0):
                return False
        for key, exclusive in wanted.items():
            if exclusive:
                self.writers.add(key)
            else:
                self.readers[key] = self.readers.get(key, 0) + 1
        return True

    def release(self, resources: Iterable[ResourceSpec]) -> None:
        for key, exclusive in _wanted(resources).items():
            if exclusive:
                self.writers.discard(key)
            else:
                left = self.readers.get(key, 0) - 1
                if left > 0:
                    self.readers[key] = left
                else:
                    self.readers.pop(key, None)

    def wait(self, resources: Iterable[ResourceSpec]) -> list[ResourceKey]:
        """Note a blocked task's exclusive wants (so new readers queue behind it);
        returns the keys to pass to :meth:`stop_waiting`."""
        keys = [key for key, exclusive in _wanted(resources).items() if exclusive]
        for key in keys:
            self.waiting_writers[key] = self.waiting_writers.get(key, 0) + 1
        return keys

    def stop_waiting(self, keys: Iterable[ResourceKey]) -> None:
        for key in keys:
            left = self.waiting_writers.get(key, 0) - 1
            if left > 0:
                self.waiting_writers[key] = left
            else:
                self.waiting_writers.pop(key, None)

    def held(self) -> dict[str, str]:
        """``"type:identifier" -> "read"|"exclusive"`` for everything held now."""
        out = {f"{t}:{i}": "read" for (t, i) in self.readers}
        out.update({f"{t}:{i}": "exclusive" for (t, i) in self.writers})
        return out
