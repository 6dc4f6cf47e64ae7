"""One of several engine processes sharing a store (tests/test_shared_store.py).

Usage: python -m tests.crash.engine_worker STORE_URL DIR INDEX RUNS PEERS

Runs RUNS workflows ("fan", defined by the parent) with 4 threads; every step appends
its task id to DIR/effects-INDEX. Then it marks itself done, waits for its PEERS,
catches up with their commits and writes its live views to DIR/views-INDEX.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry


def main(url: str, directory: str, index: int, runs: int, peers: int) -> None:
    base = Path(directory)
    effects = open(base / f"effects-{index}", "a", encoding="utf-8")  # noqa: SIM115 -- closed below

    def step(task_tag: str, n: int) -> int:
        effects.write(f"{task_tag}\n")
        effects.flush()
        return n + 1

    registry = ActionRegistry()
    registry.register("fan", "step", step)
    engine = OrchestrationEngine(store_url=url, registry=registry, data_dir=str(base / f"data-{index}"))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: engine.execute_workflow("fan", tag=f"p{index}-r{i}"), range(runs)))
    failed = [r for r in results if not r["success"]]
    (base / f"done-{index}").write_text(json.dumps({"failed": len(failed)}))
    deadline = time.monotonic() + 60
    while len(list(base.glob("done-*"))) < peers and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.store.flush()
    engine.store.catch_up()
    views = {
        "tasks": engine.task_orchestrator.view.snapshot(),
        "workflows": engine.workflow_manager.view.snapshot(),
    }
    (base / f"views-{index}.json").write_text(json.dumps(views, default=str, sort_keys=True))
    engine.close()
    effects.close()
    os._exit(0 if not failed else 3)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
