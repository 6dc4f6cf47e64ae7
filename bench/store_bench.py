"""Event append (group commit vs raw ``sqlite3``) and replay of a large log.

Events are real task events built with the domain constructors: per task
``task.created`` -> ``task.ready`` -> ``task.started`` -> ``task.completed`` (4 events,
versions 1-4 of the stream ``task:<id>``). Building them is not timed; encoding is
(the store encodes in the caller's thread).
"""

from __future__ import annotations

import resource
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain import task as T
from domain.enums import TaskStatus
from domain.events import Event, EventMeta
from engine.codec import EventCodec
from engine.store import TABLE, EventStore, open_store
from replay_tools.history import History

PRODUCERS = 4
EVENTS_PER_TASK = 4


def task_events(prefix: str, i: int, meta: EventMeta) -> list[Event]:
    created = T.create(
        f"{prefix}-{i}", meta, name="inc", module="bench", action="inc", parameters={"i": i}, owner="bench"
    )
    state = T.evolve(None, created)
    events: list[Event] = [created]
    for make in (
        lambda s: T.ready(s, meta),
        lambda s: T.start(s, meta),
        lambda s: T.complete(s, meta, data=i + 1, execution_time=0.0001),
    ):
        event = make(state)
        state = T.evolve(state, event)
        events.append(event)
    return events


def build_events(n_events: int, prefix: str = "t") -> list[list[Event]]:
    """``n_events // 4`` tasks, each a list of its 4 events."""
    meta = EventMeta(timestamp=datetime.now(UTC), actor="bench", correlation_id="bench")
    return [task_events(prefix, i, meta) for i in range(n_events // EVENTS_PER_TASK)]


def sqlite_url(tmpdir: str, name: str) -> str:
    path = Path(tmpdir).resolve() / name
    if path.exists():
        raise RuntimeError(f"{path} already exists: every run needs a fresh file")
    return f"sqlite:///{path}"


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def check_log(store: EventStore, tasks: Sequence[Sequence[Event]]) -> list[str]:
    """Every event committed exactly once, nothing else, no store failure."""
    errors: list[str] = []
    want = {(e.stream_id, e.version) for evs in tasks for e in evs}
    got = [(r.event.stream_id, r.event.version) for r in store.read()]
    if len(got) != len(want) or set(got) != want:
        errors.append(f"log holds {len(got)} events ({len(set(got))} distinct), expected {len(want)}")
    if store.max_position() != len(want):
        errors.append(f"max position {store.max_position()}, expected {len(want)}")
    s = store.stats
    if s.failures or s.conflicts or s.listener_errors:
        errors.append(f"store reported problems: {s}")
    return errors


# -- append through the store ---------------------------------------------------


def run_append(spec: dict[str, Any]) -> dict[str, Any]:
    mode, n = spec["mode"], spec["n"]
    tasks = build_events(n)
    flat = [e for evs in tasks for e in evs]
    store = open_store(sqlite_url(spec["tmpdir"], "events.db"))
    try:
        if mode == "single":
            t0 = time.perf_counter()
            store.append(flat)
            t1 = time.perf_counter()
        elif mode in ("async", "blocking"):
            groups = [tasks[k::PRODUCERS] for k in range(PRODUCERS)]
            barrier = threading.Barrier(PRODUCERS + 1)
            thread_errors: list[BaseException] = []

            def produce(group: list[list[Event]]) -> None:
                try:
                    barrier.wait()
                    if mode == "async":
                        for evs in group:
                            for e in evs:
                                store.append_async([e])
                        store.flush()
                    else:
                        for evs in group:
                            for e in evs:
                                store.append([e])
                except BaseException as e:
                    thread_errors.append(e)

            threads = [threading.Thread(target=produce, args=(g,)) for g in groups]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            t1 = time.perf_counter()
            if thread_errors:
                raise thread_errors[0]
        else:
            raise ValueError(f"unknown append mode {mode!r}")
        rss = _rss()
        errors = check_log(store, tasks)
        extra = {"commits": store.stats.commits, "largest_batch": store.stats.largest_batch}
    finally:
        store.close()
    return {"events": len(flat), "seconds": t1 - t0, "rss_kib": rss, "errors": errors, "extra": extra}


# -- raw sqlite3 baseline -------------------------------------------------------


def run_raw(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``executemany`` of the same rows in one transaction, WAL journal, the
    recorder's table definition and SQLite's default ``synchronous`` (as the store)."""
    n, include_encode = spec["n"], spec["include_encode"]
    tasks = build_events(n)
    flat = [e for evs in tasks for e in evs]
    codec = EventCodec()
    path = Path(spec["tmpdir"]).resolve() / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        journal = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.execute(
            f"CREATE TABLE {TABLE} (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        insert = f"INSERT INTO {TABLE} (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)"
        encode = codec.encode
        rows = None if include_encode else [(e.stream_id, e.version, e.type, encode(e)) for e in flat]
        t0 = time.perf_counter()
        if rows is None:
            rows = [(e.stream_id, e.version, e.type, encode(e)) for e in flat]
        conn.execute("BEGIN")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
        t1 = time.perf_counter()
        rss = _rss()
        count = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
    finally:
        conn.close()
    errors = [] if count == len(flat) else [f"raw table holds {count} rows, expected {len(flat)}"]
    return {
        "events": len(flat),
        "seconds": t1 - t0,
        "rss_kib": rss,
        "errors": errors,
        "extra": {"commits": 1, "largest_batch": len(flat), "journal_mode": journal, "synchronous": synchronous},
    }


# -- replay ---------------------------------------------------------------------


def run_replay_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the replay log: ``n`` events appended through the store in batches of
    ``batch`` events (whole tasks)."""
    n, batch = spec["n"], spec["batch"]
    tasks = build_events(n, prefix="r")
    per = max(1, batch // EVENTS_PER_TASK)
    chunks = [[e for evs in tasks[k : k + per] for e in evs] for k in range(0, len(tasks), per)]
    store = open_store(spec["url"])
    try:
        t0 = time.perf_counter()
        for chunk in chunks:
            store.append(chunk)
        t1 = time.perf_counter()
        rss = _rss()
        errors = [] if store.max_position() == n else [f"log ends at {store.max_position()}, expected {n}"]
        extra = {"commits": store.stats.commits, "largest_batch": store.stats.largest_batch}
    finally:
        store.close()
    return {"events": n, "seconds": t1 - t0, "rss_kib": rss, "errors": errors, "extra": extra}


def run_replay(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the log and fold it into the task view, in this fresh process."""
    n = spec["n"]
    t0 = time.perf_counter()
    store = open_store(spec["url"])
    history = History(store)
    t1 = time.perf_counter()
    view = history.task_view()
    t2 = time.perf_counter()
    rss = _rss()
    store.close()
    tasks = n // EVENTS_PER_TASK
    errors: list[str] = []
    if view.position != n:
        errors.append(f"view position {view.position}, expected {n}")
    if len(view.tasks) != tasks or view.counts[TaskStatus.COMPLETED] != tasks:
        errors.append(f"{len(view.tasks)} tasks, {view.counts[TaskStatus.COMPLETED]} completed; expected {tasks}")
    wrong = [
        tid
        for tid, rec in view.tasks.items()
        if rec.result is None or rec.result.data != int(tid.split("-")[1]) + 1 or rec.version != EVENTS_PER_TASK
    ]
    if wrong:
        errors.append(f"{len(wrong)} task(s) with a wrong result or version, e.g. {wrong[:3]}")
    return {
        "events": n,
        "seconds": t2 - t1,
        "open_seconds": t1 - t0,
        "rss_kib": rss,
        "errors": errors,
        "extra": {},
    }
