"""The work of workloads W1-W4, shared by the baseline and the orchestrator runs.

Standard library only: the baseline child imports this module and nothing of the
library, so its peak RSS is that of a bare thread pool doing the work.

Every workload is described as a list of :class:`Node` (task id, action, parameters,
dependencies); both runners execute the same nodes with the same functions, and both
are checked against :func:`expected` (task id -> result data).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WORKLOADS = ("W1", "W2", "W3", "W4")
SLEEP_SECONDS = 0.01
FAN_SEED = 7
WORKERS = 4


# -- actions ------------------------------------------------------------------


def inc(i: int) -> int:
    return i + 1


def chain_step(dependency_results: dict[str, int]) -> int:
    """The previous task's result plus one (0 + 1 for the first task of the chain)."""
    prev = 0
    for value in dependency_results.values():
        prev = value
    return prev + 1


def fan_root(seed: int) -> int:
    return seed


def fan_out(i: int, dependency_results: dict[str, int]) -> int:
    (root,) = dependency_results.values()
    return root + i


def fan_in(dependency_results: dict[str, int]) -> dict[str, Any]:
    """Sum of all fan-out results, plus what shows the dict arrived complete and in the
    declared order."""
    keys = list(dependency_results)
    return {
        "sum": sum(dependency_results.values()),
        "count": len(keys),
        "first": keys[0] if keys else None,
        "last": keys[-1] if keys else None,
    }


class Concurrency:
    """How many sleepers run at once (peak), to check the worker limit holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.current -= 1


CONCURRENCY = Concurrency()


def sleeper(i: int) -> int:
    with CONCURRENCY:
        time.sleep(SLEEP_SECONDS)
    return i


ACTIONS: dict[str, Callable[..., Any]] = {
    "inc": inc,
    "chain_step": chain_step,
    "fan_root": fan_root,
    "fan_out": fan_out,
    "fan_in": fan_in,
    "sleeper": sleeper,
}


# -- graphs -------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    id: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()


def graph(workload: str, n: int) -> list[Node]:
    """The task graph of a workload with ``n`` tasks (W3: ``n`` fan-out tasks, plus the
    root and the reducer), in an order where dependencies come first."""
    if workload == "W1":
        return [Node(f"w1-{i}", "inc", {"i": i}) for i in range(n)]
    if workload == "W2":
        return [Node(f"w2-{i}", "chain_step", {}, (f"w2-{i - 1}",) if i else ()) for i in range(n)]
    if workload == "W3":
        fans = [Node(f"w3-fan-{i}", "fan_out", {"i": i}, ("w3-root",)) for i in range(n)]
        return [
            Node("w3-root", "fan_root", {"seed": FAN_SEED}),
            *fans,
            Node("w3-reduce", "fan_in", {}, tuple(f.id for f in fans)),
        ]
    if workload == "W4":
        return [Node(f"w4-{i}", "sleeper", {"i": i}) for i in range(n)]
    raise ValueError(f"unknown workload {workload!r}")


def expected(workload: str, n: int) -> dict[str, Any]:
    """Task id -> the result data a correct run produces."""
    if workload == "W1":
        return {f"w1-{i}": i + 1 for i in range(n)}
    if workload == "W2":
        return {f"w2-{i}": i + 1 for i in range(n)}  # the last one is n (300)
    if workload == "W3":
        out: dict[str, Any] = {"w3-root": FAN_SEED}
        out.update({f"w3-fan-{i}": FAN_SEED + i for i in range(n)})
        out["w3-reduce"] = {
            "sum": FAN_SEED * n + n * (n - 1) // 2,
            "count": n,
            "first": "w3-fan-0" if n else None,
            "last": f"w3-fan-{n - 1}" if n else None,
        }
        return out
    if workload == "W4":
        return {f"w4-{i}": i for i in range(n)}
    raise ValueError(f"unknown workload {workload!r}")


def ideal_seconds(workload: str, n: int) -> float | None:
    """W4's lower bound: ``n`` sleeps spread perfectly over the workers."""
    return n * SLEEP_SECONDS / WORKERS if workload == "W4" else None


def headline(workload: str, results: dict[str, Any]) -> dict[str, Any]:
    """The values a reader checks at a glance (W2's final value, W3's reduced sum)."""
    if workload == "W2" and results:
        return {"final": results.get(f"w2-{len(results) - 1}")}
    if workload == "W3" and isinstance(results.get("w3-reduce"), dict):
        return {"sum": results["w3-reduce"].get("sum")}
    return {}


def check_results(workload: str, n: int, got: dict[str, Any]) -> list[str]:
    """Mismatches between ``got`` and :func:`expected` (at most a few, then a count)."""
    want = expected(workload, n)
    errors: list[str] = []
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if missing:
        errors.append(f"{len(missing)} result(s) missing, e.g. {missing[:3]}")
    if extra:
        errors.append(f"{len(extra)} unexpected result(s), e.g. {extra[:3]}")
    wrong = [k for k in want if k in got and got[k] != want[k]]
    for k in wrong[:3]:
        errors.append(f"{k}: got {got[k]!r:.120}, expected {want[k]!r:.120}")
    if len(wrong) > 3:
        errors.append(f"... and {len(wrong) - 3} more wrong result(s)")
    return errors
