"""replay_tools.rerun: re-execute a recorded run into a separate store and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain.errors import NotFoundError, ValidationError
from engine.models import WorkflowStep
from engine.registry import ActionRegistry
from engine.results import run_coroutine
from engine.store import open_store
from replay_tools.rerun import Divergence, rerun


def make_registry(*, b: Any = None) -> ActionRegistry:
    reg = ActionRegistry()
    reg.register("t", "add", lambda x, y: x + y)
    reg.register("t", "double", b if b is not None else (lambda x: x * 2))
    reg.register("t", "show", lambda v, label: f"{label}={v}")
    return reg


STEPS = [
    WorkflowStep(name="a", module="t", action="add", parameters={"x": "{{start}}", "y": 1}, max_retries=0),
    WorkflowStep(name="b", module="t", action="double", parameters={"x": "{{a.output}}"}, max_retries=0),
    WorkflowStep(
        name="c",
        module="t",
        action="show",
        parameters={"v": "{{b.output}}", "label": "out"},
        dependencies=["b"],
        max_retries=0,
    ),
]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store with one completed run of a -> b -> c (start=4: a=5, b=10, c='out=10')."""
    from engine.orchestration_engine import OrchestrationEngine

    engine = OrchestrationEngine(data_dir=str(tmp_path / "data"), registry=make_registry())
    try:
        engine.workflow_manager.create_workflow("chain", STEPS, save=False)
        execution = run_coroutine(engine.workflow_manager.execute_workflow("chain", {"start": 4}))
        # a later version with other steps: the rerun must use the run's version (1)
        engine.workflow_manager.create_workflow("chain", STEPS[:1], save=False)
        assert execution.status.value == "completed"
        assert execution.results["c"] == "out=10"
        return engine.store.url, execution.run_id
    finally:
        engine.close()


def event_count(url: str) -> int:
    store = open_store(url)
    try:
        return len(list(store.read()))
    finally:
        store.close()


def test_same_actions_no_divergence(recorded: tuple[str, str]) -> None:
    url, run_id = recorded
    report = rerun(url, run_id, registry=make_registry())
    assert report.same
    assert report.first_divergence is None
    assert report.divergences == ()
    assert report.original_run == run_id
    assert report.new_run and report.new_run != run_id
    assert report.target == "memory://"
    assert report.steps == ("a", "b", "c")
    assert report.text() == "no divergence: 3 steps behave the same"


def test_changed_result_diverges_at_b(recorded: tuple[str, str]) -> None:
    url, run_id = recorded
    report = rerun(url, run_id, registry=make_registry(b=lambda x: x * 3))
    assert not report.same
    assert report.first_divergence == Divergence("b", "result", 10, 15)
    assert [(d.step, d.field) for d in report.divergences] == [("b", "result"), ("c", "result")]
    assert report.text() == "first divergence at step b: result 10 -> 15"


def test_raising_action_diverges_at_b_status(recorded: tuple[str, str]) -> None:
    def boom(x: int) -> int:
        raise RuntimeError("changed")

    url, run_id = recorded
    report = rerun(url, run_id, registry=make_registry(b=boom))
    assert report.first_divergence == Divergence("b", "status", "completed", "failed")
    assert ("c", "status") in [(d.step, d.field) for d in report.divergences]
    c = next(d for d in report.divergences if d.step == "c" and d.field == "status")
    assert (c.original, c.new) == ("completed", "skipped")
    assert report.text().startswith("first divergence at step b: status 'completed' -> 'failed'")


def test_source_is_read_only_memory_and_sqlite_targets(recorded: tuple[str, str], tmp_path: Path) -> None:
    url, run_id = recorded
    before = event_count(url)
    assert rerun(url, run_id, registry=make_registry()).same
    target = f"sqlite:///{tmp_path / 'rerun.db'}"
    report = rerun(url, run_id, registry=make_registry(), target=target)
    assert report.same and report.target == target
    assert event_count(url) == before
    # the new run is in the target store
    store = open_store(target)
    try:
        assert any(r.event.aggregate_id == report.new_run for r in store.read())
    finally:
        store.close()
    # a second rerun into the same target file (workflow already defined there) still works
    assert rerun(url, run_id, registry=make_registry(), target=target).same
    assert event_count(url) == before


def test_errors(recorded: tuple[str, str]) -> None:
    url, run_id = recorded
    with pytest.raises(NotFoundError):
        rerun(url, "no-such-run", registry=make_registry())
    with pytest.raises(ValidationError):
        rerun(url, run_id, registry=make_registry(), target=url)
    with pytest.raises(ValidationError):
        rerun(url, run_id, registry=make_registry(), target="not a url")
