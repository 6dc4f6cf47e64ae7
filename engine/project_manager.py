"""The spec's ``ProjectManager``: projects from templates, their directories, their
lifecycle, milestones and workflow runs, on the event log.

A project is a ``project:<name>`` aggregate (see :mod:`domain.project`); what
``get_project_status`` and ``get_project`` answer is the project view folded from its
events. The manager shares the workflow manager's store and runs workflows through it.

**Where projects live.** Every project directory is inside the configured
``projects_dir``: ``<projects_dir>/<name>`` by default; a ``path`` is taken relative to
``projects_dir`` (an absolute one must point inside it). A path with ``..``, one that
leaves ``projects_dir`` through a symlink, ``projects_dir`` itself, a directory that
exists and is not empty, and one that overlaps another project's directory are refused
before anything is made. The template's ``directory_structure`` is created inside it
and its ``template_files`` copied (from ``<templates dir>/<template name>/``). If
recording the project fails, what was made is removed again; nothing else is touched.

**Runs.** ``execute_project_workflow`` runs the workflow with ``project_path``,
``project_name`` and ``project_config`` as global parameters (the caller's parameters
win). Before the run it checks what would stop the workflow manager from starting it
(unknown workflow, a ``{{parameter}}`` nobody supplies, values JSON cannot hold), so a
refused request records nothing. A PLANNING project becomes ACTIVE (``project.activated``)
just before its first run starts; a PAUSED, COMPLETED, FAILED or ARCHIVED project runs
nothing. When the run ends, ``project.workflow_linked`` records its id, outcome and
duration: the project's metrics are folded from these links. (The run id is known only
then: the workflow manager creates it. While a run is in flight it is counted in
``active_workflows`` by this manager, not from the log.) A workflow that no definition
exists for, but that the package ships (the workflows its templates name, see
``engine.templates``), is defined from the package's file the first time it is run.

**Statuses.** ``update_project_status(name, trigger)`` fires any trigger of the
``PROJECT`` lifecycle (``activate``, ``pause``, ``resume``, ``complete``, ``fail``,
``archive``); an illegal one raises :class:`IllegalTransitionError` and records nothing.
``archive_project`` is the ``archive`` trigger (ARCHIVED is final: the project takes no
more milestones or runs; its files stay where they are).
"""

from __future__ import annotations

import copy
import os
import shutil
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from domain.enums import ProjectStatus, ProjectType
from domain.errors import (
    DuplicateIdError,
    OrchestrationError,
    ProjectManagementError,
    ValidationError,
    WorkflowExecutionError,
)
from domain.events import EventMeta, Recorded
from domain.lifecycles import PROJECT
from domain.project import (
    PROJECT_EVENT_TYPES,
    ProjectState,
    add_milestone,
    change_status,
    create,
    evolve,
    link_workflow,
    validate_name,
)
from domain.workflow import references
from engine.builtins import register_missing_builtins
from engine.clock import Runtime
from engine.codec import json_problem
from engine.config import load_config
from engine.executors import executor_from_config
from engine.models import WorkflowExecution
from engine.project_models import Project, ProjectTemplate
from engine.registry import DEFAULT_REGISTRY
from engine.results import failure, run_coroutine, workflow_result
from engine.store import EventStore, apply_each
from engine.task_orchestrator import TaskOrchestrator
from engine.templates import PACKAGE_TEMPLATES, load_templates, package_workflow
from engine.workflow_manager import WorkflowManager
from projections.projects import ProjectRecord, ProjectView
from projections.projects import apply as apply_project_event

__all__ = ["CREATE_OPTIONS", "PROJECT_TOPICS", "ProjectManager"]

T = TypeVar("T")

PROJECT_TOPICS = tuple(cls.TYPE for cls in PROJECT_EVENT_TYPES)
CREATE_OPTIONS = frozenset({"description", "author", "tags"})
RUNNABLE = (ProjectStatus.PLANNING, ProjectStatus.ACTIVE)


class ProjectManager:
    """Projects on the workflow manager's event store (see the module docstring)."""

    def __init__(
        self,
        *,
        workflow_manager: WorkflowManager | None = None,
        store: EventStore | str | None = None,
        projects_dir: str | os.PathLike[str] | None = None,
        templates_dir: str | os.PathLike[str] | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        """With no ``workflow_manager`` one is built from the configuration
        (``load_config()``; ``store`` is a store URL or an open :class:`EventStore`) and
        closed by :meth:`close`. ``projects_dir``/``templates_dir`` default to the
        configuration's; ``runtime`` (clock and ids) to the workflow manager's."""
        config = load_config(
            store_url=store if isinstance(store, str) else None, projects_dir=projects_dir, templates_dir=templates_dir
        )
        self._owned: list[WorkflowManager | TaskOrchestrator] = []
        if workflow_manager is None:
            register_missing_builtins(DEFAULT_REGISTRY, enable_shell=config.enable_shell, base_dir=str(config.data_dir))
            orchestrator = TaskOrchestrator(
                config.max_workers,
                store=store if isinstance(store, EventStore) else config.store_url,
                registry=DEFAULT_REGISTRY,
                runtime=runtime,
                executor=executor_from_config(config),
            )
            workflow_manager = WorkflowManager(
                orchestrator=orchestrator,
                workflows_dir=config.workflows_dir,
                performance_monitoring=config.performance_monitoring,
            )
            self._owned = [workflow_manager, orchestrator]
        elif store is not None:
            raise ValidationError("pass workflow_manager= or store=, not both: projects live in its store")
        self.workflow_manager = workflow_manager
        self.store = workflow_manager.store
        self.runtime = runtime or workflow_manager.runtime
        self.projects_dir = config.projects_dir
        self.templates_dir = config.templates_dir
        self.templates: dict[str, ProjectTemplate] = {}
        self.template_errors: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._view_lock = threading.Lock()
        self.view = ProjectView()
        self._states: dict[str, ProjectState] = {}
        self._in_flight: dict[str, int] = {}
        self._closed = False
        self._unsubscribe = self.store.subscribe(
            self._on_committed, history=apply_each(self._apply), types=PROJECT_TOPICS
        )
        self._load_templates()

    # -- views -------------------------------------------------------------------

    def _apply(self, recorded: Recorded) -> None:
        event = recorded.event
        with self._view_lock:
            apply_project_event(self.view, recorded)
            self._states[event.aggregate_id] = evolve(self._states.get(event.aggregate_id), event)

    def _on_committed(self, batch: Sequence[Recorded]) -> None:
        for recorded in batch:
            if recorded.event.KIND == "project":
                self._apply(recorded)

    def _meta(self, actor: str = "system", correlation_id: str = "") -> EventMeta:
        return EventMeta(timestamp=self.runtime.clock.now(), actor=actor, correlation_id=correlation_id)

    def _record(self, name: object) -> ProjectRecord | None:
        if not isinstance(name, str):
            return None
        with self._view_lock:
            return self.view.projects.get(name)

    def _state(self, name: object) -> ProjectState | None:
        return self._states.get(name) if isinstance(name, str) else None

    def _not_found(self, name: object) -> ProjectManagementError:
        with self._view_lock:
            known = sorted(self.view.projects)
        return ProjectManagementError(
            f"no project named {name!r}",
            code="PROJECT_NOT_FOUND",
            details={"project": repr(name) if not isinstance(name, str) else name, "known": known[:50]},
            suggestions=["Create it with create_project(name, template_name=...), or use one of: "
                         + (", ".join(known[:10]) or "(no projects yet)")],
        )  # fmt: skip

    # -- templates ----------------------------------------------------------------

    def _load_templates(self) -> None:
        """(Re)read the package's templates, then the templates directory's (which
        replace the package's of the same name)."""
        templates, errors = load_templates([PACKAGE_TEMPLATES, self.templates_dir])
        with self._lock:
            self.templates, self.template_errors = templates, errors

    def list_templates(self) -> list[str]:
        """Names of the templates available now (files are re-read, so a new file in the
        templates directory shows up; a malformed one is listed in ``template_errors``)."""
        self._load_templates()
        return sorted(self.templates)

    def get_template(self, name: str) -> ProjectTemplate | None:
        return self.templates.get(name)

    # -- projects -----------------------------------------------------------------

    def create_project(
        self, name: str, template_name: str | None = None, path: str | None = None, **kwargs: Any
    ) -> Project:
        """Create a project (PLANNING) from a template and make its directory (see the
        module docstring). Options: ``description``, ``author``, ``tags``.

        Raises :class:`ValidationError` (a ``ValueError``) for a bad name, option,
        template name or path, :class:`DuplicateIdError` (also a ``ValueError``) for a
        name in use and :class:`ProjectManagementError` when the directory cannot be
        made; in every case nothing is recorded and nothing is left on disk."""
        unknown = sorted(set(kwargs) - CREATE_OPTIONS)
        if unknown:
            raise ValidationError(
                f"create_project(): unknown option(s) {unknown}; known: {sorted(CREATE_OPTIONS)}",
                details={"unknown": unknown},
            )
        validate_name(name)
        description, author = kwargs.get("description", ""), kwargs.get("author", "")
        for key, value in (("description", description), ("author", author)):
            if not isinstance(value, str):
                raise ValidationError(f"{key} must be a string, got {value!r}")
        tags = kwargs.get("tags")
        tags = [] if tags is None else tags
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) and t.strip() for t in tags):
            raise ValidationError(f"tags must be a list of non-empty strings, got {tags!r}")
        template = self._template(template_name)
        with self._lock:
            if self._record(name) is not None:
                raise DuplicateIdError(
                    f"project {name!r} already exists",
                    code="DUPLICATE_PROJECT",
                    details={"project": name},
                    suggestions=["Choose another name; get_project_status(name) shows the existing project."],
                )
            root = self._project_root(name, path)
            made: list[Path] = []
            try:
                files = self._make_tree(root, template, made)
                event = create(
                    name,
                    self._meta(),
                    project_type=template.type if template else ProjectType.CUSTOM,
                    template=template.name if template else None,
                    template_version=template.version if template else "",
                    description=description,
                    author=author,
                    tags=list(tags),
                    path=str(root),
                    workflows=list(template.workflows) if template else [],
                    required_modules=list(template.required_modules) if template else [],
                    optional_modules=list(template.optional_modules) if template else [],
                    config=copy.deepcopy(template.default_config) if template else {},
                    directories=list(template.directory_structure) if template else [],
                    files=files,
                )
                self.store.append([event])
            except BaseException as e:
                left = _remove(made)
                if left:
                    e.add_note(f"could not remove what create_project made: {'; '.join(left)}")
                raise
        project = self.get_project(name)
        assert project is not None
        return project

    def _template(self, template_name: object) -> ProjectTemplate | None:
        if template_name is None:
            return None
        self._load_templates()
        if not isinstance(template_name, str) or template_name not in self.templates:
            known = sorted(self.templates)
            raise ValidationError(
                f"unknown template {template_name!r}; known templates: {', '.join(known) or '(none)'}",
                code="UNKNOWN_TEMPLATE",
                details={"template": repr(template_name), "known": known},
                suggestions=[f"Use one of {known}, or add <name>.json to {self.templates_dir}."],
            )
        return self.templates[template_name]

    def _project_root(self, name: str, path: str | os.PathLike[str] | None) -> Path:
        """The absolute, symlink-free directory for a new project, inside projects_dir."""
        base = self.projects_dir.resolve()

        def refuse(message: str, code: str = "PATH_OUTSIDE_PROJECTS_DIR") -> ValidationError:
            return ValidationError(
                message,
                code=code,
                details={"project": name, "path": os.fspath(path) if path is not None else None,
                         "projects_dir": str(base)},
                suggestions=[f"Give a path inside {base} (relative paths are taken from there), or none."],
            )  # fmt: skip

        if path is None:
            candidate = base / name
        else:
            raw = os.fspath(path) if isinstance(path, os.PathLike) else path
            if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
                raise refuse(f"path must be a non-empty string, got {path!r}", code="INVALID_INPUT")
            given = Path(raw).expanduser()
            if ".." in given.parts:
                raise refuse(f"path {raw!r} contains '..'; project directories stay inside {base}")
            candidate = given if given.is_absolute() else base / given
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            raise refuse(f"path {candidate} cannot be resolved: {e}") from e
        if resolved == base or base not in resolved.parents:
            raise refuse(f"project directory {resolved} is not inside the projects directory {base}")
        if resolved.exists() and (not resolved.is_dir() or any(resolved.iterdir())):
            raise refuse(f"{resolved} already exists and is not an empty directory", code="PROJECT_PATH_NOT_EMPTY")
        with self._view_lock:
            for other in self.view.projects.values():
                theirs = Path(other.path)
                if theirs == resolved or theirs in resolved.parents or resolved in theirs.parents:
                    raise refuse(f"{resolved} overlaps the directory of project {other.name!r} ({theirs})",
                                 code="PROJECT_PATH_IN_USE")  # fmt: skip
        return resolved

    def _make_tree(self, root: Path, template: ProjectTemplate | None, made: list[Path]) -> list[str]:
        """Make ``root``, the template's directories and files (appending each path made
        to ``made``); return the files copied, relative to ``root``."""

        def inside(target: Path) -> Path:
            resolved = target.resolve()
            if resolved != root and root not in resolved.parents:
                raise ProjectManagementError(
                    f"{target} would be outside the project directory {root}", code="PATH_OUTSIDE_PROJECT"
                )
            return resolved

        def mkdirs(target: Path) -> None:
            missing = []
            while not target.exists():
                missing.append(target)
                target = target.parent
            for directory in reversed(missing):
                directory.mkdir()
                made.append(directory)

        copied: list[str] = []
        try:
            mkdirs(root)  # and projects_dir, if it is missing
            if template is None:
                return copied
            for rel in template.directory_structure:
                mkdirs(inside(root / rel))
            source_dir = template.files_dir.resolve()
            for pattern, dest in template.template_files.items():
                for source in sorted(source_dir.glob(pattern)) if source_dir.is_dir() else []:
                    if not source.is_file():
                        continue
                    if source_dir not in source.resolve().parents:
                        raise ProjectManagementError(
                            f"template {template.name!r}: {source} leads outside {source_dir}",
                            code="PATH_OUTSIDE_TEMPLATE",
                        )
                    target_dir = inside(root / dest) if dest else root
                    mkdirs(target_dir)
                    target = inside(target_dir / source.name)
                    if target.exists():
                        raise ProjectManagementError(
                            f"template {template.name!r}: two template_files entries write {target}",
                            code="INVALID_TEMPLATE",
                        )
                    shutil.copy2(source, target)
                    made.append(target)
                    copied.append(target.relative_to(root).as_posix())
        except OSError as e:
            raise ProjectManagementError(
                f"cannot make the directory of the project at {root}: {e}",
                code="PROJECT_DIRECTORY_FAILED",
                details={"path": str(root)},
                suggestions=[f"Check that {self.projects_dir} is writable."],
            ) from e
        return copied

    def get_project(self, name: str) -> Project | None:
        if not isinstance(name, str):
            return None
        with self._view_lock:
            rec = self.view.projects.get(name)
            if rec is None:
                return None
            return Project.from_record(rec, self._in_flight.get(name, 0))

    def list_projects(self, status: ProjectStatus | str | None = None) -> list[str]:
        """Project names (sorted), optionally only those with ``status``."""
        wanted = ProjectStatus(status) if status is not None else None
        with self._view_lock:
            return sorted(p.name for p in self.view.projects.values() if wanted in (None, p.status))

    def get_project_status(self, name: str) -> dict[str, Any] | None:
        """The spec's status dict, or None for an unknown project."""
        project = self.get_project(name)
        if project is None:
            return None
        return {
            "name": project.name,
            "status": project.status.value,
            "type": project.type.value,
            "version": project.version,
            "path": project.path,
            "workflows": len(project.workflows),
            "active_workflows": project.active_workflows,
            "required_modules": list(project.required_modules),
            "created_at": project.created_at.isoformat(),
            "updated_at": project.updated_at.isoformat(),
            "milestones": project.milestones,
            "metrics": project.metrics,
        }

    def get_projects_summary(self) -> dict[str, Any]:
        """Counts by status and type, and the templates that failed to load."""
        with self._view_lock:
            projects = list(self.view.projects.values())
            by_status = self.view.by_status()
        return {
            "total_projects": len(projects),
            "by_status": by_status,
            "by_type": dict(sorted(Counter(p.type.value for p in projects).items())),
            "active_workflows": sum(self._in_flight.values()),
            "template_errors": [f"{file}: {reason}" for file, reason in self.template_errors],
        }

    # -- lifecycle and milestones ----------------------------------------------------

    def update_project_status(self, name: str, trigger: str, *, reason: str = "") -> Project:
        """Fire ``trigger`` of the PROJECT lifecycle; returns the project as recorded.
        :class:`IllegalTransitionError` (nothing recorded) when it is not legal now."""
        if not isinstance(trigger, str) or trigger not in PROJECT.triggers:
            raise ValidationError(
                f"unknown project trigger {trigger!r}; triggers: {', '.join(sorted(PROJECT.triggers))}",
                details={"trigger": repr(trigger)},
            )
        if not isinstance(reason, str):
            raise ValidationError(f"reason must be a string, got {reason!r}")
        with self._lock:
            state = self._state(name)
            if state is None:
                raise self._not_found(name)
            self.store.append([change_status(state, trigger, self._meta(), reason=reason)])
        project = self.get_project(name)
        assert project is not None
        return project

    def archive_project(self, name: str, *, reason: str = "") -> bool:
        """Archive (final): True; False for an unknown project; an already archived one
        raises :class:`IllegalTransitionError`. The project's files are not touched."""
        if self._state(name) is None:
            return False
        self.update_project_status(name, "archive", reason=reason)
        return True

    def add_project_milestone(self, name: str, milestone: str, data: Mapping[str, Any] | None = None) -> bool:
        """Record that ``milestone`` was reached, with ``data`` (a JSON-compatible dict).
        True once recorded; False for an unknown project. An archived project raises
        :class:`ProjectManagementError`; the same milestone again replaces its data."""
        if not isinstance(milestone, str) or not milestone.strip() or len(milestone) > 200:
            raise ValidationError(f"milestone must be a non-empty string of at most 200 characters, got {milestone!r}")
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationError(f"milestone data must be a dict, got {type(data).__name__}")
        problem = json_problem(dict(data), "data")
        if problem is not None:
            raise ValidationError(f"milestone data must be JSON-compatible: {problem}", code="NOT_SERIALIZABLE")
        with self._lock:
            state = self._state(name)
            if state is None:
                return False
            self.store.append([add_milestone(state, self._meta(), milestone=milestone, data=dict(data))])
        return True

    # -- workflow runs -----------------------------------------------------------------

    def execute_project_workflow(self, project_name: str, workflow_name: str, **params: Any) -> dict[str, Any]:
        """Run ``workflow_name`` for the project (see the module docstring). Returns the
        engine's ``execute_workflow`` dict (``success``, ``result``, ``error``,
        ``execution_time``, ``steps_executed``, ``run_id``, ``results``, ...) plus
        ``project``; on failure ``success`` is False and every key of the spec's error
        response is there."""
        return self.run_project_workflow(project_name, workflow_name, params)

    def run_project_workflow(
        self,
        project_name: str,
        workflow_name: str,
        params: Mapping[str, Any],
        *,
        session_id: str = "",
        actor: str = "system",
    ) -> dict[str, Any]:
        """:meth:`execute_project_workflow` with the parameters as a dict, in a session
        (``session_id``, whose user ``actor`` stamps the events); for the engine."""
        empty: dict[str, Any] = {"result": None, "execution_time": None, "steps_executed": 0, "project": project_name}
        try:
            run_params = self._prepare_run(project_name, workflow_name, dict(params), actor)
        except OrchestrationError as e:
            return failure(e, **empty)
        with self._lock:
            self._in_flight[project_name] = self._in_flight.get(project_name, 0) + 1
        try:
            execution = run_coroutine(
                self.workflow_manager.execute_workflow(workflow_name, run_params, session_id=session_id, actor=actor)
            )
        except OrchestrationError as e:
            return failure(e, **empty)
        finally:
            with self._lock:
                self._in_flight[project_name] -= 1
        result = workflow_result(execution, project=project_name)
        try:
            self._link(project_name, execution, actor)
        except OrchestrationError as e:
            result.update(e.to_response())
        return result

    def _prepare_run(self, name: str, workflow: str, params: dict[str, Any], actor: str) -> dict[str, Any]:
        """Check everything that would stop the run; activate a PLANNING project; return
        the run's parameters."""
        if not isinstance(workflow, str):
            raise ValidationError(f"workflow_name must be a string, got {workflow!r}")
        rec = self._record(name)
        if rec is None:
            raise self._not_found(name)
        if rec.status not in RUNNABLE:
            hint = "resume it first: update_project_status(name, 'resume')" if rec.status is ProjectStatus.PAUSED else (
                "create a new project for new work")  # fmt: skip
            raise ProjectManagementError(
                f"project {name!r} is {rec.status.value}: it runs no workflows",
                code="PROJECT_ARCHIVED" if rec.status is ProjectStatus.ARCHIVED else "PROJECT_NOT_ACTIVE",
                details={"project": name, "status": rec.status.value},
                suggestions=[f"The project is {rec.status.value}; {hint}."],
            )
        steps = self.workflow_manager.get_workflow(workflow)
        if steps is None and (shipped := package_workflow(workflow)) is not None:
            self.workflow_manager.create_workflow(workflow, shipped, save=False)
            steps = self.workflow_manager.get_workflow(workflow)
        if steps is None:
            raise WorkflowExecutionError(
                f"workflow {workflow!r} not found",
                code="UNKNOWN_WORKFLOW",
                details={"project": name, "workflow": workflow, "project_workflows": rec.workflows},
                suggestions=[
                    f"Define it with create_workflow() or as {workflow}.json in the workflows directory.",
                    f"Workflows of this project's template: {', '.join(rec.workflows) or '(none)'}.",
                ],
            )
        problem = json_problem(params, "params")
        if problem is not None:
            raise ValidationError(f"workflow parameters must be JSON-compatible: {problem}", code="NOT_SERIALIZABLE")
        config = copy.deepcopy(rec.config)  # an action may change what it is given; the view must not
        run_params = {"project_path": rec.path, "project_name": name, "project_config": config, **params}
        needed = {ref for s in steps for ref, path in references(s.parameters) if path is None}
        missing = sorted(needed - set(run_params))
        if missing:
            raise ValidationError(
                f"workflow {workflow!r} needs parameter(s) {missing} (referenced as {{{{name}}}}); "
                f"got {sorted(run_params)}",
                code="UNKNOWN_PARAMETER",
                details={"missing": missing},
                suggestions=[f"Pass them: execute_project_workflow({name!r}, {workflow!r}, {missing[0]}=...)."],
            )
        with self._lock:
            state = self._states[name]
            if state.status is ProjectStatus.PLANNING:
                reason = f"first workflow run: {workflow}"
                self.store.append([change_status(state, "activate", self._meta(actor), reason=reason)])
        return run_params

    def _link(self, name: str, execution: WorkflowExecution, actor: str) -> None:
        duration = execution.performance_metrics.get("duration")
        with self._lock:
            event = link_workflow(
                self._states[name],
                self._meta(actor, correlation_id=execution.run_id),
                workflow=execution.workflow_name,
                run_id=execution.run_id,
                outcome=execution.status,
                duration=float(duration) if duration is not None else None,
            )
            self.store.append([event])

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Stop following the store; close the workflow manager (and its orchestrator
        and store) when this manager built them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._unsubscribe()
        for part in self._owned:
            part.close()

    def __enter__(self) -> ProjectManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove(made: list[Path]) -> list[str]:
    """Undo :meth:`ProjectManager._make_tree`: remove what it made, newest first.
    Returns what could not be removed (reported with the original error)."""
    left: list[str] = []
    for path in reversed(made):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        except OSError as e:
            left.append(f"{path}: {e}")
    return left
