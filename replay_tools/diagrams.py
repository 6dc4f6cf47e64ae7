"""Mermaid diagrams drawn from the code's tables and from the log.

* :func:`lifecycle_diagram`: the ``stateDiagram-v2`` of a lifecycle (task, session,
  workflow_run, ...), drawn from the same transition table the engine enforces;
* :func:`run_dag`: a ``flowchart LR`` of one workflow run's steps, with dependency
  edges and each node coloured by the step's outcome, rebuilt from the log alone.
"""

from __future__ import annotations

import re

from domain.errors import NotFoundError
from domain.lifecycles import LIFECYCLES
from engine.store import EventStore
from replay_tools.diff import load_run
from replay_tools.history import History

__all__ = ["OUTCOME_CLASSES", "lifecycle_diagram", "run_dag"]

OUTCOME_CLASSES: dict[str, str] = {
    "completed": "fill:#c8e6c9,stroke:#2e7d32,color:#1b5e20",
    "failed": "fill:#ffcdd2,stroke:#c62828,color:#b71c1c",
    "skipped": "fill:#e0e0e0,stroke:#757575,color:#424242",
    "cancelled": "fill:#ffe0b2,stroke:#ef6c00,color:#e65100",
    "active": "fill:#bbdefb,stroke:#1565c0,color:#0d47a1",
}
"""Mermaid ``classDef`` name -> style. ``active`` is pending, ready or running."""

_CLASS_OF_STATUS = {"completed": "completed", "failed": "failed", "skipped": "skipped", "cancelled": "cancelled"}


def lifecycle_diagram(name: str) -> str:
    """The Mermaid state diagram of lifecycle ``name``; :class:`NotFoundError` naming
    the known lifecycles if there is no such lifecycle."""
    lifecycle = LIFECYCLES.get(name)
    if lifecycle is None:
        known = sorted(LIFECYCLES)
        raise NotFoundError(
            f"no lifecycle {name!r}; known lifecycles: {', '.join(known)}",
            details={"kind": "lifecycle", "id": name, "known": known},
        )
    return lifecycle.mermaid()


def _node_ids(steps: list[str]) -> dict[str, str]:
    """Step name -> a unique Mermaid-safe node id (``s_`` + the name with every
    character outside ``[A-Za-z0-9_]`` replaced by ``_``, suffixed on collision)."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for step in steps:
        base = "s_" + re.sub(r"[^A-Za-z0-9_]", "_", step)
        node, n = base, 1
        while node in used:
            n += 1
            node = f"{base}_{n}"
        used.add(node)
        ids[step] = node
    return ids


def _label(text: str) -> str:
    """Text safe inside a Mermaid ``["..."]`` label (entity codes for markup)."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def run_dag(store_or_url: History | EventStore | str, run_id: str) -> str:
    """The Mermaid ``flowchart LR`` of run ``run_id``: one node per step, labelled
    ``step<br/>status (attempts)``, an edge from each dependency to its dependent, and
    a ``class`` per node by outcome (see :data:`OUTCOME_CLASSES`). Unknown run:
    :class:`NotFoundError`."""
    snap = load_run(store_or_url, run_id)
    steps = list(snap.steps)
    ids = _node_ids(steps)
    step_of_task = {tid: step for step, tid in snap.run.step_tasks.items()}
    lines = ["flowchart LR"]
    classes: dict[str, list[str]] = {}
    for step in steps:
        task = snap.steps[step]
        status = task.status.value if task is not None else "unknown"
        attempts = task.attempts if task is not None else 0
        lines.append(f'    {ids[step]}["{_label(step)}<br/>{status} ({attempts})"]')
        classes.setdefault(_CLASS_OF_STATUS.get(status, "active"), []).append(ids[step])
    for step in steps:
        task = snap.steps[step]
        for dep in task.dependencies if task is not None else []:
            if dep in step_of_task:
                lines.append(f"    {ids[step_of_task[dep]]} --> {ids[step]}")
    lines.extend(f"    classDef {name} {style}" for name, style in OUTCOME_CLASSES.items())
    lines.extend(f"    class {','.join(nodes)} {name}" for name, nodes in classes.items())
    return "\n".join(lines)
