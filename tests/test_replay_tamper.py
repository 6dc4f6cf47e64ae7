"""Tamper evidence: verify passes on every untampered log and fails on every
single-row tampering of a SQLite store (the hash chain of :mod:`engine.chain`).

Histories come from :func:`replay_tools.testing.event_histories` (random task runs with
retries, failures, skips and cancellations), recorded into a chained SQLite store in
commit batches; hypothesis then picks one row (or the head) and one way to tamper."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import Recorded
from engine import chain
from engine.store import TABLE, open_store
from replay_tools.testing import event_histories
from replay_tools.verify import verify

HEAD = f"{TABLE}_head"
ROW_TAMPERINGS = ("delete", "edit", "edit-and-relink", "retype", "renumber", "move", "unlink")


@contextmanager
def recorded(history: list[Recorded], batches: list[int]) -> Iterator[tuple[str, Path]]:
    """``history`` appended to a new SQLite store in batches of the given sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        url = f"sqlite:///{path}"
        with open_store(url) as store:
            i, k = 0, 0
            while i < len(history):
                size = batches[k % len(batches)]
                store.append([r.event for r in history[i : i + size]])
                i, k = i + size, k + 1
        yield url, path


def tamper_row(db: sqlite3.Connection, rowid: int, how: str) -> None:
    """Change one row of the events table in one of :data:`ROW_TAMPERINGS` ways."""
    originator_id, version, topic, state = db.execute(
        f"SELECT originator_id, originator_version, topic, state FROM {TABLE} WHERE rowid=?", (rowid,)
    ).fetchone()
    body, link = chain.unseal(bytes(state))
    assert link is not None
    if how == "delete":
        db.execute(f"DELETE FROM {TABLE} WHERE rowid=?", (rowid,))
        return
    if how == "retype":  # another type name in the topic column only
        db.execute(f"UPDATE {TABLE} SET topic=? WHERE rowid=?", (topic + ".x", rowid))
        return
    if how == "renumber":  # the row claims another version of its stream
        db.execute(f"UPDATE {TABLE} SET originator_version=? WHERE rowid=?", (version + 1000, rowid))
        return
    if how == "move":  # the row claims another stream
        db.execute(f"UPDATE {TABLE} SET originator_id=? WHERE rowid=?", (originator_id + "-moved", rowid))
        return
    if how == "unlink":  # the chain member removed, the JSON otherwise untouched
        db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (body, rowid))
        return
    data = json.loads(body)
    data["actor"] = str(data.get("actor", "")) + "-edited"  # still valid, still decodes
    new_body = json.dumps(data, separators=(",", ":")).encode()
    if how == "edit":
        db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (chain.seal(new_body, link), rowid))
        return
    assert how == "edit-and-relink"  # the link recomputed from the row before: a careful forger
    prev_state = db.execute(f"SELECT state FROM {TABLE} WHERE rowid<? ORDER BY rowid DESC LIMIT 1", (rowid,)).fetchone()
    previous = chain.GENESIS if prev_state is None else chain.unseal(bytes(prev_state[0]))[1]
    assert previous is not None
    forged = chain.link(previous, originator_id, version, topic, new_body)
    db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (chain.seal(new_body, forged), rowid))


histories = st.tuples(event_histories(max_tasks=4), st.lists(st.integers(1, 7), min_size=1, max_size=4))
few = settings(max_examples=3, deadline=None)
quick = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@quick
@given(case=histories, data=st.data())
def test_every_single_row_tampering_fails_verify(case: tuple[list[Recorded], list[int]], data: st.DataObject) -> None:
    history, batches = case
    with recorded(history, batches) as (url, path):
        clean = verify(url)
        assert clean.ok, clean.text()
        assert clean.events == len(history)
        rowid = data.draw(st.integers(1, len(history)), label="row")
        how = data.draw(st.sampled_from(ROW_TAMPERINGS), label="tampering")
        with sqlite3.connect(path) as db:
            tamper_row(db, rowid, how)
        report = verify(url)
        assert not report.ok, f"{how} of row {rowid} went unnoticed"
        chained = [v for v in report.violations if v.rule == "hash-chain"]
        assert chained, report.text()
        # the chain names the place: the row itself, the row after it, or the head
        assert {v.position for v in chained} & {rowid, rowid + 1, len(history)}, report.text()


@quick
@given(case=histories, how=st.sampled_from(("delete", "position", "link")))
def test_tampering_with_the_head_fails_verify(case: tuple[list[Recorded], list[int]], how: str) -> None:
    history, batches = case
    with recorded(history, batches) as (url, path):
        with sqlite3.connect(path) as db:
            if how == "delete":
                db.execute(f"DELETE FROM {HEAD}")
            elif how == "position":
                db.execute(f"UPDATE {HEAD} SET position = position - 1")
            else:
                db.execute(f"UPDATE {HEAD} SET chain = ?", (chain.GENESIS,))
        report = verify(url)
        assert not report.ok
        assert [v.rule for v in report.violations] == ["hash-chain"]


@few
@given(history=event_histories(max_tasks=2))
def test_deleting_the_last_row_is_caught_by_the_head(history: list[Recorded]) -> None:
    """The one tampering a chain of rows alone cannot see."""
    with recorded(history, [3]) as (url, path):
        with sqlite3.connect(path) as db:
            db.execute(f"DELETE FROM {TABLE} WHERE rowid = (SELECT max(rowid) FROM {TABLE})")
        report = verify(url)
        assert [(v.rule, v.position) for v in report.violations] == [("hash-chain", len(history))]
        assert "rows at the end were deleted" in report.violations[0].message


@few
@given(history=event_histories(max_tasks=2))
def test_a_store_without_a_head_refuses_appends(history: list[Recorded]) -> None:
    """Appending to a log whose head was deleted would chain from nothing: refused."""
    with recorded(history, [2]) as (url, path):
        with sqlite3.connect(path) as db:
            db.execute(f"DELETE FROM {HEAD}")
        from domain.errors import StoreError

        with open_store(url) as store, pytest.raises(StoreError, match=r"chain head .* is missing"):
            store.append([history[0].event])


@few
@given(history=event_histories(max_tasks=2))
def test_a_log_from_before_the_chain_is_sealed_once(history: list[Recorded]) -> None:
    """A store written before hash chains existed: opening it seals its rows into a new
    head; verify counts them as unchained and checks everything after them."""
    with recorded(history, [4]) as (url, path):
        with sqlite3.connect(path) as db:  # make it look like an old store
            for rowid, state in db.execute(f"SELECT rowid, state FROM {TABLE}").fetchall():
                db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (chain.unseal(bytes(state))[0], rowid))
            db.execute(f"DROP TABLE {HEAD}")
        report = verify(url)  # opening it seals it
        assert report.ok, report.text()
        assert report.unchained == len(history)
        assert "written before the hash chain" in report.text()
        with sqlite3.connect(path) as db:  # an edit after sealing changes the head
            db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=1", (b'{"tampered":true}',))
        assert not verify(url).ok
