"""Test your own actions and workflows the way this project tests itself.

Hypothesis strategies build tasks, DAG workflows and event histories; the
:class:`EngineStateMachine` base drives an :class:`OrchestrationEngine` (on ``memory://``,
in a temporary data dir) with *your* registered actions, and after every step checks
the library's invariants:

- the log verifies (:func:`replay_tools.verify.verify`: legal transitions only,
  contiguous versions, causation);
- every task and workflow run is final after each execution (every run ends);
- every live view equals the fold of the log up to its position (rebuilt == live),
  and is caught up with the log;
- no task started before every one of its dependencies had completed.

The checks are functions too, for a machine of your own that drives a
:class:`TaskOrchestrator`, a :class:`WorkflowManager` or a :class:`ResourceManager`
directly: :func:`assert_log_verifies`, :func:`assert_live_views_match_log` and
:func:`assert_dependencies_completed_first`. :class:`ScriptedAction` is an action whose
every attempt succeeds or fails as scripted (:func:`outcome_scripts` draws the scripts).

Example (a test file of yours)::

    from hypothesis import settings
    from hypothesis import strategies as st
    from replay_tools.testing import EngineStateMachine, dag_workflows, tasks

    def double(x: int) -> int:
        return 2 * x

    class MyMachine(EngineStateMachine):
        def setup_registry(self, registry):
            registry.register("mymod", "double", double)

        def task_strategy(self):
            return tasks("mymod", "double", st.fixed_dictionaries({"x": st.integers()}))

        def workflow_strategy(self):
            step = ("mymod", "double", st.fixed_dictionaries({"x": st.integers()}), "x")
            return dag_workflows(st.just(step), max_steps=4)

    MyMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=6, deadline=None)
    TestMyActions = MyMachine.TestCase

A step tuple is ``(module, action, parameters)`` or ``(module, action, parameters,
input_param)``: with ``input_param`` a step may take a dependency's output through a
``{{sK.output}}`` reference in that parameter (an implied dependency). Override
``check_task`` / ``check_workflow`` to assert on each result as well.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.enums import TaskPriority
from domain.events import Recorded
from domain.lifecycles import TASK, WORKFLOW_RUN
from domain.task import TaskCompleted, TaskCreated
from engine.models import Task, WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry
from engine.store import EventStore
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.state import VIEW_NAMES, state_at
from replay_tools.verify import VerifyReport, verify

__all__ = [
    "EngineStateMachine",
    "LiveViews",
    "ScriptedAction",
    "StepChoice",
    "assert_dependencies_completed_first",
    "assert_live_views_match_log",
    "assert_log_verifies",
    "dag_workflows",
    "event_histories",
    "outcome_scripts",
    "tasks",
]

Params: TypeAlias = st.SearchStrategy[dict[str, Any]]
StepChoice: TypeAlias = tuple[str, str, Params] | tuple[str, str, Params, str]
"""``(module, action, parameters)`` or ``(module, action, parameters, input_param)``."""


# -- strategies -------------------------------------------------------------------


def tasks(
    module: str,
    action: str,
    parameters: Params | None = None,
    *,
    max_retries: st.SearchStrategy[int] | None = None,
    priority: st.SearchStrategy[TaskPriority] | None = None,
    timeout: st.SearchStrategy[int | None] | None = None,
) -> st.SearchStrategy[Task]:
    """``Task``s of ``module.action`` with parameters from ``parameters`` (default: none),
    0..2 retries without delay, any priority and no timeout (unless given)."""
    return st.builds(
        Task,
        id=st.uuids().map(lambda u: f"task-{u}"),
        name=st.just(f"{module}.{action}"),
        module=st.just(module),
        action=st.just(action),
        parameters=parameters if parameters is not None else st.fixed_dictionaries({}),
        max_retries=max_retries if max_retries is not None else st.integers(0, 2),
        retry_delay=st.just(0.0),
        priority=priority if priority is not None else st.sampled_from(TaskPriority),
        timeout=timeout if timeout is not None else st.none(),
    )


def dag_workflows(
    steps: st.SearchStrategy[StepChoice],
    max_steps: int = 8,
    *,
    min_steps: int = 1,
    max_retries: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[tuple[str, list[WorkflowStep]]]:
    """``(name, steps)``: ``s0..sN`` where each step depends only on earlier ones, given
    in a shuffled order. A dependency is explicit; when the step's choice names an
    ``input_param``, one dependency may instead (or also) be implied by setting that
    parameter to ``"{{sK.output}}"``."""
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
    retries = max_retries if max_retries is not None else st.integers(0, 1)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, list[WorkflowStep]]:
        n = draw(st.integers(min_steps, max_steps))
        out: list[WorkflowStep] = []
        for i in range(n):
            choice = draw(steps)
            module, action, params_strategy = choice[0], choice[1], choice[2]
            input_param = choice[3] if len(choice) == 4 else None
            params = dict(draw(params_strategy))
            earlier = [f"s{k}" for k in range(i)]
            deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
            explicit = list(deps)
            if input_param is not None and deps and draw(st.booleans()):
                ref = deps[0]
                params[input_param] = "{{" + ref + ".output}}"
                if draw(st.booleans()):  # implied only
                    explicit.remove(ref)
            out.append(
                WorkflowStep(
                    name=f"s{i}",
                    module=module,
                    action=action,
                    parameters=params,
                    dependencies=explicit,
                    max_retries=draw(retries),
                    retry_delay=0.0,
                )
            )
        name = draw(st.integers(0, 10**6).map(lambda k: f"wf-{k}"))
        return name, draw(st.permutations(out))

    return build()


def outcome_scripts(max_attempts: int = 3) -> st.SearchStrategy[list[str]]:
    """Scripts for :class:`ScriptedAction`: 1..``max_attempts`` outcomes, each ``"ok"``
    or ``"fail"``."""
    if max_attempts < 1:
        raise ValueError(f"need max_attempts >= 1, got {max_attempts}")
    return st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=max_attempts)


class ScriptedAction:
    """An action whose attempts succeed or fail as scripted:
    ``action(key, outcomes)``: the n-th call with ``key`` does ``outcomes[n]`` (the last
    outcome repeats). ``"fail"`` raises :class:`RuntimeError`; ``"ok"`` returns
    ``{"key": key, "attempt": n, "inputs": [ids of the dependencies' results]}``, plus
    ``"payload"`` when a ``payload`` parameter (e.g. a ``{{step.output}}`` reference)
    was given. Thread-safe; register one instance under any name and give every task
    a key of its own (attempts are counted per key)."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        """Calls so far, per key."""
        self._lock = threading.Lock()

    def __call__(
        self,
        key: str,
        outcomes: Sequence[str],
        dependency_results: Mapping[str, Any] | None = None,
        payload: Any = None,
    ) -> dict[str, Any]:
        if not outcomes or any(o not in ("ok", "fail") for o in outcomes):
            raise ValueError(f"outcomes must be a non-empty list of 'ok'/'fail', got {outcomes!r}")
        with self._lock:
            n = self.attempts.get(key, 0) + 1
            self.attempts[key] = n
        if outcomes[min(n, len(outcomes)) - 1] == "fail":
            raise RuntimeError(f"{key} attempt {n} fails as scripted")
        out: dict[str, Any] = {"key": key, "attempt": n, "inputs": sorted(dependency_results or {})}
        if payload is not None:
            out["payload"] = payload
        return out


def event_histories(max_tasks: int = 5) -> st.SearchStrategy[list[Recorded]]:
    """Consistent task histories: 1..``max_tasks`` tasks (scripted to succeed or fail
    per attempt, with retries and dependencies on earlier tasks, some cancelled) run
    on a fresh ``memory://`` orchestrator; the value is its whole log
    (``store.read()``)."""
    outcomes = outcome_scripts()

    @st.composite
    def build(draw: st.DrawFn) -> list[Recorded]:
        n = draw(st.integers(1, max_tasks))
        batch: list[Task] = []
        for i in range(n):
            deps = draw(st.lists(st.sampled_from([t.id for t in batch]), unique=True, max_size=2)) if batch else []
            batch.append(
                Task(
                    id=f"h{i}",
                    name=f"h{i}",
                    module="testing",
                    action="scripted",
                    parameters={"key": f"h{i}", "outcomes": draw(outcomes)},
                    dependencies=deps,
                    max_retries=draw(st.integers(0, 2)),
                    retry_delay=0.0,
                )
            )
        cancel = draw(st.lists(st.sampled_from([t.id for t in batch]), unique=True, max_size=2))
        registry = ActionRegistry()
        registry.register("testing", "scripted", ScriptedAction())
        orch = TaskOrchestrator(2, store="memory://", registry=registry)
        try:
            orch.add_tasks(batch)
            for tid in cancel:
                orch.cancel_task(tid)
            orch.start_execution()
            if not orch.wait_for_completion(timeout=30):
                raise AssertionError("event_histories: the tasks did not finish within 30 s")
            orch.store.flush()
            return list(orch.store.read())
        finally:
            orch.close()

    return build()


# -- checks ---------------------------------------------------------------------------

LiveViews: TypeAlias = Mapping[str, Callable[[], Mapping[str, Any]]]
"""View name (one of ``tasks``, ``workflows``, ``sessions``, ``projects``,
``resources``) -> a function returning that live view's ``snapshot()``."""


def assert_log_verifies(store: EventStore) -> VerifyReport:
    """Flush ``store`` and assert that :func:`replay_tools.verify.verify` finds nothing;
    the message lists every violation. Returns the report."""
    store.flush()
    report = verify(store)
    assert report.ok, "\n".join(f"{v.position} {v.rule}: {v.message}" for v in report.violations)
    return report


def assert_live_views_match_log(store: EventStore, views: LiveViews, *, caught_up: bool = True) -> None:
    """Flush ``store``, then assert that each live view's snapshot equals the fold of
    the log up to the view's own position (rebuilt == live) and, with ``caught_up``,
    the fold of the whole log (no committed event of its kinds is missing). Pass
    ``caught_up=False`` while work may still be appending events (the first check
    holds at any moment, the second only when the engine is quiet). Read each
    snapshot under the lock its owner updates it with."""
    unknown = sorted(set(views) - set(VIEW_NAMES))
    if unknown:
        raise ValueError(f"unknown view name(s) {unknown}; known: {list(VIEW_NAMES)}")
    store.flush()
    last = store.max_position()
    live = {name: dict(snapshot()) for name, snapshot in views.items()}
    end = state_at(store, position=last) if caught_up else None
    for name, snap in live.items():
        position = snap["position"]
        again = getattr(state_at(store, position=position), name).snapshot()
        assert again == snap, f"live {name} view differs from the fold of the log up to {position}"
        if end is not None:
            assert getattr(end, name).snapshot() == snap, f"live {name} view lags the log (at {position} of {last})"


def assert_dependencies_completed_first(store: EventStore) -> None:
    """Flush ``store`` and assert, from the log alone, that every ``task.started``
    comes after a ``task.completed`` of each of the task's dependencies."""
    store.flush()
    deps: dict[str, Sequence[str]] = {}
    completed_at: dict[str, int] = {}
    for recorded in store.read(types=("task.created", "task.started", "task.completed")):
        event = recorded.event
        if isinstance(event, TaskCreated):
            deps[event.aggregate_id] = event.dependencies
        elif isinstance(event, TaskCompleted):
            completed_at.setdefault(event.aggregate_id, recorded.position)
        else:
            for dep in deps.get(event.aggregate_id, ()):
                assert dep in completed_at, (
                    f"task {event.aggregate_id} started at {recorded.position} before its dependency {dep} completed"
                )


# -- the state machine ------------------------------------------------------------


class EngineStateMachine(RuleBasedStateMachine):
    """Drives an engine on ``memory://`` with your actions; checks the invariants.

    Override :meth:`setup_registry` (register your actions), and
    :meth:`task_strategy` and/or :meth:`workflow_strategy` (return ``None`` to turn
    that rule off). Each rule runs one task or one workflow to its end in the
    machine's session."""

    max_workers = 2
    max_parallel_tasks = 4

    def __init__(self) -> None:
        super().__init__()
        self._task_strategy = self.task_strategy()
        self._workflow_strategy = self.workflow_strategy()
        if self._task_strategy is None and self._workflow_strategy is None:
            raise TypeError(f"{type(self).__name__}: override task_strategy() and/or workflow_strategy()")
        self.registry = ActionRegistry()
        self.setup_registry(self.registry)
        self._tmp = tempfile.TemporaryDirectory(prefix="orch-testing-")
        self.engine = OrchestrationEngine(
            data_dir=self._tmp.name, store_url="memory://", registry=self.registry, max_workers=self.max_workers
        )
        self.session_id = self.engine.create_session(user_id="hypothesis", max_parallel_tasks=self.max_parallel_tasks)
        self._counter = 0

    # -- hooks for subclasses ----------------------------------------------------------

    def setup_registry(self, registry: ActionRegistry) -> None:
        """Register your actions (``registry.register(module, action, fn)``)."""

    def task_strategy(self) -> st.SearchStrategy[Task] | None:
        """Tasks to run (see :func:`tasks`); ``None``: no task rule."""
        return None

    def workflow_strategy(self) -> st.SearchStrategy[tuple[str, list[WorkflowStep]]] | None:
        """Workflows to run (see :func:`dag_workflows`); ``None``: no workflow rule."""
        return None

    def check_task(self, task: Task, result: dict[str, Any]) -> None:
        """Called with each task and ``execute_task``'s result; assert what you expect."""

    def check_workflow(self, name: str, steps: list[WorkflowStep], result: dict[str, Any]) -> None:
        """Called with each workflow and ``execute_workflow``'s result."""

    # -- rules -----------------------------------------------------------------------

    def _next(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"

    @precondition(lambda self: self._task_strategy is not None)
    @rule(data=st.data())
    def run_task(self, data: st.DataObject) -> None:
        assert self._task_strategy is not None
        task = dataclasses.replace(data.draw(self._task_strategy, label="task"), id=self._next("task"))
        result = self.engine.execute_task(task, session_id=self.session_id)
        got = self.engine.task_orchestrator.get_task(task.id)
        assert got is not None, f"task {task.id} was not recorded: {result}"
        assert TASK.is_final(got.status), f"task {task.id} is {got.status.value} after execute_task"
        assert result["success"] == (got.result is not None and got.result.success), result
        self.check_task(task, result)

    @precondition(lambda self: self._workflow_strategy is not None)
    @rule(data=st.data())
    def run_workflow(self, data: st.DataObject) -> None:
        assert self._workflow_strategy is not None
        drawn, steps = data.draw(self._workflow_strategy, label="workflow")
        name = self._next(drawn)
        assert self.engine.workflow_manager.create_workflow(name, steps, save=False), f"workflow {name} rejected"
        result = self.engine.execute_workflow(name, session_id=self.session_id)
        run_id = result.get("run_id")
        assert run_id, f"workflow {name} did not start: {result}"
        with self.engine.workflow_manager._view_lock:
            run = self.engine.workflow_manager.view.runs[run_id]
            status, step_tasks = run.status, dict(run.step_tasks)
        assert WORKFLOW_RUN.is_final(status), f"run {run_id} is {status.value} after execute_workflow"
        for step, tid in step_tasks.items():
            got = self.engine.task_orchestrator.get_task(tid)
            assert got is not None, f"step {step} of {run_id} has no task {tid}"
            assert TASK.is_final(got.status), f"step {step} of {run_id} is {got.status.value}"
        self.check_workflow(name, steps, result)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def log_verifies(self) -> None:
        assert_log_verifies(self.engine.store)

    @invariant()
    def every_run_ends(self) -> None:
        with self.engine.task_orchestrator._view_lock:
            open_tasks = [
                t.id for t in self.engine.task_orchestrator.view.tasks.values() if not TASK.is_final(t.status)
            ]
        with self.engine.workflow_manager._view_lock:
            open_runs = [
                r for r, run in self.engine.workflow_manager.view.runs.items() if not WORKFLOW_RUN.is_final(run.status)
            ]
        assert not open_tasks, f"tasks not final: {open_tasks}"
        assert not open_runs, f"workflow runs not final: {open_runs}"

    @invariant()
    def live_views_equal_fold_of_log(self) -> None:
        assert_live_views_match_log(self.engine.store, self.live_views())

    @invariant()
    def dependencies_completed_first(self) -> None:
        assert_dependencies_completed_first(self.engine.store)

    def live_views(self) -> dict[str, Callable[[], dict[str, Any]]]:
        """The engine's live views, each read under its owner's lock (see
        :func:`assert_live_views_match_log`)."""
        e = self.engine
        parts: list[tuple[str, Any, Any]] = [
            ("tasks", e.task_orchestrator._view_lock, e.task_orchestrator.view),
            ("workflows", e.workflow_manager._view_lock, e.workflow_manager.view),
            ("sessions", e._view_lock, e.sessions),
            ("projects", e.project_manager._view_lock, e.project_manager.view),
            ("resources", e.resource_manager._view_lock, e.resource_manager.view),
        ]

        def reader(lock: Any, view: Any) -> Callable[[], dict[str, Any]]:
            def read() -> dict[str, Any]:
                with lock:
                    snapshot: dict[str, Any] = view.snapshot()
                return snapshot

            return read

        return {name: reader(lock, view) for name, lock, view in parts}

    def teardown(self) -> None:
        try:
            self.engine.close()
        finally:
            self._tmp.cleanup()
