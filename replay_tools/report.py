"""A readable report of one workflow run, as Markdown, from the log alone.

Sections: the run (workflow, definition version, status, duration, actor, session,
parameters), the steps (status, attempts, time, error), the DAG as a Mermaid block
coloured by outcome, the errors, and the run's events with their causation links.
Nothing is executed; the report reads the store once per part.
"""

from __future__ import annotations

import json
from typing import Any

from engine.store import EventStore
from replay_tools.diagrams import run_dag
from replay_tools.diff import load_run
from replay_tools.history import History
from replay_tools.timeline import timeline

__all__ = ["markdown_report"]


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(store_or_url: History | EventStore | str, run_id: str) -> str:
    """The Markdown report of run ``run_id`` (:class:`NotFoundError` if unknown)."""
    snap = load_run(store_or_url, run_id)
    run = snap.run
    lines = [
        f"# Run `{run.id}` of workflow `{run.workflow}`",
        "",
        "| | |",
        "|---|---|",
        f"| status | **{run.status.value}** |",
        f"| definition version | {run.definition_version} |",
        f"| started | {run.started_at.isoformat() if run.started_at else '-'} |",
        f"| ended | {run.ended_at.isoformat() if run.ended_at else '-'} |",
        f"| duration | {f'{run.duration:.3f} s' if run.duration is not None else '-'} |",
        f"| actor | {_cell(run.actor)} |",
        f"| session | {_cell(run.session_id or '-')} |",
        f"| parameters | `{_cell(run.parameters)}` |",
        "",
        "## Steps",
        "",
        "| step | status | attempts | time (s) | error |",
        "|---|---|---:|---:|---|",
    ]
    for step, task in snap.steps.items():
        if task is None:
            lines.append(f"| {_cell(step)} | unknown | 0 | - | |")
            continue
        res = task.result
        seconds = f"{res.execution_time:.4f}" if res is not None else "-"
        error = f"{res.error_type}: {res.error_message}" if res is not None and not res.success else ""
        lines.append(f"| {_cell(step)} | {task.status.value} | {task.attempts} | {seconds} | {_cell(error)} |")
    lines += ["", "## Graph", "", "```mermaid", run_dag(store_or_url, run_id), "```", ""]
    if run.errors:
        lines += ["## Errors", "", *[f"- {_cell(e)}" for e in run.errors], ""]
    events = timeline(store_or_url, run=run_id)
    lines += [
        f"## Events ({len(events)})",
        "",
        "| pos | at (UTC) | event | aggregate | v | caused by |",
        "|---:|---|---|---|---:|---|",
    ]
    for e in events.entries:
        at = e.timestamp.strftime("%H:%M:%S.%f")[:-3]
        lines.append(
            f"| {e.position} | {at} | {e.type} | {_cell(e.aggregate_id)} | {e.version} | {_cell(e.causation_id)} |"
        )
    return "\n".join(lines) + "\n"
