"""Executors (``EXEC``): W1 and W3 through the TaskOrchestrator on each executor, beside
plain ``dask.distributed`` running the same functions without the engine.

Runners (one per child process):

``threads``
    ``TaskOrchestrator(max_workers=4)`` with the thread executor (the default).
``processes``
    ``TaskOrchestrator(max_workers=4, executor=ProcessExecutor(2))``: two worker
    processes, actions sent by import path (``bench.actions``).
``dask``
    ``TaskOrchestrator(max_workers=DASK_IN_FLIGHT, executor=DaskExecutor(n_workers=2))``
    on a ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)``.
    ``max_workers`` is how many attempts are in flight at once; with a remote worker
    each attempt costs a round trip, so the engine keeps more in flight than there are
    worker threads, as Dask's own scheduler does with its queue.
``plain-dask``
    the baseline: the same cluster shape and the same functions through a bare
    ``distributed.Client``, no engine: W1 is ``client.map(inc, range(n))`` +
    ``client.gather``; W3 is ``client.submit`` per node with the dependencies passed as
    futures (``{"w3-root": root_future}`` to each fan-out, the dict of 1,000 fan-out
    futures to the reducer) + ``client.gather``.

Untimed before the span: starting the cluster (or the worker processes) and warming
every worker (importing ``bench.actions`` and, for the engine, ``engine.dask_executor``;
a few calls through the executor). The span is from the first add (``add_tasks``) or
the first submit, to ``wait_for_completion`` returning True or ``gather`` returning.

Engine runs use a durable SQLite store (a fresh file) and are checked like the
orchestrator rows (every task COMPLETED with the expected result, no store failure)
plus ``replay_tools.verify.verify(store).ok``. Plain runs are checked against the same
expected results. Peak RSS is this (engine) process's; Dask's workers and the
process pool's workers are other processes.
"""

from __future__ import annotations

import importlib
import logging
import resource
import threading
import time
from typing import Any

from bench.actions import check_results, fan_in, fan_out, fan_root, graph, headline, inc
from bench.orch import MODULE, collect_results, make_registry, store_url

RUNNERS = ("threads", "processes", "dask", "plain-dask")
THREAD_WORKERS = 4
PROCESS_WORKERS = 2
DASK_WORKERS = 2
DASK_IN_FLIGHT = 128


def run(spec: dict[str, Any]) -> dict[str, Any]:
    runner = spec["runner"]
    if runner == "plain-dask":
        return _plain_dask(spec)
    if runner in RUNNERS:
        return _engine(spec)
    raise ValueError(f"unknown runner {runner!r}")


def _engine(spec: dict[str, Any]) -> dict[str, Any]:
    from domain.enums import TaskStatus
    from engine.dask_executor import DaskExecutor
    from engine.executors import ActionCall, AttemptControl, Executor, ThreadExecutor
    from engine.models import Task
    from engine.process_executor import ProcessExecutor
    from engine.task_orchestrator import TaskOrchestrator
    from replay_tools.verify import verify

    workload, n, runner = spec["workload"], spec["n"], spec["runner"]
    timeout = float(spec.get("timeout", 300.0))
    executor: Executor
    if runner == "threads":
        executor, max_workers = ThreadExecutor(max_idle=THREAD_WORKERS), THREAD_WORKERS
    elif runner == "processes":
        executor, max_workers = ProcessExecutor(PROCESS_WORKERS), THREAD_WORKERS
        executor.start()
    else:
        executor, max_workers = DaskExecutor(n_workers=DASK_WORKERS), DASK_IN_FLIGHT
        executor.start()
        for module in ("bench.actions", "engine.dask_executor"):
            executor.client.run(importlib.import_module, module)
    # warm every worker with a few calls through the executor (untimed)
    answered = threading.Semaphore(0)
    warm = 4 * DASK_WORKERS
    for i in range(warm):
        call = ActionCall(f"warm-{i}", 1, MODULE, "inc", inc, {"i": i}, False, AttemptControl())
        executor.run_action(call, lambda _result: answered.release())
    for _ in range(warm):
        answered.acquire(timeout=60)

    url = store_url("sqlite", spec["tmpdir"])
    nodes = graph(workload, n)
    tasks = [
        Task(
            id=node.id,
            name=node.action,
            module=MODULE,
            action=node.action,
            parameters=node.params,
            dependencies=list(node.deps),
        )
        for node in nodes
    ]
    orch = TaskOrchestrator(max_workers=max_workers, store=url, registry=make_registry(), executor=executor)
    errors: list[str] = []
    try:
        t0 = time.perf_counter()
        orch.add_tasks(tasks)
        orch.start_execution()
        finished = orch.wait_for_completion(timeout)
        seconds = time.perf_counter() - t0
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if not finished:
            errors.append(f"wait_for_completion({timeout:g}) returned False")
        results, problems = collect_results(orch, nodes, workload, n, errors)
        errors += problems
        not_done = [t.id for t in orch.list_tasks() if t.status is not TaskStatus.COMPLETED]
        if not_done:
            errors.append(f"{len(not_done)} task(s) not COMPLETED, e.g. {not_done[:3]}")
        stats = orch.store.stats
        if stats.failures or stats.conflicts or stats.listener_errors:
            errors.append(f"store reported problems: {stats}")
        orch.store.flush()
        report = verify(orch.store)
        if not report.ok:
            errors.append(f"verify failed: {report.text()[:500]}")
        extra = {
            "commits": stats.commits,
            "events": stats.events,
            "max_workers": max_workers,
            **headline(workload, results),
        }
    finally:
        orch.close()
    return {"tasks": len(nodes), "seconds": seconds, "rss_kib": rss_kib, "errors": errors, "extra": extra}


def _plain_dask(spec: dict[str, Any]) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    workload, n = spec["workload"], spec["n"]
    nodes = graph(workload, n)
    errors: list[str] = []
    with (
        LocalCluster(
            n_workers=DASK_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.run(importlib.import_module, "bench.actions")
        client.gather(client.map(inc, range(4 * DASK_WORKERS), pure=False))  # warm (untimed)
        t0 = time.perf_counter()
        if workload == "W1":
            futures = client.map(inc, [node.params["i"] for node in nodes], key=[node.id for node in nodes])
            values = client.gather(futures)
            results = {node.id: value for node, value in zip(nodes, values, strict=True)}
        elif workload == "W3":
            root = client.submit(fan_root, nodes[0].params["seed"], key=nodes[0].id)
            fans = [client.submit(fan_out, node.params["i"], {"w3-root": root}, key=node.id) for node in nodes[1:-1]]
            by_id = {node.id: f for node, f in zip(nodes[1:-1], fans, strict=True)}
            reduce = client.submit(fan_in, by_id, key=nodes[-1].id)
            values = client.gather([root, *fans, reduce])
            results = {node.id: value for node, value in zip(nodes, values, strict=True)}
        else:
            raise ValueError(f"plain-dask runs W1 and W3, not {workload}")
        seconds = time.perf_counter() - t0
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors += check_results(workload, n, results)
    extra = headline(workload, results)
    return {"tasks": len(nodes), "seconds": seconds, "rss_kib": rss_kib, "errors": errors, "extra": extra}
