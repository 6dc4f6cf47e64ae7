"""The index of claimed idempotency keys (see :mod:`domain.idempotency`).

Built from the log when the engine starts and kept current from its own commits; a key
it does not know is looked up in the store (another process may have claimed it), so a
miss costs one stream read. The claim itself is committed with the work it starts; the
store, not this index, is what makes a key single-use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from domain.errors import ValidationError
from domain.events import Recorded
from domain.idempotency import IdempotencyClaimed
from engine.store import EventStore, apply_each

__all__ = ["Claims"]


class Claims:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._claims: dict[str, IdempotencyClaimed] = {}
        self._unsubscribe = store.subscribe(
            self._on_committed,
            history=apply_each(lambda r: self._remember(r.event)),
            types=(IdempotencyClaimed.TYPE,),
        )

    def _remember(self, event: object) -> None:
        if isinstance(event, IdempotencyClaimed):
            with self._lock:
                self._claims[event.aggregate_id] = event

    def _on_committed(self, batch: Sequence[Recorded]) -> None:
        for recorded in batch:
            if recorded.event.KIND == "idempotency":
                self._remember(recorded.event)

    def existing(self, key: str, kind: str, fingerprint: str) -> str | None:
        """The id of the work ``key`` already started, or None if it is unclaimed.
        Raises ``ValidationError`` (``IDEMPOTENCY_KEY_REUSED``) if the key was claimed
        by a different request."""
        with self._lock:
            claimed = self._claims.get(key)
        if claimed is None:
            for event in self.store.read_stream(f"idempotency:{key}"):
                self._remember(event)
            with self._lock:
                claimed = self._claims.get(key)
        if claimed is None:
            return None
        if claimed.kind != kind or claimed.fingerprint != fingerprint:
            raise ValidationError(
                f"idempotency_key {key!r} was already used for a different request "
                f"(a {claimed.kind} {claimed.target!r}, claimed at {claimed.timestamp.isoformat()})",
                code="IDEMPOTENCY_KEY_REUSED",
                details={"key": key, "target": claimed.target, "kind": claimed.kind},
                suggestions=["Use a new key for a new request; reuse a key only to retry the same request."],
            )
        return claimed.target

    def close(self) -> None:
        self._unsubscribe()
