"""A self-contained HTML report of one workflow run, from the log alone.

One page that needs no network: inline CSS, an inline script, and the run's data as an
embedded JSON block (``<script type="application/json" id="run-data">``) from which the
script draws a Gantt timeline of every attempt of every step (``#timeline``) and the
run's DAG laid out in layers by dependency depth (``#dag``), both as inline SVG. The
run header, the steps with their durations, the errors of each failed attempt, the
resources the run's session held and the run's events (each causation a link to the
causing event's row, ``#ev-<position>``) are plain HTML, readable without the script.

Every text that comes from the log (step names, parameters, errors, actors) is
escaped; the JSON block escapes ``<``, ``>`` and ``&`` so no value can close it. Only
reads the store; nothing is executed.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Any

from domain.events import Recorded
from domain.resource import RESOURCE_TOPICS
from domain.task import TaskCancelled, TaskCompleted, TaskFailed, TaskRetryScheduled, TaskSkipped, TaskStarted
from engine.store import EventStore
from projections import resources as resource_views
from projections.resources import AllocationRecord
from replay_tools.diff import RunSnapshot, load_run
from replay_tools.history import TASK_TOPICS, History, opened_store
from replay_tools.timeline import Timeline, timeline

__all__ = ["Attempt", "DagLayout", "Mark", "dag_layout", "html_report", "step_attempts"]


@dataclass(slots=True)
class Attempt:
    """One execution of a step, from its ``task.started`` to the event that ended it."""

    step: str
    number: int
    start: datetime
    end: datetime | None = None
    """``None`` while the log shows it still running."""
    outcome: str = "running"
    """``completed``, ``retried`` (failed, retry scheduled), ``failed``, ``cancelled`` or ``running``."""
    error_type: str = ""
    error_message: str = ""
    execution_time: float | None = None
    """Measured by the worker (seconds), when the attempt ended with a result."""


@dataclass(slots=True)
class Mark:
    """A step that ended without an attempt of its own: skipped, or cancelled while waiting."""

    step: str
    at: datetime
    outcome: str
    note: str = ""


@dataclass(slots=True)
class _Report:
    """What the page shows, gathered once."""

    snap: RunSnapshot
    events: Timeline
    attempts: list[Attempt]
    marks: list[Mark]
    start: datetime
    """The run's creation."""
    end: datetime
    """The run's end, or its last event if later (or if it has not ended)."""
    deps: dict[str, list[str]] = field(default_factory=dict)
    """Step -> the steps it depends on."""
    outcomes: dict[str, str] = field(default_factory=dict)
    held: list[tuple[str, AllocationRecord]] = field(default_factory=list)
    """(resource name, allocation) held by the run's session while the run went on."""

    by_step: dict[str, list[Attempt]] = field(default_factory=dict)

    def tries(self, step: str) -> list[Attempt]:
        """The step's attempts, in order."""
        return self.by_step.get(step, [])


def step_attempts(task_events: list[Recorded], step_of_task: dict[str, str]) -> tuple[list[Attempt], list[Mark]]:
    """The attempts and marks of the steps whose task ids ``step_of_task`` maps, in log order."""
    attempts: list[Attempt] = []
    running: dict[tuple[str, int], Attempt] = {}
    marks: list[Mark] = []
    for recorded in task_events:
        e = recorded.event
        step = step_of_task.get(e.aggregate_id)
        if step is None:
            continue
        if isinstance(e, TaskStarted):
            running[(step, e.attempt)] = Attempt(step, e.attempt, e.timestamp)
            attempts.append(running[(step, e.attempt)])
        elif isinstance(e, TaskCompleted | TaskRetryScheduled | TaskFailed):
            attempt = running.pop((step, e.attempt), None)
            if attempt is None:  # an end without a recorded start: show it where it ended
                attempt = Attempt(step, e.attempt, e.timestamp)
                attempts.append(attempt)
            attempt.end, attempt.execution_time = e.timestamp, e.execution_time
            if isinstance(e, TaskCompleted):
                attempt.outcome = "completed"
            else:
                attempt.outcome = "retried" if isinstance(e, TaskRetryScheduled) else "failed"
                attempt.error_type, attempt.error_message = e.error_type, e.error_message
        elif isinstance(e, TaskCancelled):
            abandoned = running.pop((step, e.abandoned_attempt), None)
            if abandoned is not None:
                abandoned.end, abandoned.outcome, abandoned.error_message = e.timestamp, "cancelled", e.reason
            else:
                marks.append(Mark(step, e.timestamp, "cancelled", e.reason))
        elif isinstance(e, TaskSkipped):
            cause = step_of_task.get(e.dependency, e.dependency)
            marks.append(Mark(step, e.timestamp, "skipped", f"{cause} {e.dependency_status.value}"))
    return attempts, marks


_Slot = str | tuple[str, str, int]
"""A place in a layer: a step, or ``(dependency, step, layer)`` where a long edge passes."""


@dataclass(frozen=True, slots=True)
class DagLayout:
    """Where each step goes: layers by dependency depth, slots within a layer."""

    places: dict[str, tuple[int, int]]
    """Step -> (layer, slot). The layer is the longest chain of dependencies below it."""
    routes: dict[tuple[str, str], list[tuple[int, int]]]
    """(dependency, step) -> the (layer, slot) of each layer the edge passes between them."""
    sizes: list[int]
    """Slots per layer (steps and passing edges)."""


def dag_layout(steps: list[str], dependencies: dict[str, list[str]]) -> DagLayout:
    """Lay the DAG out in layers: a step's layer is its dependency depth; an edge that
    skips layers takes a slot in each layer it crosses, so it never runs through a
    step. In each layer the slots are ordered by the mean slot of what leads into them
    (then by ``steps`` order), which keeps edges short and crossings few."""
    known = set(steps)
    deps = {s: [d for d in dependencies.get(s, []) if d in known] for s in steps}
    depth = dict.fromkeys(steps, 0)
    for _ in steps:  # relax until stable: at most one pass per step on the longest path
        new = {s: 1 + max(depth[d] for d in deps[s]) if deps[s] else 0 for s in steps}
        if new == depth:
            break
        depth = new
    layers: list[list[_Slot]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    before: dict[_Slot, list[_Slot]] = {s: [] for s in steps}
    for s in steps:
        layers[depth[s]].append(s)
    for s in steps:
        for d in deps[s]:
            prev: _Slot = d
            for layer in range(depth[d] + 1, depth[s]):
                passing = (d, s, layer)
                layers[layer].append(passing)
                before[passing] = [prev]
                prev = passing
            before[s].append(prev)
    slot: dict[_Slot, int] = {}
    for members in layers:

        def centre(key: _Slot) -> float:
            seen = [slot[b] for b in before[key] if b in slot]
            return sum(seen) / len(seen) if seen else 0.0

        members.sort(key=centre)  # stable: ties keep definition order
        slot.update({key: i for i, key in enumerate(members)})
    return DagLayout(
        places={s: (depth[s], slot[s]) for s in steps},
        routes={
            (d, s): [(layer, slot[(d, s, layer)]) for layer in range(depth[d] + 1, depth[s])]
            for s in steps
            for d in deps[s]
        },
        sizes=[len(m) for m in layers],
    )


def html_report(source: History | EventStore | str, run_id: str) -> str:
    """The HTML page of run ``run_id`` (:class:`NotFoundError` if unknown)."""
    with opened_store(source) as store:
        snap = load_run(store, run_id)
        events = timeline(store, run=run_id)
        step_of_task = {tid: step for step, tid in snap.run.step_tasks.items()}
        task_events = [r for r in store.read(types=TASK_TOPICS) if r.event.aggregate_id in step_of_task]
        resources = resource_views.fold(store.read(types=RESOURCE_TOPICS)) if snap.run.session_id else None
    run = snap.run
    last = max((e.timestamp for e in events.entries), default=run.created_at)
    attempts, marks = step_attempts(task_events, step_of_task)
    report = _Report(snap, events, attempts, marks, start=run.created_at, end=max(last, run.ended_at or last))
    for attempt in attempts:
        report.by_step.setdefault(attempt.step, []).append(attempt)
    for step, task in snap.steps.items():
        report.deps[step] = [step_of_task[d] for d in task.dependencies if d in step_of_task] if task else []
        report.outcomes[step] = task.status.value if task is not None else "unknown"
    if resources is not None:
        names = {rid: rec.name for rid, rec in resources.resources.items()}
        for aid in resources.by_user.get(f"session:{run.session_id}", []):
            a = resources.allocations[aid]
            if a.allocated_at <= report.end and (a.ended_at is None or a.ended_at >= report.start):
                report.held.append((names.get(a.resource_id, a.resource_id), a))
    return _page(report)


# -- the page ------------------------------------------------------------------------------


@cache
def _asset(name: str) -> str:
    return files("replay_tools").joinpath(name).read_text(encoding="utf-8")


def _e(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return html.escape(text, quote=True)


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if at is not None else "-"


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def _table(head: tuple[str, ...], rows: list[str], attrs: str = "") -> str:
    cells = "".join(f"<th>{h}</th>" for h in head)
    return f"<table{attrs}><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _wall(tries: list[Attempt]) -> float | None:
    """From the first attempt's start to the last attempt's end (retry waits included)."""
    if not tries or tries[-1].end is None:
        return None
    return (tries[-1].end - tries[0].start).total_seconds()


def _obj(keys: str, *values: Any) -> dict[str, Any]:
    return dict(zip(keys.split(), values, strict=True))


def _run_data(r: _Report) -> str:
    """The JSON block the script draws from; times in seconds from the run's creation."""
    steps = list(r.snap.steps)
    layout = dag_layout(steps, r.deps)
    at = layout.places
    rows = sorted(steps, key=lambda s: at[s][0])  # the timeline's rows: by layer, then definition order

    def off(t: datetime | None) -> float | None:
        return None if t is None else round((t - r.start).total_seconds(), 6)

    data = {
        "span": max(off(r.end) or 0.0, 0.001),
        "run": {"status": r.snap.run.status.value, "end": off(r.snap.run.ended_at)},
        "steps": [
            _obj("name outcome layer slot deps attempts wall",
                 s, r.outcomes[s], *at[s], r.deps[s], len(r.tries(s)), _wall(r.tries(s)))
            for s in rows
        ],
        "attempts": [
            _obj("step n start end outcome exec error",
                 a.step, a.number, off(a.start), off(a.end), a.outcome, a.execution_time,
                 f"{a.error_type}: {a.error_message}" if a.error_type else a.error_message)
            for a in r.attempts
        ],
        "edges": [{"from": d, "to": s, "via": via} for (d, s), via in layout.routes.items()],
        "layers": layout.sizes,
        "marks": [{"step": m.step, "at": off(m.at), "outcome": m.outcome, "note": m.note} for m in r.marks],
    }  # fmt: skip
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _header(r: _Report) -> str:
    run = r.snap.run
    counts: dict[str, int] = {}
    for outcome in r.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    facts = [
        ("run", f"<code>{_e(run.id)}</code>"),
        ("definition version", _e(str(run.definition_version))),
        ("started", _e(_when(run.started_at or run.created_at))),
        ("ended", _e(_when(run.ended_at))),
        ("duration", _e(_secs(run.duration))),
        ("steps", ", ".join(f"{n} {_e(o)}" for o, n in counts.items()) or "none"),
        ("actor", _e(run.actor)),
        ("session", f"<code>{_e(run.session_id or '-')}</code>"),
    ] + ([("reason", _e(run.reason))] if run.reason else [])
    params = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in run.parameters.items())
    return (
        f'<header id="run-header"><h1><span class="wf">{_e(run.workflow)}</span>'
        f' <span class="badge o-{_e(run.status.value)}" id="run-status">{_e(run.status.value)}</span></h1>'
        f'<dl class="facts">{"".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)}</dl>'
        f'<div id="parameters"><h2>Parameters</h2>'
        f"{f'<table>{params}</table>' if params else '<p class=none>none</p>'}</div></header>"
    )


def _steps(r: _Report) -> str:
    rows = []
    for step, task in r.snap.steps.items():
        tries = r.tries(step)
        marks = [m for m in r.marks if m.step == step]
        detail = "".join(f'<span class="try o-{a.outcome}">#{a.number} {a.outcome} {_secs(a.execution_time)}</span>'
                         for a in tries) + "".join(f'<span class="try o-{m.outcome}">{m.outcome}: {_e(m.note)}</span>'
                                                   for m in marks)  # fmt: skip
        action = f"{task.module}.{task.action}" if task is not None else "-"
        first = _clock(tries[0].start) if tries else "-"
        outcome = _e(r.outcomes[step])
        rows.append(
            f'<tr data-step="{_e(step)}"><th>{_e(step)}</th><td><span class="badge o-{outcome}">{outcome}</span></td>'
            f"<td><code>{_e(action)}</code></td><td>{_e(', '.join(r.deps[step]) or '-')}</td>"
            f'<td class="num">{len(tries)}</td><td>{detail}</td><td class="num">{first}</td>'
            f'<td class="num">{_secs(_wall(tries))}</td></tr>'
        )
    head = ("step", "outcome", "action", "depends on", "attempts", "each attempt (measured time)", "first start",
            "wall time")  # fmt: skip
    return f'<section id="steps"><h2>Steps</h2>{_table(head, rows)}</section>'


def _errors(r: _Report) -> str:
    body = ""
    if r.snap.run.errors:
        items = "".join(f"<li>{_e(e)}</li>" for e in r.snap.run.errors)
        body += f"<h3>Recorded on the run</h3><ul class=run-errors>{items}</ul>"
    rows = [
        f'<tr data-step="{_e(a.step)}"><th>{_e(a.step)}</th><td class="num">#{a.number}</td>'
        f'<td><span class="badge o-{a.outcome}">{a.outcome}</span></td><td><code>{_e(a.error_type)}</code></td>'
        f'<td class="msg">{_e(a.error_message)}</td><td class="num">{_clock(a.end or a.start)}</td></tr>'
        for a in r.attempts
        if a.error_type
    ]
    if rows:
        body += "<h3>Failed attempts</h3>" + _table(("step", "attempt", "then", "type", "message", "at (UTC)"), rows)
    return f'<section id="errors"><h2>Errors</h2>{body or "<p class=none>none recorded</p>"}</section>'


def _resources(r: _Report) -> str:
    rows = [
        f"<tr><th>{_e(name)} <code>{_e(a.resource_id)}</code></th><td>{_e(a.requirement)}</td>"
        f"<td><code>{_e(a.amounts)}</code></td><td>{_when(a.allocated_at)}</td><td>{_e(a.status.value)} "
        f"{_when(a.ended_at) if a.ended_at else '(still held at the end of the log)'}</td>"
        f'<td class="num">{_secs(a.held_seconds) if a.ended_at else "-"}</td></tr>'
        for name, a in r.held
    ]
    body = (
        f"<p>Held by the run's session <code>{_e(r.snap.run.session_id)}</code> while the run went on.</p>"
        + _table(("resource", "requirement", "amounts", "granted", "status", "held"), rows)
        if rows
        else "<p class=none>none recorded</p>"
    )
    return f'<section id="resources"><h2>Resources held</h2>{body}</section>'


def _events(r: _Report) -> str:
    row_of = {e.event_id: e.position for e in r.events.entries}
    step_of_task = {tid: step for step, tid in r.snap.run.step_tasks.items()}
    rows = []
    for e in r.events.entries:
        step = step_of_task.get(e.aggregate_id)
        if e.causation_id in row_of:
            cause = f'<a href="#ev-{row_of[e.causation_id]}">{_e(e.causation_id)}</a>'
        else:
            cause = f'<span class="outside">{_e(e.causation_id)}</span>' if e.causation_id else "-"
        mine = f' data-step="{_e(step)}"' if step is not None else ""
        where = f'<span class="step">{_e(step)}</span>' if step is not None else _e(e.kind)
        rows.append(
            f'<tr id="ev-{e.position}"{mine}><td class="num">{e.position}</td>'
            f'<td class="num">{_clock(e.timestamp)}</td><td>{_e(e.type)}</td>'
            f'<td title="{_e(e.aggregate_id)}">{where}</td><td>{_e(e.actor)}</td><td class="id">{_e(e.event_id)}</td>'
            f'<td class="id">{cause}</td><td class="summary">{_e(e.summary)}</td></tr>'
        )
    head = ("pos", "at (UTC)", "type", "aggregate", "actor", "event id", "caused by", "details")
    table = _table(head, rows, ' id="event-table"')
    return (
        f'<section id="events"><h2>Events ({len(rows)})</h2><p class="hint">A causation that is an event of this run '
        "links to its row; others (a command, an event outside the run) are shown as text.</p>"
        f"{table}</section>"
    )


_LEGEND = ("completed", "retried", "failed", "cancelled", "skipped", "running")


def _page(r: _Report) -> str:
    run = r.snap.run
    legend = "".join(f'<span class="chip o-{o}"><i></i>{o}</span>' for o in _LEGEND)
    charts = (
        f'<section id="timeline-section"><h2>Timeline</h2><div class="legend">{legend}</div>'
        '<div id="timeline" class="chart" data-rendered="0"></div>'
        "<noscript><p class=none>The timeline and the graph are drawn by the page's script; "
        "the tables below hold the same facts.</p></noscript></section>"
        '<section id="dag-section"><h2>Graph</h2><div id="dag" class="chart" data-rendered="0"></div></section>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(run.workflow)} run {_e(run.id)}: {_e(run.status.value)}</title>"
        f"<style>{_asset('html_report.css')}</style></head><body>"
        f"{_header(r)}{charts}{_steps(r)}{_errors(r)}{_resources(r)}{_events(r)}"
        f"<footer>Rebuilt from the event log alone ({len(r.events)} events of this run).</footer>"
        f'<script type="application/json" id="run-data">{_run_data(r)}</script>'
        f"<script>{_asset('html_report.js')}</script></body></html>\n"
    )
