"""Test your own actions and workflows the way this project tests itself.

Hypothesis strategies build tasks, DAG workflows and event histories; the
:class:`EngineStateMachine` base drives an :class:`OrchestrationEngine` (on ``memory://``,
in a temporary data dir) with *your* registered actions, and after every step checks
the library's invariants:

- the log verifies (:func:`replay_tools.verify.verify`: legal transitions only,
  contiguous versions, causation);
- every task and workflow run is final after each execution (every run ends);
- every live view equals the fold of the log up to its position (rebuilt == live),
  and is caught up with the log.

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
from typing import Any, TypeAlias

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.enums import TaskPriority
from domain.events import Recorded
from domain.lifecycles import TASK, WORKFLOW_RUN
from engine.models import Task, WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from replay_tools.state import state_at
from replay_tools.verify import verify

__all__ = ["EngineStateMachine", "StepChoice", "dag_workflows", "event_histories", "tasks"]

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


class _Scripted:
    """``testing.scripted(key, outcomes)``: attempt n does ``outcomes[n]`` (the last repeats)."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, key: str, outcomes: list[str]) -> dict[str, Any]:
        with self.lock:
            n = self.attempts.get(key, 0)
            self.attempts[key] = n + 1
        if outcomes[min(n, len(outcomes) - 1)] == "fail":
            raise RuntimeError(f"{key} attempt {n + 1} fails as scripted")
        return {"key": key, "attempt": n + 1}


def event_histories(max_tasks: int = 5) -> st.SearchStrategy[list[Recorded]]:
    """Consistent task histories: 1..``max_tasks`` tasks (scripted to succeed or fail
    per attempt, with retries and dependencies on earlier tasks, some cancelled) run
    on a fresh ``memory://`` orchestrator; the value is its whole log
    (``store.read()``)."""
    outcomes = st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=3)

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
        registry.register("testing", "scripted", _Scripted())
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
        self.engine.store.flush()
        report = verify(self.engine.store)
        assert report.ok, "\n".join(f"{v.position} {v.rule}: {v.message}" for v in report.violations)

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
        self.engine.store.flush()
        last = self.engine.store.max_position()
        rebuilt = state_at(self.engine.store, position=last)
        for name, live in self._live_snapshots().items():
            again = getattr(state_at(self.engine.store, position=live["position"]), name).snapshot()
            assert again == live, f"live {name} view differs from the fold of the log up to {live['position']}"
            caught_up = dict(getattr(rebuilt, name).snapshot(), position=live["position"])
            assert caught_up == live, f"live {name} view lags the log (at {live['position']} of {last})"

    def _live_snapshots(self) -> dict[str, dict[str, Any]]:
        e = self.engine
        parts: list[tuple[str, Any, Any]] = [
            ("tasks", e.task_orchestrator._view_lock, e.task_orchestrator.view),
            ("workflows", e.workflow_manager._view_lock, e.workflow_manager.view),
            ("sessions", e._view_lock, e.sessions),
            ("projects", e.project_manager._view_lock, e.project_manager.view),
            ("resources", e.resource_manager._view_lock, e.resource_manager.view),
        ]
        out: dict[str, dict[str, Any]] = {}
        for name, lock, view in parts:
            with lock:
                out[name] = view.snapshot()
        return out

    def teardown(self) -> None:
        try:
            self.engine.close()
        finally:
            self._tmp.cleanup()
