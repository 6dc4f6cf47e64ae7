"""ProjectManager: the spec's examples run as written, templates (the package's and the
upstream files), directories and path safety, the PROJECT lifecycle, milestones,
metrics from linked runs, restarts, and views equal to the fold of the log.

The spec's examples import ``ProjectManager`` from the spec's path, as written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.enums import ProjectStatus, ProjectType
from domain.errors import (
    DuplicateIdError,
    IllegalTransitionError,
    ProjectManagementError,
    ValidationError,
)
from engine.actions import register_builtin_actions
from engine.builtins import register_missing_builtins
from engine.models import WorkflowStep
from engine.project_manager import ProjectManager
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from engine.templates import PACKAGE_TEMPLATES, PACKAGE_WORKFLOWS, package_workflow, parse_template_file
from engine.workflow_manager import WorkflowManager
from projections.projects import fold

STATUS_KEYS = {
    "name", "status", "type", "version", "path", "workflows", "active_workflows",
    "required_modules", "created_at", "updated_at", "milestones", "metrics",
}  # fmt: skip
ERROR_KEYS = {"success", "error", "error_type", "error_code", "details", "suggestions"}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()


def stream(pm: ProjectManager, name: str) -> list[str]:
    pm.store.flush()
    return [e.type for e in pm.store.read_stream(f"project:{name}")]


def assert_view_is_fold(pm: ProjectManager) -> None:
    pm.store.flush()
    assert fold(pm.store.read()).snapshot() == pm.view.snapshot()


# -- the spec's examples, on the configured data directory ----------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODOMYRMEX_ORCHESTRATION_DIR", str(tmp_path))
    monkeypatch.delenv("CODOMYRMEX_STORE_URL", raising=False)
    monkeypatch.delenv("CODOMYRMEX_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def conversations(data_dir: Path) -> Path:
    """``./conversations``, the example's ``data_path``: transcripts and the script that
    labels them (which has an ``eval`` the security scan must find)."""
    d = data_dir / "conversations"
    d.mkdir()
    (d / "transcripts.json").write_text(json.dumps([{"user": "hi", "bot": "hello"}]))
    (d / "labeler.py").write_text(
        textwrap.dedent('''
            """Label chatbot conversations."""

            def label(turn):
                """Sentiment of one turn."""
                return "positive" if "hello" in turn["bot"] else "neutral"

            def parse(rule):
                return eval(rule)
        ''')
    )
    return d


def write_ai_analysis(data_dir: Path) -> None:
    """The ``ai-analysis`` workflow the example runs: real built-in actions on the
    caller's ``data_path``, reports into the project's directory."""
    doc = {
        "name": "ai-analysis",
        "steps": [
            {"name": "analyze", "module": "static_analysis", "action": "analyze_code_quality",
             "parameters": {"path": "{{data_path}}"}, "max_retries": 0},
            {"name": "security", "module": "security_audit", "action": "scan_codebase",
             "parameters": {"path": "{{data_path}}"}, "max_retries": 0},
            {"name": "chart", "module": "data_visualization", "action": "create_analysis_chart",
             "parameters": {"data": "{{analyze.output}}", "output_path": "{{project_path}}/reports/quality.svg"},
             "max_retries": 0},
            {"name": "docs", "module": "documentation", "action": "generate_docs",
             "parameters": {"source_path": "{{data_path}}", "output_path": "{{project_path}}/docs/api"},
             "max_retries": 0},
        ],
    }  # fmt: skip
    (data_dir / "workflows").mkdir(exist_ok=True)
    (data_dir / "workflows" / "ai-analysis.json").write_text(json.dumps(doc))


def test_spec_create_project_example(data_dir: Path) -> None:
    manager = ProjectManager()
    try:
        project = manager.create_project(
            "web-app-analysis",
            template_name="web_application",
            description="Analysis of web application code",
            author="Development Team",
        )
        assert project.name == "web-app-analysis"
        assert project.type is ProjectType.WEB_APPLICATION
        assert project.status is ProjectStatus.PLANNING
        assert (project.description, project.author) == ("Analysis of web application code", "Development Team")
        root = data_dir / "projects" / "web-app-analysis"
        assert project.path == str(root)
        template = manager.get_template("web_application")
        assert template is not None and template.source.parent == PACKAGE_TEMPLATES
        assert project.workflows == list(template.workflows)
        assert project.required_modules == list(template.required_modules)
        assert project.config == template.default_config
        for d in template.directory_structure:
            assert (root / d).is_dir(), d
        status = manager.get_project_status("web-app-analysis")
        assert status is not None and set(status) == STATUS_KEYS
        assert status["status"] == "planning" and status["type"] == "web_application"
        assert status["workflows"] == len(template.workflows) and status["active_workflows"] == 0
        assert manager.get_project_status("nope") is None
        assert stream(manager, "web-app-analysis") == ["project.created"]
    finally:
        manager.close()


def test_spec_project_based_development_example(data_dir: Path, conversations: Path) -> None:
    write_ai_analysis(data_dir)
    from codomyrmex.logistics.orchestration.project import ProjectManager

    pm = ProjectManager()

    # Create project
    project = pm.create_project(
        "chatbot-analysis",
        template_name="ai_analysis",
        description="AI analysis of chatbot conversations"
    )  # fmt: skip

    # Execute project workflow
    result = pm.execute_project_workflow(
        "chatbot-analysis",
        "ai-analysis",
        data_path="./conversations",
        focus_areas=["sentiment", "intent", "quality"]
    )  # fmt: skip

    # Track milestone
    pm.add_project_milestone(
        "chatbot-analysis",
        "initial_analysis_complete",
        {"quality_score": 8.5, "insights_generated": 23}
    )  # fmt: skip

    try:
        assert project.status is ProjectStatus.PLANNING and project.type is ProjectType.AI_ANALYSIS
        assert result["success"] is True, result
        assert result["error"] is None and result["steps_executed"] == 4
        assert result["execution_time"] > 0 and result["run_id"]
        assert result["results"]["analyze"]["files"] == 1
        assert result["results"]["analyze"]["functions"] == 2
        assert any(f["file"] == "labeler.py" for f in result["results"]["security"]["findings"])
        root = Path(project.path)
        assert (root / "reports" / "quality.svg").is_file()
        assert (root / "docs" / "api" / "index.md").is_file()
        # the run saw the project's context and the caller's parameters, as recorded
        run = pm.workflow_manager.view.runs[result["run_id"]]
        assert run.parameters["project_name"] == "chatbot-analysis"
        assert run.parameters["project_path"] == project.path
        assert run.parameters["project_config"] == project.config
        assert run.parameters["focus_areas"] == ["sentiment", "intent", "quality"]

        status = pm.get_project_status("chatbot-analysis")
        assert status is not None and set(status) == STATUS_KEYS
        assert status["status"] == "active"
        assert status["milestones"]["initial_analysis_complete"]["data"] == {
            "quality_score": 8.5,
            "insights_generated": 23,
        }
        assert status["metrics"]["runs_linked"] == 1 and status["metrics"]["runs_completed"] == 1
        assert status["metrics"]["total_duration"] == pytest.approx(result["execution_time"])
        assert stream(pm, "chatbot-analysis") == [
            "project.created",
            "project.activated",
            "project.workflow_linked",
            "project.milestone_added",
        ]
        assert_view_is_fold(pm)
    finally:
        pm.close()


def test_restart_on_the_same_data_dir_sees_the_projects(data_dir: Path, conversations: Path) -> None:
    write_ai_analysis(data_dir)
    with ProjectManager() as first:
        first.create_project("kept", template_name="ai_analysis", tags=["chat"])
        first.execute_project_workflow("kept", "ai-analysis", data_path="./conversations")
        first.add_project_milestone("kept", "done", {"n": 1})
        before = first.get_project_status("kept")
        snapshot = first.view.snapshot()
    with ProjectManager() as second:
        assert second.get_project_status("kept") == before
        assert second.view.snapshot() == snapshot
        assert second.list_projects() == ["kept"]
        project = second.get_project("kept")
        assert project is not None and project.tags == ["chat"]
        # and it goes on from there: the next run is linked after the first
        result = second.execute_project_workflow("kept", "ai-analysis", data_path="./conversations")
        assert result["success"] is True
        status = second.get_project_status("kept")
        assert status is not None and status["metrics"]["runs_linked"] == 2
        assert_view_is_fold(second)


# -- a manager on a memory store with its own actions ---------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> ActionRegistry:
    reg = ActionRegistry()
    register_missing_builtins(reg, base_dir=str(tmp_path / "data"))
    reg.register("m", "echo", lambda **kwargs: kwargs)
    reg.register("m", "meddle", lambda config: config.update(changed=True) or sorted(config))

    def boom() -> None:
        raise RuntimeError("step broke")

    reg.register("m", "boom", boom)
    return reg


Make = Callable[..., ProjectManager]


@pytest.fixture
def make(registry: ActionRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    monkeypatch.setenv("CODOMYRMEX_ORCHESTRATION_DIR", str(tmp_path / "data"))
    made: list[tuple[ProjectManager, WorkflowManager, TaskOrchestrator]] = []

    def factory(templates_dir: Path | None = None) -> ProjectManager:
        orch = TaskOrchestrator(store="memory://", registry=registry)
        wm = WorkflowManager(orchestrator=orch, workflows_dir=tmp_path / "workflows")
        pm = ProjectManager(
            workflow_manager=wm, projects_dir=tmp_path / "projects", templates_dir=templates_dir or tmp_path / "tpl"
        )
        for name, steps in {
            "echo": [WorkflowStep(name="echo", module="m", action="echo",
                                  parameters={"path": "{{project_path}}", "extra": "{{extra}}"})],
            "plain": [WorkflowStep(name="a", module="m", action="echo", parameters={"x": 1})],
            "broken": [WorkflowStep(name="a", module="m", action="boom", max_retries=0)],
            "meddle": [WorkflowStep(name="a", module="m", action="meddle",
                                    parameters={"config": "{{project_config}}"})],
        }.items():  # fmt: skip
            wm.create_workflow(name, steps, save=False)
        made.append((pm, wm, orch))
        return pm

    yield factory
    for pm, wm, orch in made:
        pm.close()
        wm.close()
        orch.close()


def test_run_parameters_caller_wins_and_errors_record_nothing(make: Make, tmp_path: Path) -> None:
    pm = make()
    project = pm.create_project("p")
    out = pm.execute_project_workflow("p", "echo", extra=5, project_path="/elsewhere")
    assert out["success"] is True
    assert out["results"]["echo"] == {"path": "/elsewhere", "extra": 5}
    assert project.path == str(tmp_path / "projects" / "p")

    # an action that changes the config it is given changes neither the view nor the log
    meddled = pm.create_project("meddled", template_name="ai_analysis")
    assert pm.execute_project_workflow("meddled", "meddle")["results"]["a"][0] == "analysis"
    assert pm.get_project("meddled").config == meddled.config  # type: ignore[union-attr]
    assert "changed" not in meddled.config
    assert_view_is_fold(pm)

    pm.create_project("q")
    pm.store.flush()
    before = pm.store.max_position()
    refused = {
        "PROJECT_NOT_FOUND": pm.execute_project_workflow(["not", "a", "name"], "plain"),  # type: ignore[arg-type]
        "INVALID_INPUT": pm.execute_project_workflow("q", ["plain"]),  # type: ignore[arg-type]
        "UNKNOWN_WORKFLOW": pm.execute_project_workflow("q", "no-such-workflow"),
        "UNKNOWN_PARAMETER": pm.execute_project_workflow("q", "echo"),
        "NOT_SERIALIZABLE": pm.execute_project_workflow("q", "echo", extra=float("nan")),
    }
    for code, out in refused.items():
        assert out["success"] is False and out["error_code"] == code, out
        assert ERROR_KEYS | {"result", "execution_time", "steps_executed"} <= set(out)
        assert out["suggestions"] and isinstance(out["details"], dict)
    pm.store.flush()
    assert pm.store.max_position() == before  # nothing recorded: q is still PLANNING
    assert pm.get_project_status("q")["status"] == "planning"  # type: ignore[index]
    assert pm.get_project_status(["q"]) is None  # type: ignore[arg-type]
    assert pm.add_project_milestone({"q": 1}, "m", {}) is False  # type: ignore[arg-type]


def test_metrics_grow_with_the_projects_runs(make: Make) -> None:
    pm = make()
    pm.create_project("m")
    outs = [pm.execute_project_workflow("m", name) for name in ("plain", "plain", "broken")]
    assert [o["success"] for o in outs] == [True, True, False]
    failed = outs[2]
    assert set(failed) >= ERROR_KEYS and failed["error_code"] == "WORKFLOW_FAILED"
    assert "step broke" in failed["error"] and failed["steps_executed"] == 1
    metrics = pm.get_project_status("m")["metrics"]  # type: ignore[index]
    assert metrics["runs_linked"] == 3
    assert (metrics["runs_completed"], metrics["runs_failed"], metrics["runs_cancelled"]) == (2, 1, 0)
    assert metrics["total_duration"] == pytest.approx(sum(o["execution_time"] for o in outs))
    assert metrics["success_rate"] == pytest.approx(2 / 3)
    record = pm.view.projects["m"]
    assert {r.run_id for r in record.runs.values()} == {o["run_id"] for o in outs}
    assert stream(pm, "m") == ["project.created", "project.activated"] + ["project.workflow_linked"] * 3
    assert_view_is_fold(pm)


def test_runs_from_inside_an_event_loop(make: Make) -> None:
    pm = make()
    pm.create_project("async")

    async def main() -> dict[str, Any]:
        return pm.execute_project_workflow("async", "plain")

    assert asyncio.run(main())["success"] is True


def test_lifecycle(make: Make) -> None:
    pm = make()
    pm.create_project("life")
    pm.store.flush()
    position = pm.store.max_position()
    for illegal in ("pause", "resume", "complete"):  # not legal from PLANNING
        with pytest.raises(IllegalTransitionError, match=f"'{illegal}' is not legal from state 'planning'"):
            pm.update_project_status("life", illegal)
    with pytest.raises(ValidationError, match="unknown project trigger 'start'"):
        pm.update_project_status("life", "start")
    with pytest.raises(ProjectManagementError, match="no project named 'ghost'") as missing:
        pm.update_project_status("ghost", "pause")
    assert missing.value.error_code == "PROJECT_NOT_FOUND"
    pm.store.flush()
    assert pm.store.max_position() == position

    assert pm.execute_project_workflow("life", "plain")["success"] is True  # PLANNING -> ACTIVE
    assert pm.get_project("life").status is ProjectStatus.ACTIVE  # type: ignore[union-attr]
    assert pm.execute_project_workflow("life", "plain")["success"] is True  # no second activation
    assert pm.update_project_status("life", "pause", reason="holiday").status is ProjectStatus.PAUSED
    paused = pm.execute_project_workflow("life", "plain")
    assert paused["success"] is False and paused["error_code"] == "PROJECT_NOT_ACTIVE"
    assert "resume" in paused["suggestions"][0]
    assert pm.update_project_status("life", "resume").status is ProjectStatus.ACTIVE
    assert pm.update_project_status("life", "complete").status is ProjectStatus.COMPLETED
    assert pm.archive_project("life") is True
    assert pm.get_project_status("life")["status"] == "archived"  # type: ignore[index]

    pm.store.flush()
    position = pm.store.max_position()
    with pytest.raises(IllegalTransitionError):
        pm.archive_project("life")  # ARCHIVED is final
    for trigger in ("activate", "resume", "fail"):
        with pytest.raises(IllegalTransitionError):
            pm.update_project_status("life", trigger)
    with pytest.raises(ProjectManagementError, match="archived") as archived:
        pm.add_project_milestone("life", "late", {})
    assert archived.value.error_code == "PROJECT_ARCHIVED"
    assert pm.execute_project_workflow("life", "plain")["error_code"] == "PROJECT_ARCHIVED"
    pm.store.flush()
    assert pm.store.max_position() == position
    assert pm.archive_project("ghost") is False
    assert stream(pm, "life") == [
        "project.created", "project.activated", "project.workflow_linked", "project.workflow_linked",
        "project.paused", "project.resumed", "project.completed", "project.archived",
    ]  # fmt: skip
    assert pm.list_projects(ProjectStatus.ARCHIVED) == ["life"] and pm.list_projects("active") == []
    summary = pm.get_projects_summary()
    assert summary["total_projects"] == 1 and summary["by_status"]["archived"] == 1
    assert summary["by_type"] == {"custom": 1} and summary["active_workflows"] == 0
    assert_view_is_fold(pm)


def test_milestones(make: Make) -> None:
    pm = make()
    pm.create_project("ms")
    assert pm.add_project_milestone("ms", "alpha", {"score": 1}) is True
    assert pm.add_project_milestone("ms", "beta", {"score": 2, "notes": ["a", None]}) is True
    assert pm.add_project_milestone("ms", "alpha", {"score": 3}) is True  # replaces alpha
    assert pm.add_project_milestone("nope", "alpha", {}) is False
    pm.store.flush()
    position = pm.store.max_position()
    for milestone, data in (("", {}), ("x", [1]), ("x", {"nan": float("nan")}), ("x", {1: "key"}), (None, {})):
        with pytest.raises(ValidationError):
            pm.add_project_milestone("ms", milestone, data)  # type: ignore[arg-type]
    pm.store.flush()
    assert pm.store.max_position() == position
    milestones = pm.get_project_status("ms")["milestones"]  # type: ignore[index]
    assert {k: v["data"] for k, v in milestones.items()} == {
        "alpha": {"score": 3},
        "beta": {"score": 2, "notes": ["a", None]},
    }
    assert all(isinstance(v["reached_at"], str) for v in milestones.values())
    assert pm.get_project_status("ms")["metrics"]["milestones"] == 2  # type: ignore[index]
    assert pm.get_project("ms").status is ProjectStatus.PLANNING  # type: ignore[union-attr]
    assert_view_is_fold(pm)


# -- names, paths, duplicates, templates ----------------------------------------------


def test_path_traversal_is_refused_and_nothing_is_made_or_recorded(make: Make, tmp_path: Path) -> None:
    pm = make()
    projects = tmp_path / "projects"
    outside = tmp_path / "outside"
    outside.mkdir()
    projects.mkdir()
    (projects / "escape").symlink_to(outside, target_is_directory=True)
    (projects / "full").mkdir()
    (projects / "full" / "file.txt").write_text("x")
    before_tree, before_outside = tree(tmp_path), tree(outside)
    pm.store.flush()
    position = pm.store.max_position()

    for name in ("../evil", "a/b", "..", ".", "/abs", "", "a\\b", ".hidden", "x" * 129, None, 7):
        with pytest.raises(ValidationError) as bad_name:
            pm.create_project(name, template_name="ai_analysis")  # type: ignore[arg-type]
        assert bad_name.value.error_code == "INVALID_PROJECT_NAME"
    refused_paths = {
        "../outside": "contains '..'",
        "ok/../../outside": "contains '..'",
        str(outside / "p"): "is not inside the projects directory",
        "escape/p": "is not inside the projects directory",  # a symlink out of projects_dir
        "escape": "is not inside the projects directory",
        str(projects): "is not inside the projects directory",  # the projects dir itself
        ".": "is not inside the projects directory",
        "full": "already exists and is not an empty directory",
        "": "non-empty",
    }
    for path, message in refused_paths.items():
        with pytest.raises(ValidationError, match=message):
            pm.create_project("victim", template_name="ai_analysis", path=path)
    assert pm.get_project("victim") is None
    pm.store.flush()
    assert pm.store.max_position() == position
    assert tree(tmp_path) == before_tree and tree(outside) == before_outside == set()

    # inside projects_dir, relative (from projects_dir) and absolute paths are fine
    assert pm.create_project("nested", path="team/app").path == str(projects / "team" / "app")
    assert pm.create_project("absolute", path=str(projects / "abs")).path == str(projects / "abs")
    # ... but not over another project's directory
    with pytest.raises(ValidationError, match="overlaps the directory of project 'absolute'") as overlap:
        pm.create_project("inner", path="abs/inner")
    assert overlap.value.error_code == "PROJECT_PATH_IN_USE"
    assert not (projects / "abs" / "inner").exists()


def test_duplicate_name_unknown_template_and_bad_options(make: Make, tmp_path: Path) -> None:
    pm = make()
    first = pm.create_project("dup", template_name="data_pipeline", description="first")
    pm.store.flush()
    position, before = pm.store.max_position(), tree(tmp_path)
    with pytest.raises(DuplicateIdError, match="project 'dup' already exists"):
        pm.create_project("dup", template_name="ai_analysis", path="elsewhere")
    with pytest.raises(
        ValidationError, match="unknown template 'nope'; known templates: ai_analysis, data_pipeline"
    ) as e:
        pm.create_project("new", template_name="nope")
    assert e.value.details["known"] == ["ai_analysis", "data_pipeline", "web_application"]
    with pytest.raises(ValidationError, match=r"unknown option\(s\) \['owner'\]"):
        pm.create_project("new", owner="me")
    with pytest.raises(ValidationError, match="tags"):
        pm.create_project("new", tags="one")
    with pytest.raises(ValidationError, match="description"):
        pm.create_project("new", description=3)
    pm.store.flush()
    assert pm.store.max_position() == position and tree(tmp_path) == before
    assert pm.get_project("dup") == first


def test_upstream_templates_load_unchanged(upstream_dir: Path, make: Make) -> None:
    templates = upstream_dir / "templates"
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in templates.glob("*.json")}
    pm = make(templates_dir=templates)
    assert pm.list_templates() == ["ai_analysis", "data_pipeline", "web_application"]
    assert pm.template_errors == []
    for name in pm.list_templates():  # the upstream files replace the package's
        template = pm.get_template(name)
        assert template is not None
        assert template.source.resolve() == (templates / f"{name}.json").resolve()
    ai = pm.get_template("ai_analysis")
    assert ai is not None and "ai_code_editing" in ai.required_modules
    project = pm.create_project("upstream-pipeline", template_name="data_pipeline")
    assert project.type is ProjectType.DATA_PIPELINE
    assert project.workflows == ["data-processing", "visualization"]
    assert project.config["processing"]["batch_size"] == 1000
    for d in ("pipelines", "data/raw", "data/processed", "data/output", "notebooks", "config", "tests", ".codomyrmex"):
        assert (Path(project.path) / d).is_dir()
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in templates.glob("*.json")}


def test_malformed_templates_are_reported_by_name_not_fatal(make: Make, tmp_path: Path) -> None:
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    good = {"name": "mine", "type": "custom", "directory_structure": ["a/b/"], "template_files": {"*.md": "docs"}}
    bad = {
        "broken.json": "{not json",
        "list.json": "[]",
        "typo.json": json.dumps({**good, "name": "typo", "workflow": []}),
        "kind.json": json.dumps({**good, "name": "kind", "type": "research"}),
        "escape.json": json.dumps({**good, "name": "escape", "directory_structure": ["../../out"]}),
        "absolute.json": json.dumps({**good, "name": "absolute", "template_files": {"*": "/etc"}}),
        "config.json": json.dumps({**good, "name": "config", "default_config": {"x": float("inf")}}),
        "twice.json": json.dumps(good),
    }
    for file, text in bad.items():
        (tpl / file).write_text(text)
    (tpl / "good.json").write_text(json.dumps(good))  # sorted before twice.json
    (tpl / "mine").mkdir()
    (tpl / "mine" / "README.md").write_text("# hello\n")
    pm = make()
    assert pm.list_templates() == ["ai_analysis", "data_pipeline", "mine", "web_application"]
    errors = dict(pm.template_errors)
    assert set(errors) == set(bad)
    assert "malformed JSON" in errors["broken.json"] and "unknown key(s) ['workflow']" in errors["typo.json"]
    assert "'type' must be one of" in errors["kind.json"] and "contains '..'" in errors["escape.json"]
    assert "absolute" in errors["absolute.json"] and "already used by good.json" in errors["twice.json"]
    assert all(str(tpl) in reason for reason in errors.values())
    assert pm.get_projects_summary()["template_errors"]

    project = pm.create_project("custom", template_name="mine")
    root = Path(project.path)
    assert (root / "a" / "b").is_dir() and (root / "docs" / "README.md").read_text() == "# hello\n"
    assert pm.view.projects["custom"].files == ["docs/README.md"]
    with pytest.raises(ValidationError, match=r"template file .*escape.json: directory_structure entry .* contains"):
        parse_template_file(tpl / "escape.json")


def test_failed_recording_removes_what_was_made(make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = make()
    pm.create_project("existing")
    before = tree(tmp_path)

    def refuse(events: Any, timeout: float | None = None) -> Any:
        raise ProjectManagementError("store said no")

    monkeypatch.setattr(pm.store, "append", refuse)
    with pytest.raises(ProjectManagementError, match="store said no"):
        pm.create_project("doomed", template_name="web_application")
    assert tree(tmp_path) == before and pm.get_project("doomed") is None


# -- the package's templates and workflows --------------------------------------------


def test_package_templates_fit_the_builtin_actions(make: Make, tmp_path: Path) -> None:
    """Every workflow a package template names is shipped and uses built-in actions
    only; the template's required modules are exactly the modules those use."""
    pm = make()
    builtins = ActionRegistry()
    register_builtin_actions(builtins, base_dir=str(tmp_path))
    for name in ("ai_analysis", "data_pipeline", "web_application"):
        template = pm.get_template(name)
        assert template is not None and template.source.parent == PACKAGE_TEMPLATES
        assert template.type.value == name and template.workflows
        used: set[str] = set()
        for workflow in template.workflows:
            steps = package_workflow(workflow)
            assert steps is not None, f"{name} names {workflow} but the package ships no definition of it"
            for step in steps:
                assert (step.module, step.action) in builtins, (workflow, step.module, step.action)
                used.add(step.module)
        assert used == set(template.required_modules), name
        assert set(template.optional_modules) <= set(builtins.names()), name
    assert {p.stem for p in PACKAGE_WORKFLOWS.glob("*.json")} == {
        w
        for n in ("ai_analysis", "data_pipeline", "web_application")
        for w in pm.get_template(n).workflows  # type: ignore[union-attr]
    }
    assert package_workflow("../templates/ai_analysis") is None


def test_package_workflows_run_on_a_fresh_project(make: Make) -> None:
    pm = make()
    project = pm.create_project("pipe", template_name="data_pipeline")
    root = Path(project.path)
    (root / "pipelines" / "clean.py").write_text('"""Clean rows."""\n\ndef clean(rows):\n    return rows\n')
    check = pm.execute_project_workflow("pipe", "pipeline-check")
    assert check["success"] is True, check
    assert check["results"]["analyze"]["files"] == 1
    assert (root / "data" / "output" / "pipeline_quality.svg").is_file()
    assert (root / "docs" / "pipelines" / "index.md").is_file()
    chart = pm.execute_project_workflow("pipe", "data-visualization", chart_data={"rows in": 10, "rows out": 8})
    assert chart["success"] is True and chart["results"]["chart"]["bars"] == 2
    assert chart["results"]["chart"]["path"] == str(root / "data" / "output" / "chart.svg")
    # a definition of the same name made by the user wins over the package's
    pm.workflow_manager.create_workflow(
        "api-docs", [WorkflowStep(name="mine", module="m", action="echo", parameters={"x": 1})], save=False
    )
    pm.create_project("web", template_name="web_application")
    docs = pm.execute_project_workflow("web", "api-docs")
    assert docs["success"] is True and docs["results"] == {"mine": {"x": 1}}
    assert pm.get_project_status("pipe")["metrics"]["runs_completed"] == 2  # type: ignore[index]
    assert_view_is_fold(pm)


def test_package_templates_are_package_data() -> None:
    """The JSON files sit in importable packages, so ``package-data`` (``*.json``)
    installs them."""
    import importlib.resources

    files = {p.name for p in importlib.resources.files("engine.templates").iterdir()}
    assert {"ai_analysis.json", "data_pipeline.json", "web_application.json", "workflows"} <= files
    shipped = {p.name for p in importlib.resources.files("engine.templates.workflows").iterdir()}
    assert {f"{p.stem}.json" for p in PACKAGE_WORKFLOWS.glob("*.json")} <= shipped
    assert os.path.isfile(PACKAGE_TEMPLATES / "__init__.py")
