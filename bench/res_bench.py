"""Allocate/deallocate pairs against ONE resource from 4 threads (runner kind ``res-alloc``).

Backends:

``sqlite`` / ``memory``
    a ``ResourceManager(store=url, data_dir=tmpdir, system_resources=False)`` holding one
    resource, :data:`RESOURCE_ID` (type ``semaphore``, capacity ``{"slots": 64}``: four
    users holding one slot each never come near it). Each of 4 threads (user
    ``user-<k>``) does ``n`` pairs of ``allocate_resources(user, {"semaphore":
    {"slots": 1}})`` then ``deallocate_resources(user)``.
``lock``
    the baseline: the same 4-thread loop against a ``threading.Lock``-protected dict of
    counters (allocate: +1 for the user and one more grant; deallocate: -1 and one more
    release). Standard library only: the library is not imported, so its peak RSS is
    that of the bare loop.

The threads are started first and wait at a barrier; the timed span is from the
barrier's release to the last thread's join. Every thread also notes the time after
each quarter of its pairs, so the table can show whether the rate holds over the run
(the per-quarter rate is ``4 x n/4`` pairs over the threads' mean quarter time).

Checks (library backends): every allocation granted, with the resource; every
deallocation True; afterwards the resource has ``allocated == {"slots": 0}``, no user,
``total_allocations == 4n``, nobody holds an allocation, no rejection, and the store
reports no failure or conflict. The log holds exactly ``4n`` each of
``allocation.granted``, ``allocation.released``, ``resource.allocated`` and
``resource.released``, one ``resource.added`` and nothing else of the resource
topics. For SQLite the counts come from the closed file re-opened, and the resource
view folded from it must agree (0 allocated, ``4n`` allocations). The baseline checks
its counters: ``4n`` grants and releases, every user back to 0.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

THREADS = 4
RESOURCE_ID = "bench-semaphore"
RESOURCE_TYPE = "semaphore"
CAPACITY_KEY = "slots"
CAPACITY = 64
REQUIREMENTS = {RESOURCE_TYPE: {CAPACITY_KEY: 1}}
QUARTERS = 4


def users() -> list[str]:
    return [f"user-{k}" for k in range(THREADS)]


@dataclass
class Tally:
    """One thread's answers: how many were right, and the first few wrong ones."""

    granted: int = 0
    released: int = 0
    wrong: list[str] = field(default_factory=list)


def drive(
    n: int, allocate: Callable[[str], Any], deallocate: Callable[[str], Any]
) -> tuple[float, list[float], list[Tally], list[str]]:
    """Run ``n`` allocate/deallocate pairs in each of :data:`THREADS` threads. Returns
    the span, the per-quarter rates, every thread's tally of the answers (counted, not
    kept, so the peak RSS is the loop's), and the exceptions the threads raised."""
    barrier = threading.Barrier(THREADS + 1)
    marks: list[list[float]] = [[] for _ in range(THREADS)]
    tallies = [Tally() for _ in range(THREADS)]
    crashes: list[str] = []
    sizes = [n // QUARTERS + (1 if q < n % QUARTERS else 0) for q in range(QUARTERS)]
    want = {RESOURCE_TYPE: RESOURCE_ID}

    def work(k: int) -> None:
        user = f"user-{k}"
        tally, mark = tallies[k], marks[k]
        try:
            barrier.wait()
            for size in sizes:
                for _ in range(size):
                    got = allocate(user)
                    if got == want:
                        tally.granted += 1
                    elif len(tally.wrong) < 3:
                        tally.wrong.append(f"allocate -> {got!r:.200}")
                    gave = deallocate(user)
                    if gave is True:
                        tally.released += 1
                    elif len(tally.wrong) < 3:
                        tally.wrong.append(f"deallocate -> {gave!r:.200}")
                mark.append(time.perf_counter())
        except BaseException as e:
            crashes.append(f"thread {k}: {type(e).__name__}: {e}")
            raise

    threads = [threading.Thread(target=work, args=(k,), name=f"bench-res-{k}") for k in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    span = time.perf_counter() - t0
    rates: list[float] = []
    for q in range(QUARTERS):
        per_thread = [m[q] - (m[q - 1] if q else t0) for m in marks if len(m) == QUARTERS]
        mean = sum(per_thread) / len(per_thread) if per_thread else 0.0
        rates.append(THREADS * sizes[q] / mean if mean > 0 else 0.0)
    return span, rates, tallies, crashes


def run(spec: dict[str, Any]) -> dict[str, Any]:
    backend = spec["backend"]
    if backend == "lock":
        return run_lock(spec)
    return run_manager(spec)


def run_lock(spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["n"]
    lock = threading.Lock()
    held: dict[str, int] = dict.fromkeys(users(), 0)
    counts = {"granted": 0, "released": 0}

    def allocate(user: str) -> dict[str, str]:
        with lock:
            held[user] += 1
            counts["granted"] += 1
        return {RESOURCE_TYPE: RESOURCE_ID}

    def deallocate(user: str) -> bool:
        with lock:
            held[user] -= 1
            counts["released"] += 1
        return True

    span, rates, tallies, crashes = drive(n, allocate, deallocate)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = list(crashes)
    errors += check_answers(n, tallies)
    total = THREADS * n
    if counts != {"granted": total, "released": total}:
        errors.append(f"counters say {counts}, expected {total} grants and releases")
    if any(held.values()):
        errors.append(f"users still hold something: {held}")
    return {
        "pairs": total,
        "seconds": span,
        "rss_kib": rss_kib,
        "errors": errors,
        "extra": {"quarter_rates": rates},
    }


def check_answers(n: int, tallies: list[Tally]) -> list[str]:
    """Every allocation granted on the resource, every deallocation True."""
    errors: list[str] = []
    for k, tally in enumerate(tallies):
        if tally.granted != n or tally.released != n or tally.wrong:
            errors.append(
                f"user-{k}: {tally.granted} of {n} allocations granted as {{{RESOURCE_TYPE!r}: {RESOURCE_ID!r}}}, "
                f"{tally.released} of {n} deallocations True; wrong answers: {tally.wrong}"
            )
    return errors


def run_manager(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.orch import store_url
    from domain.enums import ResourceType
    from engine.resource_manager import ResourceManager
    from engine.resource_models import Resource

    n, backend, tmpdir = spec["n"], spec["backend"], spec["tmpdir"]
    url = store_url(backend, tmpdir)
    manager = ResourceManager(store=url, data_dir=tmpdir, system_resources=False)
    errors: list[str] = []
    total = THREADS * n
    try:
        added = manager.add_resource(
            Resource(
                id=RESOURCE_ID,
                name="bench semaphore",
                type=ResourceType(RESOURCE_TYPE),
                capacity={CAPACITY_KEY: CAPACITY},
            )
        )
        if not added:
            errors.append(f"add_resource({RESOURCE_ID}) returned False on a fresh store")
        commits_before = manager.store.stats.commits

        def allocate(user: str) -> dict[str, str] | None:
            return manager.allocate_resources(user, REQUIREMENTS)

        def deallocate(user: str) -> bool:
            return manager.deallocate_resources(user)

        span, rates, tallies, crashes = drive(n, allocate, deallocate)
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        errors += crashes
        errors += check_answers(n, tallies)
        usage = manager.get_resource_usage(RESOURCE_ID)
        if usage["allocated"] != {CAPACITY_KEY: 0} or usage["current_users"] != 0:
            errors.append(f"after the run: allocated {usage['allocated']}, {usage['current_users']} user(s)")
        if usage["total_allocations"] != total:
            errors.append(f"total_allocations {usage['total_allocations']}, expected {total}")
        holding = {u: len(a) for u in users() if (a := manager.get_user_allocations(u))}
        if holding:
            errors.append(f"users still hold allocations: {holding}")
        rejections = manager.get_rejections()
        if rejections:
            errors.append(f"{len(rejections)} rejection(s), e.g. {rejections[0]['reason']!r:.200}")
        stats = manager.store.stats
        if stats.failures or stats.conflicts or stats.listener_errors:
            errors.append(f"store reported problems: {stats}")
        extra: dict[str, Any] = {
            "quarter_rates": rates,
            "commits": stats.commits - commits_before,
            "events": stats.events,
            "largest_batch": stats.largest_batch,
        }
        if backend == "memory":
            errors += check_log(manager.store, total)
    finally:
        manager.close()
    if backend.startswith("sqlite"):
        errors += check_durable(url, total)
    return {"pairs": total, "seconds": span, "rss_kib": rss_kib, "errors": errors, "extra": extra}


def expected_counts(total: int) -> dict[str, int]:
    return {
        "resource.added": 1,
        "allocation.granted": total,
        "resource.allocated": total,
        "allocation.released": total,
        "resource.released": total,
    }


def check_log(store: Any, total: int) -> list[str]:
    """Exactly the expected resource/allocation events in the log."""
    from domain.resource import RESOURCE_TOPICS

    counts: dict[str, int] = {}
    for recorded in store.read(types=RESOURCE_TOPICS):
        counts[recorded.event.type] = counts.get(recorded.event.type, 0) + 1
    want = expected_counts(total)
    if counts != want:
        return [f"log holds {dict(sorted(counts.items()))}, expected {want}"]
    return []


def check_durable(url: str, total: int) -> list[str]:
    """Re-open the closed file: the event counts, and the resource view folded from it."""
    from domain.resource import RESOURCE_TOPICS
    from engine.store import open_store
    from projections.resources import fold

    store = open_store(url)
    try:
        errors = [f"re-read log: {e}" for e in check_log(store, total)]
        view = fold(store.read(types=RESOURCE_TOPICS))
    finally:
        store.close()
    rec = view.resources.get(RESOURCE_ID)
    if rec is None:
        errors.append(f"re-read log: no resource {RESOURCE_ID}")
    elif rec.allocated != {CAPACITY_KEY: 0} or rec.users or rec.total_allocations != total:
        errors.append(
            f"re-read log: {RESOURCE_ID} allocated {rec.allocated}, users {rec.users}, "
            f"total_allocations {rec.total_allocations} (expected 0, none, {total})"
        )
    return errors
