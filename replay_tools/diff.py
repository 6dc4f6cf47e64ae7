"""Compare two workflow runs from the log alone.

Only reads the store: each run is rebuilt by folding its own events and the events
correlated with it (its steps' task events), the same selection as
:func:`replay_tools.timeline.timeline` with ``run=``. Nothing is executed.

What is compared (steps are matched by step name):

* ``steps_added`` / ``steps_removed``: step names only in run B / only in run A;
* ``outcome_changes``: steps in both whose task status differs;
* ``parameter_changes``: run-level parameters that differ (a missing one is
  :data:`ABSENT`); ``step_parameter_changes``: the same for each common step's
  recorded task parameters (after ``{{name}}`` substitution);
* ``timing_changes``: common steps whose measured execution time of the final
  attempt (``result.execution_time``, seconds) differs by more than
  ``timing_threshold`` seconds, an absolute threshold; steps without a measured
  attempt (skipped, cancelled before running, still pending) are not compared;
* ``definition_versions`` / ``same_definition``: the workflow name and definition
  version each run was created from;
* ``results_changed``: steps completed in both runs whose result data differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.errors import NotFoundError, ValidationError
from domain.events import Recorded
from engine.store import EventStore
from projections import tasks as task_proj
from projections import workflows as wf_proj
from projections.tasks import TaskRecord
from projections.workflows import RunRecord
from replay_tools.history import History, opened_store

__all__ = ["ABSENT", "RunDiff", "RunSnapshot", "diff_runs", "load_run"]


class _Absent:
    """Marks a parameter that one run does not have."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<absent>"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""Value of a parameter missing from one side of a change."""


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """A run and its steps' tasks, rebuilt from the run's events."""

    run: RunRecord
    steps: dict[str, TaskRecord | None]
    """Step name -> its task (``None`` if the task was never recorded), in definition order."""


def _read_selection(store: EventStore, run_id: str) -> list[Recorded]:
    return [r for r in store.read() if _belongs(r, run_id)]


def load_run(store_or_url: History | EventStore | str, run_id: str) -> RunSnapshot:
    """Rebuild run ``run_id`` and its step tasks; :class:`NotFoundError` if unknown."""
    with opened_store(store_or_url) as store:
        selected = _read_selection(store, run_id)
    return _snapshot(selected, run_id)


def _snapshot(selected: list[Recorded], run_id: str) -> RunSnapshot:
    run = wf_proj.fold(selected).runs.get(run_id)
    if run is None:
        raise NotFoundError(
            f"no workflow run {run_id!r} in this store",
            details={"kind": "workflow_run", "id": run_id},
            suggestions=["List the store's runs with timeline(url, types=['workflow_run.created'])."],
        )
    tasks = task_proj.fold(selected).tasks
    return RunSnapshot(run=run, steps={step: tasks.get(tid) for step, tid in run.step_tasks.items()})


def _status(task: TaskRecord | None) -> str:
    return str(task.status.value) if task is not None else "unknown"


def _seconds(task: TaskRecord | None) -> float | None:
    if task is None or task.result is None or task.attempts == 0:
        return None
    return task.result.execution_time


def _dict_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {
        k: (a.get(k, ABSENT), b.get(k, ABSENT))
        for k in sorted(set(a) | set(b))
        if k not in a or k not in b or a[k] != b[k]
    }


@dataclass(frozen=True, slots=True)
class RunDiff:
    """What differs between run A and run B. Build with :func:`diff_runs`."""

    run_a: str
    run_b: str
    definition_versions: tuple[tuple[str, int], tuple[str, int]]
    """``((workflow_a, version_a), (workflow_b, version_b))``."""
    steps_added: tuple[str, ...] = ()
    steps_removed: tuple[str, ...] = ()
    outcome_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    parameter_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    step_parameter_changes: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    timing_changes: dict[str, tuple[float, float]] = field(default_factory=dict)
    results_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    run_statuses: tuple[str, str] = ("", "")
    timing_threshold: float = 0.5
    lineage: tuple[str, str] = ("", "")
    """How each run came about when it resumes or forks another (``""`` otherwise),
    e.g. ``"forked from R at step s, reusing a, b"``."""

    @property
    def same_definition(self) -> bool:
        """Both runs were created from the same workflow name and version."""
        return self.definition_versions[0] == self.definition_versions[1]

    @property
    def is_empty(self) -> bool:
        """Same definition and no step, outcome, parameter, timing or result change."""
        return self.same_definition and not (
            self.steps_added
            or self.steps_removed
            or self.outcome_changes
            or self.parameter_changes
            or self.step_parameter_changes
            or self.timing_changes
            or self.results_changed
        )

    def text(self) -> str:
        """A readable multi-line report."""
        (wa, va), (wb, vb) = self.definition_versions
        lines = [f"run A {self.run_a} ({wa} v{va}, {self.run_statuses[0]})"]
        if self.lineage[0]:
            lines.append(f"  {self.lineage[0]}")
        lines.append(f"run B {self.run_b} ({wb} v{vb}, {self.run_statuses[1]})")
        if self.lineage[1]:
            lines.append(f"  {self.lineage[1]}")
        if self.is_empty:
            lines.append("no differences")
            return "\n".join(lines)
        lines.append("definition: same" if self.same_definition else f"definition: {wa} v{va} -> {wb} v{vb}")
        if self.steps_added:
            lines.append("steps added: " + ", ".join(self.steps_added))
        if self.steps_removed:
            lines.append("steps removed: " + ", ".join(self.steps_removed))
        if self.outcome_changes:
            lines.append("outcome changes:")
            lines.extend(f"  {s}: {a} -> {b}" for s, (a, b) in self.outcome_changes.items())
        if self.parameter_changes:
            lines.append("run parameter changes:")
            lines.extend(f"  {k}: {a!r} -> {b!r}" for k, (a, b) in self.parameter_changes.items())
        if self.step_parameter_changes:
            lines.append("step parameter changes:")
            for step, changes in self.step_parameter_changes.items():
                lines.extend(f"  {step}.{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
        if self.timing_changes:
            lines.append(f"timing changes (> {self.timing_threshold:g} s):")
            lines.extend(f"  {s}: {a:.3f}s -> {b:.3f}s" for s, (a, b) in self.timing_changes.items())
        if self.results_changed:
            lines.append("results changed:")
            lines.extend(f"  {s}: {a!r} -> {b!r}" for s, (a, b) in self.results_changed.items())
        return "\n".join(lines)


def diff_runs(
    store_or_url: History | EventStore | str,
    run_a: str,
    run_b: str,
    *,
    timing_threshold: float = 0.5,
) -> RunDiff:
    """Compare runs ``run_a`` and ``run_b`` of a store (see the module docstring).
    An unknown run raises :class:`NotFoundError`; a negative or non-numeric
    ``timing_threshold`` raises :class:`ValidationError`."""
    if isinstance(timing_threshold, bool) or not isinstance(timing_threshold, int | float) or timing_threshold < 0:
        raise ValidationError(f"timing_threshold must be a number of seconds >= 0, got {timing_threshold!r}")
    with opened_store(store_or_url) as store:
        recorded = list(store.read())
    a = _snapshot([r for r in recorded if _belongs(r, run_a)], run_a)
    b = _snapshot([r for r in recorded if _belongs(r, run_b)], run_b)
    common = [s for s in a.steps if s in b.steps]
    outcome: dict[str, tuple[str, str]] = {}
    step_params: dict[str, dict[str, tuple[Any, Any]]] = {}
    timing: dict[str, tuple[float, float]] = {}
    results: dict[str, tuple[Any, Any]] = {}
    for step in common:
        ta, tb = a.steps[step], b.steps[step]
        sa, sb = _status(ta), _status(tb)
        if sa != sb:
            outcome[step] = (sa, sb)
        changes = _dict_changes(ta.parameters if ta else {}, tb.parameters if tb else {})
        if changes:
            step_params[step] = changes
        secs_a, secs_b = _seconds(ta), _seconds(tb)
        if secs_a is not None and secs_b is not None and abs(secs_a - secs_b) > timing_threshold:
            timing[step] = (secs_a, secs_b)
        if sa == sb == "completed" and ta and tb and ta.result and tb.result and ta.result.data != tb.result.data:
            results[step] = (ta.result.data, tb.result.data)
    return RunDiff(
        run_a=run_a,
        run_b=run_b,
        definition_versions=(
            (a.run.workflow, a.run.definition_version),
            (b.run.workflow, b.run.definition_version),
        ),
        steps_added=tuple(s for s in b.steps if s not in a.steps),
        steps_removed=tuple(s for s in a.steps if s not in b.steps),
        outcome_changes=outcome,
        parameter_changes=_dict_changes(a.run.parameters, b.run.parameters),
        step_parameter_changes=step_params,
        timing_changes=timing,
        results_changed=results,
        run_statuses=(str(a.run.status.value), str(b.run.status.value)),
        timing_threshold=float(timing_threshold),
        lineage=(_lineage(a.run), _lineage(b.run)),
    )


def _lineage(run: RunRecord) -> str:
    reused = f", reusing {', '.join(run.reused_steps)}" if run.reused_steps else ""
    if run.restart_of:
        return f"resumes {run.restart_of}{reused}"
    if run.forked_from:
        return f"forked from {run.forked_from} at step {run.from_step}{reused}"
    return ""


def _belongs(r: Recorded, run_id: str) -> bool:
    return r.event.stream_id == f"workflow_run:{run_id}" or r.event.correlation_id == run_id
