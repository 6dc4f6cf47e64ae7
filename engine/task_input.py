"""Checking what users hand to ``add_task``/``create_task`` before anything is decided.

Everything a task definition carries ends up in a ``task.created`` event, so it is
checked here (types, ranges, JSON-compatibility, size) and turned into the event's
fields. A bad value raises :class:`ValidationError` naming the field; nothing is
recorded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from domain.enums import ResourceType, TaskPriority, TaskStatus
from domain.errors import ValidationError
from domain.task import ResourceSpec
from engine.codec import json_problem
from engine.models import Task, TaskResource

__all__ = ["CREATE_TASK_OPTIONS", "MAX_ID_LENGTH", "check_soft_timeout", "definition_of", "task_from_options"]

MAX_ID_LENGTH = 200
RESOURCE_MODES = ("read", "write", "exclusive")
CREATE_TASK_OPTIONS = frozenset(
    {
        "id",
        "description",
        "parameters",
        "dependencies",
        "priority",
        "resources",
        "timeout",
        "soft_timeout",
        "max_retries",
        "retry_delay",
        "tags",
        "metadata",
    }
)
_encoder = msgspec.json.Encoder()
_CONTROL = re.compile(r"[\x00-\x1f]")


def _fail(field: str, message: str, value: object) -> ValidationError:
    return ValidationError(f"task {field}: {message} (got {value!r:.200})", details={"field": field})


def _text(field: str, value: object, *, allow_empty: bool = False, limit: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str):
        raise _fail(field, "must be a string", value)
    if not allow_empty and not value.strip():
        raise _fail(field, "must not be empty", value)
    if len(value) > limit:
        raise _fail(field, f"must be at most {limit} characters", value)
    if _CONTROL.search(value):
        raise _fail(field, "must not contain control characters", value)
    return value


def _flat_scalars(value: Mapping[Any, Any]) -> bool:
    """True when every key is a string and every value a JSON scalar that survives a
    round trip as it is (the common case: a plain copy is the normalized form)."""
    for k, v in value.items():
        if type(k) is not str:
            return False
        t = type(v)
        if t is float:
            if not math.isfinite(v):
                return False
        elif t not in (str, int, bool) and v is not None:
            return False
    return True


def _json_dict(field: str, value: object) -> dict[str, Any]:
    """A JSON-normalized copy of a user's dict (what the log will hold), or a clear
    error naming the field."""
    if not isinstance(value, Mapping):
        raise _fail(field, "must be a dict", value)
    if not value:
        return {}
    if _flat_scalars(value):
        return dict(value)
    if not all(isinstance(k, str) for k in value):
        raise _fail(field, "keys must be strings", list(value))
    problem = json_problem(value, field)
    if problem is not None:
        raise _fail(field, f"must be JSON-compatible: {problem}", "...")
    try:
        out: dict[str, Any] = msgspec.json.decode(_encoder.encode(dict(value)))
    except (TypeError, ValueError, OverflowError) as e:
        raise _fail(field, f"must be JSON-compatible ({e})", value) from e
    return out


def _number(field: str, value: object, *, minimum: float, allow_equal: bool, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(field, "must be a finite number", value)
    if value < minimum or (value == minimum and not allow_equal):
        relation = ">=" if allow_equal else ">"
        raise _fail(field, f"must be {relation} {minimum}", value)
    return float(value)


def _priority(value: object) -> int:
    if isinstance(value, TaskPriority):
        return int(value)
    if isinstance(value, str) and value.upper() in TaskPriority.__members__:
        return int(TaskPriority[value.upper()])
    if isinstance(value, int) and not isinstance(value, bool) and value in {p.value for p in TaskPriority}:
        return value
    raise _fail("priority", "must be a TaskPriority", value)


def _resource(value: object) -> ResourceSpec:
    if isinstance(value, Mapping):
        value = TaskResource(**dict(value))
    if not isinstance(value, TaskResource):
        raise _fail("resources", "items must be TaskResource", value)
    try:
        rtype = ResourceType(value.type)
    except ValueError as e:
        raise _fail("resources", f"unknown resource type; known: {[t.value for t in ResourceType]}", value.type) from e
    if value.mode not in RESOURCE_MODES:
        raise _fail("resources", f"mode must be one of {RESOURCE_MODES}", value.mode)
    timeout = _number("resources.timeout", value.timeout, minimum=0, allow_equal=False, optional=True)
    return ResourceSpec(
        type=rtype, identifier=_text("resources.identifier", value.identifier), mode=value.mode, timeout=timeout
    )


def _str_list(field: str, value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _fail(field, "must be a list of strings", value)
    return [_text(field, v) for v in value]


def definition_of(task: object) -> tuple[str, dict[str, Any]]:
    """``(task id, fields of task.created)`` for a user's ``Task``."""
    if not isinstance(task, Task):
        raise ValidationError(f"expected a Task, got {type(task).__name__}")
    task_id = _text("id", task.id)
    module = _text("module", task.module)
    action = _text("action", task.action)
    if task.status is not TaskStatus.PENDING:
        raise _fail("status", "a new task must be PENDING", task.status)
    name = _text("name", task.name, allow_empty=True) or f"{module}.{action}"
    max_retries = task.max_retries
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise _fail("max_retries", "must be an integer >= 0", max_retries)
    if not isinstance(task.resources, list | tuple):
        raise _fail("resources", "must be a list", task.resources)
    dependencies = _str_list("dependencies", task.dependencies)
    if len(set(dependencies)) != len(dependencies):
        raise _fail("dependencies", "must not repeat an id", dependencies)
    timeout = _number("timeout", task.timeout, minimum=0, allow_equal=False, optional=True)
    soft_timeout = check_soft_timeout(task.soft_timeout, timeout, lambda msg, value: _fail("soft_timeout", msg, value))
    return task_id, {
        "name": name,
        "description": _text("description", task.description, allow_empty=True, limit=10_000),
        "module": module,
        "action": action,
        "parameters": _json_dict("parameters", task.parameters),
        "dependencies": dependencies,
        "priority": _priority(task.priority),
        "resources": [_resource(r) for r in task.resources],
        "timeout": timeout,
        "soft_timeout": soft_timeout,
        "max_retries": max_retries,
        "retry_delay": _number("retry_delay", task.retry_delay, minimum=0, allow_equal=True, optional=False),
        "tags": _str_list("tags", task.tags),
        "metadata": _json_dict("metadata", task.metadata),
    }


def check_soft_timeout(
    soft_timeout: object, timeout: float | None, fail: Callable[[str, object], ValidationError]
) -> float | None:
    """A soft timeout: ``None``, or a finite number of seconds > 0 and less than the
    hard ``timeout`` when there is one (at the hard timeout the attempt is over, so a
    soft deadline at or after it could never be reached)."""
    if soft_timeout is None:
        return None
    if isinstance(soft_timeout, bool) or not isinstance(soft_timeout, int | float) or not math.isfinite(soft_timeout):
        raise fail("must be a finite number of seconds, or None", soft_timeout)
    if soft_timeout <= 0:
        raise fail("must be > 0", soft_timeout)
    if timeout is not None and soft_timeout >= timeout:
        raise fail(f"must be less than the timeout ({timeout:g} s)", soft_timeout)
    return float(soft_timeout)


def task_from_options(name: str, module: str, action: str, options: Mapping[str, Any]) -> Task:
    unknown = set(options) - CREATE_TASK_OPTIONS
    if unknown:
        raise ValidationError(
            f"create_task got unknown option(s) {sorted(unknown)}; known: {sorted(CREATE_TASK_OPTIONS)}"
        )
    task = Task(name=name, module=module, action=action)
    for key, value in options.items():
        if value is None and key in ("parameters", "dependencies", "resources", "tags", "metadata"):
            continue
        setattr(task, key, value)
    return task
