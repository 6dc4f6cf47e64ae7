"""replay_tools.verify: a real history verifies clean; tampering with the SQLite file
is reported under the right rule."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import open_store, sqlite_path
from replay_tools.verify import RULES, VerifyReport, Violation, verify

TABLE = "codomyrmex_events"


@pytest.fixture
def history(recorded_store: tuple[str, str]) -> tuple[str, Path]:
    """A SQLite store holding a session with one completed and one failed run
    (``recorded_store`` of conftest.py), and its file."""
    url, _ = recorded_store
    return url, Path(sqlite_path(url))


@pytest.fixture
def db(history: tuple[str, Path]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(history[1])
    try:
        yield conn
    finally:
        conn.close()


def row_of(db: sqlite3.Connection, topic: str) -> tuple[int, str, int, bytes]:
    """The first row of ``topic``: (rowid, stream, version, state)."""
    row = db.execute(
        f"SELECT rowid, originator_id, originator_version, state FROM {TABLE} WHERE topic=? ORDER BY rowid LIMIT 1",
        (topic,),
    ).fetchone()
    assert row is not None, topic
    return int(row[0]), str(row[1]), int(row[2]), bytes(row[3])


def rules(report: VerifyReport) -> set[str]:
    return {v.rule for v in report.violations}


def test_a_real_history_verifies_clean(history: tuple[str, Path]) -> None:
    url, _ = history
    report = verify(url)
    assert report.ok
    assert report.violations == ()
    assert report.events > 15
    assert report.text().startswith("OK:")
    assert report.unchained == 0
    with open_store(url) as store:
        assert store.chain_head() == (report.events, report.head, 0)
    assert report.head in report.text()
    with open_store(url) as store:  # an open store works too, and is left open
        assert verify(store) == report
        assert store.max_position() == report.events


def test_a_deleted_task_row_is_a_version_gap(history: tuple[str, Path], db: sqlite3.Connection) -> None:
    rowid, stream, version, _ = row_of(db, "task.ready")
    db.execute(f"DELETE FROM {TABLE} WHERE rowid=?", (rowid,))
    db.commit()
    report = verify(history[0])
    assert not report.ok
    gaps = [v for v in report.violations if v.rule == "contiguous-versions"]
    assert len(gaps) == 1
    # the row after the hole no longer follows from the row before it
    assert [v.position for v in report.violations if v.rule == "hash-chain"] == [rowid + 1]
    assert gaps[0].event_id == f"{stream}@{version + 1}"
    assert stream in gaps[0].message
    # task.started straight from PENDING is not legal either
    assert any(v.rule == "legal-transition" and stream in v.event_id for v in report.violations)


def test_an_edited_status_is_an_illegal_transition(history: tuple[str, Path], db: sqlite3.Connection) -> None:
    rowid, stream, _, state = row_of(db, "task.ready")
    edited = state.replace(b'"type":"task.ready"', b'"type":"task.cancelled"')
    assert edited != state
    db.execute(f"UPDATE {TABLE} SET topic='task.cancelled', state=? WHERE rowid=?", (edited, rowid))
    db.commit()
    report = verify(history[0])
    assert rules(report) == {"legal-transition", "hash-chain"}
    (violation,) = [v for v in report.violations if v.rule == "legal-transition"]
    assert violation.position == rowid + 1  # the task.started after it
    assert violation.event_id.startswith(stream + "@")
    assert "cancelled" in violation.message
    (edited_row,) = [v for v in report.violations if v.rule == "hash-chain"]
    assert edited_row.position == rowid  # the edited row itself, once


def test_a_dangling_causation_id_is_reported(history: tuple[str, Path], db: sqlite3.Connection) -> None:
    rowid, stream, version, state = row_of(db, "task.started")
    cause = f"{stream}@{version - 1}".encode()
    assert cause in state
    db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (state.replace(cause, b"task:nowhere@7"), rowid))
    db.commit()
    report = verify(history[0])
    assert [v for v in report.violations if v.rule == "causation"] == [
        Violation(rowid, f"{stream}@{version}", "causation", "causation_id 'task:nowhere@7' names no earlier event")
    ]
    assert [(v.position, v.rule) for v in report.violations if v.rule != "causation"] == [(rowid, "hash-chain")]


def test_an_undecodable_row_is_reported_and_skipped(history: tuple[str, Path], db: sqlite3.Connection) -> None:
    rowid, _, _, _ = row_of(db, "workflow_run.completed")
    total = db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (b"\x00garbage{", rowid))
    db.commit()
    report = verify(history[0])
    assert report.events == total  # the pass went on after the bad row
    assert rules(report) == {"undecodable", "hash-chain"}
    (violation,) = [v for v in report.violations if v.rule == "undecodable"]
    assert violation.position == rowid
    assert violation.event_id == ""
    # the garbage carries no link, in a chained log
    (unlinked,) = [v for v in report.violations if v.rule == "hash-chain"]
    assert (unlinked.position, unlinked.message) == (rowid, "the row has lost its chain link")


def test_text_names_every_rule(history: tuple[str, Path], db: sqlite3.Connection) -> None:
    ready, _, _, _ = row_of(db, "task.ready")
    db.execute(f"DELETE FROM {TABLE} WHERE rowid=?", (ready,))
    started, stream, version, state = row_of(db, "task.started")
    db.execute(
        f"UPDATE {TABLE} SET state=? WHERE rowid=?",
        (state.replace(f"{stream}@{version - 1}".encode(), b"workflow:ghost@3"), started),
    )
    completed, _, _, _ = row_of(db, "workflow_run.failed")
    db.execute(f"UPDATE {TABLE} SET state=? WHERE rowid=?", (b"not json", completed))
    db.commit()
    report = verify(history[0])
    assert rules(report) == set(RULES)
    text = report.text()
    assert text.startswith(f"FAILED: {report.events} events, {len(report.violations)} violation(s)")
    for rule in RULES:
        assert f"{rule} (" in text
    assert "workflow:ghost@3" in text
    assert "<undecodable>" in text
