"""Resume and fork: restart a failed run from the step that failed, or fork a run from
any step, without redoing the finished work (side effects are counted)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from domain.enums import TaskStatus
from engine.models import WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry
from replay_tools.verify import verify

STEPS = ["s1", "s2", "s3", "s4", "s5"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[OrchestrationEngine, Counter[str], set[str]]:
    ran: Counter[str] = Counter()
    broken: set[str] = {"s3"}
    registry = ActionRegistry()

    def step(name: str, x: int = 0, bump: int = 1) -> int:
        ran[name] += 1
        if name in broken:
            raise RuntimeError(f"{name} is broken")
        return x + bump

    registry.register("rf", "step", step)
    engine = OrchestrationEngine(data_dir=str(tmp_path / "data"), registry=registry)
    steps = [WorkflowStep(name="s1", module="rf", action="step", parameters={"name": "s1", "bump": "{{bump}}"})]
    for prev, name in itertools.pairwise(STEPS):
        steps.append(
            WorkflowStep(
                name=name,
                module="rf",
                action="step",
                parameters={"name": name, "x": "{{" + prev + ".output}}", "bump": "{{bump}}"},
                max_retries=0,
            )
        )
    engine.workflow_manager.create_workflow("chain", steps)
    yield engine, ran, broken
    engine.close()


def test_resume_runs_exactly_the_failed_step_and_what_follows(
    setup: tuple[OrchestrationEngine, Counter[str], set[str]],
) -> None:
    engine, ran, broken = setup
    failed = engine.execute_workflow("chain", bump=1)
    assert not failed["success"]
    assert dict(ran) == {"s1": 1, "s2": 1, "s3": 1}
    broken.clear()  # the action is fixed
    resumed = engine.resume_workflow(failed["run_id"])
    assert resumed["success"], resumed
    assert dict(ran) == {"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}  # s3..s5 only
    assert resumed["results"] == {"s1": 1, "s2": 2, "s3": 3, "s4": 4, "s5": 5}
    run = engine.workflow_manager.view.runs[resumed["run_id"]]
    assert run.restart_of == failed["run_id"] and run.reused_steps == ["s1", "s2"]
    s1 = engine.task_orchestrator.get_task(f"{resumed['run_id']}/s1")
    assert s1 is not None and s1.status is TaskStatus.COMPLETED
    assert s1.result is not None and s1.result.metadata["reused_from"] == f"{failed['run_id']}/s1"
    assert verify(engine.store).ok


def test_fork_from_a_step_reuses_the_steps_before_it(
    setup: tuple[OrchestrationEngine, Counter[str], set[str]],
) -> None:
    engine, ran, broken = setup
    broken.clear()
    first = engine.execute_workflow("chain", bump=1)
    assert first["success"] and sum(ran.values()) == 5
    forked = engine.fork_workflow(first["run_id"], "s3", parameters={"bump": 10})
    assert forked["success"], forked
    assert dict(ran) == {"s1": 1, "s2": 1, "s3": 2, "s4": 2, "s5": 2}
    assert forked["results"] == {"s1": 1, "s2": 2, "s3": 12, "s4": 22, "s5": 32}
    run = engine.workflow_manager.view.runs[forked["run_id"]]
    assert (run.forked_from, run.from_step, run.reused_steps) == (first["run_id"], "s3", ["s1", "s2"])
    assert run.parameters == {"bump": 10}
    from replay_tools.diff import diff_runs

    d = diff_runs(engine.store, first["run_id"], forked["run_id"])
    assert d.lineage == ("", f"forked from {first['run_id']} at step s3, reusing s1, s2")
    assert f"forked from {first['run_id']} at step s3" in d.text()
    assert d.results_changed == {"s3": (3, 12), "s4": (4, 22), "s5": (5, 32)}


def test_bad_resume_and_fork_requests(setup: tuple[OrchestrationEngine, Counter[str], set[str]]) -> None:
    engine, ran, _ = setup
    failed = engine.execute_workflow("chain", bump=1)
    assert engine.fork_workflow(failed["run_id"], "nope")["error_code"] == "UNKNOWN_STEP"
    assert engine.resume_workflow("no-such-run")["error_type"] == "NotFoundError"
    runs = len(engine.workflow_manager.view.runs)
    assert engine.fork_workflow(failed["run_id"], "s2", parameters={1: 2})["error_type"] == "ValidationError"
    assert len(engine.workflow_manager.view.runs) == runs  # no run recorded (only the call's own session)
    assert not engine.fork_workflow(failed["run_id"], "s2")["success"]  # s3 still broken: usable, and fails
    assert ran["s2"] == 2
