"""``codomyrmex-orch``: the command line over the library (also ``python -m replay_tools``).

User mistakes (unknown ids, unreachable store, bad arguments) print one line and exit
non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from domain.errors import OrchestrationError
from replay_tools.commands import add_commands
from replay_tools.run_command import add_run_command

__all__ = ["main"]


def _version() -> str:
    try:
        return version("codomyrmex-orchestration")
    except PackageNotFoundError:
        return "0+unknown"


_ENVELOPE = {
    "type",
    "aggregate_id",
    "version",
    "timestamp",
    "actor",
    "correlation_id",
    "causation_id",
    "schema",
    "owner",
}


def _payload(event: Any, strip: str = "", width: int = 90) -> str:
    """The event's own fields as compact JSON-like text (envelope and empty values left out)."""
    fields = {k: v for k, v in msgspec.to_builtins(event).items() if k not in _ENVELOPE and v not in (None, [], {}, "")}
    text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
    if strip:
        text = text.replace(strip, "")
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from engine.config import default_store_url
    from engine.demo import run_demo
    from replay_tools.history import History

    store = args.store or default_store_url()
    prefix = datetime.now(UTC).strftime("demo-%Y%m%dT%H%M%S%f-")
    console.print(f"[bold]codomyrmex-orch demo[/] on [cyan]{store}[/]  (task ids start with {prefix})")
    orchestrator, tasks = run_demo(store, prefix)
    try:
        names = {t.id: t.name for t in tasks}
        table = Table(title="every event of the run, in log order", title_justify="left", show_edge=False)
        for col in ("pos", "task", "v", "event", "at (UTC)", "details"):
            table.add_column(col, overflow="fold")
        for recorded in History(orchestrator.store).task_events():
            e = recorded.event
            if e.aggregate_id not in names:
                continue  # tasks of earlier runs in the same store
            table.add_row(
                str(recorded.position),
                names[e.aggregate_id],
                str(e.version),
                e.type,
                e.timestamp.strftime("%H:%M:%S.%f")[:-3],
                _payload(e, strip=prefix),
            )
        console.print(table)
        final = Table(title="final state", title_justify="left", show_edge=False)
        for col in ("task", "status", "attempts", "result"):
            final.add_column(col, overflow="fold")
        for task in tasks:
            got = orchestrator.get_task(task.id)
            assert got is not None
            res = got.result
            shown = (
                ""
                if res is None
                else (json.dumps(res.data) if res.success else f"{res.error_type}: {res.error_message}")
            )
            attempts = res.metadata.get("attempt", res.metadata.get("abandoned_attempt", 0)) if res else 0
            final.add_row(task.name, got.status.value, str(attempts), shown[:70])
        console.print(final)
        stats = orchestrator.get_execution_stats()
        console.print(
            "[bold]execution stats (whole store):[/] "
            + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())
        )
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
    add_commands(sub)
    add_run_command(sub)
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
