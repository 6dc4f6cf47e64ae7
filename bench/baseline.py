"""The baseline: a bare ``ThreadPoolExecutor(4)`` running the same graph.

A node is submitted once its dependencies' futures have results (read in the
submitting thread), so a chain is a sequence of round trips and a fan-out is one root
round trip, then all fan-out tasks at once, then the reducer. Standard library only.
"""

from __future__ import annotations

import inspect
import resource
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bench.actions import ACTIONS, CONCURRENCY, WORKERS, Node, check_results, graph, headline


def run_graph(pool: ThreadPoolExecutor, nodes: list[Node]) -> dict[str, Any]:
    wants = {name: "dependency_results" in inspect.signature(fn).parameters for name, fn in ACTIONS.items()}
    futures: dict[str, Future[Any]] = {}
    for node in nodes:
        kwargs = dict(node.params)
        if wants[node.action]:
            kwargs["dependency_results"] = {dep: futures[dep].result() for dep in node.deps}
        futures[node.id] = pool.submit(ACTIONS[node.action], **kwargs)
    return {task_id: f.result() for task_id, f in futures.items()}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    workload, n = spec["workload"], spec["n"]
    nodes = graph(workload, n)
    pool = ThreadPoolExecutor(WORKERS)
    try:
        t0 = time.perf_counter()
        results = run_graph(pool, nodes)
        t1 = time.perf_counter()
    finally:
        pool.shutdown(wait=True)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = check_results(workload, n, results)
    if workload == "W4" and CONCURRENCY.peak > WORKERS:
        errors.append(f"peak concurrency {CONCURRENCY.peak} exceeds {WORKERS} workers")
    return {
        "tasks": len(nodes),
        "seconds": t1 - t0,
        "exec_seconds": None,
        "add_seconds": None,
        "rss_kib": rss_kib,
        "errors": errors,
        "extra": {
            **headline(workload, results),
            **({"peak_concurrency": CONCURRENCY.peak} if workload == "W4" else {}),
        },
    }
