"""Write the golden histories of the replay tools' tests (``tests/test_golden_replay.py``).

Each history is a small event log in the ``codomyrmex-events`` JSON Lines format that
:func:`replay_tools.exchange.export_events` writes:

``retry_run.jsonl``
    workflow ``ingest`` (fetch -> parse -> store): ``fetch`` fails its first attempt
    and succeeds on the retry; the run completes.
``skip_run.jsonl``
    workflow ``report``: ``validate`` fails both its attempts, so ``render`` and
    ``publish`` (which depend on it) are skipped, while ``archive`` (which does not)
    completes; the run fails.
``two_runs.jsonl``
    workflow ``resize`` run twice with different parameters: the first run completes,
    the second fails at ``resize`` (a negative width) and skips ``save``; ``load``
    takes longer and returns other data in the second run.
``broken_log.jsonl``
    a run of workflow ``chain`` (a -> b), then tampered with: ``b``'s ``task.ready`` is
    gone (a version gap, and ``task.started`` straight from pending), ``a`` is started
    again after it completed (an illegal transition), one causation id names an event
    that does not exist, and one line's event does not decode. ``import_events``
    refuses this file; the tests load it row by row.

The output is byte-stable: one worker thread, sequential ids, and a clock that only
moves when an action says how long it works (see :class:`GoldenClock`), so timestamps
and measured execution times are fixed. Tracebacks recorded with failures are cut to
their last line, so the files depend neither on where the repository lives nor on the
line numbers of the engine's source.

Run from the repository root::

    python tests/golden/make_golden.py            # rewrite the histories
    python tests/golden/make_golden.py --check    # exit 1 if a history would change

then rewrite the expected outputs beside them (the tests compare against those)::

    CODOMYRMEX_REGEN_GOLDEN=1 python -m pytest tests/test_golden_replay.py
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

if __name__ == "__main__":  # run as a script: import the repository's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from domain.events import Event
from engine.clock import Runtime, SequentialIds, SteppingClock
from engine.models import WorkflowExecution, WorkflowStep
from engine.registry import ActionRegistry
from engine.store import EventStore, open_store
from engine.task_orchestrator import TaskOrchestrator
from engine.workflow_manager import WorkflowManager
from replay_tools.exchange import FORMAT, FORMAT_VERSION, export_events

GOLDEN_DIR = Path(__file__).resolve().parent
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class GoldenClock(SteppingClock):
    """A :class:`SteppingClock` that does not step on readings (threads that merely
    look at the time, such as the orchestrator's timer, change nothing) and moves only
    when an action calls :meth:`work`: then both the wall clock and the monotonic clock
    advance by exactly that many seconds, so every timestamp and every measured
    execution time is fixed."""

    def __init__(self, start: datetime = START) -> None:
        super().__init__(start, step=timedelta(0))
        self._elapsed = 0.0
        self._work_lock = threading.Lock()

    def monotonic(self) -> float:
        with self._work_lock:
            return self._elapsed

    def work(self, seconds: float) -> None:
        """An action spends ``seconds`` (use binary fractions: 0.25, 0.5, 1.5)."""
        with self._work_lock:
            self._elapsed += seconds
        self.advance(timedelta(seconds=seconds))


class Bench:
    """One orchestrator (one worker) and a workflow manager on a ``memory://`` store,
    with the deterministic runtime and the golden actions."""

    def __init__(self, prefix: str) -> None:
        self.clock = GoldenClock()
        self.attempts: dict[str, int] = {}
        registry = ActionRegistry()
        registry.register("golden", "fetch", self.fetch)
        registry.register("golden", "parse", self.parse)
        registry.register("golden", "store", self.store_rows)
        registry.register("golden", "check", self.check)
        registry.register("golden", "load", self.load)
        registry.register("golden", "resize", self.resize)
        registry.register("golden", "step", self.step)
        self.orch = TaskOrchestrator(
            max_workers=1,
            store="memory://",
            registry=registry,
            runtime=Runtime(clock=self.clock, ids=SequentialIds(prefix), host="golden", pid=1),
        )
        self.wm = WorkflowManager(orchestrator=self.orch, workflows_dir=None, load_files=False)

    # -- the actions -------------------------------------------------------------

    def _attempt(self, key: str) -> int:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        return self.attempts[key]

    def fetch(self, url: str, fail_first: bool = False) -> dict[str, Any]:
        self.clock.work(0.25)
        if fail_first and self._attempt(url) == 1:
            raise ConnectionError(f"{url} refused the first connection")
        return {"url": url, "rows": [3, 1, 2]}

    def parse(self, payload: dict[str, Any]) -> list[int]:
        self.clock.work(0.125)
        return sorted(payload["rows"])

    def store_rows(self, rows: list[int], table: str) -> dict[str, Any]:
        self.clock.work(0.5)
        return {"table": table, "stored": len(rows)}

    def check(self, strict: bool) -> bool:
        self.clock.work(0.25)
        if strict:
            raise ValueError("3 of 7 records have no date")
        return True

    def load(self, path: str, size_mb: int) -> dict[str, Any]:
        self.clock.work(0.25 * size_mb)
        return {"path": path, "pixels": size_mb * 1024}

    def resize(self, image: dict[str, Any], width: int) -> dict[str, Any]:
        self.clock.work(0.125)
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        return {"path": image["path"], "width": width}

    def step(self, name: str) -> str:
        self.clock.work(0.125)
        return f"{name} done"

    # -- running -----------------------------------------------------------------

    def define(self, name: str, steps: list[WorkflowStep]) -> None:
        assert self.wm.create_workflow(name, steps, save=False)

    def run(self, name: str, parameters: dict[str, Any] | None = None) -> WorkflowExecution:
        return asyncio.run(self.wm.execute_workflow(name, parameters or {}, timeout=30))

    def events(self) -> list[Event]:
        self.orch.store.flush()
        return [r.event for r in self.orch.store.read()]

    def close(self) -> None:
        self.wm.close()
        self.orch.close()


def _step(
    name: str, action: str, parameters: dict[str, Any], deps: Sequence[str] = (), retries: int = 0
) -> WorkflowStep:
    return WorkflowStep(
        name=name,
        module="golden",
        action=action,
        parameters=parameters,
        dependencies=list(deps),
        max_retries=retries,
        retry_delay=0.0,
    )


def _scenario(prefix: str, play: Callable[[Bench], None]) -> list[Event]:
    bench = Bench(prefix)
    try:
        play(bench)
        return bench.events()
    finally:
        bench.close()


def retry_run(bench: Bench) -> None:
    bench.define(
        "ingest",
        [
            _step("fetch", "fetch", {"url": "{{source}}", "fail_first": True}, retries=2),
            _step("parse", "parse", {"payload": "{{fetch.output}}"}),
            _step("store", "store", {"rows": "{{parse.output}}", "table": "{{table}}"}),
        ],
    )
    result = bench.run("ingest", {"source": "https://data.example/rows.json", "table": "rows"})
    assert result.status.value == "completed", result


def skip_run(bench: Bench) -> None:
    bench.define(
        "report",
        [
            _step("extract", "fetch", {"url": "{{source}}"}),
            _step("validate", "check", {"strict": True}, deps=["extract"], retries=1),
            _step("render", "step", {"name": "render"}, deps=["validate"]),
            _step("publish", "step", {"name": "publish"}, deps=["render"]),
            _step("archive", "step", {"name": "archive"}, deps=["extract"]),
        ],
    )
    result = bench.run("report", {"source": "https://data.example/march.csv"})
    assert result.status.value == "failed", result


def two_runs(bench: Bench) -> None:
    bench.define(
        "resize",
        [
            _step("load", "load", {"path": "{{path}}", "size_mb": "{{size_mb}}"}),
            _step("resize", "resize", {"image": "{{load.output}}", "width": "{{width}}"}),
            _step("save", "step", {"name": "save"}, deps=["resize"]),
        ],
    )
    first = bench.run("resize", {"path": "cat.png", "size_mb": 1, "width": 640})
    second = bench.run("resize", {"path": "dog.png", "size_mb": 6, "width": -1})
    assert first.status.value == "completed", first
    assert second.status.value == "failed", second


def chain_run(bench: Bench) -> None:
    bench.define("chain", [_step("a", "step", {"name": "a"}), _step("b", "step", {"name": "b"}, deps=["a"])])
    result = bench.run("chain")
    assert result.status.value == "completed", result


UNDECODABLE_ATTEMPT = "twice"  # task.completed.attempt must be an integer


def tamper(events: list[Event]) -> tuple[list[Event], dict[str, Any]]:
    """The broken log: events of :func:`chain_run` with a row removed, one added, one
    causation id redirected; and the raw event of an undecodable row to add at the end."""
    run_id = next(e.aggregate_id for e in events if e.type == "workflow_run.created")
    a, b = f"task:{run_id}/a", f"task:{run_id}/b"
    out: list[Event] = []
    for event in events:
        if event.stream_id == b and event.type == "task.ready":
            continue  # the gap
        if event.stream_id == b and event.type == "task.completed":
            event = msgspec.structs.replace(event, causation_id=f"task:{run_id}/ghost@2")
        out.append(event)
        if event.stream_id == a and event.type == "task.completed":
            started = next(e for e in events if e.stream_id == a and e.type == "task.started")
            again = msgspec.structs.replace(
                started, version=event.version + 1, timestamp=event.timestamp, causation_id=event.event_id
            )
            out.append(again)  # started again after it completed
    last_a = max(e.version for e in out if e.stream_id == a)
    done = next(e for e in events if e.stream_id == a and e.type == "task.completed")
    raw = msgspec.to_builtins(msgspec.structs.replace(done, version=last_a + 1))
    raw["attempt"] = UNDECODABLE_ATTEMPT
    return out, raw


def _export(events: list[Event]) -> str:
    """``events`` as ``export_events`` writes them, from a store holding exactly them."""
    store: EventStore = open_store("memory://")
    try:
        for event in events:
            store.append([_plain_traceback(event)])
        out = io.StringIO()
        export_events(store, out)
        return out.getvalue()
    finally:
        store.close()


def _plain_traceback(event: Event) -> Event:
    metadata = getattr(event, "metadata", None)
    if isinstance(metadata, dict) and isinstance(metadata.get("traceback"), str):
        last = metadata["traceback"].strip().splitlines()[-1]
        return msgspec.structs.replace(event, metadata={**metadata, "traceback": last})
    return event


def _raw_line(position: int, raw: dict[str, Any]) -> str:
    line = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "position": position,
        "type": raw["type"],
        "schema": raw["schema"],
        "stream_id": f"task:{raw['aggregate_id']}",
        "event": raw,
    }
    return msgspec.json.encode(line).decode() + "\n"


def build() -> dict[str, str]:
    """File name -> its exact text."""
    files = {
        "retry_run.jsonl": _export(_scenario("ingest", retry_run)),
        "skip_run.jsonl": _export(_scenario("report", skip_run)),
        "two_runs.jsonl": _export(_scenario("resize", two_runs)),
    }
    broken, raw = tamper(_scenario("chain", chain_run))
    text = _export(broken)
    files["broken_log.jsonl"] = text + _raw_line(text.count("\n") + 1, raw)
    return files


def main(argv: Sequence[str]) -> int:
    check = "--check" in argv
    changed = []
    for name, text in build().items():
        path = GOLDEN_DIR / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(name)
        if not check:
            path.write_text(text, encoding="utf-8", newline="\n")
    verb = "would change" if check else "written"
    print(f"{verb}: {', '.join(changed)}" if changed else "every golden history is up to date")
    return 1 if check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
