"""The store's recorders: `eventsourcing`'s application recorders plus the hash chain.

Each backend's recorder links and seals the rows of an insert **inside** the insert's
transaction, after taking the write lock, and moves the chain head in the same
transaction (see :mod:`engine.chain`). The tables are `eventsourcing`'s own; the chain
adds one table, ``<events table>_head``, holding one row ``(position, chain)``.

Also here: the SQLite recorder's two faster paths (``executemany`` inserts and tuple
reads), and the reads the replay tools need (:meth:`raw_rows`, :meth:`chain_head`),
with one shape over every backend.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
)

from domain.errors import StoreError
from engine import chain

__all__ = [
    "ChainHead",
    "ChainedPOPORecorder",
    "ChainedSQLiteRecorder",
    "RawRow",
    "SQLitePool",
    "chained_postgres_recorder",
]

RawRow = tuple[int, str, int, str, bytes]
"""``(position, originator_id, originator_version, topic, state)`` as stored."""


class ChainHead(NamedTuple):
    """The head row: the last chained position and its link, and the last position
    written before the chain existed (0 for a store that always had it)."""

    position: int
    link: str
    legacy: int = 0


def _notification_rows(recorder: Any, start: int, limit: int) -> list[RawRow]:
    """:data:`RawRow` tuples from a recorder's stock ``select_notifications``."""
    return [
        (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
        for n in recorder.select_notifications(start, limit)
    ]


def _head_missing(where: str) -> StoreError:
    return StoreError(
        f"the hash chain head of {where} is missing although the table exists: the log was "
        "tampered with; run `codomyrmex-orch verify` and restore the store from a copy",
        code="CHAIN_HEAD_MISSING",
    )


class ChainedPOPORecorder(POPOApplicationRecorder):
    """The in-memory recorder, chained like the others so that verify means the same
    thing on every backend."""

    def __init__(self) -> None:
        super().__init__()
        self.head: tuple[int, str] = (0, chain.GENESIS)

    def _insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self._database_lock:
            self._assert_uniqueness(stored_events, **kwargs)
            sealed, last = chain.seal_all(self.head[1], stored_events)
            ids = self._update_table(sealed, **kwargs)
            if ids:
                self.head = (ids[-1], last)
            return ids

    def raw_rows(self, start: int, limit: int) -> list[RawRow]:
        return _notification_rows(self, start, limit)

    def chain_head(self) -> ChainHead | None:
        return ChainHead(*self.head)


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """The stock SQLite recorder, chained, with two faster paths (same table and
    semantics).

    * Inserts: the stock recorder inserts row by row to read each ``lastrowid``; one
      ``executemany`` is ~15% faster. Rowids of one write transaction are contiguous
      (each is max(rowid)+1 under the write lock), so they are read back at once.
    * Reads: :meth:`select_rows` returns plain ``(position, topic, state)`` tuples; the
      stock ``select_notifications`` builds a frozen dataclass per row from
      ``sqlite3.Row`` lookups, a quarter of the cost of a replay.
    """

    @property
    def head_table(self) -> str:
        return f"{self.events_table_name}_head"

    def create_table(self) -> None:
        """The events table and the head table; a log written before the chain existed
        is sealed into a new head once (one pass over it)."""
        with self.datastore.transaction(commit=True) as c:
            self._create_table(c)
            c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (self.head_table,))
            if c.fetchone() is not None:
                return
            c.execute(
                f"CREATE TABLE {self.head_table} (id INTEGER PRIMARY KEY CHECK (id = 1), "
                "position INTEGER NOT NULL, chain TEXT NOT NULL, legacy INTEGER NOT NULL)"
            )
            c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name}")
            position, last = chain.head_of((r[0], r[1], r[2], r[3], r[4]) for r in c.fetchall())
            c.execute(f"INSERT INTO {self.head_table} VALUES (1, ?, ?, ?)", (position, last, position))

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **_: Any) -> Sequence[int]:
        if not stored_events:
            return []
        # A write first: the transaction takes the write lock before it reads the head.
        c.execute(f"UPDATE {self.head_table} SET position = position WHERE id = 1")
        c.execute(f"SELECT chain FROM {self.head_table} WHERE id = 1")
        head = c.fetchone()
        if head is None:
            raise _head_missing(self.events_table_name)
        rows, last = chain.seal_rows(head[0], stored_events)
        c.executemany(self.insert_events_statement, rows)
        c.execute(self.select_max_notification_id_statement)
        top = int(c.fetchone()[0])
        c.execute(f"UPDATE {self.head_table} SET position = ?, chain = ? WHERE id = 1", (top, last))
        return list(range(top - len(stored_events) + 1, top + 1))

    def select_rows(
        self, start: int, limit: int, stop: int | None, topics: Sequence[str]
    ) -> list[tuple[int, str, bytes]]:
        sql = f"SELECT rowid, topic, state FROM {self.events_table_name} WHERE rowid>=?"
        params: list[Any] = [start]
        if stop is not None:
            sql += " AND rowid<=?"
            params.append(stop)
        if topics:
            sql += f" AND topic IN ({','.join('?' * len(topics))})"
            params.extend(topics)
        sql += " ORDER BY rowid LIMIT ?"
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            raw = c.sqlite_cursor
            raw.row_factory = None  # plain tuples: no sqlite3.Row per row (the connection's default)
            raw.execute(sql, params)
            rows: list[tuple[int, str, bytes]] = raw.fetchall()
            return rows

    def raw_rows(self, start: int, limit: int) -> list[RawRow]:
        with self.datastore.transaction(commit=False) as c:
            raw = c.sqlite_cursor
            raw.row_factory = None
            raw.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
                "WHERE rowid>=? ORDER BY rowid LIMIT ?",
                (start, limit),
            )
            rows: list[RawRow] = raw.fetchall()
            return rows

    def chain_head(self) -> ChainHead | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT position, chain, legacy FROM {self.head_table} WHERE id = 1")
            row = c.fetchone()
            return None if row is None else ChainHead(int(row[0]), str(row[1]), int(row[2]))


class SQLitePool(SQLiteConnectionPool):
    """Sets ``PRAGMA synchronous`` on every connection it opens."""

    def __init__(self, *, synchronous: str, **kwargs: Any) -> None:
        self.synchronous = synchronous
        super().__init__(**kwargs)

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        cursor = conn.cursor()
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn


def chained_postgres_recorder(datastore: Any, events_table_name: str) -> Any:
    """The PostgreSQL recorder, chained (built here because psycopg is optional)."""
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import SQL, Identifier

    class ChainedPostgresRecorder(PostgresApplicationRecorder):
        """Links and seals after ``LOCK TABLE ... IN EXCLUSIVE MODE`` (which the stock
        recorder takes so that commit order is position order); the head row is read
        ``FOR UPDATE`` and moved in the same transaction."""

        def __init__(self) -> None:
            super().__init__(datastore, events_table_name=events_table_name)
            if datastore.enable_db_functions:
                raise StoreError("the chained PostgreSQL recorder does not use database functions")
            self._pending = threading.local()
            schema = Identifier(datastore.schema)
            head = Identifier(f"{events_table_name}_head")
            self._head_name = f"{events_table_name}_head"
            self._create_head = SQL(
                "CREATE TABLE {}.{} (id integer PRIMARY KEY CHECK (id = 1), position bigint NOT NULL, "
                "chain text NOT NULL, legacy bigint NOT NULL)"
            ).format(schema, head)
            self._select_head = SQL("SELECT position, chain, legacy FROM {}.{} WHERE id = 1").format(schema, head)
            self._lock_head = SQL("SELECT chain FROM {}.{} WHERE id = 1 FOR UPDATE").format(schema, head)
            self._update_head = SQL("UPDATE {}.{} SET position = %s, chain = %s WHERE id = 1").format(schema, head)
            self._insert_head = SQL("INSERT INTO {}.{} VALUES (1, %s, %s, %s)").format(schema, head)
            self._insert_rows = SQL(
                "INSERT INTO {}.{} (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s) "
                "RETURNING notification_id"
            ).format(schema, Identifier(events_table_name))
            self._select_all = SQL(
                "SELECT originator_id, originator_version, topic, state, notification_id FROM {}.{} "
                "ORDER BY notification_id"
            ).format(schema, Identifier(events_table_name))

        def create_table(self) -> None:
            """The stock tables, types and functions, then the head; under an advisory
            lock, because engine processes starting at once would race on them
            (PostgreSQL: "tuple concurrently updated")."""
            key = f"codomyrmex:{datastore.schema}.{events_table_name}"
            with datastore.get_connection() as conn:
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
                try:
                    super().create_table()
                    self._create_head_table()
                finally:
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

        def _create_head_table(self) -> None:
            with datastore.transaction(commit=True) as curs:
                curs.execute(
                    SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(
                        Identifier(datastore.schema), Identifier(events_table_name)
                    )
                )
                curs.execute("SELECT to_regclass(%s) AS t", (f'"{datastore.schema}"."{self._head_name}"',))
                if curs.fetchone()["t"] is not None:
                    return
                curs.execute(self._create_head)
                curs.execute(self._select_all)
                position, last = chain.head_of(
                    (r["notification_id"], r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                    for r in curs.fetchall()
                )
                curs.execute(self._insert_head, (position, last, position))

        def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
            self._lock_table(curs)
            self._notify_channel(curs)
            curs.execute(self._lock_head)
            head = curs.fetchone()
            if head is None:
                raise _head_missing(f"{datastore.schema}.{events_table_name}")
            rows, last = chain.seal_rows(head["chain"], stored_events)
            self._pending.last = last
            # Plain rows through executemany (pipelined by psycopg): the stock insert
            # adapts a composite value per event in Python, about 4x slower.
            curs.executemany(self._insert_rows, rows, returning=True)

        def _fetch_ids_after_insert_events(
            self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
        ) -> Sequence[int] | None:
            ids: list[int] = []
            while True:  # one result set per row of the executemany
                row = curs.fetchone()
                if row is not None:
                    ids.append(int(row["notification_id"]))
                if not curs.nextset():
                    break
            if len(ids) != len(stored_events):
                raise StoreError(f"PostgreSQL returned {len(ids)} positions for {len(stored_events)} events")
            curs.execute(self._update_head, (ids[-1], self._pending.last))
            return ids

        def raw_rows(self, start: int, limit: int) -> list[RawRow]:
            return _notification_rows(self, start, limit)

        def chain_head(self) -> ChainHead | None:
            with datastore.transaction(commit=False) as curs:
                curs.execute(self._select_head)
                row = curs.fetchone()
                return None if row is None else ChainHead(int(row["position"]), str(row["chain"]), int(row["legacy"]))

    return ChainedPostgresRecorder()
