"""Several engine processes on one store: each admits its own work, nobody runs a step
twice, and every process's live views end up equal to each other and to the fold of
the log (each store hands its listeners the other processes' commits)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.models import WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry
from engine.store import open_store
from replay_tools.state import state_at
from replay_tools.verify import verify

ROOT = Path(__file__).resolve().parents[1]


def define(url: str, tmp: Path) -> None:
    registry = ActionRegistry()
    registry.register("fan", "step", lambda task_tag, n: n + 1)
    with OrchestrationEngine(store_url=url, registry=registry, data_dir=str(tmp / "data-parent")) as engine:
        steps = [
            WorkflowStep(name="a", module="fan", action="step", parameters={"task_tag": "{{tag}}/a", "n": 1}),
            WorkflowStep(
                name="b", module="fan", action="step", parameters={"task_tag": "{{tag}}/b", "n": "{{a.output}}"}
            ),
            WorkflowStep(
                name="c", module="fan", action="step", parameters={"task_tag": "{{tag}}/c", "n": "{{a.output}}"}
            ),
            WorkflowStep(
                name="d",
                module="fan",
                action="step",
                parameters={"task_tag": "{{tag}}/d", "n": "{{b.output}}"},
                dependencies=["c"],
            ),
        ]
        engine.workflow_manager.create_workflow("fan", steps, save=False)


def run_engines(url: str, tmp: Path, processes: int, runs: int) -> None:
    define(url, tmp)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.crash.engine_worker", url, str(tmp), str(i), str(runs), str(processes)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    ran = Counter(line for i in range(processes) for line in (tmp / f"effects-{i}").read_text().split())
    assert len(ran) == processes * runs * 4
    assert set(ran.values()) == {1}  # every step ran exactly once
    views = [json.loads((tmp / f"views-{i}.json").read_text()) for i in range(processes)]
    with open_store(url) as store:
        end = state_at(store, position=store.max_position())
        expected = json.loads(
            json.dumps(
                {"tasks": end.tasks.snapshot(), "workflows": end.workflows.snapshot()}, default=str, sort_keys=True
            )
        )
        assert verify(store).ok
    for i, view in enumerate(views):
        assert view["workflows"] == expected["workflows"], f"process {i}'s workflow view differs"
        assert view["tasks"] == expected["tasks"], f"process {i}'s task view differs"
    runs_done = [r for r in expected["workflows"]["runs"].values() if r["status"] == "completed"]
    assert len(runs_done) == processes * runs


def test_two_engine_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    run_engines(f"sqlite:///{tmp_path / 'events.db'}", tmp_path, processes=2, runs=15)


@pytest.mark.postgres
def test_two_engine_processes_share_one_postgres_store(pg_url: str, tmp_path: Path) -> None:
    run_engines(pg_url, tmp_path, processes=2, runs=100)


def test_handlers_hear_their_own_engine_and_views_follow_the_other(tmp_path: Path) -> None:
    """Two engines on one SQLite file in one process (two stores, as two processes would
    have): B's views see A's run once B catches up, but B's handlers stay quiet."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    define(url, tmp_path)
    registry = ActionRegistry()
    registry.register("fan", "step", lambda task_tag, n: n + 1)
    heard: dict[str, list[str]] = {"a": [], "b": []}
    lock = threading.Lock()
    a = OrchestrationEngine(store_url=url, registry=registry, data_dir=str(tmp_path / "a"))
    b = OrchestrationEngine(store_url=url, registry=registry, data_dir=str(tmp_path / "b"))
    try:
        for name, engine in (("a", a), ("b", b)):

            def hear(event: str, data: dict[str, object], name: str = name) -> None:
                with lock:
                    heard[name].append(str(data["aggregate_id"]))

            engine.register_event_handler("workflow_completed", hear)
        run = a.execute_workflow("fan", tag="x")
        assert run["success"]
        b.store.catch_up()
        assert b.workflow_manager.view.runs[run["run_id"]].status.value == "completed"
        a.store.flush()
        deadline = time.monotonic() + 5
        while not heard["a"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heard["a"] == [run["run_id"]]
        time.sleep(0.3)  # B's handler thread would have had the time to run
        assert heard["b"] == []
    finally:
        b.close()
        a.close()
