"""Workflow definitions <-> the original project's JSON file format.

The format (see the upstream ``workflows/*.json``)::

    {"name": "basic_analysis",
     "steps": [{"name": "check_env", "module": "environment_setup",
                "action": "check_environment", "parameters": {},
                "dependencies": [], "timeout": 60, "retry_count": 0, "max_retries": 3}]}

``retry_count`` is accepted and ignored (the log knows how many retries a run used);
``retry_delay`` and ``soft_timeout`` (seconds into an attempt at which the action is
asked to stop; less than ``timeout``) are this project's optional additions. Unknown keys are errors, so a
typo does not silently change a workflow.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from domain.errors import ValidationError
from domain.workflow import StepSpec
from engine.codec import json_problem
from engine.models import WorkflowStep
from engine.task_input import check_soft_timeout

__all__ = ["parse_workflow_file", "step_spec", "write_workflow_file"]

_STEP_KEYS = {
    "name",
    "module",
    "action",
    "parameters",
    "dependencies",
    "timeout",
    "retry_count",
    "max_retries",
    "retry_delay",
    "soft_timeout",
}


def _fail(where: str, message: str) -> ValidationError:
    return ValidationError(f"{where}: {message}", details={"where": where})


def step_spec(step: WorkflowStep | Mapping[str, Any], where: str) -> StepSpec:
    """Check one step (a ``WorkflowStep`` or a dict in the file format)."""
    if isinstance(step, WorkflowStep):
        raw: dict[str, Any] = {
            "name": step.name,
            "module": step.module,
            "action": step.action,
            "parameters": step.parameters,
            "dependencies": step.dependencies,
            "timeout": step.timeout,
            "max_retries": step.max_retries,
            "retry_delay": step.retry_delay,
            "soft_timeout": step.soft_timeout,
        }
    elif isinstance(step, Mapping):
        unknown = set(step) - _STEP_KEYS
        if unknown:
            raise _fail(where, f"unknown step key(s) {sorted(unknown)}; known: {sorted(_STEP_KEYS)}")
        raw = dict(step)
    else:
        raise _fail(where, f"a step must be a WorkflowStep or a dict, got {type(step).__name__}")
    for key in ("name", "module", "action"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _fail(where, f"step {key} must be a non-empty string, got {raw.get(key)!r}")
    params = raw.get("parameters") or {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise _fail(where, f"step {raw['name']!r}: parameters must be a dict with string keys")
    problem = json_problem(params, f"step {raw['name']}.parameters")
    if problem is not None:
        raise _fail(where, problem)
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise _fail(where, f"step {raw['name']!r}: dependencies must be a list of step names")
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise _fail(where, f"step {raw['name']!r}: timeout must be a number > 0 or null, got {timeout!r}")
    retries = raw.get("max_retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _fail(where, f"step {raw['name']!r}: max_retries must be an integer >= 0, got {retries!r}")
    delay = raw.get("retry_delay", 1.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
        raise _fail(where, f"step {raw['name']!r}: retry_delay must be a number >= 0, got {delay!r}")
    soft = check_soft_timeout(
        raw.get("soft_timeout"),
        float(timeout) if timeout is not None else None,
        lambda message, value: _fail(where, f"step {raw['name']!r}: soft_timeout {message}, got {value!r}"),
    )
    return StepSpec(
        name=raw["name"],
        module=raw["module"],
        action=raw["action"],
        parameters=msgspec.json.decode(msgspec.json.encode(params)),
        dependencies=list(deps),
        timeout=float(timeout) if timeout is not None else None,
        max_retries=retries,
        retry_delay=float(delay),
        soft_timeout=soft,
    )


def parse_workflow_file(path: Path) -> tuple[str, list[StepSpec]]:
    """``(name, steps)`` of one file; :class:`ValidationError` naming the file."""
    where = str(path)
    try:
        data = msgspec.json.decode(path.read_bytes())
    except OSError as e:
        raise _fail(where, f"cannot read: {e}") from e
    except msgspec.DecodeError as e:
        raise _fail(where, f"malformed JSON: {e}") from e
    if not isinstance(data, dict):
        raise _fail(where, "the top level must be an object with 'name' and 'steps'")
    unknown = set(data) - {"name", "steps", "description"}
    if unknown:
        raise _fail(where, f"unknown key(s) {sorted(unknown)}")
    name, steps = data.get("name"), data.get("steps")
    if not isinstance(name, str):
        raise _fail(where, f"'name' must be a string, got {name!r}")
    if not isinstance(steps, list):
        raise _fail(where, "'steps' must be a list")
    return name, [step_spec(s, f"{where} step {i}") for i, s in enumerate(steps)]


def write_workflow_file(directory: Path, name: str, steps: list[StepSpec]) -> Path:
    """Write ``<directory>/<name>.json`` atomically (temp file + rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "steps": [
            {
                "name": s.name,
                "module": s.module,
                "action": s.action,
                "parameters": s.parameters,
                "dependencies": s.dependencies,
                "timeout": int(s.timeout) if s.timeout is not None and s.timeout.is_integer() else s.timeout,
                "retry_count": 0,
                "max_retries": s.max_retries,
                **({"retry_delay": s.retry_delay} if s.retry_delay != 1.0 else {}),
                **({"soft_timeout": s.soft_timeout} if s.soft_timeout is not None else {}),
            }
            for s in steps
        ],
    }
    target = directory / f"{name}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
