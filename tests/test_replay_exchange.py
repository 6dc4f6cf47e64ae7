"""Export/import of event logs (replay_tools.exchange): whole-store and one-run exports
reproduce the source's views in an empty store (memory and SQLite); bad files are
rejected naming the line, with nothing appended; a second import conflicts; the JSON
Schema covers every type; and a hand-written golden v1 history is upcast on import.

A test-only event type ``test.exchange_probe`` (current schema 2: ``name`` renamed to
``label``, ``worker`` added) exercises the upcasting path end to end; it is registered
only for the tests that use it (fixture), so the global registry stays as the domain
defines it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

import domain.events as domain_events
from domain.errors import ConcurrencyConflictError, ValidationError
from domain.events import EVENT_TYPES, Event
from engine.models import WorkflowStep
from engine.orchestration_engine import OrchestrationEngine
from engine.registry import ActionRegistry
from engine.store import EventStore, open_store
from projections import projects, sessions, tasks, workflows
from replay_tools.exchange import (
    FORMAT,
    ImportSummary,
    event_json_schema,
    export_events,
    import_events,
)

GOLDEN = Path(__file__).parent / "golden" / "exchange_probe_v1.jsonl"
FOLDS = {"tasks": tasks.fold, "workflows": workflows.fold, "sessions": sessions.fold, "projects": projects.fold}


# -- the probe event type (schema 2) and its v1 -> v2 upcaster ---------------------------


class ExchangeProbe(Event, frozen=True, kw_only=True, tag="test.exchange_probe"):
    """v1: ``name``. v2: ``name`` renamed ``label``; ``worker`` added ("" for v1 events)."""

    KIND: ClassVar[str] = "test_probe"
    TYPE: ClassVar[str] = "test.exchange_probe"
    schema: int = 2
    label: str
    worker: str = ""


def probe_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    out["label"] = out.pop("name")
    out.setdefault("worker", "")
    return out


@pytest.fixture
def probe_type(monkeypatch: pytest.MonkeyPatch) -> type[ExchangeProbe]:
    monkeypatch.setitem(EVENT_TYPES, ExchangeProbe.TYPE, ExchangeProbe)
    monkeypatch.setitem(domain_events._UPCASTERS, ExchangeProbe.TYPE, {1: probe_v1_to_v2})
    return ExchangeProbe


# -- a real history ----------------------------------------------------------------------


def work(tag: str) -> str:
    return tag


def boom() -> None:
    raise RuntimeError("step broke")


def step(name: str, action: str = "work", deps: tuple[str, ...] = ()) -> WorkflowStep:
    params = {"tag": name} if action == "work" else {}
    return WorkflowStep(name=name, module="t", action=action, parameters=params, dependencies=list(deps), max_retries=0)


class Source:
    def __init__(self, url: str, ok_run: str, bad_run: str, other_run: str) -> None:
        self.url = url
        self.ok_run = ok_run
        self.bad_run = bad_run
        self.other_run = other_run


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """One engine history: a session with a successful and a failing run, a second
    definition version of the failing workflow run in a temporary session, and a
    project run. The engine is closed; the store is read from its SQLite file."""
    data_dir = tmp_path_factory.mktemp("source")
    registry = ActionRegistry()
    registry.register("t", "work", work)
    registry.register("t", "boom", boom)
    with OrchestrationEngine(config_file=None, data_dir=str(data_dir), registry=registry, max_workers=2) as engine:
        wm = engine.workflow_manager
        wm.create_workflow("ok", [step("a"), step("b", deps=("a",))], save=False)
        wm.create_workflow("bad", [step("x", "boom"), step("y", deps=("x",))], save=False)
        sid = engine.create_session("alice")
        ok = engine.execute_workflow("ok", session_id=sid)
        bad = engine.execute_workflow("bad", session_id=sid)
        assert ok["success"] and not bad["success"]
        engine.close_session(sid)
        wm.create_workflow("bad", [step("x", "boom"), step("z")], save=False)  # version 2, after the run
        other = engine.execute_workflow("bad")
        assert not other["success"]
        engine.project_manager.create_project("proj")
        project = engine.execute_project_workflow("proj", "ok")
        assert project["success"], project
        url = engine.store.url
    return Source(url, ok["run_id"], bad["run_id"], other["run_id"])


def views(store: EventStore) -> dict[str, dict[str, Any]]:
    """Every view's snapshot, without ``position`` (the target's positions are its own)."""
    out: dict[str, dict[str, Any]] = {}
    for name, fold in FOLDS.items():
        snap = fold(store.read()).snapshot()  # type: ignore[operator]
        snap.pop("position")
        if name == "sessions":
            for failure in snap["handler_failures"]:
                failure.pop("position")
        out[name] = snap
    return out


@pytest.fixture(params=["memory", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'target.db'}"
    with open_store(url) as store:
        yield store


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# -- whole store -------------------------------------------------------------------------


def test_whole_store_round_trip_reproduces_every_view(source: Source, target: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    with open_store(source.url) as src:
        exported = export_events(src, path)
        expected = views(src)
        last = src.max_position()
    assert exported.events == last and exported.first_position == 1 and exported.last_position == last
    assert exported.types["workflow_run.failed"] == 2 and exported.types["project.created"] == 1
    rows = lines_of(path.read_text(encoding="utf-8"))
    assert [r["position"] for r in rows] == list(range(1, last + 1))
    assert all(r["format"] == FORMAT and r["format_version"] == 1 for r in rows)
    assert all(r["event"]["type"] == r["type"] and r["event"]["schema"] == r["schema"] for r in rows)

    imported = import_events(target, str(path))
    assert imported == ImportSummary(
        events=last,
        first_position=1,
        last_position=last,
        target_first=1,
        target_last=last,
        types=dict(exported.types),
        upcast=0,
    )
    assert views(target) == expected
    assert expected["workflows"]["runs"][source.bad_run]["status"] == "failed"


def test_import_after_other_events_keeps_the_target_positions(source: Source) -> None:
    buf = io.StringIO()
    with open_store(source.url) as src:
        export_events(src, buf, run_id=source.other_run)
    with open_store("memory://") as store:
        export_ok = io.StringIO()
        with open_store(source.url) as src:
            export_events(src, export_ok, run_id=source.ok_run)
        first = import_events(store, io.StringIO(export_ok.getvalue()))
        second = import_events(store, io.StringIO(buf.getvalue()))
        # the two runs share no stream (other sessions, other workflows)
        assert second.target_first == first.target_last + 1
        assert second.first_position > 1  # the source's positions are reported as they were
        assert store.max_position() == first.events + second.events


# -- one run -----------------------------------------------------------------------------


def run_and_tasks(snapshot: dict[str, dict[str, Any]], run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    run = snapshot["workflows"]["runs"][run_id]
    return run, {tid: snapshot["tasks"]["tasks"][tid] for tid in run["step_tasks"].values()}


def test_one_failing_run_reproduces_the_run_and_its_tasks(source: Source, target: EventStore) -> None:
    buf = io.StringIO()
    with open_store(source.url) as src:
        summary = export_events(src, buf, run_id=source.bad_run)
        expected = views(src)
    import_events(target, io.StringIO(buf.getvalue()))
    got = views(target)
    assert run_and_tasks(got, source.bad_run) == run_and_tasks(expected, source.bad_run)
    assert got["workflows"]["runs"].keys() == {source.bad_run}
    assert set(got["tasks"]["tasks"]) == set(expected["workflows"]["runs"][source.bad_run]["step_tasks"].values())
    # the definition as it was when the run started (version 1), not the later version 2
    assert expected["workflows"]["definitions"]["bad"]["version"] == 2
    assert got["workflows"]["definitions"]["bad"]["version"] == 1
    assert "ok" not in got["workflows"]["definitions"]
    # its session, whole
    session_id = expected["workflows"]["runs"][source.bad_run]["session_id"]
    assert session_id and got["sessions"]["sessions"] == {session_id: expected["sessions"]["sessions"][session_id]}
    assert summary.types["workflow.defined"] == 1 and summary.types["session.created"] == 1


def test_a_later_run_in_its_own_session_and_unknown_runs(source: Source) -> None:
    buf = io.StringIO()
    with open_store(source.url) as src:
        summary = export_events(src, buf, run_id=source.other_run)
        expected = views(src)
        with pytest.raises(ValidationError, match="no workflow run 'nope'"):
            export_events(src, io.StringIO(), run_id="nope")
    assert summary.types["workflow.defined"] == 2 and summary.types["session.created"] == 1
    with open_store("memory://") as store:
        import_events(store, io.StringIO(buf.getvalue()))
        got = views(store)
    assert run_and_tasks(got, source.other_run) == run_and_tasks(expected, source.other_run)
    assert got["workflows"]["definitions"]["bad"] == expected["workflows"]["definitions"]["bad"]
    session_id = expected["workflows"]["runs"][source.other_run]["session_id"]  # the engine's temporary one
    assert session_id != expected["workflows"]["runs"][source.bad_run]["session_id"]
    assert got["sessions"]["sessions"] == {session_id: expected["sessions"]["sessions"][session_id]}


# -- rejected files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_export(source: Source) -> list[str]:
    buf = io.StringIO()
    with open_store(source.url) as src:
        export_events(src, buf, run_id=source.ok_run)
    return buf.getvalue().splitlines()


def corrupt(line: str, change: Any) -> str:
    row = json.loads(line)
    change(row)
    return json.dumps(row)


def _set(keys: tuple[str, ...], value: Any) -> Any:
    def change(row: dict[str, Any]) -> None:
        target = row
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _drop(key: str) -> Any:
    return lambda row: row.pop(key)


BAD_LINES = [
    ("bad-json", lambda line: line[: len(line) // 2], "not a codomyrmex-events line"),
    ("not-an-object", lambda line: "[1, 2]", "not a codomyrmex-events line"),
    ("unknown-type", lambda line: corrupt(line, _set(("type",), "task.exploded")), "unknown event type"),
    ("missing-event", lambda line: corrupt(line, _drop("event")), "missing required field `event`"),
    ("missing-format", lambda line: corrupt(line, _drop("format")), "missing required field `format`"),
    ("other-format", lambda line: corrupt(line, _set(("format_version",), 9)), "expected 'codomyrmex-events'"),
    ("payload-wrong-type", lambda line: corrupt(line, _set(("event", "version"), "two")), "Expected `int`"),
    ("payload-missing-field", lambda line: corrupt(line, lambda r: r["event"].pop("aggregate_id")), "aggregate_id"),
    ("payload-not-object", lambda line: corrupt(line, _set(("event",), [1])), "not a JSON object"),
    ("type-mismatch", lambda line: corrupt(line, _set(("event", "type"), "task.ready")), "differs from the line"),
    ("stream-mismatch", lambda line: corrupt(line, _set(("stream_id",), "task:someone-else")), "does not match"),
    ("position-order", lambda line: corrupt(line, _set(("position",), 1)), "does not follow"),
    ("version-gap", lambda line: corrupt(line, _set(("event", "version"), 99)), "leaves a gap"),
]


@pytest.mark.parametrize(("name", "damage", "message"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_a_bad_line_is_rejected_by_number_and_nothing_is_appended(
    run_export: list[str], name: str, damage: Any, message: str
) -> None:
    index = 5  # a line in the middle (a task or run event)
    lines = list(run_export)
    lines[index] = damage(lines[index])
    with open_store("memory://") as store:
        with pytest.raises(ValidationError) as caught:
            import_events(store, io.StringIO("\n".join(lines) + "\n"))
        assert store.max_position() == 0
    assert caught.value.message.startswith(f"line {index + 1}: "), caught.value.message
    assert message in caught.value.message
    assert caught.value.details["line"] == index + 1


def test_importing_twice_conflicts_and_duplicates_nothing(run_export: list[str], tmp_path: Path) -> None:
    text = "\n".join(run_export) + "\n"
    with open_store(f"sqlite:///{tmp_path / 't.db'}") as store:
        first = import_events(store, io.StringIO(text))
        with pytest.raises(ConcurrencyConflictError, match=r"^line 1: .*already in .*imported already"):
            import_events(store, io.StringIO(text))
        assert store.max_position() == first.events
        # the tail of the file, after the head was imported, conflicts too (run and task streams)
        with pytest.raises(ConcurrencyConflictError):
            import_events(store, io.StringIO("\n".join(run_export[3:]) + "\n"))
        assert store.max_position() == first.events


# -- schema ------------------------------------------------------------------------------


def test_json_schema_of_a_line_covers_every_type(run_export: list[str]) -> None:
    schema = event_json_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert set(schema["required"]) == set(json.loads(run_export[0]))
    assert schema["properties"]["type"]["enum"] == sorted(EVENT_TYPES)
    refs = {alt["$ref"].rsplit("/", 1)[1] for alt in schema["properties"]["event"]["anyOf"]}
    assert refs <= set(schema["$defs"])
    tags = {schema["$defs"][ref]["properties"]["type"]["enum"][0] for ref in refs}
    assert tags == set(EVENT_TYPES)
    for line in run_export:  # every member of a line is described; required event fields present
        row = json.loads(line)
        (ref,) = [r for r in refs if schema["$defs"][r]["properties"]["type"]["enum"] == [row["type"]]]
        assert set(schema["$defs"][ref].get("required", [])) <= set(row["event"])
        assert set(row["event"]) <= set(schema["$defs"][ref]["properties"])


# -- upcasting: the golden v1 history ----------------------------------------------------


def test_golden_v1_history_is_upcast_on_import(probe_type: type[ExchangeProbe], tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'g.db'}") as store:
        summary = import_events(store, GOLDEN)
        assert summary.upcast == 3 and summary.events == 3
        assert (summary.first_position, summary.last_position) == (3, 9)
        assert (summary.target_first, summary.target_last) == (1, 3)
        events = [r.event for r in store.read()]
        assert all(isinstance(e, probe_type) and e.schema == 2 and e.worker == "" for e in events)
        assert [e.label for e in events] == ["first", "second", "other"]  # type: ignore[attr-defined]
        assert events[1].causation_id == "test_probe:p-1@1" and events[2].actor == "system"
        # re-exported at the current schema; that file imports as is (no upcasting)
        out = io.StringIO()
        export_events(store, out)
    rows = lines_of(out.getvalue())
    assert {(r["schema"], r["event"]["schema"]) for r in rows} == {(2, 2)}
    assert "name" not in rows[0]["event"] and rows[0]["event"]["label"] == "first"
    with open_store("memory://") as again:
        assert import_events(again, io.StringIO(out.getvalue())).upcast == 0


def test_golden_file_needs_its_upcaster(probe_type: type[ExchangeProbe], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(domain_events._UPCASTERS, ExchangeProbe.TYPE, {})
    with open_store("memory://") as store:
        with pytest.raises(ValidationError, match=r"^line 1: test.exchange_probe event: .*label"):
            import_events(store, GOLDEN)
        assert store.max_position() == 0


def test_golden_v1_task_history_imports_at_the_current_schema() -> None:
    """A task's events as written at schema 1 (before any task event had a schema 2).
    Holds both before and after task.started moves to schema 2 (``worker``, upcast to
    ``""``): the view is the same, the started event is read at the current schema."""
    from domain.task import TaskStarted

    current = TaskStarted(aggregate_id="x", version=1, timestamp=datetime.now(UTC), attempt=1).schema
    with open_store("memory://") as store:
        summary = import_events(store, GOLDEN.with_name("task_v1.jsonl"))
        assert summary.events == 4 and summary.upcast == (1 if current > 1 else 0)
        started = [r.event for r in store.read(types=["task.started"])]
        assert len(started) == 1 and started[0].schema == current
        assert getattr(started[0], "worker", "") == ""
        record = tasks.fold(store.read()).tasks["legacy-1"]
    assert record.status.value == "completed" and record.attempts == 1
    assert record.result is not None and record.result.data == "count"
