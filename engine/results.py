"""What the engine and the project manager share when they answer a caller: running a
coroutine from synchronous code, and the spec's result and failure dicts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from domain.enums import WorkflowStatus
from domain.errors import OrchestrationError, WorkflowExecutionError
from engine.models import WorkflowExecution

__all__ = ["execution_dict", "failure", "run_coroutine", "workflow_result"]

T = TypeVar("T")


def failure(error: OrchestrationError, **extra: Any) -> dict[str, Any]:
    """A method's result dict for a failure: ``extra`` keys plus the spec's error
    response (``success: False``, ``error``, ``error_type``, ``error_code``,
    ``details``, ``suggestions``)."""
    return {**extra, **error.to_response()}


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end from synchronous code, also when the caller is itself
    inside a running event loop (then in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # A plain loop, not asyncio.run: on the main thread asyncio.run's Ctrl-C
        # handling formats the coroutine's whole result (twice) as it finishes.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    box: list[Any] = []

    def runner() -> None:
        try:
            box.append((True, run_coroutine(coro)))
        except BaseException as e:  # noqa: BLE001 -- handed back to the caller below
            box.append((False, e))

    thread = threading.Thread(target=runner, name="engine-sync-bridge")
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def execution_dict(execution: WorkflowExecution) -> dict[str, Any]:
    """Plain form of a run (no deep copy: the values are the recorded results)."""
    return {
        "workflow_name": execution.workflow_name,
        "status": execution.status.value,
        "start_time": execution.start_time.isoformat() if execution.start_time else None,
        "end_time": execution.end_time.isoformat() if execution.end_time else None,
        "results": execution.results,
        "errors": execution.errors,
        "performance_metrics": execution.performance_metrics,
        "run_id": execution.run_id,
    }


def workflow_result(execution: WorkflowExecution, **extra: Any) -> dict[str, Any]:
    """``execute_workflow``'s dict for a finished run: the spec's keys (``success``,
    ``result``, ``error``, ``execution_time``, ``steps_executed``) plus ``results``,
    ``run_id``, ``status``, ``errors`` and ``extra``; a failed run also carries every key
    of the error response."""
    steps = execution.performance_metrics.get("steps", {})
    result: dict[str, Any] = {
        "success": execution.status is WorkflowStatus.COMPLETED,
        "result": execution_dict(execution),
        "results": dict(execution.results),
        "error": None,
        "execution_time": execution.performance_metrics.get("duration"),
        "steps_executed": sum(1 for s in steps.values() if s.get("attempts", 0) > 0),
        "run_id": execution.run_id,
        "status": execution.status.value,
        "errors": list(execution.errors),
        **extra,
    }
    if not result["success"]:
        err = WorkflowExecutionError(
            f"workflow {execution.workflow_name!r} {execution.status.value}: " + "; ".join(execution.errors),
            code="WORKFLOW_FAILED",
            details={"run_id": execution.run_id, "errors": list(execution.errors), **extra},
            suggestions=[
                "Read the failed steps' errors above; fix the action or its parameters and run again.",
                f"Inspect the run's events: History(store).events() filtered by correlation id {execution.run_id}.",
            ],
        )
        result.update(err.to_response())
    return result
