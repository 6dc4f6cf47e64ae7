"""A small, real task graph for ``codomyrmex-orch demo``.

It measures this package's own source: one task lists the Python files, one task per
top-level package parses them with ``ast`` and counts lines, functions and classes, and
a reducer sums the counts. Two more tasks show the failure paths: ``fetch_settings``
fails its first call on purpose (``demo.fail_first_call``) and succeeds on the retry;
``slow_probe`` sleeps past its timeout, so it fails with ``TimeoutError`` and its
dependent ``probe_report`` is SKIPPED.
"""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path
from typing import Any

from domain.enums import TaskPriority
from engine.models import Task
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator

__all__ = ["PACKAGES", "build_registry", "demo_tasks", "run_demo"]

PACKAGES = ("domain", "projections", "engine", "replay_tools")
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def list_sources(root: str, packages: list[str]) -> dict[str, list[str]]:
    """``{package: [relative .py paths]}`` under ``root``."""
    base = Path(root)
    return {pkg: sorted(str(p.relative_to(base)) for p in (base / pkg).rglob("*.py")) for pkg in packages}


def measure_package(root: str, package: str, dependency_results: dict[str, Any]) -> dict[str, int]:
    """Parse every file of ``package`` (as listed by the dependency) and count."""
    (listing,) = dependency_results.values()
    totals = {"files": 0, "lines": 0, "functions": 0, "classes": 0}
    for rel in listing[package]:
        text = (Path(root) / rel).read_text(encoding="utf-8")
        tree = ast.parse(text)
        totals["files"] += 1
        totals["lines"] += text.count("\n")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                totals["functions"] += 1
            elif isinstance(node, ast.ClassDef):
                totals["classes"] += 1
    return totals


def summarize(dependency_results: dict[str, Any]) -> dict[str, int]:
    total = {"files": 0, "lines": 0, "functions": 0, "classes": 0}
    for counts in dependency_results.values():
        for key in total:
            total[key] += counts[key]
    return total


class FailFirstCall:
    """Raises on its first call, then returns the settings it was given."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, settings: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            raise ConnectionError("settings service refused the first connection (deliberate)")
        return settings


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def build_registry() -> ActionRegistry:
    registry = ActionRegistry()
    registry.register("demo", "list_sources", list_sources)
    registry.register("demo", "measure_package", measure_package)
    registry.register("demo", "summarize", summarize)
    registry.register("demo", "fail_first_call", FailFirstCall())
    registry.register("demo", "sleep_for", sleep_for)
    return registry


def demo_tasks(prefix: str) -> list[Task]:
    root = str(SOURCE_ROOT)
    discover = Task(
        id=f"{prefix}discover",
        name="discover",
        module="demo",
        action="list_sources",
        parameters={"root": root, "packages": list(PACKAGES)},
        priority=TaskPriority.HIGH,
    )
    measures = [
        Task(
            id=f"{prefix}measure-{pkg}",
            name=f"measure {pkg}",
            module="demo",
            action="measure_package",
            parameters={"root": root, "package": pkg},
            dependencies=[discover.id],
        )
        for pkg in PACKAGES
    ]
    total = Task(
        id=f"{prefix}summarize",
        name="summarize",
        module="demo",
        action="summarize",
        dependencies=[m.id for m in measures],
    )
    flaky = Task(
        id=f"{prefix}fetch-settings",
        name="fetch settings",
        module="demo",
        action="fail_first_call",
        parameters={"settings": {"report": "markdown"}},
        max_retries=2,
        retry_delay=0.2,
    )
    slow = Task(
        id=f"{prefix}slow-probe",
        name="slow probe",
        module="demo",
        action="sleep_for",
        parameters={"seconds": 1.5},
        timeout=1,
        max_retries=0,
        priority=TaskPriority.LOW,
    )
    report = Task(
        id=f"{prefix}probe-report",
        name="probe report",
        module="demo",
        action="summarize",
        dependencies=[slow.id],
    )
    return [discover, *measures, total, flaky, slow, report]


def run_demo(store: str, prefix: str) -> tuple[TaskOrchestrator, list[Task]]:
    """Run the graph to the end; the caller prints and closes the orchestrator."""
    orchestrator = TaskOrchestrator(max_workers=4, store=store, registry=build_registry())
    tasks = demo_tasks(prefix)
    orchestrator.add_tasks(tasks)
    orchestrator.start_execution()
    orchestrator.wait_for_completion(timeout=60)
    return orchestrator, tasks
