"""Executors: where actions run (threads, worker processes), what the scheduler records
for each (identical outcomes; hard timeouts that kill a worker process; soft timeouts
that raise a stop flag), how the executor is chosen by configuration, and bad input.

Dask has its own module (test_dask_executor.py)."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import executor_actions as xa
import msgspec
import psutil
import pytest

from domain.errors import ActionNotShippableError, ValidationError
from domain.events import Event
from engine.config import load_config
from engine.dask_executor import DaskExecutor
from engine.executors import Executor, ThreadExecutor, make_executor
from engine.models import Task, WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.process_executor import ProcessExecutor
from engine.registry import ActionRegistry, import_path_of
from engine.store import EventStore, open_store
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_files import parse_workflow_file, step_spec, write_workflow_file
from replay_tools.verify import verify

M = xa.MODULE


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def make() -> Iterator[Callable[..., TaskOrchestrator]]:
    made: list[TaskOrchestrator] = []

    def factory(executor: Executor | str, max_workers: int = 2, **kw: Any) -> TaskOrchestrator:
        orch = TaskOrchestrator(
            max_workers, store=kw.pop("store", "memory://"), registry=kw.pop("registry", xa.registry()),
            executor=executor, **kw,
        )  # fmt: skip
        made.append(orch)
        return orch

    yield factory
    for orch in made:
        orch.close()


def types(orch: TaskOrchestrator, task_id: str) -> list[str]:
    return [e.type for e in orch.task_events(task_id)]


def last_event(orch: TaskOrchestrator, task_id: str) -> Event:
    return orch.task_events(task_id)[-1]


# -- the same outcomes, wherever the action runs --------------------------------------------------

_VOLATILE = {"timestamp", "execution_time", "deadline", "retry_at", "correlation_id", "owner", "worker"}


def _shape(event: Event) -> dict[str, Any]:
    """An event without what differs between two runs (times, run ids, traceback text)."""
    raw = msgspec.structs.asdict(event)
    out = {k: v for k, v in raw.items() if k not in _VOLATILE}
    out["type"] = event.type
    if "metadata" in out and "traceback" in out["metadata"]:
        out["metadata"] = {**out["metadata"], "traceback": "<traceback>"}
    return out


MIXED = [
    Task(id="a", module=M, action="inc", parameters={"i": 1}),
    Task(id="b", module=M, action="inc", parameters={"i": 10}),
    Task(id="c", module=M, action="add_all", parameters={"extra": 1}, dependencies=["a", "b"]),
    Task(id="d", module=M, action="boom", parameters={"message": "no luck"}, max_retries=1, retry_delay=0),
    Task(id="e", module=M, action="not_json", max_retries=2),
    Task(id="f", module=M, action="missing", max_retries=2),
    Task(id="g", module=M, action="inc", parameters={"i": 0}, dependencies=["d"]),
]


def _run_mixed(make: Callable[..., TaskOrchestrator], executor: Executor) -> dict[str, list[dict[str, Any]]]:
    orch = make(executor, max_workers=1)  # one at a time: the same order (and causation) on both
    orch.add_tasks(copy.deepcopy(MIXED))
    orch.start_execution()
    assert orch.wait_for_completion(30)
    assert verify(orch.store).ok
    return {t.id: [_shape(e) for e in orch.task_events(t.id)] for t in MIXED}


def test_process_actions_are_recorded_exactly_like_thread_actions(make: Callable[..., TaskOrchestrator]) -> None:
    by_threads = _run_mixed(make, ThreadExecutor())
    by_processes = _run_mixed(make, ProcessExecutor(2))
    assert by_processes == by_threads
    # and the outcomes are the expected ones
    assert by_threads["c"][-1]["data"] == 2 + 11 + 1
    assert [e["type"] for e in by_threads["d"]][-3:] == ["task.retry_scheduled", "task.started", "task.failed"]
    assert by_threads["d"][-1]["error_type"] == "RuntimeError"
    assert by_threads["d"][-1]["metadata"] == {"traceback": "<traceback>"}
    assert by_threads["e"][-1]["error_type"] == "ResultNotSerializable"  # not retried
    assert by_threads["f"][-1]["error_type"] == "UnknownActionError"
    assert by_threads["g"][-1]["type"] == "task.skipped"


# -- hard timeouts: the worker process is killed, the slot reused ------------------------------


def test_hard_timeout_kills_the_worker_process_and_the_slot_is_reused(
    make: Callable[..., TaskOrchestrator], tmp_path: Path
) -> None:
    executor = ProcessExecutor(1)  # one slot: the next task must run in its replacement
    orch = make(executor, max_workers=1)
    orch.start_execution()
    pid_file = tmp_path / "pid"
    began = time.monotonic()
    orch.add_task(
        Task(
            id="slow",
            module=M,
            action="pid_then_sleep",
            parameters={"pid_file": str(pid_file), "seconds": 60},
            timeout=1,
            max_retries=0,
        )
    )
    assert orch.wait_for_completion(20)
    assert time.monotonic() - began < 15  # not the 60 s of the action
    failed = last_event(orch, "slow")
    assert failed.type == "task.failed"
    assert failed.error_type == "TimeoutError"  # type: ignore[attr-defined]
    pid = int(pid_file.read_text())
    metadata = failed.metadata  # type: ignore[attr-defined]
    assert metadata["killed"] is True
    assert metadata["pid"] == pid
    assert "abandoned" not in metadata
    assert wait_until(lambda: not psutil.pid_exists(pid)), f"worker {pid} still exists"
    # the slot took a fresh process, which runs the next task
    orch.add_task(Task(id="next", module=M, action="my_pid"))
    assert orch.wait_for_completion(20)
    result = orch.get_task_result("next")
    assert result is not None and result.success
    assert result.data != pid
    assert executor.pids() == [result.data]
    time.sleep(0.2)  # nothing arrives late from a killed worker
    assert "task.late_result_discarded" not in types(orch, "slow")
    assert verify(orch.store).ok


def test_execute_task_timeout_kills_the_worker_too(make: Callable[..., TaskOrchestrator], tmp_path: Path) -> None:
    orch = make(ProcessExecutor(1), max_workers=1)
    pid_file = tmp_path / "pid"
    result = orch.execute_task(
        Task(
            module=M,
            action="pid_then_sleep",
            parameters={"pid_file": str(pid_file), "seconds": 60},
            timeout=1,
            max_retries=0,
        )
    )
    assert result.error_type == "TimeoutError"
    assert result.metadata["killed"] is True
    pid = int(pid_file.read_text())
    assert result.metadata["pid"] == pid
    assert wait_until(lambda: not psutil.pid_exists(pid))
    assert orch.execute_task(Task(module=M, action="inc", parameters={"i": 4})).data == 5


def test_cancelling_a_running_process_task_kills_its_worker(
    make: Callable[..., TaskOrchestrator], tmp_path: Path
) -> None:
    orch = make(ProcessExecutor(1), max_workers=1)
    orch.start_execution()
    pid_file = tmp_path / "pid"
    orch.add_task(
        Task(id="long", module=M, action="pid_then_sleep", parameters={"pid_file": str(pid_file), "seconds": 60})
    )
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "")
    pid = int(pid_file.read_text())
    assert orch.cancel_task("long", "enough")
    assert wait_until(lambda: not psutil.pid_exists(pid))
    orch.add_task(Task(id="after", module=M, action="inc", parameters={"i": 1}))
    assert orch.wait_for_completion(20)
    assert orch.get_task_result("after").data == 2  # type: ignore[union-attr]
    assert types(orch, "long")[-1] == "task.cancelled"


def test_a_lost_lease_kills_the_running_worker(make: Callable[..., TaskOrchestrator], tmp_path: Path) -> None:
    orch = make(ProcessExecutor(1), max_workers=1)
    orch.start_execution()
    pid_file = tmp_path / "pid"
    orch.add_task(
        Task(id="long", module=M, action="pid_then_sleep", parameters={"pid_file": str(pid_file), "seconds": 60})
    )
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "")
    pid = int(pid_file.read_text())
    before = types(orch, "long")
    orch._lease_lost()  # what the lease keeper calls when another engine took this one's work over
    assert wait_until(lambda: not psutil.pid_exists(pid))
    began = time.monotonic()
    orch.stop_execution()  # the killed attempt no longer holds a slot
    assert time.monotonic() - began < 3
    assert types(orch, "long") == before  # nothing recorded: the task is the new owner's


def test_a_worker_that_dies_fails_its_attempt_and_is_replaced(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make(ProcessExecutor(1), max_workers=1)
    orch.start_execution()
    orch.add_task(Task(id="dies", module=M, action="die", parameters={"code": 7}, max_retries=0))
    orch.add_task(Task(id="then", module=M, action="inc", parameters={"i": 1}))
    assert orch.wait_for_completion(20)
    failed = orch.get_task_result("dies")
    assert failed is not None
    assert failed.error_type == "WorkerProcessDied"
    assert "exit code 7" in (failed.error_message or "")
    assert orch.get_task_result("then").data == 2  # type: ignore[union-attr]


# -- soft timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_soft_timeout_asks_a_cooperative_action_to_stop(make: Callable[..., TaskOrchestrator], executor: str) -> None:
    orch = make(make_executor(executor, max_workers=2))
    orch.start_execution()
    began = time.monotonic()
    orch.add_task(Task(id="coop", module=M, action="cooperative", soft_timeout=0.3, timeout=30, max_retries=0))
    assert orch.wait_for_completion(20)
    assert time.monotonic() - began < 10
    assert types(orch, "coop") == [
        "task.created",
        "task.ready",
        "task.started",
        "task.soft_timeout_reached",
        "task.completed",
    ]
    reached = orch.task_events("coop")[3]
    assert (reached.attempt, reached.soft_timeout) == (1, 0.3)  # type: ignore[attr-defined]
    assert orch.get_task_result("coop").data["stopped"] is True  # type: ignore[union-attr]
    record = orch.view.tasks["coop"]
    assert (record.soft_timeout, record.soft_timeouts_reached) == (0.3, 1)
    assert verify(orch.store).ok


def test_soft_timeout_of_an_action_without_a_token_is_recorded_and_it_finishes(
    make: Callable[..., TaskOrchestrator],
) -> None:
    orch = make("threads")
    result = orch.execute_task(
        Task(id="deaf", module=M, action="ignores_stop", parameters={"seconds": 0.4}, soft_timeout=0.1, timeout=20)
    )
    assert result.success and result.data == "done anyway"
    assert types(orch, "deaf")[-2:] == ["task.soft_timeout_reached", "task.completed"]


def test_execute_task_with_a_soft_timeout_on_processes(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make("processes")
    result = orch.execute_task(Task(module=M, action="cooperative", soft_timeout=0.2, timeout=30))
    assert result.success and result.data["stopped"] is True


def test_cancel_sets_the_stop_flag_of_a_thread_action(make: Callable[..., TaskOrchestrator]) -> None:
    orch = make("threads")
    orch.start_execution()
    orch.add_task(Task(id="coop", module=M, action="cooperative"))
    assert wait_until(lambda: types(orch, "coop")[-1] == "task.started")
    orch.cancel_task("coop")
    # the action saw the flag and returned: its late result is recorded (and ignored)
    assert wait_until(lambda: "task.late_result_discarded" in types(orch, "coop"))


# -- what cannot be shipped ---------------------------------------------------------------------


class _Holder:
    def method(self) -> int:
        return 1


def test_unshippable_actions_fail_with_a_typed_error_and_are_not_retried(
    make: Callable[..., TaskOrchestrator],
) -> None:
    registry = xa.registry()
    registry.register(M, "lambda", lambda: 1)

    def closure() -> int:
        return 2

    registry.register(M, "closure", closure)
    registry.register(M, "partial", functools.partial(xa.inc, 1))
    registry.register(M, "method", _Holder().method)
    orch = make("processes", registry=registry)
    names = ["lambda", "closure", "partial", "method"]
    orch.add_tasks([Task(id=n, module=M, action=n, max_retries=3, retry_delay=0) for n in names])
    orch.start_execution()
    assert orch.wait_for_completion(20)
    for name in names:
        result = orch.get_task_result(name)
        assert result is not None and result.error_type == "ActionNotShippableError", name
        assert f"{M}.{name}" in (result.error_message or "")
        assert types(orch, name).count("task.started") == 1  # a retry cannot fix it


def test_import_path_of() -> None:
    assert import_path_of(xa.inc) == ("executor_actions", "inc")
    for fn in (lambda: 1, functools.partial(xa.inc, 1), _Holder().method):
        with pytest.raises(ActionNotShippableError) as info:
            import_path_of(fn, "m", "a")  # type: ignore[arg-type]
        assert info.value.error_code == "ACTION_NOT_SHIPPABLE"
        assert "m.a" in str(info.value)


# -- choosing the executor by configuration -----------------------------------------------------


def test_executor_by_argument_env_file_and_default(tmp_path: Path) -> None:
    conf = tmp_path / "conf.json"
    conf.write_text('{"executor": "dask", "dask_workers": 3, "dask_scheduler_address": "tcp://127.0.0.1:8786"}')
    env = {"CODOMYRMEX_EXECUTOR": "processes", "CODOMYRMEX_PROCESS_WORKERS": "3"}
    default = load_config(data_dir=str(tmp_path / "d"), env={})
    by_file = load_config(conf, env={})
    by_env = load_config(conf, env=env)
    by_arg = load_config(conf, env=env, executor="threads")
    assert [c.executor for c in (default, by_file, by_env, by_arg)] == ["threads", "dask", "processes", "threads"]
    assert default.describe()["executor"] == {"value": "threads", "source": "default"}
    assert by_file.describe()["executor"] == {"value": "dask", "source": f"file:{conf}"}
    assert by_file.describe()["dask_workers"] == {"value": "3", "source": f"file:{conf}"}
    assert by_file.describe()["dask_scheduler_address"]["value"] == "tcp://127.0.0.1:8786"
    assert by_env.describe()["executor"] == {"value": "processes", "source": "env:CODOMYRMEX_EXECUTOR"}
    assert by_env.describe()["process_workers"] == {"value": "3", "source": "env:CODOMYRMEX_PROCESS_WORKERS"}
    assert by_arg.describe()["executor"] == {"value": "threads", "source": "argument"}
    assert default.describe()["process_workers"] == {"value": "null", "source": "default"}


def test_the_engine_runs_actions_on_the_configured_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODOMYRMEX_EXECUTOR", "processes")
    monkeypatch.setenv("CODOMYRMEX_PROCESS_WORKERS", "1")
    with OrchestrationEngine(data_dir=str(tmp_path / "d"), registry=xa.registry()) as engine:
        executor = engine.task_orchestrator.executor
        assert isinstance(executor, ProcessExecutor) and executor.workers == 1
        assert engine.config.describe()["executor"]["source"] == "env:CODOMYRMEX_EXECUTOR"
        out = engine.execute_task(Task(id="t", module=M, action="my_pid"))
        assert out["success"] and out["result"]["data"] in executor.pids()
        started = engine.task_orchestrator.task_events("t")[2]
        assert started.worker == "processes"  # type: ignore[attr-defined]
        assert engine.get_system_status()["performance"]["executor"] == {
            "executor": "processes",
            "workers": 1,
            "start_method": executor.start_method,
        }
    # an argument beats the environment; dask connects lazily, so nothing starts here
    with OrchestrationEngine(
        data_dir=str(tmp_path / "e"), executor="dask", dask_scheduler_address="tcp://127.0.0.1:1"
    ) as engine:
        executor = engine.task_orchestrator.executor
        assert isinstance(executor, DaskExecutor)
        assert executor.describe() == {"executor": "dask", "scheduler": "tcp://127.0.0.1:1"}


def test_a_bare_orchestrator_reads_the_executor_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODOMYRMEX_EXECUTOR", "processes")
    with TaskOrchestrator(2, store="memory://") as orch:
        assert isinstance(orch.executor, ProcessExecutor) and orch.executor.workers == 2
    monkeypatch.delenv("CODOMYRMEX_EXECUTOR")
    with TaskOrchestrator(2, store="memory://") as orch:
        assert isinstance(orch.executor, ThreadExecutor)
    with TaskOrchestrator(2, store="memory://", executor="processes") as orch:
        assert isinstance(orch.executor, ProcessExecutor)


# -- bad input: typed errors, nothing recorded --------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: load_config(env={}, executor="gpu"), id="load_config-argument"),
        pytest.param(lambda: load_config(env={"CODOMYRMEX_EXECUTOR": "gpu"}), id="load_config-env"),
        pytest.param(lambda: load_config(env={}, executor=3), id="not-a-string"),
        pytest.param(lambda: load_config(env={}, process_workers=0), id="process_workers-0"),
        pytest.param(lambda: load_config(env={"CODOMYRMEX_DASK_WORKERS": "two"}), id="dask_workers-env"),
        pytest.param(lambda: load_config(env={}, dask_scheduler_address="tcp://a b"), id="address"),
        pytest.param(lambda: make_executor("gpu"), id="make_executor"),
        pytest.param(lambda: ProcessExecutor(0), id="no-process"),
        pytest.param(lambda: ProcessExecutor(1, start_method="fork"), id="fork"),
        pytest.param(lambda: DaskExecutor(n_workers=0), id="no-dask-worker"),
    ],
)
def test_bad_executor_settings_are_validation_errors(build: Callable[[], object]) -> None:
    with pytest.raises(ValidationError):
        build()


def test_unknown_executor_names_the_known_ones_and_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("memory://")
    with pytest.raises(ValidationError, match="threads, processes, dask"):
        TaskOrchestrator(2, store=store, executor="gpu")
    monkeypatch.setenv("CODOMYRMEX_EXECUTOR", "gpu")
    with pytest.raises(ValidationError, match="CODOMYRMEX_EXECUTOR"):
        TaskOrchestrator(2, store=store)
    assert store.max_position() == 0
    store.close()


def _empty(store: EventStore) -> bool:
    return store.max_position() == 0


@pytest.mark.parametrize(
    ("soft", "hard"),
    [(-1, None), (0, None), ("1", None), (True, None), (math.nan, None), (math.inf, None), (5, 5), (6, 5)],
)
def test_bad_soft_timeouts_are_rejected_and_nothing_is_recorded(soft: Any, hard: Any) -> None:
    with TaskOrchestrator(1, store="memory://", registry=xa.registry(), executor="threads") as orch:
        with pytest.raises(ValidationError, match="soft_timeout"):
            orch.add_task(Task(module=M, action="inc", parameters={"i": 1}, soft_timeout=soft, timeout=hard))
        with pytest.raises(ValidationError, match="soft_timeout"):
            orch.create_task("t", M, "inc", parameters={"i": 1}, soft_timeout=soft, timeout=hard)
        assert _empty(orch.store)
    for step in (
        {"name": "s", "module": M, "action": "inc", "soft_timeout": soft, "timeout": hard},
        WorkflowStep(name="s", module=M, action="inc", soft_timeout=soft, timeout=hard),
    ):
        with pytest.raises(ValidationError, match="soft_timeout"):
            step_spec(step, "test")


def test_bad_soft_timeout_in_a_workflow_records_nothing(tmp_path: Path) -> None:
    with OrchestrationEngine(data_dir=str(tmp_path / "d"), store_url="memory://", registry=xa.registry()) as engine:
        before = engine.store.max_position()
        with pytest.raises(ValidationError, match="soft_timeout"):
            engine.workflow_manager.create_workflow(
                "w", [WorkflowStep(name="s", module=M, action="inc", timeout=2, soft_timeout=3)]
            )
        assert engine.store.max_position() == before


def test_soft_timeout_travels_through_workflow_files_and_runs(tmp_path: Path) -> None:
    spec = step_spec({"name": "s", "module": M, "action": "cooperative", "soft_timeout": 0.2, "timeout": 30}, "t")
    path = write_workflow_file(tmp_path, "w", [spec])
    name, steps = parse_workflow_file(path)
    assert (name, steps) == ("w", [spec])
    assert steps[0].soft_timeout == 0.2
    with OrchestrationEngine(data_dir=str(tmp_path / "d"), store_url="memory://", registry=xa.registry()) as engine:
        engine.workflow_manager.create_workflow(
            "w", [WorkflowStep(name="s", module=M, action="cooperative", timeout=30, soft_timeout=0.2)]
        )
        assert engine.workflow_manager.get_workflow("w")[0].soft_timeout == 0.2  # type: ignore[index]
        out = engine.execute_workflow("w")
        assert out["success"], out
        assert out["results"]["s"]["stopped"] is True


def test_registry_detects_cancel_token() -> None:
    reg = ActionRegistry()
    reg.register(M, "coop", xa.cooperative)
    reg.register(M, "inc", xa.inc)
    assert reg.resolve(M, "coop").wants_cancel_token is True
    assert reg.resolve(M, "inc").wants_cancel_token is False
