"""Crash recovery with real processes: a child runs work on a SQLite (or PostgreSQL)
store and is killed with SIGKILL at a point hypothesis chooses (right after the commit
that brings it to N events, or inside a step's action after its side effect); a new
engine then recovers. Every run ends, nothing completed runs twice, every attempt's side
effect is accounted for by a recorded attempt, and the log verifies."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.enums import TaskStatus, WorkflowStatus
from engine.store import open_store
from replay_tools.verify import verify
from tests.crash.child import STEPS, registry_for

ROOT = Path(__file__).resolve().parents[1]


def run_child(url: str, effects: Path, kill_after: int, kill_in: str, shape: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.crash.child", url, str(effects), str(kill_after), kill_in, shape],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, -9), proc.stderr[-2000:]
    return proc.returncode


def effects_of(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line)


def task_log(url: str) -> tuple[Counter[str], Counter[str], dict[str, str]]:
    """(task.started per task, task.completed per task, run status by run id)."""
    started: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    runs: dict[str, str] = {}
    with open_store(url) as store:
        for recorded in store.read():
            event = recorded.event
            if event.type == "task.started":
                started[event.aggregate_id.rsplit("/", 1)[-1]] += 1
            elif event.type == "task.completed":
                completed[event.aggregate_id.rsplit("/", 1)[-1]] += 1
            elif event.KIND == "workflow_run":
                runs[event.aggregate_id] = event.type
    return started, completed, runs


def recover(url: str, effects: Path, shape: str, data_dir: Path) -> None:
    registry = registry_for(str(effects))
    if shape == "tasks":
        from engine.task_orchestrator import TaskOrchestrator

        orch = TaskOrchestrator(2, store=url, registry=registry, lease_ttl=5.0)
        try:
            report = orch.recover()
            orch.start_execution()
            assert orch.wait_for_completion(30)
            for task_id in report.tasks:
                record = orch.get_task(task_id)
                assert record is not None and record.status is TaskStatus.COMPLETED, task_id
        finally:
            orch.close()
        return
    from engine.orchestration_engine import OrchestrationEngine

    engine = OrchestrationEngine(store_url=url, registry=registry, lease_ttl=5.0, data_dir=str(data_dir))
    try:
        assert engine.workflow_manager.wait_recovered(30)
        for run in engine.workflow_manager.view.runs.values():
            assert run.status is WorkflowStatus.COMPLETED, run
    finally:
        engine.close()


def check_crash_and_recovery(url: str, tmp: Path, kill_after: int, kill_in: str, shape: str) -> None:
    effects = tmp / "effects.txt"
    code = run_child(url, effects, kill_after, kill_in, shape)
    _, completed_at_crash, _ = task_log(url)
    effects_at_crash = effects_of(effects)
    time.sleep(0.6)  # the child's lease (0.5 s) expires
    recover(url, effects, shape, tmp)
    started, completed, runs = task_log(url)
    ran = effects_of(effects)
    if started:  # the child got as far as creating the work: all of it ended, once
        assert set(completed) == set(STEPS), (code, completed)
        assert all(n == 1 for n in completed.values()), completed
    for step in completed_at_crash:  # finished work is never redone
        assert ran[step] == effects_at_crash[step], (step, ran, effects_at_crash)
    for step, n in ran.items():  # every side effect belongs to a recorded attempt
        assert n <= started[step], (step, ran, started)
    assert all(status in ("workflow_run.completed",) for status in runs.values()), runs
    report = verify(url)
    assert report.ok, report.text()


shapes = st.sampled_from(["tasks", "workflow"])
crash_points = st.one_of(  # one way to die per run
    st.tuples(st.integers(1, 45), st.just(""), shapes),  # right after a commit
    st.tuples(st.just(0), st.sampled_from(sorted(STEPS)), shapes),  # inside a step, after its side effect
    st.tuples(st.just(0), st.integers(1, 30).map(lambda k: f"commit:{k}"), shapes),  # mid-commit
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point=crash_points)
def test_sigkill_at_any_point_then_recover_on_sqlite(point: tuple[int, str, str]) -> None:
    kill_after, kill_in, shape = point
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        check_crash_and_recovery(f"sqlite:///{tmp / 'events.db'}", tmp, kill_after, kill_in, shape)


@pytest.mark.postgres
@pytest.mark.parametrize("point", [(7, "", "tasks"), (45, "c", "workflow"), (20, "", "workflow")])
def test_sigkill_then_recover_on_postgres(pg_url: str, tmp_path: Path, point: tuple[int, str, str]) -> None:
    check_crash_and_recovery(pg_url, tmp_path, *point)
