"""The project's one exception tree.

::

    OrchestrationError                      every error this library raises
    ├── ValidationError (+ ValueError)      bad input: types, ranges, names, sizes
    │   ├── DependencyCycleError            a dependency graph with a cycle
    │   └── DuplicateIdError                an id that is already taken
    ├── NotFoundError (+ LookupError)       an unknown task, run, session, ...
    ├── IllegalTransitionError              a lifecycle trigger not legal from a state
    ├── ConcurrencyConflictError            an aggregate version was taken by another writer
    ├── StoreError                          the event store failed (I/O, driver, corrupt row)
    ├── CorruptHistoryError                 the log contradicts itself (e.g. no creation event)
    ├── ExecutionNotStartedError            waiting on work nobody will run
    ├── WorkflowExecutionError              (spec) a workflow run failed
    ├── TaskExecutionError                  (spec) a task's action failed
    │   ├── UnknownActionError (+ LookupError)  no action registered under module/action
    │   └── ActionNotShippableError         an action another process cannot import by name
    ├── ResourceAllocationError             (spec) resources could not be allocated
    └── ProjectManagementError              (spec) a project operation failed

Every error can render the spec's Error Response Format with :meth:`to_response`:
``error`` says what went wrong, ``error_code`` is stable and machine readable, and
``suggestions`` says what to do about it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActionNotShippableError",
    "ConcurrencyConflictError",
    "CorruptHistoryError",
    "DependencyCycleError",
    "DuplicateIdError",
    "ExecutionNotStartedError",
    "IllegalTransitionError",
    "NotFoundError",
    "OrchestrationError",
    "ProjectManagementError",
    "ResourceAllocationError",
    "StoreError",
    "TaskExecutionError",
    "UnknownActionError",
    "ValidationError",
    "WorkflowExecutionError",
]


class OrchestrationError(Exception):
    """Root of the tree. Carries a stable ``error_code``, structured ``details`` and
    ``suggestions`` for the spec's error response."""

    default_code = "ORCHESTRATION_ERROR"
    default_suggestions: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        suggestions: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})
        self.suggestions: list[str] = list(suggestions if suggestions is not None else self.default_suggestions)

    def to_response(self) -> dict[str, Any]:
        """The spec's Error Response Format for this error."""
        return {
            "success": False,
            "error": self.message,
            "error_type": type(self).__name__,
            "error_code": self.error_code,
            "details": dict(self.details),
            "suggestions": list(self.suggestions),
        }


class ValidationError(OrchestrationError, ValueError):
    default_code = "INVALID_INPUT"
    default_suggestions = ("Correct the argument named in the message and call again.",)


class DependencyCycleError(ValidationError):
    default_code = "DEPENDENCY_CYCLE"
    default_suggestions = ("Remove one dependency of the cycle named in the message.",)


class DuplicateIdError(ValidationError):
    default_code = "DUPLICATE_ID"
    default_suggestions = ("Use a new id, or omit it to have one generated.",)


class NotFoundError(OrchestrationError, LookupError):
    default_code = "NOT_FOUND"


class IllegalTransitionError(OrchestrationError):
    default_code = "ILLEGAL_TRANSITION"

    def __init__(self, lifecycle: str, state: str, trigger: str, aggregate_id: str = "") -> None:
        what = f"{lifecycle} {aggregate_id}".strip()
        super().__init__(
            f"{what}: trigger '{trigger}' is not legal from state '{state}'",
            details={
                "lifecycle": lifecycle,
                "state": state,
                "trigger": trigger,
                "aggregate_id": aggregate_id,
            },
            suggestions=[f"Check the {lifecycle} lifecycle table for the triggers legal from '{state}'."],
        )
        self.lifecycle = lifecycle
        self.state = state
        self.trigger = trigger


class ConcurrencyConflictError(OrchestrationError):
    default_code = "CONCURRENCY_CONFLICT"
    default_suggestions = ("Another writer changed the same aggregate; reload and retry.",)


class StoreError(OrchestrationError):
    default_code = "STORE_ERROR"
    default_suggestions = ("Check that the event store URL is reachable and writable.",)


class CorruptHistoryError(OrchestrationError):
    default_code = "CORRUPT_HISTORY"
    default_suggestions = ("Run the verify tool on the store; the log was edited or truncated.",)


class ExecutionNotStartedError(OrchestrationError):
    default_code = "EXECUTION_NOT_STARTED"
    default_suggestions = ("Call start_execution() before waiting for tasks to finish.",)


class WorkflowExecutionError(OrchestrationError):
    default_code = "WORKFLOW_EXECUTION_FAILED"


class TaskExecutionError(OrchestrationError):
    default_code = "TASK_EXECUTION_FAILED"


class UnknownActionError(TaskExecutionError, LookupError):
    default_code = "UNKNOWN_ACTION"

    def __init__(self, module: str, action: str, known_in_module: list[str] | None = None) -> None:
        if known_in_module is None:
            message = f"no action registered for module '{module}' (action '{action}')"
        else:
            message = f"module '{module}' has no action '{action}'"
        suggestions = [
            f"Register it: register_action('{module}', '{action}', fn) or decorate fn "
            f"with @action('{module}', '{action}').",
        ]
        if known_in_module:
            suggestions.append(f"Actions registered for '{module}': {', '.join(sorted(known_in_module))}.")
        super().__init__(
            message,
            details={"module": module, "action": action},
            suggestions=suggestions,
        )
        self.module = module
        self.action = action


class ActionNotShippableError(TaskExecutionError):
    """An action that must run in another process (process or Dask executor) cannot be
    sent there: workers import it by its module path, so it must be a function defined
    at the top level of an importable module (not a lambda, a closure, a bound method,
    a ``functools.partial`` or a function defined only in the parent)."""

    default_code = "ACTION_NOT_SHIPPABLE"
    default_suggestions = (
        "Define the action as a top-level function of an importable module and register that function.",
        "Or run this task with the thread executor (executor='threads').",
    )


class ResourceAllocationError(OrchestrationError):
    default_code = "RESOURCE_ALLOCATION_FAILED"


class ProjectManagementError(OrchestrationError):
    default_code = "PROJECT_MANAGEMENT_FAILED"
