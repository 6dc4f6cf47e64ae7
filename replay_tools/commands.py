"""The CLI's store commands: ``runs``, ``timeline``, ``state``, ``schema``, ``diagram``,
``status``, ``health``, ``diff``, ``report``, ``rerun``, ``export``, ``import`` and ``verify``.
``verify``, ``health`` and ``rerun`` exit with status 3 when they find a problem (a
violation, an unhealthy log, a divergence). Each takes ``--store URL`` (default: the
embedded SQLite store of ``$CODOMYRMEX_ORCHESTRATION_DIR``) and ``--json``. Only
``import`` and ``rerun`` write, and never to the source store; for the others a store
that does not exist is an error, not a new empty file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

import domain  # noqa: F401  -- registers every event type for decoding
from domain.errors import NotFoundError, ValidationError
from domain.events import event_schema
from domain.lifecycles import LIFECYCLES
from engine.config import default_store_url
from engine.store import EventStore, open_store, sqlite_path
from projections.tasks import FAILURE_RATE_DEGRADED, FAILURE_RATE_UNHEALTHY
from projections.workflows import fold as fold_workflows
from replay_tools.diagrams import lifecycle_diagram, run_dag
from replay_tools.diff import diff_runs
from replay_tools.exchange import export_events, import_events
from replay_tools.history import History
from replay_tools.html_report import html_report
from replay_tools.report import markdown_report
from replay_tools.rerun import rerun
from replay_tools.state import state_at
from replay_tools.timeline import timeline
from replay_tools.verify import verify

__all__ = ["add_commands"]


def _store(args: argparse.Namespace) -> EventStore:
    url: str = args.store or default_store_url()
    if url.startswith("sqlite://"):
        path = Path(sqlite_path(url)).expanduser()
        if str(path) != ":memory:" and not path.is_file():
            raise NotFoundError(f"no event store at {path} (pass --store URL or set CODOMYRMEX_ORCHESTRATION_DIR)")
    return open_store(url)


def _print_json(console: Console, data: Any) -> None:
    console.print_json(msgspec.json.encode(data).decode(), highlight=False)


def _cmd_runs(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        view = fold_workflows(store.read(types=tuple(t for t in _types() if t.startswith("workflow"))))
    runs = sorted(view.runs.values(), key=lambda r: r.created_at)
    rows = [
        {
            "run_id": r.id,
            "workflow": r.workflow,
            "version": r.definition_version,
            "status": r.status.value,
            "started": r.started_at.isoformat() if r.started_at else None,
            "duration": r.duration,
            "session": r.session_id,
            "errors": len(r.errors),
        }
        for r in runs
    ]
    if args.json:
        _print_json(console, rows)
        return 0
    table = Table(title=f"workflow runs ({len(rows)})", title_justify="left", show_edge=False)
    for col in ("run_id", "workflow", "version", "status", "started", "duration", "errors"):
        table.add_column(col, overflow="fold")
    for row in rows:
        duration = f"{row['duration']:.3f}s" if row["duration"] is not None else "-"
        table.add_row(
            str(row["run_id"]),
            str(row["workflow"]),
            str(row["version"]),
            str(row["status"]),
            str(row["started"] or "-"),
            duration,
            str(row["errors"]),
        )
    console.print(table)
    return 0


def _types() -> list[str]:
    from domain.events import EVENT_TYPES

    return sorted(EVENT_TYPES)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise ValidationError(f"{name}: {value!r} is not an ISO 8601 time (e.g. 2026-11-25T14:02:00+00:00)") from e
    if parsed.tzinfo is None:
        raise ValidationError(f"{name}: {value!r} has no timezone; add one (e.g. +00:00 or Z)")
    return parsed


def _cmd_timeline(args: argparse.Namespace, console: Console) -> int:
    selectors = {"run": args.run, "task": args.task, "session": args.session, "project": args.project}
    with _store(args) as store:
        result = timeline(
            History(store),
            types=tuple(args.type or ()),
            actor=args.actor,
            since=_time(args.since, "--since"),
            until=_time(args.until, "--until"),
            **{k: v for k, v in selectors.items() if v},
        )
    if args.json:
        _print_json(console, [_entry(e) for e in result.entries])
        return 0
    table = Table(title=f"timeline ({len(result)} events)", title_justify="left", show_edge=False)
    for col in ("pos", "at (UTC)", "event", "aggregate", "v", "actor", "caused by", "details"):
        table.add_column(col, overflow="fold")
    for e in result.entries:
        table.add_row(str(e.position), e.timestamp.strftime("%H:%M:%S.%f")[:-3], e.type,
                      e.aggregate_id, str(e.version), e.actor, e.causation_id, e.summary)  # fmt: skip
    console.print(table)
    return 0


def _entry(e: Any) -> dict[str, Any]:
    return {
        "position": e.position,
        "event_id": e.event_id,
        "type": e.type,
        "aggregate_id": e.aggregate_id,
        "version": e.version,
        "timestamp": e.timestamp.isoformat(),
        "actor": e.actor,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "caused": list(e.caused),
        "summary": e.summary,
    }


def _cmd_state(args: argparse.Namespace, console: Console) -> int:
    at = args.at
    position: int | None = None
    when: datetime | None = None
    if at.isdigit():
        position = int(at)
    else:
        when = _time(at, "--at")
    with _store(args) as store:
        state = state_at(History(store), position=position, at=when)
    data: dict[str, Any] = {
        "position": state.position,
        "timestamp": state.timestamp.isoformat() if state.timestamp else None,
        "tasks": state.task_stats,
        "workflows": state.workflow_summary,
        "resources": state.resource_usage,
        "sessions": {s.id: s.status.value for s in state.sessions.sessions.values()},
        "projects": {p.name: p.status.value for p in state.projects.projects.values()},
    }
    if args.json:
        _print_json(console, data)
        return 0
    console.print(f"[bold]state at position {data['position']}[/] ({data['timestamp'] or 'empty log'})")
    _print_views(console, data)
    return 0


def _print_views(console: Console, data: dict[str, Any]) -> None:
    """The per-view lines ``state`` and ``status`` print."""
    for key in ("sessions", "workflows", "tasks", "projects"):
        console.print(f"[bold]{key}:[/] {json.dumps(data[key])}")
    for rid, usage in data["resources"].items():
        console.print(f"[bold]resource {rid}:[/] {json.dumps(usage)}")


def _cmd_schema(args: argparse.Namespace, console: Console) -> int:
    _print_json(console, event_schema())
    return 0


def _cmd_diagram(args: argparse.Namespace, console: Console) -> int:
    """A lifecycle's state diagram, or (for a run id) the run's DAG coloured by outcome."""
    if args.target in LIFECYCLES:
        text = lifecycle_diagram(args.target)
        kind = "lifecycle"
    else:
        with _store(args) as store:
            text = run_dag(store, args.target)
        kind = "run"
    if args.json:
        _print_json(console, {kind: args.target, "mermaid": text})
    else:
        console.print(text, highlight=False, markup=False)
    return 0


def _cmd_diff(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        result = diff_runs(store, args.run_a, args.run_b, timing_threshold=args.threshold)
    if args.json:
        _print_json(
            console,
            {
                "same_definition": result.same_definition,
                "empty": result.is_empty,
                "definition_versions": result.definition_versions,
                "steps_added": result.steps_added,
                "steps_removed": result.steps_removed,
                "outcome_changes": result.outcome_changes,
                "timing_changes": result.timing_changes,
                "lineage": result.lineage,
                "text": result.text(),
            },
        )
    else:
        console.print(result.text(), highlight=False, markup=False)
    return 0


def _status_data(store: EventStore) -> dict[str, Any]:
    state = state_at(History(store), position=store.max_position())
    sessions = state.sessions.sessions.values()
    return {
        "position": state.position,
        "timestamp": state.timestamp.isoformat() if state.timestamp else None,
        "sessions": {"total": len(sessions), "active": sum(1 for s in sessions if s.status.value == "active")},
        "workflows": {"definitions": len(state.workflows.definitions), **state.workflow_summary},
        "tasks": state.task_stats,
        "projects": {p.name: p.status.value for p in state.projects.projects.values()},
        "resources": state.resource_usage,
    }


def _cmd_status(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        data = _status_data(store)
    if args.json:
        _print_json(console, data)
        return 0
    console.print(f"[bold]store[/] position {data['position']} (last event {data['timestamp'] or '-'})")
    _print_views(console, data)
    return 0


def _cmd_health(args: argparse.Namespace, console: Console) -> int:
    """Health from the log alone: the log verifies, and the task failure rate (the same
    thresholds as the engine's health_check). Exit status 3 when unhealthy."""
    with _store(args) as store:
        report = verify(store)
        data = _status_data(store)
    issues = [f"{v.rule} @{v.position} {v.event_id}: {v.message}" for v in report.violations[:20]]
    tasks = data["tasks"]
    finished = tasks["completed"] + tasks["failed"]
    rate = tasks["failed"] / finished if finished >= 10 else 0.0
    status = "unhealthy" if not report.ok or rate >= FAILURE_RATE_UNHEALTHY else "healthy"
    if status == "healthy" and rate >= FAILURE_RATE_DEGRADED:
        status = "degraded"
    if rate >= FAILURE_RATE_DEGRADED:
        issues.append(f"task failure rate {rate:.0%} over {finished} finished tasks")
    out = {"overall_status": status, "events": report.events, "failure_rate": rate, "issues": issues}
    if args.json:
        _print_json(console, out)
    else:
        console.print(f"[bold]{status}[/]: {report.events} events, task failure rate {rate:.0%}")
        for issue in issues:
            console.print(f"  - {issue}", highlight=False, markup=False)
    return 3 if status == "unhealthy" else 0


def _cmd_rerun(args: argparse.Namespace, console: Console) -> int:
    """Re-execute a run from its recorded definition version and parameters into a
    separate store (default memory://) with the current actions: the built-ins, plus
    those registered by modules named with ``--import`` (imported explicitly)."""
    import importlib

    from engine.builtins import register_missing_builtins
    from engine.registry import DEFAULT_REGISTRY

    for module in args.imports or ():
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise NotFoundError(f"--import {module}: {e}") from e
    register_missing_builtins(DEFAULT_REGISTRY)
    with _store(args) as store:
        report = rerun(store, args.run, registry=DEFAULT_REGISTRY, target=args.target)
    if args.json:
        first = report.first_divergence
        _print_json(
            console,
            {
                "same": report.same,
                "original_run": report.original_run,
                "new_run": report.new_run,
                "target": report.target,
                "first_divergence": None if first is None else {
                    "step": first.step, "field": first.field, "original": first.original, "new": first.new
                },
                "divergences": len(report.divergences),
            },
        )  # fmt: skip
    else:
        console.print(report.text(), highlight=False, markup=False)
    return 0 if report.same else 3


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    if args.html:
        return _report_html(args, console)
    with _store(args) as store:
        text = markdown_report(store, args.run)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        if args.json:
            _print_json(console, {"run": args.run, "out": args.out, "bytes": len(text.encode())})
        else:
            console.print(f"wrote the report of {args.run} to {args.out}")
    elif args.json:
        _print_json(console, {"run": args.run, "markdown": text})
    else:
        sys.stdout.write(text)
    return 0


def _report_html(args: argparse.Namespace, console: Console) -> int:
    """``report RUN --html``: one self-contained page, to ``--out`` or ``<run>.html`` here."""
    with _store(args) as store:
        page = html_report(store, args.run)
    out = Path(args.out) if args.out else Path(re.sub(r"[^A-Za-z0-9._-]", "_", args.run) + ".html")
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ValidationError(f"cannot write the report to {out}: {e.strerror or e}") from e
    path = str(out.resolve())
    if args.json:
        _print_json(console, {"run": args.run, "out": path, "bytes": len(page.encode())})
    else:
        console.print(path, highlight=False, markup=False, soft_wrap=True)
    return 0


def _cmd_export(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        if args.out:
            summary = export_events(store, Path(args.out), run_id=args.run)
        else:
            summary = export_events(store, sys.stdout, run_id=args.run)
    if args.out:
        message = {"events": summary.events, "out": args.out, "types": summary.types}
        if args.json:
            _print_json(console, message)
        else:
            console.print(f"exported {summary.events} events to {args.out}")
    return 0


def _cmd_import(args: argparse.Namespace, console: Console) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise NotFoundError(f"no export file at {source}")
    url: str = args.store or default_store_url()
    with open_store(url) as store:  # importing may create the target store
        summary = import_events(store, source)
    data = {"events": summary.events, "target_first": summary.target_first, "target_last": summary.target_last,
            "upcast": summary.upcast}  # fmt: skip
    if args.json:
        _print_json(console, data)
    else:
        console.print(f"imported {summary.events} events into {url} (upcast from older schemas: {summary.upcast})")
    return 0


def _cmd_verify(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        report = verify(store)
    if args.json:
        _print_json(
            console,
            {
                "ok": report.ok,
                "events": report.events,
                "head": report.head,
                "unchained": report.unchained,
                "violations": [
                    {"position": v.position, "event_id": v.event_id, "rule": v.rule, "message": v.message}
                    for v in report.violations
                ],
            },
        )
    else:
        console.print(report.text(), highlight=False, markup=False)
    return 0 if report.ok else 3


def add_commands(sub: Any) -> None:
    """Add the inspection commands to the CLI's subparsers."""

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--store", help="store URL (default: SQLite in $CODOMYRMEX_ORCHESTRATION_DIR)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    runs = common(sub.add_parser("runs", help="list past workflow runs with status and duration"))
    runs.set_defaults(handler=_cmd_runs)

    tl = common(sub.add_parser("timeline", help="the events of a run, task, session, project or the whole store"))
    tl.add_argument("run", nargs="?", help="a workflow run id")
    tl.add_argument("--task")
    tl.add_argument("--session")
    tl.add_argument("--project")
    tl.add_argument("--type", action="append", help="only events of this type (repeatable)")
    tl.add_argument("--actor")
    tl.add_argument("--since", help="ISO time with timezone")
    tl.add_argument("--until", help="ISO time with timezone")
    tl.set_defaults(handler=_cmd_timeline)

    st = common(sub.add_parser("state", help="every view as it was at a position or a time"))
    st.add_argument("--at", required=True, help="a log position (integer) or an ISO time with timezone")
    st.set_defaults(handler=_cmd_state)

    schema = common(sub.add_parser("schema", help="JSON Schema of every event type"))
    schema.set_defaults(handler=_cmd_schema)

    export = common(sub.add_parser("export", help="events as JSON Lines: the whole store, or one run"))
    export.add_argument("run", nargs="?", help="a workflow run id (with everything it references)")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(handler=_cmd_export)

    imp = common(sub.add_parser("import", help="append an export's events to a store (validated first)"))
    imp.add_argument("file", help="a JSON Lines export")
    imp.set_defaults(handler=_cmd_import)

    rep = common(sub.add_parser("report", help="a Markdown or HTML report of a run: steps, graph, errors, events"))
    rep.add_argument("run")
    rep.add_argument("--html", action="store_true", help="one self-contained HTML page: timeline, graph, tables")
    rep.add_argument("--out", help="file to write (default: standard output; with --html, RUN.html here)")
    rep.set_defaults(handler=_cmd_report)

    rr = common(sub.add_parser("rerun", help="re-execute a run with today's actions and report the first divergence"))
    rr.add_argument("run")
    rr.add_argument("--target", default="memory://", help="store for the new run (never the source)")
    rr.add_argument("--import", dest="imports", action="append", help="a module that registers actions (repeatable)")
    rr.set_defaults(handler=_cmd_rerun)

    status = common(sub.add_parser("status", help="what the log says now: sessions, runs, tasks, projects, resources"))
    status.set_defaults(handler=_cmd_status)

    health = common(sub.add_parser("health", help="the log verifies and tasks mostly succeed (exit 3 if unhealthy)"))
    health.set_defaults(handler=_cmd_health)

    ver = common(sub.add_parser("verify", help="check the log: hash chain, versions, transitions, causation, decoding"))
    ver.set_defaults(handler=_cmd_verify)

    diagram = common(sub.add_parser("diagram", help="Mermaid diagram of a lifecycle, or of a run's DAG"))
    diagram.add_argument("target", help=f"a lifecycle ({', '.join(sorted(LIFECYCLES))}) or a run id")
    diagram.set_defaults(handler=_cmd_diagram)

    dif = common(sub.add_parser("diff", help="what differs between two workflow runs"))
    dif.add_argument("run_a")
    dif.add_argument("run_b")
    dif.add_argument("--threshold", type=float, default=0.5, help="timing differences above this many seconds")
    dif.set_defaults(handler=_cmd_diff)
