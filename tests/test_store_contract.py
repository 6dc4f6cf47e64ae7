"""Contract tests of the event store, run once per backend (memory, SQLite, PostgreSQL).

Every test that takes ``store_url`` runs against each backend; the PostgreSQL case is
marked ``postgres`` by the fixture (``pytest -m postgres``). PostgreSQL's sequence may
leave gaps in global positions after a rolled-back insert, so positions there are only
required to be strictly increasing; memory and SQLite must be contiguous.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from domain import task
from domain.errors import ConcurrencyConflictError, StoreError, ValidationError
from domain.events import Event, EventMeta, Recorded
from engine.store import EventStore, open_store

WAIT = 10.0  # seconds any single commit may take before a test gives up on it


# -- helpers -------------------------------------------------------------------


def _meta() -> EventMeta:
    return EventMeta(timestamp=datetime.now(UTC), actor="contract", correlation_id="run-1")


def created(task_id: str, **definition: Any) -> task.TaskCreated:
    definition.setdefault("name", f"task {task_id}")
    definition.setdefault("module", "test")
    definition.setdefault("action", "noop")
    return task.create(task_id, _meta(), **definition)


def ready(task_id: str, version: int) -> task.TaskReady:
    m = _meta()
    return task.TaskReady(aggregate_id=task_id, version=version, timestamp=m.timestamp, actor=m.actor)


def started(task_id: str, version: int, attempt: int = 1) -> task.TaskStarted:
    m = _meta()
    return task.TaskStarted(aggregate_id=task_id, version=version, attempt=attempt, timestamp=m.timestamp)


def backend(url: str) -> str:
    return url.split("://", 1)[0]


def assert_positions(positions: Sequence[int], url: str, first: int | None = None) -> None:
    """Strictly increasing everywhere; contiguous (from ``first`` if given) except on
    PostgreSQL, whose sequence may skip values consumed by rolled-back inserts."""
    assert all(a < b for a, b in itertools.pairwise(positions)), positions
    if backend(url) != "postgresql" and positions:
        start = positions[0] if first is None else first
        assert list(positions) == list(range(start, start + len(positions)))


@pytest.fixture
def open_() -> Iterator[Callable[..., EventStore]]:
    """Open stores (closed again at teardown, last first)."""
    stores: list[EventStore] = []

    def opener(url: str, **options: Any) -> EventStore:
        store = open_store(url, **options)
        stores.append(store)
        return store

    yield opener
    for store in reversed(stores):
        store.close(timeout=WAIT)


@pytest.fixture
def store(store_url: str, open_: Callable[..., EventStore]) -> EventStore:
    return open_(store_url)


# -- appending and reading -------------------------------------------------------


def _populate(store: EventStore, n_tasks: int = 7) -> list[Recorded]:
    """Interleaved streams: every task gets created, ready, started (3 events), each
    event its own submission, round-robin over the tasks."""
    recorded: list[Recorded] = []
    for make in (lambda i: created(f"t{i}"), lambda i: ready(f"t{i}", 2), lambda i: started(f"t{i}", 3)):
        for i in range(n_tasks):
            recorded.extend(store.append([make(i)], timeout=WAIT))
    return recorded


def test_append_returns_recorded_with_increasing_positions(store: EventStore, store_url: str) -> None:
    assert store.max_position() == 0
    assert list(store.read()) == []

    a = created("a")
    first = store.append([a], timeout=WAIT)
    assert len(first) == 1
    assert isinstance(first[0], Recorded)
    assert first[0].event == a

    events = [created("b"), ready("b", 2), started("b", 3)]
    more = store.append(events, timeout=WAIT)
    assert [r.event for r in more] == events
    positions = [r.position for r in (*first, *more)]
    assert_positions(positions, store_url, first=1)
    assert store.max_position() == positions[-1]


def test_read_returns_everything_in_position_order_equal_to_appended(store: EventStore, store_url: str) -> None:
    recorded = _populate(store)
    assert_positions([r.position for r in recorded], store_url, first=1)
    assert list(store.read()) == recorded
    assert store.max_position() == recorded[-1].position
    assert list(store.read(page=4)) == recorded  # the same, read in pages of 4


def test_read_start_stop_types_and_paging(store: EventStore) -> None:
    recorded = _populate(store, n_tasks=7)  # 21 events
    pos = [r.position for r in recorded]

    def expect(start: int = 1, stop: int | None = None, types: Sequence[str] = ()) -> list[Recorded]:
        return [
            r
            for r in recorded
            if r.position >= start and (stop is None or r.position <= stop) and (not types or r.event.type in types)
        ]

    cases: list[dict[str, Any]] = [
        {},
        {"start": pos[5]},
        {"stop": pos[9]},
        {"start": pos[3], "stop": pos[14]},
        {"start": pos[6], "stop": pos[6]},
        {"types": ["task.ready"]},
        {"types": ("task.created", "task.started")},
        {"types": ["task.started"], "start": pos[16]},
        {"types": ["task.created"], "stop": pos[4]},
        {"types": ["task.ready"], "start": pos[8], "stop": pos[11]},
        {"types": ["no.such.type"]},
        {"start": pos[-1] + 1},
        {"start": pos[10], "stop": pos[9]},
    ]
    for case in cases:
        expected = expect(**case)
        for page in (1, 2, 3, 5, 7, 21, 1000):
            got = list(store.read(page=page, **case))
            assert got == expected, (case, page)
    # paging really spans pages: 7 task.ready events over pages of 2
    assert len(list(store.read(types=["task.ready"], page=2))) == 7
    # the iterator is lazy and resumable across pages
    it = store.read(page=2)
    assert [next(it) for _ in range(5)] == recorded[:5]
    assert list(it) == recorded[5:]


def test_read_stream_returns_one_aggregate_in_version_order(store: EventStore) -> None:
    recorded = _populate(store, n_tasks=4)
    for i in range(4):
        stream = store.read_stream(f"task:t{i}")
        assert [e.version for e in stream] == [1, 2, 3]
        assert all(e.aggregate_id == f"t{i}" for e in stream)
        assert stream == [r.event for r in recorded if r.event.aggregate_id == f"t{i}"]
        assert [type(e) for e in stream] == [task.TaskCreated, task.TaskReady, task.TaskStarted]
    assert store.read_stream("task:nobody") == []
    assert store.read_stream("t0") == []  # the stream id includes the kind


def test_max_position_tracks_the_log(store: EventStore) -> None:
    assert store.max_position() == 0
    r1 = store.append([created("a"), ready("a", 2)], timeout=WAIT)
    assert store.max_position() == r1[-1].position
    r2 = store.append([created("b")], timeout=WAIT)
    assert store.max_position() == r2[-1].position > r1[-1].position


# -- optimistic concurrency -------------------------------------------------------


def test_duplicate_version_raises_conflict_and_records_nothing(store: EventStore) -> None:
    original = store.append([created("a", description="first")], timeout=WAIT)
    with pytest.raises(ConcurrencyConflictError) as info:
        store.append([created("a", description="second")], timeout=WAIT)
    assert info.value.error_code == "CONCURRENCY_CONFLICT"
    assert list(store.read()) == list(original)
    assert store.read_stream("task:a") == [original[0].event]
    assert store.stats.conflicts == 1
    # the next version is still free
    store.append([ready("a", 2)], timeout=WAIT)
    assert [e.version for e in store.read_stream("task:a")] == [1, 2]


def test_conflicting_multi_event_submission_is_all_or_nothing(store: EventStore) -> None:
    base = store.append([created("a")], timeout=WAIT)
    before = store.max_position()
    with pytest.raises(ConcurrencyConflictError):
        # b's events are new, a@1 exists: none of the three may be recorded
        store.append([created("b"), ready("b", 2), created("a")], timeout=WAIT)
    assert store.read_stream("task:b") == []
    assert list(store.read()) == list(base)
    assert store.max_position() == before
    # a same-stream submission conflicting in its second event
    with pytest.raises(ConcurrencyConflictError):
        store.append([created("c"), created("c")], timeout=WAIT)
    assert store.read_stream("task:c") == []
    # b@1..2 are still free: proof nothing of them was written
    again = store.append([created("b"), ready("b", 2)], timeout=WAIT)
    assert [r.event.version for r in again] == [1, 2]
    assert list(store.read()) == [*base, *again]


def test_conflict_error_names_the_conflicting_event(store: EventStore) -> None:
    store.append([created("a")], timeout=WAIT)
    with pytest.raises(ConcurrencyConflictError) as info:
        store.append([created("b"), created("a")], timeout=WAIT)
    assert info.value.details == {"stream_id": "task:a", "version": 1}
    assert "task:a" in str(info.value)


def test_conflict_in_a_batch_fails_only_that_submission(store: EventStore, store_url: str) -> None:
    """Hold the committer inside a listener so that five submissions queue up and are
    taken as one batch; one conflicts with the log, one with an earlier submission of
    the same batch. Only those two fail; the others commit in queue order."""
    store.append([created("a")], timeout=WAIT)

    entered, release = threading.Event(), threading.Event()

    def gate(batch: Sequence[Recorded]) -> None:
        if any(r.event.aggregate_id == "gate" for r in batch):
            entered.set()
            assert release.wait(WAIT)

    store.subscribe(gate)
    results: dict[str, tuple[Sequence[Recorded] | None, BaseException | None]] = {}

    def callback(name: str) -> Callable[[Sequence[Recorded] | None, BaseException | None], None]:
        def cb(recorded: Sequence[Recorded] | None, error: BaseException | None) -> None:
            results[name] = (recorded, error)

        return cb

    store.append_async([created("gate")], callback("gate"))
    assert entered.wait(WAIT), "the committer never reached the listener"
    submissions: dict[str, list[Event]] = {
        "s1": [created("x1")],
        "s2": [created("c"), ready("c", 2), created("a")],  # a@1 exists
        "s3": [created("x2"), ready("x2", 2)],
        "s4": [created("x1")],  # same as s1, which is ahead of it in the batch
        "s5": [created("x3")],
    }
    for name, events in submissions.items():
        store.append_async(events, callback(name))
    release.set()
    assert store.flush(WAIT)

    assert set(results) == {"gate", *submissions}
    for name in ("s2", "s4"):
        recorded, error = results[name]
        assert isinstance(error, ConcurrencyConflictError), name
        assert recorded is None
    for name in ("s1", "s3", "s5"):
        recorded, error = results[name]
        assert error is None, (name, error)
        assert recorded is not None
        assert [r.event for r in recorded] == submissions[name]
    assert store.stats.conflicts == 2
    survivors = [r for name in ("s1", "s3", "s5") for r in results[name][0] or ()]
    gate_pos = (results["gate"][0] or [])[0].position
    assert_positions([gate_pos, *(r.position for r in survivors)], store_url)
    log = list(store.read())
    assert log[-len(survivors) :] == survivors
    assert store.read_stream("task:c") == []
    assert store.read_stream("task:x1") == submissions["s1"]
    assert len(log) == 2 + 4  # a, gate, x1, x2 (two events), x3


# -- subscribers -------------------------------------------------------------------


def test_subscribers_see_each_batch_once_in_order_before_append_returns(store: EventStore) -> None:
    batches: list[list[Recorded]] = []
    store.subscribe(lambda batch: batches.append(list(batch)))

    for i in range(5):
        recorded = store.append([created(f"w{i}"), ready(f"w{i}", 2)], timeout=WAIT)
        assert batches[-1] == list(recorded)  # delivered before append returned

    seen_in_callback: list[bool] = []

    def cb(recorded: Sequence[Recorded] | None, error: BaseException | None) -> None:
        assert error is None
        assert recorded is not None
        seen = {r.position for b in batches for r in b}
        seen_in_callback.append(all(r.position in seen for r in recorded))

    for i in range(20):
        store.append_async([created(f"q{i}")], cb)
    assert store.flush(WAIT)
    assert seen_in_callback == [True] * 20

    flat = [r for b in batches for r in b]
    assert flat == list(store.read())  # every commit, once, in commit order
    assert len(batches) == store.stats.commits
    assert all(batch for batch in batches)


def test_unsubscribe_stops_delivery(store: EventStore) -> None:
    a: list[Recorded] = []
    b: list[Recorded] = []
    unsubscribe_a = store.subscribe(a.extend)
    store.subscribe(b.extend)
    first = store.append([created("one")], timeout=WAIT)
    unsubscribe_a()
    unsubscribe_a()  # idempotent
    second = store.append([created("two")], timeout=WAIT)
    assert a == list(first)
    assert b == [*first, *second]


def test_failing_listener_does_not_lose_the_commit(store: EventStore) -> None:
    def broken(batch: Sequence[Recorded]) -> None:
        raise RuntimeError("projection bug")

    unsubscribe = store.subscribe(broken)
    event = created("a")
    with pytest.raises(StoreError) as info:
        store.append([event], timeout=WAIT)
    assert info.value.error_code == "PROJECTION_FAILED"
    assert [r.event for r in store.read()] == [event]
    assert store.read_stream("task:a") == [event]
    assert len(store.stats.listener_errors) == 1

    got: list[tuple[Sequence[Recorded] | None, BaseException | None]] = []
    store.append_async([ready("a", 2)], lambda r, e: got.append((r, e)))
    assert store.flush(WAIT)
    ((recorded, error),) = got
    assert isinstance(error, StoreError)
    assert error.error_code == "PROJECTION_FAILED"
    assert recorded is not None
    assert [r.event for r in recorded] == [r.event for r in list(store.read())[1:]]

    unsubscribe()
    store.append([started("a", 3)], timeout=WAIT)  # the store keeps working
    assert [e.version for e in store.read_stream("task:a")] == [1, 2, 3]


def test_failing_listener_does_not_starve_the_other_listeners(store: EventStore) -> None:
    def broken(batch: Sequence[Recorded]) -> None:
        raise RuntimeError("projection bug")

    store.subscribe(broken)
    later: list[Recorded] = []
    store.subscribe(later.extend)
    with pytest.raises(StoreError):
        store.append([created("a")], timeout=WAIT)
    assert [r.event.aggregate_id for r in later] == ["a"]


def test_raising_callback_does_not_kill_the_committer(store: EventStore) -> None:
    def bad_callback(recorded: Sequence[Recorded] | None, error: BaseException | None) -> None:
        raise RuntimeError("callback bug")

    seen: list[BaseException | None] = []
    store.append_async([created("a")], bad_callback)
    store.append_async([created("b")], lambda r, e: seen.append(e))
    assert store.flush(1.0), "the committer died"
    assert seen == [None]
    store.append([created("c")], timeout=1.0)
    assert [r.event.aggregate_id for r in store.read()] == ["a", "b", "c"]


# -- group commit ---------------------------------------------------------------------


def test_group_commit_under_concurrent_producers(store: EventStore, store_url: str) -> None:
    n_threads, per_thread, streams_per_thread = 8, 250, 5
    versions = per_thread // streams_per_thread
    batches: list[list[Recorded]] = []
    store.subscribe(lambda batch: batches.append(list(batch)))
    errors: list[BaseException] = []
    async_results: list[Recorded] = []
    results_lock = threading.Lock()
    start = threading.Barrier(2 * n_threads)

    def events_of(prefix: str) -> Iterator[Event]:
        # version-major: v1 of every stream, then v2, ... (each stream's versions in order)
        for v in range(1, versions + 1):
            for s in range(streams_per_thread):
                tid = f"{prefix}-{s}"
                yield created(tid) if v == 1 else ready(tid, v)

    def waiting(t: int) -> None:
        try:
            start.wait()
            for ev in events_of(f"w{t}"):
                (rec,) = store.append([ev], timeout=WAIT)
                assert rec.event == ev
        except BaseException as e:
            errors.append(e)

    def async_producer(t: int) -> None:
        def cb(recorded: Sequence[Recorded] | None, error: BaseException | None) -> None:
            with results_lock:
                if error is not None:
                    errors.append(error)
                async_results.extend(recorded or ())

        try:
            start.wait()
            for ev in events_of(f"a{t}"):
                store.append_async([ev], cb)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=waiting, args=(t,)) for t in range(n_threads)]
    threads += [threading.Thread(target=async_producer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    assert store.flush(WAIT)
    assert errors == []

    submissions = 2 * n_threads * per_thread
    log = list(store.read())
    assert len(log) == submissions
    assert len({(r.event.stream_id, r.event.version) for r in log}) == submissions  # no duplicates
    positions = [r.position for r in log]
    assert_positions(positions, store_url, first=1)
    assert store.max_position() == positions[-1]
    assert len(async_results) == n_threads * per_thread
    assert {r.position for r in async_results} <= set(positions)

    by_stream: dict[str, list[tuple[int, int]]] = {}
    for r in log:
        by_stream.setdefault(r.event.stream_id, []).append((r.event.version, r.position))
    assert len(by_stream) == 2 * n_threads * streams_per_thread
    for stream, entries in by_stream.items():
        assert [v for v, _ in entries] == list(range(1, versions + 1)), stream  # contiguous, in log order
    sample = next(iter(by_stream))
    assert [e.version for e in store.read_stream(sample)] == list(range(1, versions + 1))

    # batches really formed, and every batch reached the subscriber once, in order
    assert store.stats.commits < submissions
    assert store.stats.largest_batch > 1
    assert store.stats.events == submissions
    assert len(batches) == store.stats.commits
    assert [r for b in batches for r in b] == log


# -- persistence and lifecycle ---------------------------------------------------------


def test_sqlite_store_persists_across_reopen(sqlite_url: str, open_: Callable[..., EventStore]) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    first = open_(sqlite_url)
    recorded = [*first.append([created("a"), ready("a", 2)], timeout=WAIT), *first.append([created("b")], timeout=WAIT)]
    first.append_async([started("a", 3)])  # queued; close() must still commit it
    first.close()

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert raw.execute("SELECT COUNT(*) FROM codomyrmex_events").fetchone()[0] == 4
    finally:
        raw.close()

    second = open_(sqlite_url)
    log = list(second.read())
    assert log[:3] == recorded
    assert [r.position for r in log] == [1, 2, 3, 4]
    assert isinstance(log[3].event, task.TaskStarted)
    assert (log[3].event.aggregate_id, log[3].event.version) == ("a", 3)
    assert second.max_position() == 4
    assert [e.version for e in second.read_stream("task:a")] == [1, 2, 3]
    # uniqueness survives the reopen, and positions continue
    with pytest.raises(ConcurrencyConflictError):
        second.append([created("b")], timeout=WAIT)
    (nxt,) = second.append([ready("b", 2)], timeout=WAIT)
    assert nxt.position == 5


def test_sqlite_store_uses_wal_and_synchronous_full(sqlite_url: str, open_: Callable[..., EventStore]) -> None:
    store = open_(sqlite_url)
    store.append([created("a")], timeout=WAIT)
    path = sqlite_url.removeprefix("sqlite:///")
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"  # persistent, per file
    finally:
        raw.close()
    # synchronous is per connection: ask one of the store's own pooled connections
    datastore = store.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection(commit=False) as conn:
        cursor = conn.cursor()
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2  # FULL
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0].lower() == "wal"


def test_closed_store_rejects_appends(store: EventStore) -> None:
    store.append([created("a")], timeout=WAIT)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError) as info:
        store.append([created("b")], timeout=WAIT)
    assert info.value.error_code == "STORE_CLOSED"
    with pytest.raises(StoreError):
        store.append_async([created("c")])


def test_empty_submission(store: EventStore) -> None:
    """Appending no events records nothing and returns nothing; the store keeps working."""
    assert list(store.append([], timeout=1.0)) == []
    (rec,) = store.append([created("a")], timeout=1.0)
    assert rec.event.aggregate_id == "a"
    assert list(store.append([], timeout=1.0)) == []  # also once the log is not empty
    got: list[tuple[Sequence[Recorded] | None, BaseException | None]] = []
    store.append_async([], lambda r, e: got.append((r, e)))
    assert store.flush(1.0)
    assert [(list(r or ()), e) for r, e in got] == [([], None)]
    (rec2,) = store.append([ready("a", 2)], timeout=1.0)
    assert [r.event for r in store.read()] == [rec.event, rec2.event]


# -- URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["events.db", "", "/tmp/events.db", "mysql://user@host/db", "file:///tmp/x.db", "sqlite://", "sqlite:///"],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        open_store(url)
    assert info.value.error_code == "INVALID_STORE_URL"


@pytest.mark.postgres
def test_open_store_unreachable_postgres_fails_fast() -> None:
    began = time.monotonic()
    with pytest.raises(StoreError) as info:
        open_store("postgresql://postgres@127.0.0.1:1/test")
    elapsed = time.monotonic() - began
    assert not isinstance(info.value, ValidationError)
    assert elapsed < 10.0, f"took {elapsed:.1f}s"


# -- bad events ------------------------------------------------------------------------


def test_too_large_or_unencodable_event_is_rejected_at_append(store_url: str, open_: Callable[..., EventStore]) -> None:
    store = open_(store_url, max_event_bytes=2048)
    base = store.append([created("ok")], timeout=WAIT)

    with pytest.raises(ValidationError) as info:
        store.append([created("big", description="x" * 4096)], timeout=WAIT)
    assert info.value.error_code == "VALUE_TOO_LARGE"

    with pytest.raises(ValidationError) as info:
        store.append([created("odd", parameters={"handle": object()})], timeout=WAIT)
    assert info.value.error_code == "NOT_SERIALIZABLE"

    # a bad event in a multi-event submission rejects the whole submission
    with pytest.raises(ValidationError):
        store.append([created("good"), created("big2", metadata={"blob": "y" * 4096})], timeout=WAIT)
    with pytest.raises(ValidationError):
        store.append_async([ready("ok", 2), created("odd2", parameters={"f": lambda: None})])

    assert store.flush(WAIT)
    assert list(store.read()) == list(base)
    assert store.max_position() == base[-1].position
    for stream in ("task:big", "task:odd", "task:good", "task:big2", "task:odd2"):
        assert store.read_stream(stream) == []
    assert [e.version for e in store.read_stream("task:ok")] == [1]

    # the store keeps working, and the versions the rejected events named are free
    after = store.append([ready("ok", 2), created("good"), created("big", description="small")], timeout=WAIT)
    assert [r.event for r in store.read()] == [base[0].event, *(r.event for r in after)]
    assert store.stats.failures == 0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(b"\x00\xff", id="bytes"),
    ],
)
def test_non_json_values_are_rejected_or_round_trip(value: Any, store: EventStore) -> None:
    event = created("v", parameters={"value": value})
    error: ValidationError | None = None
    try:
        store.append([event], timeout=WAIT)
    except ValidationError as e:
        error = e
    if error is not None:  # rejected: with the right code, having recorded nothing
        assert error.error_code == "NOT_SERIALIZABLE"
        assert list(store.read()) == []
    else:  # accepted: then it must read back as it was written
        assert store.read_stream("task:v") == [event]


# -- the hash chain ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest) -> str:
    """A database two stores can share (memory:// is private to its store)."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


def test_two_stores_on_one_database_keep_one_valid_chain(shared_url: str, open_: Callable[..., EventStore]) -> None:
    """Two writers (as two engine processes would be) interleave commits: each links to
    whatever was committed last, because the link is made under the write lock."""
    from replay_tools.verify import verify

    a, b = open_(shared_url), open_(shared_url)
    errors: list[BaseException] = []

    def write(store: EventStore, prefix: str) -> None:
        try:
            for i in range(40):
                store.append([created(f"{prefix}{i}"), ready(f"{prefix}{i}", 2)], timeout=WAIT)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(s, p)) for s, p in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors
    report = verify(a)
    assert report.ok, report.text()
    assert report.events == 160
    assert a.chain_head() == b.chain_head() == (a.max_position(), report.head, 0)


def test_a_conflict_leaves_the_chain_head_where_it_was(store: EventStore) -> None:
    from replay_tools.verify import verify

    store.append([created("c1")], timeout=WAIT)
    before = store.chain_head()
    with pytest.raises(ConcurrencyConflictError):
        store.append([created("c2"), created("c1")], timeout=WAIT)
    assert store.chain_head() == before
    store.append([ready("c1", 2)], timeout=WAIT)
    assert verify(store).ok
