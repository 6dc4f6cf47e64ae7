"""Property tests for workflows: a RuleBasedStateMachine defines random DAG workflows
(explicit dependencies and ones implied by ``{{step.output}}`` references, retries,
scripted failures), runs them (one at a time and two at once from two threads) through
a WorkflowManager, and checks every run against a model of what must happen, plus the
engine's invariants (views equal the fold of the log, every status change legal, the
worker limit) after every step.

The workflows are drawn as a model (each step's scripted outcomes and how it references
its dependencies) that predicts every run, which the generic
:func:`replay_tools.testing.dag_workflows` does not; the log checks are the public ones
of :mod:`replay_tools.testing`."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.enums import TaskStatus, WorkflowStatus
from domain.lifecycles import TASK, WORKFLOW_RUN
from engine.models import WorkflowExecution, WorkflowStep
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_manager import WORKFLOW_TOPICS, WorkflowManager
from projections.workflows import fold as fold_workflows
from replay_tools.history import History
from replay_tools.testing import assert_dependencies_completed_first, assert_live_views_match_log, assert_log_verifies

REPO = Path(__file__).resolve().parents[1]
MAX_WORKERS = 3
RUN_TIMEOUT = 60.0  # a safety net: a run never takes anywhere near this long

# How a dependency's output is referenced, and what the step must receive for it.
REFERENCE_FORMS = {
    "whole": "{{%s.output}}",  # the whole result, type kept
    "path": "{{%s.output.pair.1}}",  # a path into the result (through a list index)
    "embedded": "<{{%s.output.token}}>",  # formatted into a longer string
    "spaced": "{{ %s.output.token }}",  # whitespace inside the braces
}


def expected_input(form: str, result: dict[str, Any]) -> Any:
    token = result["token"]
    return {"whole": result, "path": token, "embedded": f"<{token}>", "spaced": token}[form]


# -- the model of a workflow ------------------------------------------------------


@dataclass(frozen=True)
class StepModel:
    name: str
    outcomes: tuple[str, ...]  # attempt n does outcomes[n] ("ok"/"fail"); the last repeats
    max_retries: int
    sleep: float
    explicit: tuple[str, ...]  # listed in dependencies=[...]
    refs: tuple[tuple[str, tuple[str, ...]], ...]  # (dependency, reference forms) in parameters

    @property
    def deps(self) -> set[str]:
        return set(self.explicit) | {d for d, _ in self.refs}

    def outcome(self, attempt: int) -> str:
        return self.outcomes[min(attempt, len(self.outcomes) - 1)]

    def attempts_to_succeed(self) -> int | None:
        """How many attempts until one succeeds, or None if none of the allowed do."""
        for n in range(self.max_retries + 1):
            if self.outcome(n) == "ok":
                return n + 1
        return None

    def to_step(self) -> WorkflowStep:
        inputs = {f"{dep}.{form}": REFERENCE_FORMS[form] % dep for dep, forms in self.refs for form in forms}
        return WorkflowStep(
            name=self.name,
            module="prop",
            action="step",
            parameters={
                "key": "{{key}}",
                "tag": "run-{{key}}",
                "step": self.name,
                "outcomes": list(self.outcomes),
                "sleep": self.sleep,
                "inputs": inputs,
            },
            dependencies=list(self.explicit),
            max_retries=self.max_retries,
            retry_delay=0,
        )


@dataclass(frozen=True)
class WorkflowModel:
    steps: tuple[StepModel, ...]  # s0..sN: every step depends only on earlier ones
    order: tuple[int, ...]  # the order the steps are given to create_workflow

    def definition(self) -> list[WorkflowStep]:
        return [self.steps[i].to_step() for i in self.order]

    def expected(self) -> dict[str, tuple[TaskStatus, int]]:
        """Each step's final status and number of action calls."""
        out: dict[str, tuple[TaskStatus, int]] = {}
        for step in self.steps:  # already in dependency order
            if any(out[d][0] is not TaskStatus.COMPLETED for d in step.deps):
                out[step.name] = (TaskStatus.SKIPPED, 0)
            elif (n := step.attempts_to_succeed()) is not None:
                out[step.name] = (TaskStatus.COMPLETED, n)
            else:
                out[step.name] = (TaskStatus.FAILED, step.max_retries + 1)
        return out


OUTCOMES = st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=3).map(tuple)
DEP_KINDS = st.sampled_from(["explicit", "implied", "both"])
FORMS = st.lists(st.sampled_from(sorted(REFERENCE_FORMS)), min_size=1, max_size=2, unique=True).map(tuple)


@st.composite
def workflow_models(draw: st.DrawFn) -> WorkflowModel:
    """1..8 steps s0..sN; step i depends on a random subset of s0..s(i-1), each
    dependency explicit, implied by references, or both."""
    n = draw(st.integers(1, 8) | st.integers(5, 8))  # bias towards bigger graphs
    steps = []
    for i in range(n):
        deps = draw(st.lists(st.sampled_from([f"s{k}" for k in range(i)]), unique=True)) if i else []
        explicit: list[str] = []
        refs: list[tuple[str, tuple[str, ...]]] = []
        for dep in deps:
            kind = draw(DEP_KINDS)
            if kind in ("explicit", "both"):
                explicit.append(dep)
            if kind in ("implied", "both"):
                refs.append((dep, draw(FORMS)))
        steps.append(
            StepModel(
                name=f"s{i}",
                outcomes=draw(OUTCOMES),
                max_retries=draw(st.integers(0, 2)),
                sleep=draw(st.sampled_from([0.0, 0.001, 0.004])),
                explicit=tuple(draw(st.permutations(explicit))),
                refs=tuple(refs),
            )
        )
    return WorkflowModel(steps=tuple(steps), order=tuple(draw(st.permutations(range(n)))))


# -- the action --------------------------------------------------------------------


@dataclass
class Call:
    """One call of the action, as the action itself saw it."""

    key: str
    step: str
    attempt: int
    tag: str
    inputs: dict[str, Any]
    dependency_results: dict[str, Any]
    start_seq: int
    start: float
    end_seq: int = 0
    end: float = 0.0
    ok: bool = False
    returned: Any = None


@dataclass
class StepActions:
    """``step(key, step, outcomes, ...)``: attempt n of (run key, step) does
    ``outcomes[n]``; every call is logged with global sequence numbers at its start
    and end, and the number of calls running at once is measured."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    log: list[Call] = field(default_factory=list)
    running: int = 0
    max_running: int = 0

    def __call__(
        self,
        key: str,
        tag: str,
        step: str,
        outcomes: list[str],
        sleep: float,
        inputs: dict[str, Any],
        dependency_results: dict[str, Any],
    ) -> dict[str, Any]:
        with self.lock:
            n = self.attempts.get((key, step), 0)
            self.attempts[(key, step)] = n + 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            call = Call(key, step, n + 1, tag, inputs, dict(dependency_results), next(self.seq), time.monotonic())
            self.log.append(call)
        ok = outcomes[min(n, len(outcomes) - 1)] == "ok"
        token = f"{key}:{step}:{n + 1}"
        result = {"token": token, "pair": [step, token], "inputs": inputs, "deps": sorted(dependency_results)}
        try:
            if sleep:
                time.sleep(sleep)
        finally:
            with self.lock:
                self.running -= 1
                call.end_seq = next(self.seq)
                call.end = time.monotonic()
                call.ok = ok
                call.returned = result
        if not ok:
            raise RuntimeError(f"{token} fails as scripted")
        return result

    def calls(self, key: str) -> dict[str, list[Call]]:
        with self.lock:
            out: dict[str, list[Call]] = {}
            for call in self.log:
                if call.key == key:
                    out.setdefault(call.step, []).append(call)
            return out


def snapshot_json(view_snapshot: dict[str, Any]) -> str:
    return msgspec.json.encode(view_snapshot).decode()


# -- the machine -------------------------------------------------------------------


class WorkflowMachine(RuleBasedStateMachine):
    store_url = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.registry = ActionRegistry()
        self.actions = StepActions()
        self.registry.register("prop", "step", self.actions)
        url = self.store_url.format(tmp=self.tmp.name)
        self.orch = TaskOrchestrator(max_workers=MAX_WORKERS, store=url, registry=self.registry)
        self.wm = WorkflowManager(orchestrator=self.orch, workflows_dir=Path(self.tmp.name) / "workflows")
        self.models: dict[str, WorkflowModel] = {}
        self.versions: dict[str, int] = {}
        self.runs = 0
        self.completed_runs = 0

    # -- rules -------------------------------------------------------------------

    @rule(slot=st.integers(0, 3), model=workflow_models(), save=st.booleans())
    def define_workflow(self, slot: int, model: WorkflowModel, save: bool) -> None:
        name = f"wf{slot}"  # a name used before gets a new version
        assert self.wm.create_workflow(name, model.definition(), save=save) is True
        self.models[name] = model
        self.versions[name] = self.wm.view.definitions[name].version
        got = self.wm.get_workflow(name)
        assert got is not None

        def shape(steps: list[WorkflowStep]) -> list[tuple[Any, ...]]:
            return sorted((s.name, s.parameters, s.dependencies, s.max_retries, s.retry_delay) for s in steps)

        assert shape(got) == shape(model.definition())
        info = self.wm.list_workflows()[name]
        assert info["steps"] == len(model.steps)
        assert info["has_dependencies"] is any(s.deps for s in model.steps)

    def _pick(self, pick: int) -> str:
        names = sorted(self.models)
        return names[pick % len(names)]

    def _new_key(self) -> str:
        """A unique run key (the global parameter ``{{key}}``): scripts count attempts per key."""
        self.runs += 1
        return f"k{self.runs}"

    def _run(self, name: str, key: str) -> WorkflowExecution:
        return asyncio.run(self.wm.execute_workflow(name, {"key": key}, timeout=RUN_TIMEOUT))

    @precondition(lambda self: bool(self.models))
    @rule(pick=st.integers(0, 10_000))
    def run_workflow(self, pick: int) -> None:
        name, key = self._pick(pick), self._new_key()
        self._check_run(name, self.models[name], key, self._run(name, key))

    @precondition(lambda self: bool(self.models))
    @rule(picks=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)))
    def run_two_concurrently(self, picks: tuple[int, int]) -> None:
        names = [self._pick(p) for p in picks]
        keys = [self._new_key() for _ in picks]
        done: dict[int, WorkflowExecution] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def worker(i: int) -> None:
            try:
                barrier.wait(10)
                done[i] = self._run(names[i], keys[i])
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(2 * RUN_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a concurrent run did not return"
        assert errors == []
        for i, name in enumerate(names):
            self._check_run(name, self.models[name], keys[i], done[i])

    # -- what every run must satisfy -----------------------------------------------

    def _check_run(self, name: str, model: WorkflowModel, key: str, ex: WorkflowExecution) -> None:
        expected = model.expected()
        by_name = {s.name: s for s in model.steps}
        run_id = ex.run_id
        calls = self.actions.calls(key)

        # The run is final: COMPLETED iff every step can succeed within its attempts.
        all_ok = all(status is TaskStatus.COMPLETED for status, _ in expected.values())
        assert ex.status is (WorkflowStatus.COMPLETED if all_ok else WorkflowStatus.FAILED)
        assert ex.workflow_name == name
        record = self.wm.view.runs[run_id]
        assert record.status is ex.status
        assert record.parameters == {"key": key}
        assert record.definition_version == self.versions[name]
        self.completed_runs += ex.status is WorkflowStatus.COMPLETED
        assert set(record.step_tasks) == set(expected)
        assert ex.start_time is not None and ex.end_time is not None and ex.start_time <= ex.end_time
        assert record.duration is not None and record.duration >= 0

        # Every step task is final, with the modelled status and dependencies.
        for step, (status, attempts) in expected.items():
            task = self.orch.get_task(f"{run_id}/{step}")
            assert task is not None
            assert TASK.is_final(task.status)
            assert task.status is status, f"{name} {step}: {task.status} != {status} ({model})"
            assert set(task.dependencies) == {f"{run_id}/{d}" for d in by_name[step].deps}
            assert task.parameters["key"] == key  # {{key}} substituted when the run was created
            assert task.parameters["tag"] == f"run-{key}"
            assert len(calls.get(step, [])) == attempts, f"{step}: {len(calls.get(step, []))} calls != {attempts}"
            metrics = ex.performance_metrics["steps"][step]
            assert metrics["status"] == status.value
            assert (metrics["attempts"], metrics["retries"]) == (attempts, max(attempts - 1, 0)), (step, metrics)

        # Results hold exactly the completed steps, each the value its action returned.
        completed = {s for s, (status, _) in expected.items() if status is TaskStatus.COMPLETED}
        assert set(ex.results) == completed
        for step in completed:
            last = calls[step][-1]
            assert last.ok and last.attempt == expected[step][1]
            assert ex.results[step] == last.returned

        # One error string per failed or skipped step, naming it and its status.
        assert isinstance(ex.errors, list) and all(isinstance(e, str) for e in ex.errors)
        not_completed = {s: status for s, (status, _) in expected.items() if status is not TaskStatus.COMPLETED}
        assert len(ex.errors) == len(not_completed), ex.errors
        for step, status in not_completed.items():
            prefix = f"step {step!r} {status.value}:"
            assert sum(e.startswith(prefix) for e in ex.errors) == 1, (prefix, ex.errors)
        if ex.status is WorkflowStatus.FAILED:
            assert record.reason == "step_failed"
            assert record.errors == ex.errors
        else:
            assert ex.errors == []

        # A skipped step never ran, and one of its dependencies did not complete.
        for step, status in not_completed.items():
            if status is TaskStatus.SKIPPED:
                assert step not in calls
                assert any(d not in completed for d in by_name[step].deps)

        # Dependency order and data passing, from the actions' own log.
        for step, step_calls in calls.items():
            spec = by_name[step]
            for call in step_calls:
                assert call.tag == f"run-{key}"
                for dep in spec.deps:
                    good = [c for c in calls.get(dep, []) if c.ok]
                    assert len(good) == 1, f"{step} ran but {dep} has no successful attempt"
                    assert good[0].end_seq < call.start_seq, f"{step} started before {dep} finished"
                    assert good[0].end <= call.start
                assert call.dependency_results == {f"{run_id}/{d}": ex.results[d] for d in spec.deps}
                want = {
                    f"{dep}.{form}": expected_input(form, ex.results[dep]) for dep, forms in spec.refs for form in forms
                }
                assert call.inputs == want

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def worker_limit_never_exceeded(self) -> None:
        assert self.actions.max_running <= MAX_WORKERS
        assert self.actions.running == 0

    @invariant()
    def runs_and_tasks_are_final(self) -> None:
        for run in self.wm.view.runs.values():
            assert WORKFLOW_RUN.is_final(run.status), run
        for task in self.orch.list_tasks():
            assert TASK.is_final(task.status), task
        assert self.wm.running_workflows() == 0

    @invariant()
    def summary_counts_every_run(self) -> None:
        summary = self.wm.get_performance_summary()
        assert summary["total_workflows_executed"] == self.runs
        assert summary["successful_executions"] == self.completed_runs
        assert summary["failed_executions"] == self.runs - self.completed_runs

    def _live(self, owner: Any) -> Callable[[], dict[str, Any]]:
        def read() -> dict[str, Any]:
            with owner._view_lock:
                snapshot: dict[str, Any] = owner.view.snapshot()
            return snapshot

        return read

    @invariant()
    def views_equal_fold_of_log(self) -> None:
        # Between rules every run has ended: the views are caught up with the whole log
        # (so the log, too, has every run and task final: runs_and_tasks_are_final).
        assert_live_views_match_log(self.wm.store, {"workflows": self._live(self.wm), "tasks": self._live(self.orch)})
        assert self.wm.store.stats.listener_errors == []
        assert self.wm.store.stats.callback_errors == []

    @invariant()
    def every_status_change_is_legal_and_in_dependency_order(self) -> None:
        assert_log_verifies(self.wm.store)  # legal transitions (a run created once), versions, causation
        assert_dependencies_completed_first(self.wm.store)

    def teardown(self) -> None:
        try:
            self.wm.close()
            self.orch.close()
        finally:
            self.tmp.cleanup()


SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

WorkflowMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=10, **SETTINGS)
TestWorkflows = WorkflowMachine.TestCase


class SlowWorkflowMachine(WorkflowMachine):
    pass


SlowWorkflowMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=15, **SETTINGS)
TestWorkflowsMoreExamples = pytest.mark.slow(SlowWorkflowMachine.TestCase)


REBUILD = """
import sys, msgspec
from projections.workflows import fold
from replay_tools.history import History
with History.open(sys.argv[1]) as h:
    print(msgspec.json.encode({
        "tasks": h.task_view(stop=int(sys.argv[2])).snapshot(),
        "workflows": fold(h.events()).snapshot(),
    }).decode())
"""


class SQLiteWorkflowMachine(WorkflowMachine):
    """The same machine on a durable SQLite store; at the end a *new process* rebuilds
    the task and workflow views from the file alone and must print the live views."""

    store_url = "sqlite:///{tmp}/events.db"

    def teardown(self) -> None:
        try:
            self.wm.store.flush()
            with self.orch._view_lock:
                live_tasks = self.orch.view.snapshot()
            with self.wm._view_lock:
                live_workflows = self.wm.view.snapshot()
            url = self.store_url.format(tmp=self.tmp.name)
            out = subprocess.run(
                [sys.executable, "-c", REBUILD, url, str(live_tasks["position"])],
                capture_output=True, text=True, check=True, cwd=REPO, timeout=60,
            )  # fmt: skip
            rebuilt = json.loads(out.stdout)
            assert rebuilt["tasks"] == json.loads(snapshot_json(live_tasks))
            assert rebuilt["workflows"] == json.loads(snapshot_json(live_workflows))
        finally:
            super().teardown()


SQLiteWorkflowMachine.TestCase.settings = settings(max_examples=5, stateful_step_count=8, **SETTINGS)
TestSQLiteWorkflows = SQLiteWorkflowMachine.TestCase


# -- known bugs ------------------------------------------------------------------------

POSITION_BUG = (
    "{module} apply() sets view.position for events of every kind, but the live view is only "
    "fed {kinds} events (WorkflowManager/TaskOrchestrator filter them), so once the log ends with "
    "an event of another kind the fold of the log has a later position than the live view"
)


@pytest.fixture
def sleepy_manager(tmp_path: Path) -> Any:
    registry = ActionRegistry()
    registry.register("m", "sleep", lambda seconds: time.sleep(seconds) or seconds)
    orch = TaskOrchestrator(max_workers=MAX_WORKERS, store="memory://", registry=registry)
    wm = WorkflowManager(orchestrator=orch, workflows_dir=tmp_path)
    wm.create_workflow(
        "sleepy",
        [WorkflowStep(name="s", module="m", action="sleep", parameters={"seconds": "{{seconds}}"}, max_retries=0)],
        save=False,
    )
    yield wm
    wm.close()
    orch.close()


def test_workflow_view_equals_fold_of_log_after_a_late_task_event(sleepy_manager: WorkflowManager) -> None:
    wm = sleepy_manager
    with pytest.raises(TimeoutError):
        asyncio.run(wm.execute_workflow("sleepy", {"seconds": 0.3}, timeout=0.05))
    deadline = time.monotonic() + 10
    while not any(r.event.type == "task.late_result_discarded" for r in History(wm.store).events()):
        assert time.monotonic() < deadline, "the abandoned attempt's late result was never recorded"
        time.sleep(0.02)
    wm.store.flush()
    with wm._view_lock:
        live = wm.view.snapshot()
    # Every workflow event is in the live view (this part holds) ...
    assert fold_workflows(History(wm.store).events(types=WORKFLOW_TOPICS)).snapshot() == live
    # ... and a rebuild from the whole log must give the same view (fails: position).
    assert fold_workflows(History(wm.store).events()).snapshot() == live


def test_task_view_equals_fold_of_log_after_a_workflow_run(sleepy_manager: WorkflowManager) -> None:
    wm = sleepy_manager
    execution = asyncio.run(wm.execute_workflow("sleepy", {"seconds": 0}))
    assert execution.status is WorkflowStatus.COMPLETED
    wm.store.flush()
    orch = wm.orchestrator
    with orch._view_lock:
        live = orch.view.snapshot()
    assert History(wm.store).task_view(stop=live["position"]).snapshot() == live  # holds
    assert History(wm.store).task_view().snapshot() == live  # fails: position
