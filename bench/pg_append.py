"""Append throughput of the PostgreSQL store beside plain psycopg, in one run.

    python bench/pg_append.py [--url postgresql://postgres@127.0.0.1:5432/test] [--events 8000] [--repeat 3]

Every measurement gets a fresh schema (dropped afterwards). The events are real task
events (``bench/store_bench.py``: created, ready, started, completed per task).

* baseline: ``psycopg`` ``executemany`` of the pre-encoded rows into a table of the
  same shape, in one transaction;
* the same, encoding each event with msgspec inside the timed part;
* (a) ``store.append(all events)``: one call, one transaction (plus the hash chain);
* (b) 4 threads x ``append_async(one event)``, then ``flush``: group commit;
* (c) 4 threads x blocking ``append(one event)``: a durable commit per call, grouped
  when callers overlap.

Printed: medians, events/s and the ratio to the baseline, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.store_bench import PRODUCERS, build_events, check_log  # noqa: E402
from domain.events import Event  # noqa: E402
from engine.codec import EventCodec  # noqa: E402
from engine.store import open_store  # noqa: E402


def _schema(url: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    return name, drop


def raw(url: str, n: int, encode_inside: bool) -> dict[str, Any]:
    import psycopg

    tasks = build_events(n)
    flat = [e for evs in tasks for e in evs]
    codec = EventCodec()
    pre = [(e.stream_id, e.version, e.type, codec.encode(e)) for e in flat]
    schema, drop = _schema(url)
    try:
        with psycopg.connect(url) as conn:
            conn.execute(
                f"CREATE TABLE {schema}.events (originator_id text, originator_version int, topic text, "
                "state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
            )
            conn.commit()
            sql = f"INSERT INTO {schema}.events (originator_id, originator_version, topic, state) VALUES (%s,%s,%s,%s)"
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                rows = [(e.stream_id, e.version, e.type, codec.encode(e)) for e in flat] if encode_inside else pre
                cur.executemany(sql, rows)
            conn.commit()
            seconds = time.perf_counter() - t0
            (count,) = conn.execute(f"SELECT count(*) FROM {schema}.events").fetchone()  # type: ignore[misc]
    finally:
        drop()
    return {"events": len(flat), "seconds": seconds, "ok": count == len(flat)}


def store_mode(url: str, n: int, mode: str) -> dict[str, Any]:
    tasks = build_events(n)
    flat = [e for evs in tasks for e in evs]
    schema, drop = _schema(url)
    sep = "&" if "?" in url else "?"
    store = open_store(f"{url}{sep}schema={schema}", follow_interval=0)
    try:
        if mode == "single":
            t0 = time.perf_counter()
            store.append(flat)
            seconds = time.perf_counter() - t0
        else:
            groups = [tasks[k::PRODUCERS] for k in range(PRODUCERS)]
            barrier = threading.Barrier(PRODUCERS + 1)
            errors: list[BaseException] = []

            def produce(group: list[list[Event]]) -> None:
                try:
                    barrier.wait()
                    for evs in group:
                        for e in evs:
                            if mode == "async":
                                store.append_async([e])
                            else:
                                store.append([e])
                    if mode == "async":
                        store.flush()
                except BaseException as e:  # reported below
                    errors.append(e)

            threads = [threading.Thread(target=produce, args=(g,)) for g in groups]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - t0
            if errors:
                raise errors[0]
        problems = check_log(store, tasks)
        commits = store.stats.commits
    finally:
        store.close()
        drop()
    return {"events": len(flat), "seconds": seconds, "ok": not problems, "commits": commits}


MODES: list[tuple[str, Callable[[str, int], dict[str, Any]]]] = [
    ("baseline: psycopg executemany, 1 txn (pre-encoded)", lambda u, n: raw(u, n, False)),
    ("psycopg executemany, 1 txn, incl. msgspec encode", lambda u, n: raw(u, n, True)),
    ("(a) store.append(all events), one call", lambda u, n: store_mode(u, n, "single")),
    ("(b) 4 threads x append_async(1 event), then flush", lambda u, n: store_mode(u, n, "async")),
    ("(c) 4 threads x blocking append(1 event)", lambda u, n: store_mode(u, n, "blocking")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in MODES}
    for _ in range(args.repeat):  # interleaved, so load changes hit every mode alike
        for name, run in MODES:
            results[name].append(run(args.url, args.events))
    base = statistics.median(r["seconds"] for r in results[MODES[0][0]])
    rows = []
    for name, _ in MODES:
        secs = statistics.median(r["seconds"] for r in results[name])
        n = results[name][0]["events"]
        rows.append(
            {
                "mode": name,
                "events": n,
                "seconds": round(secs, 4),
                "events_per_s": round(n / secs),
                "vs_baseline": round(secs / base, 2),
                "commits": results[name][0].get("commits"),
                "ok": all(r["ok"] for r in results[name]),
            }
        )
    width = max(len(r["mode"]) for r in rows)
    print(f"PostgreSQL append, {args.events:,} events, medians of {args.repeat}")
    for r in rows:
        commits = f"  commits={r['commits']}" if r["commits"] is not None else ""
        print(
            f"  {r['mode']:<{width}}  {r['seconds']:8.4f} s  {r['events_per_s']:>9,}/s  "
            f"{r['vs_baseline']:5.2f}x{commits}  {'ok' if r['ok'] else 'INVALID'}"
        )
    print("PG-APPEND-JSON " + json.dumps({"events": args.events, "repeat": args.repeat, "rows": rows}))
    if not all(r["ok"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
