"""Workloads W1-W4 through ``TaskOrchestrator(max_workers=4)``.

Variants:

``batch``
    every task recorded by one ``add_tasks`` call (one commit), then
    ``start_execution()``; the execution-only phase is from ``start_execution`` to
    ``wait_for_completion`` returning True.
``one-by-one``
    ``start_execution()`` first, then one ``add_task`` per task, each returning once
    its ``task.created`` is durable; tasks run while later ones are being added.
``batch-read``
    ``batch``, with every task declaring the same shared resource
    (:data:`SHARED_READ`: ``TaskResource(LOCK, "shared", mode="read")``). Readers share,
    so nothing waits: the difference to ``batch`` is what declaring costs (recording
    it in ``task.created``, the lock table at admission and release). Also checked:
    every task (live and re-read from the log) carries the declaration, and no
    resource is held at the end.

The timed span is from the first add to ``wait_for_completion`` returning True. Peak
RSS is read right after it (before the checks, which allocate). Checks: every task
COMPLETED with the expected result, store without failures, and for SQLite the log
re-read from the closed file folds to the same results.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.actions import ACTIONS, CONCURRENCY, WORKERS, check_results, graph, headline
from domain.enums import ResourceType, TaskStatus
from engine.models import Task, TaskResource
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.history import History

MODULE = "bench"
SHARED_READ = TaskResource(type=ResourceType.LOCK, identifier="shared", mode="read")
VARIANTS = ("batch", "one-by-one", "batch-read")


def store_url(backend: str, tmpdir: str) -> str:
    if backend == "memory":
        return "memory://"
    if backend in ("sqlite", "sqlite-normal"):
        path = Path(tmpdir).resolve() / "events.db"
        if path.exists():
            raise RuntimeError(f"{path} already exists: every run needs a fresh file")
        url = f"sqlite:///{path}"  # sqlite:////abs/path/events.db
        # synchronous=normal: WAL synced at checkpoints; survives a process crash, not power loss
        return url + "?synchronous=normal" if backend == "sqlite-normal" else url
    raise ValueError(f"unknown backend {backend!r}")


def make_registry() -> ActionRegistry:
    registry = ActionRegistry()
    for name, fn in ACTIONS.items():
        registry.register(MODULE, name, fn)
    return registry


def run(spec: dict[str, Any]) -> dict[str, Any]:
    workload, n, backend, variant = spec["workload"], spec["n"], spec["backend"], spec["variant"]
    timeout = float(spec.get("timeout", 120.0))
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    url = store_url(backend, spec["tmpdir"])
    nodes = graph(workload, n)
    declared = variant == "batch-read"
    tasks = [
        Task(
            id=node.id,
            name=node.action,
            module=MODULE,
            action=node.action,
            parameters=node.params,
            dependencies=list(node.deps),
            resources=[TaskResource(SHARED_READ.type, SHARED_READ.identifier, SHARED_READ.mode)] if declared else [],
        )
        for node in nodes
    ]
    orch = TaskOrchestrator(max_workers=WORKERS, store=url, registry=make_registry())
    errors: list[str] = []
    try:
        if variant in ("batch", "batch-read"):
            t0 = time.perf_counter()
            orch.add_tasks(tasks)
            t_added = time.perf_counter()
            orch.start_execution()
            finished = orch.wait_for_completion(timeout)
            t_end = time.perf_counter()
            exec_seconds: float | None = t_end - t_added
        elif variant == "one-by-one":
            orch.start_execution()
            t0 = time.perf_counter()
            for task in tasks:
                orch.add_task(task)
            t_added = time.perf_counter()
            finished = orch.wait_for_completion(timeout)
            t_end = time.perf_counter()
            exec_seconds = None
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        if not finished:
            errors.append(f"wait_for_completion({timeout:g}) returned False")
        stats = orch.get_execution_stats()
        if stats["total_tasks"] != len(nodes) or stats["completed"] != len(nodes):
            errors.append(f"expected {len(nodes)} tasks, all completed; stats say {stats}")
        listed = orch.list_tasks()
        not_done = [t.id for t in listed if t.status is not TaskStatus.COMPLETED]
        if not_done:
            errors.append(f"{len(not_done)} task(s) not COMPLETED, e.g. {not_done[:3]}")
        want_resources = [SHARED_READ] if declared else []
        wrong_res = [t.id for t in listed if t.resources != want_resources]
        if wrong_res:
            errors.append(f"{len(wrong_res)} task(s) do not declare {want_resources}, e.g. {wrong_res[:3]}")
        held = orch._locks.held()  # the scheduler's lock table (engine/resource_locks.py)
        if held:
            errors.append(f"resources still held after completion: {held}")
        results, problems = collect_results(orch, nodes, workload, n, errors)
        errors += problems
        store_stats = orch.store.stats
        if store_stats.failures or store_stats.conflicts or store_stats.listener_errors:
            errors.append(f"store reported problems: {store_stats}")
        if workload == "W4" and CONCURRENCY.peak > WORKERS:
            errors.append(f"peak concurrency {CONCURRENCY.peak} exceeds max_workers={WORKERS}")
        extra: dict[str, Any] = {
            "commits": store_stats.commits,
            "events": store_stats.events,
            "largest_batch": store_stats.largest_batch,
            **headline(workload, results),
        }
        if workload == "W4":
            extra["peak_concurrency"] = CONCURRENCY.peak
    finally:
        orch.close()

    if backend.startswith("sqlite") and not errors:
        errors += check_durable(url, workload, n, len(nodes), declared=declared)
    return {
        "tasks": len(nodes),
        "seconds": t_end - t0,
        "exec_seconds": exec_seconds,
        "add_seconds": t_added - t0,
        "rss_kib": rss_kib,
        "errors": errors,
        "extra": extra,
    }


def collect_results(
    orch: Any, nodes: Sequence[Any], workload: str, n: int, errors: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The tasks' result data by id, and the problems with them: missing or failed
    results (the first few, counting ``errors`` already found), then what
    :func:`check_results` finds in the data."""
    found: list[str] = []
    results: dict[str, Any] = {}
    for node in nodes:
        result = orch.get_task_result(node.id)
        if result is None or not result.success:
            found.append(f"{node.id}: no successful result ({result})")
            if len(errors) + len(found) > 8:
                break
            continue
        results[node.id] = result.data
    return results, found + check_results(workload, n, results)


def check_durable(url: str, workload: str, n: int, count: int, *, declared: bool = False) -> list[str]:
    """Re-open the closed file and fold the log: the same results (and, for
    ``batch-read``, every task's declared resource) must come back."""
    with History.open(url) as history:
        view = history.task_view()
    errors: list[str] = []
    if len(view.tasks) != count or view.counts[TaskStatus.COMPLETED] != count:
        errors.append(f"re-read log: {len(view.tasks)} tasks, {view.counts[TaskStatus.COMPLETED]} completed")
    got = {tid: rec.result.data for tid, rec in view.tasks.items() if rec.result is not None}
    errors += [f"re-read log: {e}" for e in check_results(workload, n, got)]
    want = [(SHARED_READ.type, SHARED_READ.identifier, SHARED_READ.mode)] if declared else []
    wrong = [tid for tid, rec in view.tasks.items() if [(r.type, r.identifier, r.mode) for r in rec.resources] != want]
    if wrong:
        errors.append(f"re-read log: {len(wrong)} task(s) do not record the resources {want}, e.g. {wrong[:3]}")
    return errors
