"""The exception tree of ``domain.errors`` and its Error Response Format."""

from __future__ import annotations

import inspect
import json

import pytest

from domain import errors
from domain.errors import (
    ActionNotShippableError,
    ConcurrencyConflictError,
    CorruptHistoryError,
    DependencyCycleError,
    DuplicateIdError,
    ExecutionNotStartedError,
    IllegalTransitionError,
    NotFoundError,
    OrchestrationError,
    ProjectManagementError,
    ResourceAllocationError,
    StoreError,
    TaskExecutionError,
    UnknownActionError,
    ValidationError,
    WorkflowExecutionError,
)

RESPONSE_KEYS = {"success", "error", "error_type", "error_code", "details", "suggestions"}

ALL_CLASSES: list[type[OrchestrationError]] = [getattr(errors, name) for name in errors.__all__]

# The tree drawn in the module docstring: each class and its direct bases.
PARENTS: dict[type[Exception], tuple[type[BaseException], ...]] = {
    OrchestrationError: (Exception,),
    ValidationError: (OrchestrationError, ValueError),
    DependencyCycleError: (ValidationError,),
    DuplicateIdError: (ValidationError,),
    NotFoundError: (OrchestrationError, LookupError),
    IllegalTransitionError: (OrchestrationError,),
    ConcurrencyConflictError: (OrchestrationError,),
    StoreError: (OrchestrationError,),
    CorruptHistoryError: (OrchestrationError,),
    ExecutionNotStartedError: (OrchestrationError,),
    WorkflowExecutionError: (OrchestrationError,),
    TaskExecutionError: (OrchestrationError,),
    UnknownActionError: (TaskExecutionError, LookupError),
    ActionNotShippableError: (TaskExecutionError,),
    ResourceAllocationError: (OrchestrationError,),
    ProjectManagementError: (OrchestrationError,),
}


def make(cls: type[OrchestrationError]) -> OrchestrationError:
    """One instance of each class, built the way the library builds it."""
    if cls is IllegalTransitionError:
        return IllegalTransitionError("task", "completed", "start", "t-1")
    if cls is UnknownActionError:
        return UnknownActionError("static_analysis", "count_lines")
    return cls(f"{cls.__name__} happened")


CLASS_PARAMS = [pytest.param(cls, id=cls.__name__) for cls in ALL_CLASSES]


def test_all_lists_every_error_class_in_the_module() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, OrchestrationError) and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    assert set(PARENTS) == set(ALL_CLASSES)


@pytest.mark.parametrize("cls", CLASS_PARAMS)
def test_every_class_is_an_orchestration_error(cls: type[OrchestrationError]) -> None:
    assert issubclass(cls, OrchestrationError)
    assert isinstance(make(cls), OrchestrationError)


@pytest.mark.parametrize("cls", CLASS_PARAMS)
def test_tree_matches_docstring(cls: type[OrchestrationError]) -> None:
    assert cls.__bases__ == PARENTS[cls]


def test_builtin_bases() -> None:
    assert issubclass(ValidationError, ValueError)
    assert issubclass(DependencyCycleError, ValueError)
    assert issubclass(DuplicateIdError, ValueError)
    assert issubclass(NotFoundError, LookupError)
    assert issubclass(UnknownActionError, LookupError)
    assert issubclass(UnknownActionError, TaskExecutionError)
    assert not issubclass(NotFoundError, ValueError)
    assert not issubclass(ValidationError, LookupError)
    assert not issubclass(IllegalTransitionError, ValueError)
    assert not issubclass(TaskExecutionError, LookupError)


def test_builtin_bases_catch_instances() -> None:
    with pytest.raises(ValueError):
        raise ValidationError("bad")
    with pytest.raises(LookupError):
        raise NotFoundError("missing")
    with pytest.raises(LookupError):
        raise UnknownActionError("m", "a")
    with pytest.raises(TaskExecutionError):
        raise UnknownActionError("m", "a")


@pytest.mark.parametrize("cls", CLASS_PARAMS)
def test_to_response_format(cls: type[OrchestrationError]) -> None:
    err = make(cls)
    response = err.to_response()
    assert set(response) == RESPONSE_KEYS
    assert response["success"] is False
    assert response["error"] == err.message == str(err)
    assert response["error"]
    assert response["error_type"] == cls.__name__
    assert isinstance(response["error_code"], str)
    assert response["error_code"]
    assert response["error_code"] == cls.default_code
    assert isinstance(response["details"], dict)
    assert isinstance(response["suggestions"], list)
    assert all(isinstance(s, str) and s for s in response["suggestions"])
    json.dumps(response)


@pytest.mark.parametrize("cls", CLASS_PARAMS)
def test_response_is_a_copy(cls: type[OrchestrationError]) -> None:
    err = make(cls)
    response = err.to_response()
    response["details"]["injected"] = 1
    response["suggestions"].append("injected")
    assert "injected" not in err.details
    assert "injected" not in err.suggestions
    assert "injected" not in err.to_response()["suggestions"]


def test_default_codes_are_unique_and_upper_snake() -> None:
    codes = [cls.default_code for cls in ALL_CLASSES]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert code == code.upper()
        assert code.replace("_", "").isalnum()


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (OrchestrationError, "ORCHESTRATION_ERROR"),
        (ValidationError, "INVALID_INPUT"),
        (DependencyCycleError, "DEPENDENCY_CYCLE"),
        (DuplicateIdError, "DUPLICATE_ID"),
        (NotFoundError, "NOT_FOUND"),
        (IllegalTransitionError, "ILLEGAL_TRANSITION"),
        (ConcurrencyConflictError, "CONCURRENCY_CONFLICT"),
        (StoreError, "STORE_ERROR"),
        (CorruptHistoryError, "CORRUPT_HISTORY"),
        (ExecutionNotStartedError, "EXECUTION_NOT_STARTED"),
        (WorkflowExecutionError, "WORKFLOW_EXECUTION_FAILED"),
        (TaskExecutionError, "TASK_EXECUTION_FAILED"),
        (UnknownActionError, "UNKNOWN_ACTION"),
        (ResourceAllocationError, "RESOURCE_ALLOCATION_FAILED"),
        (ProjectManagementError, "PROJECT_MANAGEMENT_FAILED"),
    ],
)
def test_stable_codes(cls: type[OrchestrationError], code: str) -> None:
    assert make(cls).error_code == code


def test_explicit_code_details_suggestions_override_defaults() -> None:
    details = {"size": 10}
    err = ValidationError("too big", code="VALUE_TOO_LARGE", details=details, suggestions=["shrink it"])
    assert err.error_code == "VALUE_TOO_LARGE"
    assert err.details == {"size": 10}
    assert err.suggestions == ["shrink it"]
    details["size"] = 99  # the error keeps its own copy
    assert err.details == {"size": 10}
    assert err.to_response() == {
        "success": False,
        "error": "too big",
        "error_type": "ValidationError",
        "error_code": "VALUE_TOO_LARGE",
        "details": {"size": 10},
        "suggestions": ["shrink it"],
    }


def test_default_suggestions_and_explicit_empty_list() -> None:
    assert ValidationError("x").suggestions == list(ValidationError.default_suggestions)
    assert ValidationError("x").suggestions
    assert ValidationError("x", suggestions=[]).suggestions == []
    assert NotFoundError("x").suggestions == []
    assert NotFoundError("x").details == {}


def test_empty_code_falls_back_to_default() -> None:
    assert StoreError("x", code="").error_code == "STORE_ERROR"
    assert StoreError("x", code=None).error_code == "STORE_ERROR"


def test_illegal_transition_error_fields() -> None:
    err = IllegalTransitionError("task", "completed", "start", "t-1")
    assert err.lifecycle == "task"
    assert err.state == "completed"
    assert err.trigger == "start"
    assert err.message == "task t-1: trigger 'start' is not legal from state 'completed'"
    assert err.details == {"lifecycle": "task", "state": "completed", "trigger": "start", "aggregate_id": "t-1"}
    assert len(err.suggestions) == 1
    assert "task lifecycle" in err.suggestions[0]
    assert "'completed'" in err.suggestions[0]
    assert IllegalTransitionError("session", "active", "grant").message == (
        "session: trigger 'grant' is not legal from state 'active'"
    )


def test_unknown_action_error_unknown_module() -> None:
    err = UnknownActionError("static_analysis", "count_lines")
    assert err.module == "static_analysis"
    assert err.action == "count_lines"
    assert "static_analysis" in err.message
    assert "count_lines" in err.message
    assert err.message == "no action registered for module 'static_analysis' (action 'count_lines')"
    assert err.details == {"module": "static_analysis", "action": "count_lines"}
    response = err.to_response()
    assert response["details"] == {"module": "static_analysis", "action": "count_lines"}
    assert len(err.suggestions) == 1
    assert "register_action('static_analysis', 'count_lines', fn)" in err.suggestions[0]
    assert "@action('static_analysis', 'count_lines')" in err.suggestions[0]


def test_unknown_action_error_known_module_lists_actions_sorted() -> None:
    err = UnknownActionError("viz", "pie", ["line", "bar"])
    assert err.message == "module 'viz' has no action 'pie'"
    assert "viz" in err.message
    assert "pie" in err.message
    assert err.details == {"module": "viz", "action": "pie"}
    assert len(err.suggestions) == 2
    assert err.suggestions[0].startswith("Register it:")
    assert err.suggestions[1] == "Actions registered for 'viz': bar, line."


def test_unknown_action_error_known_module_without_actions() -> None:
    err = UnknownActionError("math", "nope", [])
    assert err.message == "module 'math' has no action 'nope'"
    assert len(err.suggestions) == 1
    assert "register_action('math', 'nope', fn)" in err.suggestions[0]
