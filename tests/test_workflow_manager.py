"""WorkflowManager: definitions (versions, files), runs (substitution, failures,
timeouts), views, restarts and concurrency."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.enums import TaskStatus, WorkflowStatus
from domain.errors import DependencyCycleError, ValidationError
from engine.models import WorkflowStep
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_manager import WorkflowManager
from projections.workflows import fold
from replay_tools.history import History

Make = Callable[..., WorkflowManager]


@pytest.fixture
def registry() -> ActionRegistry:
    reg = ActionRegistry()
    reg.register("m", "inc", lambda i: i + 1)
    reg.register("m", "double", lambda x: x * 2)
    reg.register("m", "echo", lambda value=None: value)
    reg.register("m", "sleep", lambda seconds: time.sleep(seconds) or seconds)

    def boom() -> None:
        raise RuntimeError("step broke")

    reg.register("m", "boom", boom)
    return reg


@pytest.fixture
def make(registry: ActionRegistry, tmp_path: Path) -> Iterator[Make]:
    made: list[tuple[WorkflowManager, TaskOrchestrator]] = []

    def factory(store: str = "memory://", workflows_dir: Path | None = None) -> WorkflowManager:
        orch = TaskOrchestrator(store=store, registry=registry)
        wm = WorkflowManager(orchestrator=orch, workflows_dir=workflows_dir or tmp_path / "workflows")
        made.append((wm, orch))
        return wm

    yield factory
    for wm, orch in made:
        wm.close()
        orch.close()


def run(wm: WorkflowManager, name: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
    return asyncio.run(wm.execute_workflow(name, params, timeout))


CALC = [
    WorkflowStep(name="a", module="m", action="inc", parameters={"i": "{{start}}"}),
    WorkflowStep(name="b", module="m", action="double", parameters={"x": "{{a.output}}"}),
    WorkflowStep(
        name="c", module="m", action="echo", parameters={"value": "a={{a.output}} b={{b.output}} s={{start}}"}
    ),
]


def test_substitution_keeps_types_and_formats_inside_strings(make: Make) -> None:
    wm = make()
    assert wm.create_workflow("calc", CALC) is True
    ex = run(wm, "calc", {"start": 4})
    assert ex.status is WorkflowStatus.COMPLETED
    assert ex.results == {"a": 5, "b": 10, "c": "a=5 b=10 s=4"}
    assert ex.errors == []
    assert ex.performance_metrics["steps"]["b"]["status"] == "completed"
    # {{a.output}} implied the dependency: b and c ran after a
    tasks = {s: wm.orchestrator.get_task(t) for s, t in wm.view.runs[ex.run_id].step_tasks.items()}
    assert tasks["b"].dependencies == [tasks["a"].id]  # type: ignore[union-attr]
    # the recorded task parameters show the global value used
    assert tasks["a"].parameters == {"i": 4}  # type: ignore[union-attr]


def test_unknown_parameter_is_an_error_before_anything_runs(make: Make) -> None:
    wm = make()
    wm.create_workflow("calc", CALC, save=False)
    before = wm.store.max_position()
    with pytest.raises(ValueError, match="start"):
        run(wm, "calc", {})
    with pytest.raises(ValueError, match="not found"):
        run(wm, "nope")
    with pytest.raises(ValueError):
        run(wm, "calc", {"start": 1}, timeout=-1)
    wm.store.flush()
    assert wm.store.max_position() == before


def test_failure_skips_dependents_and_independent_steps_finish(make: Make) -> None:
    wm = make()
    wm.create_workflow(
        "partial",
        [
            WorkflowStep(name="x", module="m", action="boom", max_retries=1, retry_delay=0),
            WorkflowStep(name="y", module="m", action="inc", parameters={"i": 1}, dependencies=["x"]),
            WorkflowStep(name="z", module="m", action="inc", parameters={"i": 1}),
        ],
        save=False,
    )
    ex = run(wm, "partial")
    assert ex.status is WorkflowStatus.FAILED
    assert ex.results == {"z": 2}
    assert len(ex.errors) == 2
    assert all(isinstance(e, str) for e in ex.errors)
    assert "step 'x' failed: RuntimeError: step broke" in ex.errors
    assert any(e.startswith("step 'y' skipped") for e in ex.errors)
    assert ex.performance_metrics["steps"]["x"]["attempts"] == 2


def test_whole_workflow_timeout_raises_and_records_failed(make: Make) -> None:
    wm = make()
    wm.create_workflow(
        "slow",
        [WorkflowStep(name="s", module="m", action="sleep", parameters={"seconds": 2}, max_retries=0)],
        save=False,
    )
    began = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        run(wm, "slow", timeout=0.2)
    assert time.monotonic() - began < 1.5
    (record,) = wm.view.runs.values()
    assert record.status is WorkflowStatus.FAILED
    assert record.reason == "timeout"
    task = wm.orchestrator.get_task(record.step_tasks["s"])
    assert task is not None
    assert task.status is TaskStatus.CANCELLED


@pytest.mark.parametrize(
    ("name", "steps", "error"),
    [
        ("", [WorkflowStep(name="a", module="m", action="inc")], ValidationError),
        ("has space", [WorkflowStep(name="a", module="m", action="inc")], ValidationError),
        ("empty", [], ValidationError),
        ("dup", [WorkflowStep(name="a", module="m", action="inc")] * 2, ValidationError),
        ("unknown-dep", [WorkflowStep(name="a", module="m", action="inc", dependencies=["zz"])], ValidationError),
        (
            "cycle",
            [
                WorkflowStep(name="a", module="m", action="inc", dependencies=["b"]),
                WorkflowStep(name="b", module="m", action="inc", parameters={"i": "{{a.output}}"}),
            ],
            DependencyCycleError,
        ),
        (
            "bad-ref",
            [WorkflowStep(name="a", module="m", action="inc", parameters={"i": "{{ghost.output}}"})],
            ValidationError,
        ),
        ("bad-timeout", [WorkflowStep(name="a", module="m", action="inc", timeout=-5)], ValidationError),
        (
            "bad-params",
            [WorkflowStep(name="a", module="m", action="inc", parameters={"i": float("nan")})],
            ValidationError,
        ),
    ],
)
def test_invalid_definitions_are_rejected_and_nothing_recorded(
    make: Make, name: str, steps: list[WorkflowStep], error: type[Exception]
) -> None:
    wm = make()
    with pytest.raises(error) as info:
        wm.create_workflow(name, steps)
    assert isinstance(info.value, ValueError)
    assert wm.store.max_position() == 0
    assert not (wm.workflows_dir / f"{name}.json").exists()  # type: ignore[operator]
    assert wm.create_workflow("fine", [WorkflowStep(name="a", module="m", action="inc", parameters={"i": 1})])


def test_versions_and_files(make: Make, tmp_path: Path) -> None:
    wm = make()
    wm.create_workflow("calc", CALC)
    file = tmp_path / "workflows" / "calc.json"
    doc = json.loads(file.read_text())
    assert doc["name"] == "calc"
    assert [s["name"] for s in doc["steps"]] == ["a", "b", "c"]
    assert set(doc["steps"][0]) >= {"name", "module", "action", "parameters", "dependencies", "timeout", "max_retries"}
    first = run(wm, "calc", {"start": 1})
    wm.create_workflow("calc", [*CALC[:2]])
    second = run(wm, "calc", {"start": 1})
    assert wm.view.runs[first.run_id].definition_version == 1
    assert wm.view.runs[second.run_id].definition_version == 2
    assert second.results == {"a": 2, "b": 4}
    # the same definition again records nothing new
    position = wm.store.max_position()
    assert wm._define("calc", wm.view.definitions["calc"].steps, source="api") is False
    assert wm.store.max_position() == position


def test_directory_loading_reports_malformed_files_by_name(make: Make, tmp_path: Path) -> None:
    d = tmp_path / "wf"
    d.mkdir()
    (d / "good.json").write_text(json.dumps({"name": "good", "steps": [{"name": "a", "module": "m", "action": "inc"}]}))
    (d / "broken.json").write_text("{not json")
    (d / "cyclic.json").write_text(
        json.dumps(
            {
                "name": "cyclic",
                "steps": [
                    {"name": "a", "module": "m", "action": "inc", "dependencies": ["b"]},
                    {"name": "b", "module": "m", "action": "inc", "dependencies": ["a"]},
                ],
            }
        )
    )
    wm = make(workflows_dir=d)
    assert set(wm.list_workflows()) == {"good"}
    reported = dict(wm.load_errors)
    assert set(reported) == {"broken.json", "cyclic.json"}
    assert "malformed JSON" in reported["broken.json"]
    assert "cycle" in reported["cyclic.json"]


def test_a_fractional_step_timeout_from_a_file_is_kept(make: Make, tmp_path: Path) -> None:
    d = tmp_path / "wf"
    d.mkdir()
    steps = [
        {"name": "a", "module": "m", "action": "inc", "timeout": 1.5},
        {"name": "b", "module": "m", "action": "inc", "timeout": 30},
    ]
    (d / "timed.json").write_text(json.dumps({"name": "timed", "steps": steps}))
    wm = make(workflows_dir=d)
    got = wm.get_workflow("timed")
    assert got is not None
    assert [s.timeout for s in got] == [1.5, 30]


def test_list_workflows_and_performance_summary_keys(make: Make) -> None:
    wm = make()
    wm.create_workflow(
        "timed",
        [
            WorkflowStep(name="a", module="m", action="inc", parameters={"i": 1}, timeout=10),
            WorkflowStep(name="b", module="m", action="inc", parameters={"i": 1}, timeout=20, dependencies=["a"]),
            WorkflowStep(name="c", module="m", action="inc", parameters={"i": 1}),
        ],
        save=False,
    )
    info = wm.list_workflows()["timed"]
    assert set(info) == {"steps", "modules", "estimated_duration", "has_dependencies", "created_time"}
    assert info["steps"] == 3
    assert info["modules"] == ["m"]
    assert info["has_dependencies"] is True
    assert info["estimated_duration"] == 60  # max(10 + 20, 60 for the step without a timeout)
    ex = run(wm, "timed")
    assert ex.status is WorkflowStatus.COMPLETED
    assert wm.list_workflows()["timed"]["estimated_duration"] == 1  # measured history, rounded up
    summary = wm.get_performance_summary()
    assert set(summary) == {
        "performance_stats",
        "total_workflows_executed",
        "successful_executions",
        "failed_executions",
        "average_execution_time",
        "module_usage_stats",
    }
    assert summary["total_workflows_executed"] == 1
    assert summary["successful_executions"] == 1
    assert summary["module_usage_stats"]["m"]["steps"] == 3
    assert wm.get_performance_summary("timed")["total_workflows_executed"] == 1
    with pytest.raises(ValueError):
        wm.get_performance_summary("nope")


def test_restart_sees_workflows_runs_and_metrics(make: Make, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    first = make(store=url)
    first.create_workflow("calc", CALC, save=False)
    ex = run(first, "calc", {"start": 2})
    before = (first.list_workflows(), first.get_performance_summary(), first.view.snapshot())
    first.close()
    first.orchestrator.close()
    second = make(store=url)
    assert (second.list_workflows(), second.get_performance_summary(), second.view.snapshot()) == before
    again = second.get_execution(ex.run_id)
    assert again.results == ex.results
    assert again.status is WorkflowStatus.COMPLETED


def test_views_equal_fold_of_log(make: Make) -> None:
    wm = make()
    wm.create_workflow("calc", CALC, save=False)
    run(wm, "calc", {"start": 1})
    run(wm, "calc", {"start": 2})
    wm.store.flush()
    assert fold(History(wm.store).events()).snapshot() == wm.view.snapshot()


def test_eight_threads_running_workflows_at_once(make: Make) -> None:
    wm = make()
    wm.create_workflow("calc", CALC, save=False)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for j in range(3):
                results[k * 10 + j] = run(wm, "calc", {"start": k * 10 + j})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 24
    for start, ex in results.items():
        assert ex.status is WorkflowStatus.COMPLETED
        assert ex.results == {"a": start + 1, "b": 2 * (start + 1), "c": f"a={start + 1} b={2 * (start + 1)} s={start}"}
    summary = wm.get_performance_summary()
    assert summary["total_workflows_executed"] == 24
    assert summary["successful_executions"] == 24
    assert wm.orchestrator.get_execution_stats()["completed"] == 72
