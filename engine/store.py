"""The event store adapter: one class over `eventsourcing`'s application recorders,
selected by URL, with group commit.

URLs (SQLAlchemy's convention for SQLite paths)::

    memory://                          in-process, nothing persisted
    sqlite:///relative/path/events.db  a file, WAL journal, synchronous=FULL
    sqlite:////absolute/path/events.db
    postgresql://user:pass@host:5432/dbname?schema=name

**Group commit.** Producers never open transactions (one exception: a synchronous
:meth:`EventStore.append` that finds nothing queued and nothing committing commits in its
own thread, saving two thread handoffs; it holds the committer's role meanwhile, so
commits stay serialized and in order). :meth:`EventStore.append_async`
encodes a submission in the caller's thread (so a bad value fails the caller, having
recorded nothing) and queues it; one committer thread takes everything queued (up to
``max_batch`` events, optionally lingering ``linger`` seconds for more) and inserts it
in **one** transaction. Callers that must know their events are durable wait for their
batch (:meth:`append`); others are called back. After a commit the committer applies
the batch to every subscribed projection, in commit order, and only then resolves the
waiters: nobody is told of an event before it is durable, and views only ever show
committed events.

**Optimistic concurrency.** Stream id plus version is unique in every backend. If a
batch violates it, the batch is retried one submission at a time, so only the
conflicting submission fails (with :class:`ConcurrencyConflictError`); the others
commit. Nothing is silently dropped.

**Hash chain.** Every row is linked to the one before it and the last link is kept in a
head row, both written inside the insert transaction by the recorders of
:mod:`engine.recorders` (see :mod:`engine.chain`); :meth:`EventStore.raw_rows` and
:meth:`EventStore.chain_head` are what ``replay_tools.verify`` checks them with.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteDatastore

from domain.errors import ConcurrencyConflictError, StoreError, ValidationError
from domain.events import Event, Recorded
from engine.codec import DEFAULT_MAX_EVENT_BYTES, EventCodec
from engine.recorders import (
    ChainedPOPORecorder,
    ChainedSQLiteRecorder,
    ChainHead,
    RawRow,
    SQLitePool,
    chained_postgres_recorder,
)

__all__ = ["EventStore", "apply_each", "open_store"]

TABLE = "codomyrmex_events"
_log = logging.getLogger(__name__)

Listener = Callable[[Sequence[Recorded]], None]
Callback = Callable[[Sequence[Recorded] | None, BaseException | None], None]


@dataclass
class _Submission:
    events: Sequence[Event]
    stored: list[StoredEvent]
    callback: Callback | None
    done: threading.Event | None = None
    result: Sequence[Recorded] | None = None
    error: BaseException | None = None
    resolved: bool = False


@dataclass
class StoreStats:
    commits: int = 0
    events: int = 0
    conflicts: int = 0
    failures: int = 0
    largest_batch: int = 0
    listener_errors: list[str] = field(default_factory=list)
    callback_errors: list[str] = field(default_factory=list)


class EventStore:
    """Append-only event log with group commit, reads by position or stream, and live
    subscriptions for projections."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        *,
        url: str,
        codec: EventCodec | None = None,
        max_batch: int = 4096,
        linger: float = 0.0,
        closer: Callable[[], None] | None = None,
        follow_interval: float = 0.0,
    ) -> None:
        self.url = url
        self.recorder = recorder
        self.codec = codec or EventCodec()
        self.max_batch = max_batch
        self.linger = linger
        self.stats = StoreStats()
        self._closer = closer
        self._queue: deque[_Submission] = deque()
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._closed = False
        self._idle = True  # nothing queued, nothing being committed
        self._inline = False  # a synchronous append is committing in its caller's thread
        self._thread: threading.Thread | None = None
        # Deliveries to listeners, in log order, each event once: held across every
        # insert and its notification, by the follower, and by subscribe's history.
        self._deliver = threading.RLock()
        self._delivered = self.max_position()
        self.follow_interval = follow_interval
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()
        self.delivering_foreign = False
        """True while listeners are being handed other processes' events (they may
        want to fold them, but not to react to them as their own)."""

    # -- writing ---------------------------------------------------------------

    def append(self, events: Sequence[Event], timeout: float | None = None) -> Sequence[Recorded]:
        """Append ``events`` atomically and return them as recorded, once durable."""
        if not events:
            self._check_open()
            return []
        sub = self._submission(events, None, None, None)
        with self._cond:
            self._check_open()
            inline = self._idle and not self._inline
            if inline:  # nothing queued or committing: commit in this thread, no handoff
                self._inline = True
                self._idle = False
        if inline:
            try:
                self._commit([sub])
            finally:
                with self._cond:
                    self._inline = False
                    if not self._queue:
                        self._idle = True
                    self._cond.notify_all()
        else:
            sub.done = threading.Event()
            self._enqueue(sub)
            if not sub.done.wait(timeout):
                raise StoreError(
                    f"commit of {len(events)} events not confirmed within {timeout}s", code="COMMIT_TIMEOUT"
                )
        if sub.error is not None:
            raise sub.error
        assert sub.result is not None
        return sub.result

    def append_async(
        self, events: Sequence[Event], callback: Callback | None = None, *, encoded: Sequence[bytes] | None = None
    ) -> None:
        """Queue ``events`` for the next commit; ``callback(recorded, error)`` runs on the
        committer thread after the commit (and after the projections saw it).
        ``encoded``: the events' bytes when the caller already encoded them."""
        if not events:
            self._check_open()
            if callback is not None:
                callback([], None)
            return
        self._submit(events, callback, None, encoded)

    def _submit(
        self,
        events: Sequence[Event],
        callback: Callback | None,
        done: threading.Event | None,
        encoded: Sequence[bytes] | None = None,
    ) -> _Submission:
        return self._enqueue(self._submission(events, callback, done, encoded))

    def _submission(
        self,
        events: Sequence[Event],
        callback: Callback | None,
        done: threading.Event | None,
        encoded: Sequence[bytes] | None,
    ) -> _Submission:
        """Encode in the caller's thread, so a bad value fails the caller."""
        if encoded is None:
            encode = self.codec.encode
            encoded = [encode(e) for e in events]
        elif len(encoded) != len(events):
            raise ValueError("encoded must hold one entry per event")
        stored = [StoredEvent(e.stream_id, e.version, e.type, data) for e, data in zip(events, encoded, strict=True)]
        return _Submission(events, stored, callback, done)

    def _enqueue(self, sub: _Submission) -> _Submission:
        with self._cond:
            if self._closed:
                raise StoreError("the event store is closed", code="STORE_CLOSED")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-store-committer", daemon=True)
                self._thread.start()
            self._queue.append(sub)
            self._idle = False
            self._cond.notify_all()
        return sub

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the event store is closed", code="STORE_CLOSED")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed (or failed)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._idle, timeout)

    def _take_batch(self) -> list[_Submission] | None:
        with self._cond:
            while not self._queue or self._inline:
                if not self._queue and not self._inline:
                    self._idle = True
                    self._cond.notify_all()
                    if self._closed:
                        return None
                self._cond.wait()
            if self.linger and sum(len(s.stored) for s in self._queue) < self.max_batch:
                self._cond.wait(self.linger)
            batch: list[_Submission] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].stored) <= self.max_batch):
                sub = self._queue.popleft()
                batch.append(sub)
                size += len(sub.stored)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                self._commit(batch)
            except Exception as e:  # noqa: BLE001 -- the committer must outlive any failure
                # Whatever went wrong (a driver error of an unexpected class, a recorder
                # that broke its contract), every waiter of the batch hears of it and
                # the committer keeps serving the next batches.
                pending = [sub for sub in batch if not sub.resolved]
                self._fail(pending, StoreError(f"commit of {len(pending)} submission(s) failed: {e!r}"))

    def _commit(self, batch: list[_Submission]) -> None:
        with self._deliver:
            self._commit_delivering(batch)

    def _commit_delivering(self, batch: list[_Submission]) -> None:
        stored = [s for sub in batch for s in sub.stored]
        try:
            ids = self._insert(stored)
        except IntegrityError:
            if len(batch) == 1:
                self._fail(batch, self._conflict(batch[0]))
                return
            for sub in batch:  # isolate the conflicting submission(s)
                self._commit_delivering([sub])
            return
        except (PersistenceError, OSError, StoreError) as e:
            self._fail(
                batch, e if isinstance(e, StoreError) else StoreError(f"commit of {len(stored)} events failed: {e}")
            )
            return
        recorded = [Recorded(pos, ev) for pos, ev in zip(ids, (e for sub in batch for e in sub.events), strict=True)]
        self.stats.commits += 1
        self.stats.events += len(recorded)
        self.stats.largest_batch = max(self.stats.largest_batch, len(recorded))
        if ids[0] > self._delivered + 1:  # other processes committed in between: theirs first
            self._deliver_foreign(ids[0] - 1)
        listener_error = self._notify_listeners(recorded)
        self._delivered = max(self._delivered, ids[-1])
        offset = 0
        for sub in batch:
            sub.result = recorded[offset : offset + len(sub.events)]
            offset += len(sub.events)
            sub.error = listener_error
            self._resolve(sub)

    def _insert(self, stored: list[StoredEvent]) -> Sequence[int]:
        ids = self.recorder.insert_events(stored)
        if ids is None or len(ids) != len(stored):
            raise StoreError("the recorder did not return the positions of the events it inserted")
        return ids

    def _conflict(self, sub: _Submission) -> ConcurrencyConflictError:
        """Name the event whose (stream, version) is taken: read back only on conflict."""
        self.stats.conflicts += 1
        seen: set[tuple[str, int]] = set()
        culprit = sub.events[0]
        for event in sub.events:
            key = (event.stream_id, event.version)
            if key in seen or self.recorder.select_events(event.stream_id, gt=event.version - 1, lte=event.version):
                culprit = event
                break
            seen.add(key)
        return ConcurrencyConflictError(
            f"version {culprit.version} of {culprit.stream_id} is already recorded by another writer "
            f"(nothing of this submission of {len(sub.events)} event(s) was recorded)",
            details={"stream_id": culprit.stream_id, "version": culprit.version},
        )

    def _fail(self, batch: list[_Submission], error: BaseException) -> None:
        self.stats.failures += 1
        for sub in batch:
            sub.error = error
            self._resolve(sub)

    def _resolve(self, sub: _Submission) -> None:
        sub.resolved = True
        try:
            if sub.callback is not None:
                sub.callback(sub.result, sub.error)
        except Exception as e:  # noqa: BLE001 -- a caller's callback must not stop the committer
            self.stats.callback_errors.append(f"{sub.callback!r} raised {e!r}")
            _log.exception("store callback %r raised; the commit itself is unaffected", sub.callback)
        finally:
            if sub.done is not None:
                sub.done.set()

    def _notify_listeners(self, recorded: Sequence[Recorded]) -> StoreError | None:
        """Every listener sees every batch; the first failure is reported to the
        appenders (the events are committed either way)."""
        first: StoreError | None = None
        for listener in list(self._listeners):
            try:
                listener(recorded)
            except Exception as e:  # noqa: BLE001 -- a projection bug must not lose the commit; reported below
                message = f"events up to position {recorded[-1].position} are committed, but {listener!r} failed: {e!r}"
                self.stats.listener_errors.append(message)
                first = first or StoreError(message, code="PROJECTION_FAILED")
        return first

    # -- subscribing -----------------------------------------------------------

    def _deliver_foreign(self, stop: int | None) -> int:
        """(Delivery lock held) hand listeners the events other processes committed
        after the last delivered position, up to ``stop``. Returns how many."""
        if not self._listeners:
            self._delivered = stop if stop is not None else self.max_position()
            return 0
        foreign = list(self.read(start=self._delivered + 1, stop=stop))
        if foreign:
            self.delivering_foreign = True
            try:
                self._notify_listeners(foreign)
            finally:
                self.delivering_foreign = False
            self._delivered = foreign[-1].position
        if stop is not None:
            self._delivered = max(self._delivered, stop)
        return len(foreign)

    def catch_up(self) -> int:
        """Deliver what other processes committed since the last delivery (the
        follower does this every ``follow_interval`` seconds). Returns how many."""
        with self._deliver:
            return self._deliver_foreign(None)

    def _follow(self) -> None:
        while not self._stop_following.wait(self.follow_interval):
            try:
                self.catch_up()
            except StoreError as e:  # the next round tries again
                _log.warning("following %s: %s", self.url, e)

    def subscribe(
        self,
        listener: Listener,
        *,
        history: Callable[[Iterator[Recorded]], None] | None = None,
        types: Sequence[str] = (),
    ) -> Callable[[], None]:
        """Call ``listener(batch)`` after every commit, on the committer thread, in
        commit order, and with what other processes commit (in log order, each
        event once: before the next own commit, or by the follower). ``history``
        first receives the log so far (of ``types``), with no gap and no overlap
        with what ``listener`` gets after it. Returns a function that unsubscribes."""
        with self._deliver:
            self._deliver_foreign(None)  # the others first, so the history is the log up to now
            if history is not None:
                history(self.read(types=types, stop=self._delivered))
            with self._cond:
                self._listeners.append(listener)
                start = self.follow_interval > 0 and self._follower is None and not self._closed
                if start:
                    self._follower = threading.Thread(target=self._follow, name="event-store-follower", daemon=True)
        if start:
            assert self._follower is not None
            self._follower.start()

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- reading ---------------------------------------------------------------

    def read(
        self,
        *,
        start: int = 1,
        stop: int | None = None,
        types: Sequence[str] = (),
        page: int = 1000,
    ) -> Iterator[Recorded]:
        """Committed events in global order, from position ``start`` to ``stop``
        (inclusive), optionally only of the given type names."""
        decode = self.codec.decode
        select_rows = getattr(self.recorder, "select_rows", None)
        position = start
        while stop is None or position <= stop:
            try:
                if select_rows is not None:
                    rows = select_rows(position, page, stop, types)
                else:
                    rows = [
                        (n.id, n.topic, n.state)
                        for n in self.recorder.select_notifications(position, page, stop=stop, topics=types)
                    ]
            except PersistenceError as e:
                raise StoreError(f"reading {self.url} failed: {e}") from e
            if not rows:
                return
            for row_id, topic, state in rows:
                yield Recorded(row_id, decode(topic, state))
            if len(rows) < page:
                return
            position = rows[-1][0] + 1

    def read_stream(self, stream_id: str) -> list[Event]:
        """All events of one aggregate stream (``"<kind>:<id>"``), in version order."""
        try:
            rows = self.recorder.select_events(stream_id)
        except PersistenceError as e:
            raise StoreError(f"reading {stream_id} from {self.url} failed: {e}") from e
        return [self.codec.decode(row.topic, row.state) for row in rows]

    def raw_rows(self, *, start: int = 1, page: int = 1000) -> Iterator[RawRow]:
        """Rows exactly as stored, ``(position, originator_id, version, topic, state)``
        in global order, undecoded: what verification reads (one undecodable row does
        not hide the rest, and the hash chain is over these bytes)."""
        position = start
        while True:
            try:
                rows: list[RawRow] = self.recorder.raw_rows(position, page)  # type: ignore[attr-defined]
            except PersistenceError as e:
                raise StoreError(f"reading {self.url} failed: {e}") from e
            yield from rows
            if len(rows) < page:
                return
            position = rows[-1][0] + 1

    def chain_head(self) -> ChainHead | None:
        """``(position, link, legacy)`` of the last chained row (see :mod:`engine.chain`),
        or ``None`` when the head row is missing (which only tampering causes)."""
        try:
            head: ChainHead | None = self.recorder.chain_head()  # type: ignore[attr-defined]
        except PersistenceError as e:
            raise StoreError(f"reading {self.url} failed: {e}") from e
        return head

    def max_position(self) -> int:
        try:
            return int(self.recorder.max_notification_id() or 0)
        except PersistenceError as e:
            raise StoreError(f"reading {self.url} failed: {e}") from e

    # -- lifecycle -------------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> None:
        """Commit what is queued, stop the committer, close the connections."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._inline, timeout)
            thread = self._thread
            follower = self._follower
        self._stop_following.set()
        if thread is not None:
            thread.join(timeout)
        if follower is not None:
            follower.join(timeout)
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({self.url!r})"


def apply_each(apply: Callable[[Recorded], object]) -> Callable[[Iterator[Recorded]], None]:
    """A ``history`` for :meth:`EventStore.subscribe` that applies one event at a time."""

    def load(records: Iterator[Recorded]) -> None:
        for recorded in records:
            apply(recorded)

    return load


def open_store(
    url: str,
    *,
    max_batch: int = 4096,
    linger: float = 0.0,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    follow_interval: float | None = None,
) -> EventStore:
    """Open the store a URL names (see the module docstring). ``follow_interval``:
    how often listeners are handed other processes' commits while this process is
    idle (default 0.5 s for SQLite and PostgreSQL, off for memory://)."""
    if not isinstance(url, str) or "://" not in url:
        raise ValidationError(
            f"store URL {url!r} is not a URL",
            code="INVALID_STORE_URL",
            suggestions=["Use memory://, sqlite:///path/events.db or postgresql://user@host/db."],
        )
    scheme = url.split("://", 1)[0].lower()
    codec = EventCodec(max_event_bytes)
    kwargs: dict[str, Any] = {"url": url, "codec": codec, "max_batch": max_batch, "linger": linger}
    if follow_interval is not None and (
        isinstance(follow_interval, bool) or not isinstance(follow_interval, int | float) or follow_interval < 0
    ):
        raise ValidationError(f"follow_interval must be a number >= 0, got {follow_interval!r}")
    kwargs["follow_interval"] = float(follow_interval if follow_interval is not None else 0.5)
    try:
        if scheme == "memory":
            kwargs["follow_interval"] = 0.0  # nobody else writes to it
            return EventStore(ChainedPOPORecorder(), **kwargs)
        if scheme == "sqlite":
            return _open_sqlite(url, kwargs)
        if scheme in ("postgresql", "postgres"):
            return _open_postgres(url, kwargs)
    except PersistenceError as e:
        raise StoreError(f"cannot open event store {url}: {e}") from e
    raise ValidationError(
        f"unknown store URL scheme {scheme!r} in {url!r}",
        code="INVALID_STORE_URL",
        suggestions=["Use memory://, sqlite:///path/events.db or postgresql://user@host/db."],
    )


SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")


def sqlite_path(url: str) -> str:
    """``sqlite:///rel`` -> ``rel``; ``sqlite:////abs`` -> ``/abs`` (query removed)."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest.startswith("/") or rest == "/":
        raise ValidationError(
            f"SQLite URL {url!r} names no file",
            code="INVALID_STORE_URL",
            suggestions=["Use sqlite:///relative/events.db or sqlite:////absolute/events.db."],
        )
    return unquote(rest[1:])


def _sqlite_options(url: str) -> dict[str, str]:
    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    unknown = set(query) - {"synchronous"}
    if unknown:
        raise ValidationError(f"unknown SQLite URL option(s) {sorted(unknown)} in {url!r}", code="INVALID_STORE_URL")
    synchronous = query.get("synchronous", "full").lower()
    if synchronous not in SYNCHRONOUS_LEVELS:
        raise ValidationError(
            f"synchronous={synchronous!r} in {url!r}: use one of {SYNCHRONOUS_LEVELS}", code="INVALID_STORE_URL"
        )
    return {"synchronous": synchronous}


def _open_sqlite(url: str, kwargs: dict[str, Any]) -> EventStore:
    """WAL journal; ``synchronous=FULL`` by default (a commit survives power loss).
    ``?synchronous=normal`` syncs only at WAL checkpoints: a commit survives a crash of
    the process but the last ones may be lost on power loss; it roughly halves commit
    latency."""
    path = sqlite_path(url)
    options = _sqlite_options(url)
    if path == ":memory:":
        db_name = f"file:codomyrmex-{uuid.uuid4().hex}?mode=memory&cache=shared"
    else:
        parent = Path(path).expanduser().resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the directory of {path}: {e}") from e
        if not os.access(parent, os.W_OK):
            raise StoreError(f"directory {parent} is not writable")
        db_name = str(Path(path).expanduser())
    pool_options: dict[str, Any] = {"db_name": db_name, "pool_size": 4, "max_overflow": 8}
    datastore = SQLiteDatastore(originator_id_type="text", **pool_options)
    datastore.pool.close()  # replaced by one that also sets the sync level
    datastore.pool = SQLitePool(synchronous=options["synchronous"], **pool_options)
    recorder = ChainedSQLiteRecorder(datastore, events_table_name=TABLE)
    recorder.create_table()
    return EventStore(recorder, closer=datastore.close, **kwargs)


def _open_postgres(url: str, kwargs: dict[str, Any]) -> EventStore:
    try:
        from eventsourcing.postgres import PostgresDatastore
    except ImportError as e:  # the optional extra is not installed
        raise StoreError(
            "PostgreSQL support needs psycopg: pip install 'codomyrmex-orchestration[postgres]'",
            code="MISSING_DEPENDENCY",
        ) from e
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    datastore = PostgresDatastore(
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
        schema=query.get("schema", ""),
        originator_id_type="text",
        pool_size=2,
        max_overflow=6,
    )
    recorder = chained_postgres_recorder(datastore, TABLE)
    recorder.create_table()
    return EventStore(recorder, closer=datastore.close, **kwargs)
