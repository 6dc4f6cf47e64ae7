"""``codomyrmex-orch run FILE.json [--param k=v ...]``: run a workflow file (the original
project's format) on a store, with a progress bar, and record it like any other run.
``resume RUN`` and ``fork RUN --from STEP [--param k=v ...]`` start a new run linked to
an ended one, reusing the recorded results of the steps that do not run again (see
``WorkflowManager.resume``/``fork``).

Parameters given as ``k=v`` are parsed as JSON when they are JSON (``n=3``,
``flags=[1,2]``, ``on=true``) and kept as strings otherwise (``path=./src``). Actions
are the built-ins plus those registered by the modules named with ``--import``.
Exit status: 0 when the run completed, 3 when it failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from domain.errors import NotFoundError, ValidationError

__all__ = ["add_run_command"]


def _params(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--param {pair!r}: use NAME=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from engine.models import WorkflowStep
    from engine.orchestration_engine import OrchestrationEngine
    from engine.registry import DEFAULT_REGISTRY
    from engine.workflow_files import parse_workflow_file

    path = Path(args.file)
    if not path.is_file():
        raise NotFoundError(f"no workflow file at {path}")
    name, specs = parse_workflow_file(path)
    params = _params(args.param)
    _import(args.imports)
    overrides: dict[str, Any] = {"store_url": args.store} if args.store else {}
    with OrchestrationEngine(registry=DEFAULT_REGISTRY, **overrides) as engine:
        steps = [
            WorkflowStep(
                name=s.name,
                module=s.module,
                action=s.action,
                parameters=dict(s.parameters),
                dependencies=list(s.dependencies),
                timeout=_step_timeout(s.timeout),
                max_retries=s.max_retries,
                retry_delay=s.retry_delay,
                soft_timeout=s.soft_timeout,
            )
            for s in specs
        ]
        engine.workflow_manager.create_workflow(name, steps, save=False)
        finished = threading.Semaphore(0)
        for event in ("task_completed", "task_failed", "task_skipped", "task_cancelled"):
            engine.register_event_handler(event, lambda _e, _d: finished.release())
        outcome: dict[str, Any] = {}

        def work() -> None:
            outcome.update(engine.execute_workflow(name, **params))

        worker = threading.Thread(target=work, name="engine-cli-run")
        with Progress(
            TextColumn(f"[bold]{name}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=args.json,
        ) as progress:  # fmt: skip
            bar = progress.add_task(name, total=len(steps))
            worker.start()
            while worker.is_alive() or finished.acquire(blocking=False):
                if finished.acquire(timeout=0.1):
                    progress.advance(bar)
            worker.join()
    return _print_outcome(args, console, outcome)


def _import(modules: list[str] | None) -> None:
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise NotFoundError(f"--import {module}: {e}") from e


def _print_outcome(args: argparse.Namespace, console: Console, outcome: dict[str, Any]) -> int:
    if args.json:
        keys = ("success", "run_id", "status", "errors", "execution_time", "results")
        console.print_json(json.dumps({k: outcome.get(k) for k in keys}, default=str))
    else:
        status = "completed" if outcome.get("success") else "failed"
        console.print(f"run {outcome.get('run_id')} {status} in {outcome.get('execution_time') or 0:.3f}s")
        for error in outcome.get("errors") or ([outcome["error"]] if outcome.get("error") else []):
            console.print(f"  - {error}", highlight=False, markup=False)
    return 0 if outcome.get("success") else 3


def _cmd_restart(args: argparse.Namespace, console: Console) -> int:
    from engine.orchestration_engine import OrchestrationEngine
    from engine.registry import DEFAULT_REGISTRY

    _import(args.imports)
    overrides: dict[str, Any] = {"store_url": args.store} if args.store else {}
    with OrchestrationEngine(registry=DEFAULT_REGISTRY, **overrides) as engine:
        if engine.workflow_manager.view.runs.get(args.run) is None:
            raise NotFoundError(f"no workflow run {args.run!r} in the store")
        if args.command == "resume":
            outcome = engine.resume_workflow(args.run, current_definition=args.current_definition)
        else:
            outcome = engine.fork_workflow(
                args.run, args.from_step, parameters=_params(args.param), current_definition=args.current_definition
            )
    if not outcome.get("success") and outcome.get("error_type") in ("ValidationError", "NotFoundError"):
        raise (NotFoundError if outcome["error_type"] == "NotFoundError" else ValidationError)(outcome["error"])
    return _print_outcome(args, console, outcome)


def add_run_command(sub: Any) -> None:
    run = sub.add_parser("run", help="run a workflow file (upstream JSON format) with a progress bar")
    run.add_argument("file", help="a workflow JSON file")
    run.add_argument("--param", action="append", help="NAME=VALUE (JSON or text; repeatable)")
    run.add_argument("--import", dest="imports", action="append", help="a module that registers actions (repeatable)")
    run.add_argument("--store", help="store URL (default: SQLite in $CODOMYRMEX_ORCHESTRATION_DIR)")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(handler=_cmd_run)
    for name, help_text in (
        ("resume", "run an ended run again from its failed steps, reusing the completed ones"),
        ("fork", "run a run again from a chosen step (--from), reusing the steps before it"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("run", help="the run id")
        if name == "fork":
            cmd.add_argument("--from", dest="from_step", required=True, help="the first step that runs again")
            cmd.add_argument("--param", action="append", help="NAME=VALUE overriding the run's parameters")
        cmd.add_argument("--current-definition", action="store_true", help="the workflow's latest version")
        cmd.add_argument("--import", dest="imports", action="append", help="a module that registers actions")
        cmd.add_argument("--store", help="store URL (default: SQLite in $CODOMYRMEX_ORCHESTRATION_DIR)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        cmd.set_defaults(handler=_cmd_restart, command=name)


def _step_timeout(seconds: float | None) -> Any:
    """A recorded step timeout for ``WorkflowStep`` (whose field is typed ``int``): whole
    seconds as ``int``, anything else as recorded (1.5 stays 1.5, not dropped)."""
    if seconds is None:
        return None
    return int(seconds) if float(seconds).is_integer() else seconds
