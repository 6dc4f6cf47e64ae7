"""The hash chain over the log: what makes an edited or deleted row evident.

Every row of the log is linked to the row before it in global order::

    link(n) = sha256( link(n-1) ‖ originator_id ␟ version ␟ topic ␟ state(n) )
    link(0) = GENESIS (64 zeros)

where ``state(n)`` is the event's JSON exactly as the codec encoded it. The recorders
compute the links **inside the insert transaction** (after taking the write lock, so two
writers, even in two processes, can never chain from the same predecessor) and store

* each row's link as the last member of its JSON, ``..., "chain": "<64 hex>"}``
  (decoders ignore the member; :func:`unseal` removes it byte-exactly), and
* the last link and its position in a one-row *head* table, updated in the same
  transaction. The head is what makes deleting the last rows evident.

Any single-row tampering then breaks a check of :func:`replay_tools.verify.verify`:
an edited row no longer matches its own link; an edited row whose link was recomputed
breaks the link of the row after it (or the head, for the last row); a deleted row
breaks the next link or the head; a deleted or edited head no longer matches the log.
The chain is tamper-*evident* against accidents and edits that do not rewrite every
later row; someone who can rewrite the whole table can rewrite the chain too, which is
why the head link is printed by ``codomyrmex-orch verify`` for keeping elsewhere.

Rows written before the chain existed (a store created by an earlier version) carry no
link of their own: opening such a store seals them once into the head, and verify
counts them as *unchained*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from eventsourcing.persistence import StoredEvent

__all__ = ["GENESIS", "head_of", "link", "seal", "seal_all", "seal_rows", "unseal"]

GENESIS = "0" * 64
_MARK = b',"chain":"'
_END = b'"}'
_SUFFIX = len(_MARK) + 64 + len(_END)
_sha256 = hashlib.sha256


def link(previous: str, originator_id: str, version: int, topic: str, state: bytes) -> str:
    """The link of one row, given the link of the row before it."""
    head = f"{previous}{originator_id}\x1f{version}\x1f{topic}\x1f".encode()
    return _sha256(head + state).hexdigest()


def seal(state: bytes, chain_link: str) -> bytes:
    """``state`` (a JSON object) with ``"chain": chain_link`` as its last member."""
    if len(state) < 2 or state[-1:] != b"}":  # the codec only ever writes non-empty objects
        raise ValueError("only a JSON object with members can carry a chain link")
    return state[:-1] + _MARK + chain_link.encode("ascii") + _END


def unseal(state: bytes) -> tuple[bytes, str | None]:
    """``(state without its link, link)``; ``(state, None)`` for a row without one."""
    if len(state) > _SUFFIX and state.endswith(_END) and state[-_SUFFIX : -_SUFFIX + len(_MARK)] == _MARK:
        return state[:-_SUFFIX] + b"}", state[-_SUFFIX + len(_MARK) : -len(_END)].decode("ascii")
    return state, None


def seal_rows(previous: str, stored: Sequence[StoredEvent]) -> tuple[list[tuple[str, int, str, bytes]], str]:
    """Link and seal a batch in order: ``(originator_id, version, topic, sealed state)``
    rows (ready for ``executemany``) and the last link. ~1.5 µs a row."""
    rows: list[tuple[str, int, str, bytes]] = []
    append = rows.append
    for s in stored:
        oid, version, topic, state = str(s.originator_id), s.originator_version, s.topic, s.state
        if state[-1:] != b"}" or len(state) < 2:
            raise ValueError("only a JSON object with members can carry a chain link")
        previous = _sha256(f"{previous}{oid}\x1f{version}\x1f{topic}\x1f".encode() + state).hexdigest()
        append((oid, version, topic, b"".join((state[:-1], _MARK, previous.encode("ascii"), _END))))
    return rows, previous


def seal_all(previous: str, stored: Sequence[StoredEvent]) -> tuple[list[StoredEvent], str]:
    """:func:`seal_rows` as ``StoredEvent`` objects."""
    rows, last = seal_rows(previous, stored)
    return [StoredEvent(*row) for row in rows], last


def head_of(rows: Iterable[tuple[int, str, int, str, bytes]]) -> tuple[int, str]:
    """``(last position, last link)`` over ``(position, originator_id, version, topic,
    state)`` rows in position order: how a log written before the chain is sealed."""
    last, previous = 0, GENESIS
    for row in rows:
        last, originator_id, version, topic, state = row
        previous = link(previous, originator_id, version, topic, unseal(state)[0])
    return last, previous
