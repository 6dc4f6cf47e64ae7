"""Idempotency keys: the first request with a key is the only one that starts work.

``idempotency:<key>`` holds one event, ``idempotency.claimed``, committed in the same
transaction as the work it names (a workflow run or a task), so a key is claimed if and
only if its work exists. Two requests with the same key race for version 1 of the
stream and the store's optimistic concurrency lets exactly one commit, in one process
or many. ``fingerprint`` is a hash of what was asked for (kind, name, parameters): a
key reused for a different request is an error, not a silent answer to another one.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import msgspec

from domain.errors import ValidationError
from domain.events import Event, EventMeta, register_event_types

__all__ = ["MAX_KEY_LENGTH", "IdempotencyClaimed", "check_key", "claim", "fingerprint"]

MAX_KEY_LENGTH = 200


class IdempotencyClaimed(Event, frozen=True, kw_only=True, tag="idempotency.claimed"):
    KIND: ClassVar[str] = "idempotency"

    kind: str
    """``workflow_run`` or ``task``."""
    target: str
    """The id of the run or task the key started."""
    fingerprint: str


register_event_types(IdempotencyClaimed)

_encoder = msgspec.json.Encoder(order="sorted")


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"idempotency_key must be a non-empty string of at most {MAX_KEY_LENGTH} characters, got {key!r:.80}",
            code="INVALID_IDEMPOTENCY_KEY",
        )
    return key


def fingerprint(kind: str, name: str, request: Any) -> str:
    """A stable hash of a request (dict keys sorted)."""
    try:
        data = _encoder.encode([kind, name, request])
    except (TypeError, ValueError) as e:
        raise ValidationError(f"the request cannot be fingerprinted: {e}", code="NOT_SERIALIZABLE") from e
    return hashlib.sha256(data).hexdigest()


def claim(key: str, meta: EventMeta, *, kind: str, target: str, fingerprint: str) -> IdempotencyClaimed:
    return IdempotencyClaimed(
        aggregate_id=check_key(key),
        version=1,
        timestamp=meta.timestamp,
        actor=meta.actor,
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
        kind=kind,
        target=target,
        fingerprint=fingerprint,
    )
