"""The original project's workflow files: every one loads, two run to COMPLETED on this
repository's own source, and the error test fails cleanly.

The files are read from ``../shared/upstream/workflows`` (the ``upstream_dir`` fixture
skips where that folder is absent, as on a user's fresh clone; CI requires it).
``ai_code_editing.generate_code_insights`` is not something this project can do, so it
is not a built-in; the run of ``complex-analysis.json`` registers ``insights_stand_in``
below, a test fixture, under that name.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.enums import TaskStatus, WorkflowStatus
from domain.workflow import implied_dependencies, validate_steps
from engine.builtins import register_missing_builtins
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_files import parse_workflow_file
from engine.workflow_manager import WorkflowManager

REPO = Path(__file__).resolve().parents[1]
FILES = [
    "basic-analysis.json",
    "code-analysis-pipeline.json",
    "complex-analysis.json",
    "error_test_workflow.json",
    "sample_analysis_workflow.json",
]


def insights_stand_in(analysis_data: dict[str, Any]) -> dict[str, Any]:
    """TEST FIXTURE standing in for ai_code_editing.generate_code_insights: turns the
    analysis counts into a small dict of numbers (no AI involved)."""
    return {"files": analysis_data["files"], "functions": analysis_data["functions"]}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of this repository's source packages, as the working directory."""
    for package in ("domain", "projections", "engine", "replay_tools"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def manager(upstream_dir: Path, workspace: Path) -> Iterator[WorkflowManager]:
    registry = ActionRegistry()
    register_missing_builtins(registry, base_dir=str(workspace / ".orchestration"))
    orch = TaskOrchestrator(store="memory://", registry=registry)
    wm = WorkflowManager(orchestrator=orch, workflows_dir=upstream_dir / "workflows")
    yield wm
    wm.close()
    orch.close()


@pytest.mark.parametrize("file", FILES)
def test_every_upstream_file_loads(upstream_dir: Path, file: str) -> None:
    name, steps = parse_workflow_file(upstream_dir / "workflows" / file)
    validate_steps(name, steps)
    assert steps


def test_code_analysis_pipeline_references_imply_dependencies(upstream_dir: Path) -> None:
    _name, steps = parse_workflow_file(upstream_dir / "workflows" / "code-analysis-pipeline.json")
    names = {s.name for s in steps}
    deps = {s.name: implied_dependencies(s, names) for s in steps}
    assert deps == {
        "analyze_code": [],
        "generate_insights": ["analyze_code"],
        "create_visualization": ["generate_insights"],
    }


def test_the_manager_loads_the_whole_directory(manager: WorkflowManager) -> None:
    assert manager.load_errors == []
    assert set(manager.list_workflows()) == {
        "basic_analysis",
        "code-analysis-pipeline",
        "complex_analysis",
        "error_test_workflow",
        "sample_analysis_workflow",
    }


def test_sample_analysis_workflow_completes(manager: WorkflowManager, workspace: Path) -> None:
    execution = asyncio.run(manager.execute_workflow("sample_analysis_workflow"))
    assert execution.status is WorkflowStatus.COMPLETED, execution.errors
    assert set(execution.results) == {"data_analysis", "report_generation", "security_scan", "final_report"}
    assert execution.results["data_analysis"]["bars"] == 3
    assert Path(execution.results["data_analysis"]["path"]).is_file()
    assert execution.results["report_generation"]["modules"] > 10  # this repository's own modules
    assert (workspace / "output" / "index.md").is_file()
    assert (workspace / "final" / "index.md").is_file()
    assert execution.results["security_scan"]["files_scanned"] > 10


def test_complex_analysis_completes_with_the_insights_stand_in(manager: WorkflowManager) -> None:
    manager.orchestrator.registry.register("ai_code_editing", "generate_code_insights", insights_stand_in)
    execution = asyncio.run(manager.execute_workflow("complex_analysis"))
    assert execution.status is WorkflowStatus.COMPLETED, execution.errors
    assert execution.results["setup"]["ok"] in (True, False)
    analysis = execution.results["analyze_code"]
    assert execution.results["ai_insights"] == {"files": analysis["files"], "functions": analysis["functions"]}
    assert execution.results["visualize"]["bars"] == 2


def test_error_test_workflow_fails_cleanly(manager: WorkflowManager) -> None:
    execution = asyncio.run(manager.execute_workflow("error_test_workflow"))
    assert execution.status is WorkflowStatus.FAILED
    (error,) = execution.errors
    assert "nonexistent_module" in error
    assert "nonexistent_action" in error
    assert "UnknownActionError" in error
    task = manager.orchestrator.get_task(manager.view.runs[execution.run_id].step_tasks["invalid_step"])
    assert task is not None
    assert task.status is TaskStatus.FAILED
    assert [e.type for e in manager.orchestrator.task_events(task.id)].count("task.started") == 1


def test_code_analysis_pipeline_fails_without_ai(manager: WorkflowManager) -> None:
    """Without the stand-in, the AI step fails with the unknown-action error and the
    chart that needs its output is skipped."""
    execution = asyncio.run(manager.execute_workflow("code-analysis-pipeline"))
    assert execution.status is WorkflowStatus.FAILED
    assert "analyze_code" in execution.results
    assert any("generate_insights" in e and "UnknownActionError" in e for e in execution.errors)
    assert any(e.startswith("step 'create_visualization' skipped") for e in execution.errors)
