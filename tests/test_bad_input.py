"""Bad input gets a typed error, records nothing, and leaves the orchestrator usable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.enums import TaskStatus
from domain.errors import DependencyCycleError, DuplicateIdError, OrchestrationError, ValidationError
from engine.models import Task, TaskResource
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator


@pytest.fixture
def orch(store_url: str) -> Iterator[TaskOrchestrator]:
    registry = ActionRegistry()
    registry.register("t", "inc", lambda i: i + 1)
    o = TaskOrchestrator(max_workers=2, store=store_url, registry=registry)
    o.add_task(Task(id="existing", module="t", action="inc", parameters={"i": 1}))
    yield o
    o.close()


BAD_TASKS: dict[str, dict[str, Any]] = {
    "empty module": {"module": ""},
    "module not str": {"module": 3},
    "action with newline": {"action": "a\nb"},
    "id too long": {"id": "x" * 500},
    "empty id": {"id": ""},
    "parameters not dict": {"parameters": [1, 2]},
    "parameters not JSON": {"parameters": {"x": object()}},
    "parameters non-str key": {"parameters": {1: "a"}},
    "parameters NaN": {"parameters": {"x": [1.0, float("nan")]}},
    "parameters bytes": {"parameters": {"x": b"raw"}},
    "metadata infinity": {"metadata": {"x": float("inf")}},
    "dependencies a string": {"dependencies": "existing"},
    "dependency repeated": {"dependencies": ["existing", "existing"]},
    "priority unknown": {"priority": 9},
    "priority bool": {"priority": True},
    "negative timeout": {"timeout": -1},
    "zero timeout": {"timeout": 0},
    "timeout not number": {"timeout": "10"},
    "timeout infinite": {"timeout": float("inf")},
    "negative retries": {"max_retries": -1},
    "retries bool": {"max_retries": True},
    "retries float": {"max_retries": 1.5},
    "negative retry delay": {"retry_delay": -0.5},
    "resources not list": {"resources": "cpu"},
    "resource bad type": {"resources": [TaskResource(type="quantum", identifier="q")]},  # type: ignore[arg-type]
    "resource bad mode": {"resources": [TaskResource(type="cpu", identifier="c", mode="steal")]},  # type: ignore[arg-type]
    "tags not list": {"tags": "a"},
    "metadata not dict": {"metadata": 5},
    "status not pending": {"status": TaskStatus.COMPLETED},
    "oversized parameters": {"parameters": {"blob": "x" * (5 * 1024 * 1024)}},
    "unknown dependency": {"dependencies": ["does-not-exist"]},
    "self dependency": {"id": "selfish", "dependencies": ["selfish"]},
    "duplicate id": {"id": "existing"},
}


@pytest.mark.parametrize("case", sorted(BAD_TASKS))
def test_bad_task_is_rejected_and_nothing_recorded(orch: TaskOrchestrator, case: str) -> None:
    fields = {"module": "t", "action": "inc", "parameters": {"i": 1}, **BAD_TASKS[case]}
    before = orch.store.max_position()
    with pytest.raises(ValidationError) as info:
        orch.add_task(Task(**fields))
    assert isinstance(info.value, OrchestrationError)
    response = info.value.to_response()
    assert response["success"] is False and response["error"] and response["suggestions"] is not None
    orch.store.flush()
    assert orch.store.max_position() == before
    assert orch.get_execution_stats()["total_tasks"] == 1
    # still usable
    orch.start_execution()
    tid = orch.add_task(Task(module="t", action="inc", parameters={"i": 1}))
    assert orch.wait_for_completion(5)
    assert orch.get_task_result(tid).data == 2  # type: ignore[union-attr]


def test_specific_error_types(orch: TaskOrchestrator) -> None:
    with pytest.raises(DuplicateIdError):
        orch.add_task(Task(id="existing", module="t", action="inc"))
    with pytest.raises(DependencyCycleError, match="a -> c -> b -> a"):
        orch.add_tasks(
            [
                Task(id="a", module="t", action="inc", dependencies=["c"]),
                Task(id="b", module="t", action="inc", dependencies=["a"]),
                Task(id="c", module="t", action="inc", dependencies=["b"]),
            ]
        )
    with pytest.raises(DuplicateIdError):
        orch.add_tasks([Task(id="twin", module="t", action="inc"), Task(id="twin", module="t", action="inc")])
    assert {t.id for t in orch.list_tasks()} == {"existing"}


def test_non_task_and_unknown_options(orch: TaskOrchestrator) -> None:
    with pytest.raises(ValidationError):
        orch.add_task({"module": "t"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown option"):
        orch.create_task("x", "t", "inc", colour="blue")
    with pytest.raises(ValidationError):
        TaskOrchestrator(max_workers=0, store="memory://")
    with pytest.raises(ValidationError):
        TaskOrchestrator(max_workers="many", store="memory://")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TaskOrchestrator(store="ftp://nowhere")


def test_batch_with_one_bad_task_records_none(orch: TaskOrchestrator) -> None:
    before = orch.store.max_position()
    with pytest.raises(ValidationError):
        orch.add_tasks(
            [
                Task(id="fine", module="t", action="inc", parameters={"i": 1}),
                Task(id="bad", module="t", action="inc", timeout=-3),
            ]
        )
    assert orch.store.max_position() == before
    assert orch.get_task("fine") is None
    orch.add_task(Task(id="fine", module="t", action="inc", parameters={"i": 1}))  # the id is still free
