"""``codomyrmex-orch``: the command line over the library (also ``python -m replay_tools``).

User mistakes (unknown ids, unreachable store, bad arguments) print one line and exit
non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rich.console import Console
from rich.table import Table

from domain.errors import OrchestrationError

__all__ = ["main"]


def _version() -> str:
    try:
        return version("codomyrmex-orchestration")
    except PackageNotFoundError:
        return "0+unknown"


def _payload(event: Any) -> str:
    fields = {
        k: getattr(event, k)
        for k in event.__struct_fields__
        if k not in ("aggregate_id", "version", "timestamp", "actor", "correlation_id", "causation_id", "schema")
    }
    for noisy in ("parameters", "metadata"):
        if not fields.get(noisy):
            fields.pop(noisy, None)
    fields.pop("owner", None)
    text = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v not in (None, [], {}, ""))
    return text if len(text) < 110 else text[:107] + "..."


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from engine.config import default_store_url
    from engine.demo import run_demo
    from replay_tools.history import History

    store = args.store or default_store_url()
    prefix = datetime.now(UTC).strftime("demo-%Y%m%dT%H%M%S%f-")
    console.print(f"[bold]codomyrmex-orch demo[/] on [cyan]{store}[/]")
    orchestrator, tasks = run_demo(store, prefix)
    try:
        history = History(orchestrator.store)
        for task in tasks:
            table = Table(title=f"{task.name} ({task.id})", title_justify="left", show_edge=False)
            for col in ("pos", "v", "event", "at", "details"):
                table.add_column(col)
            for recorded in history.task_events(task.id):
                e = recorded.event
                table.add_row(
                    str(recorded.position),
                    str(e.version),
                    e.type,
                    e.timestamp.strftime("%H:%M:%S.%f")[:-3],
                    _payload(e),
                )
            console.print(table)
        summary = orchestrator.get_task_result(f"{prefix}summarize")
        if summary is not None and summary.success:
            console.print(f"[bold]source measured:[/] {summary.data}")
        stats = orchestrator.get_execution_stats()
        stats_table = Table(title="execution stats (whole store)", title_justify="left", show_edge=False)
        stats_table.add_column("key")
        stats_table.add_column("value", justify="right")
        for key, value in stats.items():
            stats_table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        console.print(stats_table)
        console.print(f"events in store: {orchestrator.store.max_position()} ({store})")
    finally:
        orchestrator.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codomyrmex-orch",
        description="Event-sourced project orchestration: run, inspect and replay.",
    )
    parser.add_argument("--version", action="version", version=f"codomyrmex-orch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run a small real task graph on the embedded store and print its events")
    demo.add_argument("--store", help="store URL (default: SQLite in $CODOMYRMEX_ORCHESTRATION_DIR)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args, console)
        return code
    except OrchestrationError as e:
        Console(stderr=True).print(f"[red]error:[/] {e.message}", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
