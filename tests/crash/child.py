"""A process that runs work on a store and is killed (SIGKILL) at a chosen point.

Usage: python -m tests.crash.child STORE_URL EFFECTS_FILE KILL_AFTER_EVENTS KILL_IN_STEP SHAPE

* ``KILL_AFTER_EVENTS``: kill right after the commit that brings this process's
  committed events to at least that many (0: never).
* ``KILL_IN_STEP``: kill inside that step's action, after it wrote its side effect and
  before its outcome is recorded ("": never); or ``commit:K``: kill inside the K-th
  insert into the events table, before its transaction commits (SQLite only).
* ``SHAPE``: ``tasks`` (a TaskOrchestrator DAG) or ``workflow`` (an engine workflow).

Every attempt of a step appends ``<step> <pid>`` to ``EFFECTS_FILE`` (fsynced), so the
parent can count how often each step really ran, across processes.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from domain.events import Recorded
from engine.registry import ActionRegistry

STEPS: dict[str, list[str]] = {
    "a": [],
    "b": ["a"],
    "c": ["a"],
    "d": ["b", "c"],
    "e": ["d"],
}


def effect(path: str, step: str, kill_in: str = "") -> dict[str, str]:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{step} {os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    if step == kill_in:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"step": step}


def registry_for(path: str, kill_in: str = "") -> ActionRegistry:
    registry = ActionRegistry()
    registry.register("crash", "step", lambda step: effect(path, step, kill_in))
    return registry


def killer(after: int) -> object:
    seen = [0]

    def listener(batch: Sequence[Recorded]) -> None:
        seen[0] += len(batch)
        if after and seen[0] >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    return listener


def kill_during_commit(k: int) -> None:
    """Every SQLite connection the store opens SIGKILLs this process when it executes
    its K-th insert into the events table: mid-transaction, before COMMIT."""
    from engine import recorders

    seen = [0]
    original = recorders.SQLitePool._create_connection

    def trace(sql: str) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO CODOMYRMEX_EVENTS "):
            seen[0] += 1
            if seen[0] >= k:
                os.kill(os.getpid(), signal.SIGKILL)

    def create(self: recorders.SQLitePool) -> object:
        conn = original(self)
        conn._sqlite_conn.set_trace_callback(trace)  # type: ignore[attr-defined]
        return conn

    recorders.SQLitePool._create_connection = create  # type: ignore[assignment,method-assign]


def main(url: str, effects: str, kill_after: int, kill_in: str, shape: str) -> None:
    if kill_in.startswith("commit:"):
        kill_during_commit(int(kill_in.split(":", 1)[1]))
        kill_in = ""
    registry = registry_for(effects, kill_in)
    if shape == "tasks":
        from engine.models import Task
        from engine.task_orchestrator import TaskOrchestrator

        orch = TaskOrchestrator(2, store=url, registry=registry, lease_ttl=0.5)
        orch.store.subscribe(killer(kill_after))  # type: ignore[arg-type]
        orch.add_tasks(
            [
                Task(
                    id=name,
                    name=name,
                    module="crash",
                    action="step",
                    parameters={"step": name},
                    dependencies=deps,
                    max_retries=2,
                    retry_delay=0.0,
                )
                for name, deps in STEPS.items()
            ]
        )
        orch.start_execution()
        orch.wait_for_completion(30)
        orch.close()
        return
    from engine.orchestration_engine import OrchestrationEngine

    engine = OrchestrationEngine(store_url=url, registry=registry, lease_ttl=0.5, data_dir=os.path.dirname(effects))
    engine.store.subscribe(killer(kill_after))  # type: ignore[arg-type]
    steps = [
        {"name": n, "module": "crash", "action": "step", "parameters": {"step": n}, "dependencies": d, "max_retries": 2}
        for n, d in STEPS.items()
    ]
    engine.execute_complex_workflow({"name": "crashy", "steps": steps})
    engine.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
