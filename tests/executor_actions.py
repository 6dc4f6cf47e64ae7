"""Actions for the executor tests: top-level functions of an importable module, so the
process and Dask executors can send them to workers by import path.

(The tests' folder is on ``sys.path``, and spawned workers inherit it.)"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.executors import CancelToken
from engine.registry import ActionRegistry

MODULE = "x"


def inc(i: int) -> int:
    return i + 1


def boom(message: str = "boom") -> None:
    raise RuntimeError(message)


def add_all(dependency_results: dict[str, Any], extra: int = 0) -> int:
    return sum(dependency_results.values()) + extra


def not_json() -> Any:
    return complex(1, 2)  # picklable, not JSON


def pid_then_sleep(pid_file: str, seconds: float) -> str:
    """Write this process's id, then sleep (a step that overruns its timeout)."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke up"


def my_pid() -> int:
    return os.getpid()


def cooperative(cancel_token: CancelToken, limit: float = 30.0) -> dict[str, Any]:
    """Works in small steps until asked to stop (or ``limit`` seconds pass)."""
    begin = time.monotonic()
    steps = 0
    while not cancel_token.wait(0.02):
        steps += 1
        if time.monotonic() - begin > limit:
            return {"stopped": False, "steps": steps}
    return {"stopped": True, "steps": steps}


def ignores_stop(seconds: float) -> str:
    time.sleep(seconds)
    return "done anyway"


def die(code: int = 3) -> None:
    os._exit(code)  # the worker process dies on its own


def fan_root(seed: int) -> int:
    return seed


def fan_out(i: int, dependency_results: dict[str, int]) -> int:
    (root,) = dependency_results.values()
    return root + i


def fan_in(dependency_results: dict[str, int]) -> dict[str, Any]:
    keys = list(dependency_results)
    return {"sum": sum(dependency_results.values()), "count": len(keys), "first": keys[0], "last": keys[-1]}


ACTIONS = (
    inc,
    boom,
    add_all,
    not_json,
    pid_then_sleep,
    my_pid,
    cooperative,
    ignores_stop,
    die,
    fan_root,
    fan_out,
    fan_in,
)


def registry() -> ActionRegistry:
    reg = ActionRegistry()
    for fn in ACTIONS:
        reg.register(MODULE, fn.__name__, fn)
    return reg
