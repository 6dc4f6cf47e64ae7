"""Workloads W1-W4 as ONE workflow each, through
``OrchestrationEngine.execute_complex_workflow`` (runner kind ``engine``).

The engine is built with explicit overrides (``data_dir`` = the child's temporary
directory, ``store_url``, ``max_workers=4``, a fresh :class:`ActionRegistry` holding the
bench actions), then an explicit session is created with ``max_parallel_tasks=4``
(untimed). The timed span is the ``execute_complex_workflow(definition, session_id)``
call: validating the definition, recording it (``workflow.defined``), recording the
run and its step tasks in one commit, running them, recording the run's end, and
building the result dict. Peak RSS is read right after it.

How each shape is written as steps (``bench/actions.py`` has the actions):

* **W1**: ``n`` steps ``inc(i)``, no dependencies.
* **W2**: a chain of ``n`` steps ``inc``. Step 0 gets ``i=0``; step ``k`` gets
  ``{"i": "{{w2-<k-1>.output}}"}``: the previous step's result, resolved from the
  committed log just before the step runs. The reference alone implies the dependency
  (no ``dependencies`` key). Step ``k`` returns ``k + 1``, so the final value is ``n``,
  as with the orchestrator's ``chain_step`` (which reads ``dependency_results``).
* **W3**: ``w3-root`` ``fan_root(seed=7)``; ``n`` steps ``fan_out(i)`` with
  ``dependencies: ["w3-root"]`` (they read the root through ``dependency_results``,
  the same action as the orchestrator runs); ``w3-reduce`` ``fan_in`` depending on
  every fan-out step, receiving all ``n`` results through ``dependency_results``.
  That dict is keyed by task id, which in a workflow run is ``<run id>/<step>``: the
  check strips the ``<run id>/`` prefix from the reducer's first/last keys.
* **W4**: ``n`` steps ``sleeper(i)`` (10 ms each), no dependencies.

Checks: ``success`` and no error; ``execution_stats`` say ``n`` steps, all completed,
run ``completed``; every step's result in ``results`` (keyed by step name) is the
expected value; every step task is COMPLETED in the orchestrator with a successful
result; the store reports no failure; W4's peak concurrency <= 4. For SQLite, the
closed file is re-opened and the log folded: the task view gives the same results
(task id ``<run id>/<step>``) and the workflow view has the run COMPLETED.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from bench.actions import CONCURRENCY, WORKERS, Node, check_results, graph, headline
from bench.orch import MODULE, make_registry, store_url
from domain.enums import TaskStatus, WorkflowStatus
from engine.orchestration_engine import OrchestrationEngine
from replay_tools.history import History

SESSION_MAX_PARALLEL_TASKS = 4


def steps_for(workload: str, n: int) -> list[dict[str, Any]]:
    """The ``steps`` list of the complex-workflow definition of a workload."""
    if workload == "W2":
        return [
            {
                "name": f"w2-{i}",
                "module": MODULE,
                "action": "inc",
                "parameters": {"i": f"{{{{w2-{i - 1}.output}}}}"} if i else {"i": 0},
            }
            for i in range(n)
        ]
    return [_step(node) for node in graph(workload, n)]


def _step(node: Node) -> dict[str, Any]:
    step: dict[str, Any] = {"name": node.id, "module": MODULE, "action": node.action, "parameters": dict(node.params)}
    if node.deps:
        step["dependencies"] = list(node.deps)
    return step


def normalize(workload: str, results: dict[str, Any], run_id: str) -> dict[str, Any]:
    """W3's reducer names its first/last inputs by task id (``<run id>/<step>``): keep
    the step name, so :func:`check_results` compares with the orchestrator's."""
    reduced = results.get("w3-reduce")
    if workload != "W3" or not isinstance(reduced, dict):
        return results
    prefix = f"{run_id}/"
    fixed = dict(reduced)
    for key in ("first", "last"):
        value = fixed.get(key)
        if isinstance(value, str) and value.startswith(prefix):
            fixed[key] = value[len(prefix) :]
        else:
            fixed[key] = f"(not a step task of run {run_id}: {value!r})"
    return {**results, "w3-reduce": fixed}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    workload, n, backend = spec["workload"], spec["n"], spec["backend"]
    tmpdir = spec["tmpdir"]
    url = store_url(backend, tmpdir)
    steps = steps_for(workload, n)
    definition = {"steps": steps}
    engine = OrchestrationEngine(data_dir=tmpdir, store_url=url, max_workers=WORKERS, registry=make_registry())
    errors: list[str] = []
    run_id = ""
    try:
        session_id = engine.create_session("bench", max_parallel_tasks=SESSION_MAX_PARALLEL_TASKS)
        t0 = time.perf_counter()
        out = engine.execute_complex_workflow(definition, session_id=session_id)
        t_end = time.perf_counter()
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        run_id = out.get("run_id") or ""
        if not out.get("success") or out.get("error") is not None:
            errors.append(
                f"execute_complex_workflow failed: {out.get('error')!r:.300} "
                f"({out.get('error_code')}, details {out.get('details')!r:.300})"
            )
        stats = out.get("execution_stats") or {}
        if stats.get("total_steps") != len(steps) or stats.get("completed") != len(steps):
            errors.append(f"expected {len(steps)} steps, all completed; execution_stats say {stats}")
        if stats.get("status") != "completed":
            errors.append(f"run status {stats.get('status')!r}, expected 'completed'")
        results = normalize(workload, dict(out.get("results") or {}), run_id)
        errors += check_results(workload, n, results)
        not_done = [
            s["name"]
            for s in steps
            if (task := engine.task_orchestrator.get_task(f"{run_id}/{s['name']}")) is None
            or task.status is not TaskStatus.COMPLETED
            or task.result is None
            or not task.result.success
        ]
        if not_done:
            errors.append(f"{len(not_done)} step task(s) not COMPLETED with success, e.g. {not_done[:3]}")
        store_stats = engine.store.stats
        if store_stats.failures or store_stats.conflicts or store_stats.listener_errors:
            errors.append(f"store reported problems: {store_stats}")
        if workload == "W4" and CONCURRENCY.peak > min(WORKERS, SESSION_MAX_PARALLEL_TASKS):
            errors.append(f"peak concurrency {CONCURRENCY.peak} exceeds the limit of {WORKERS}")
        extra: dict[str, Any] = {
            "commits": store_stats.commits,
            "events": store_stats.events,
            "largest_batch": store_stats.largest_batch,
            "run_duration": stats.get("duration"),
            **headline(workload, results),
        }
        if workload == "W4":
            extra["peak_concurrency"] = CONCURRENCY.peak
    finally:
        engine.close()

    if backend.startswith("sqlite") and not errors:
        errors += check_durable(url, workload, n, run_id)
    return {
        "tasks": len(steps),
        "seconds": t_end - t0,
        "exec_seconds": None,
        "add_seconds": None,
        "rss_kib": rss_kib,
        "errors": errors,
        "extra": extra,
    }


def check_durable(url: str, workload: str, n: int, run_id: str) -> list[str]:
    """Re-open the closed file: the task view folded from the log gives the same step
    results, and the workflow view has the run COMPLETED."""
    from engine.workflow_manager import WORKFLOW_TOPICS
    from projections.workflows import fold as fold_workflows

    with History.open(url) as history:
        view = history.task_view()
        runs = fold_workflows(history.events(types=WORKFLOW_TOPICS)).runs
    errors: list[str] = []
    run = runs.get(run_id)
    if run is None or run.status is not WorkflowStatus.COMPLETED:
        errors.append(f"re-read log: run {run_id} is {run.status if run else 'missing'}, expected COMPLETED")
        return errors
    got: dict[str, Any] = {}
    for step, task_id in run.step_tasks.items():
        rec = view.tasks.get(task_id)
        if rec is not None and rec.status is TaskStatus.COMPLETED and rec.result is not None:
            got[step] = rec.result.data
    errors += [f"re-read log: {e}" for e in check_results(workload, n, normalize(workload, got, run_id))]
    return errors
