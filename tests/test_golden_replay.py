"""The replay tools on golden histories: small event logs committed under tests/golden/
(written by tests/golden/make_golden.py) are imported into a fresh store, and the
timeline, the state at a few positions and times, the diff of two runs and the verify
report must equal the expected JSON files beside them, exactly.

When a change of output is intended, rewrite the expected files and review their diff::

    CODOMYRMEX_REGEN_GOLDEN=1 python -m pytest tests/test_golden_replay.py

(after ``python tests/golden/make_golden.py`` if the histories themselves must change).
"""

from __future__ import annotations

import difflib
import importlib.util
import io
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

from domain.errors import StoreError, ValidationError
from engine.store import EventStore, open_store
from replay_tools.diff import ABSENT, RunDiff, diff_runs
from replay_tools.exchange import export_events, import_events
from replay_tools.state import State, state_at
from replay_tools.timeline import timeline
from replay_tools.verify import verify

GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN_ENV = "CODOMYRMEX_REGEN_GOLDEN"
REGEN = os.environ.get(REGEN_ENV) == "1"
PINNED_RULES = ("contiguous-versions", "legal-transition", "causation", "undecodable")
"""The verify rules the goldens pin; a rule added later is left out of the comparison."""

HISTORIES = ("retry_run", "skip_run", "two_runs")
STATE_PROBES: dict[str, list[int | str]] = {
    # a position, or an ISO timestamp for state_at(at=...); the end is always added
    "retry_run": [9, "2026-03-02T09:00:00.500000+00:00"],  # fetch's first attempt failed; fetch done
    "skip_run": [15, "2026-03-02T09:00:00.625000+00:00"],  # validate retries; archive done
    "two_runs": [16, "2026-03-02T09:00:02+00:00"],  # the first run ended; the second's load done
}


# -- the golden comparison ------------------------------------------------------------


def _absent(value: Any) -> Any:
    if value is ABSENT:
        return "<absent>"
    raise TypeError(f"no JSON form for {value!r}")


def to_json(value: Any) -> str:
    """Stable, readable JSON: builtins (datetimes as ISO text, enums as values), keys
    sorted, two-space indent, one trailing newline."""
    return json.dumps(msgspec.to_builtins(value, enc_hook=_absent), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def assert_golden(name: str, value: Any) -> None:
    """``value`` as JSON must equal ``tests/golden/<name>`` byte for byte; with
    ``CODOMYRMEX_REGEN_GOLDEN=1`` the file is (re)written instead."""
    path = GOLDEN / name
    actual = to_json(value)
    if REGEN:
        path.write_text(actual, encoding="utf-8", newline="\n")
        return
    if not path.exists():
        pytest.fail(
            f"{path} is missing; write it with {REGEN_ENV}=1 python -m pytest tests/test_golden_replay.py",
            pytrace=False,
        )
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{name} (expected)",
                tofile=f"{name} (actual)",
            )
        )
        pytest.fail(
            f"output differs from {path}:\n{diff}\n"
            f"If the change is intended: {REGEN_ENV}=1 python -m pytest tests/test_golden_replay.py, "
            "then review the diff.",
            pytrace=False,
        )


def test_assert_golden_fails_with_a_readable_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "GOLDEN", tmp_path)
    monkeypatch.setitem(globals(), "REGEN", False)
    (tmp_path / "x.json").write_text(to_json({"a": 1, "b": [1, 2]}), encoding="utf-8")
    assert_golden("x.json", {"b": [1, 2], "a": 1})  # key order does not matter
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_golden("x.json", {"a": 1, "b": [1, 3]})
    message = str(failed.value)
    assert "-    2\n" in message and "+    3\n" in message and REGEN_ENV in message
    with pytest.raises(pytest.fail.Exception, match="missing"):
        assert_golden("y.json", {})


# -- loading the histories -------------------------------------------------------------


@pytest.fixture
def fresh_store() -> Iterator[EventStore]:
    store = open_store("memory://")
    try:
        yield store
    finally:
        store.close()


def imported(store: EventStore, name: str) -> EventStore:
    summary = import_events(store, GOLDEN / f"{name}.jsonl")
    assert summary.events == store.max_position() > 0
    return store


def load_rows(store: EventStore, path: Path) -> None:
    """Append every line's event as it is, without the import's checks: events that
    decode go through the store; one that does not is inserted as a raw row."""
    for text in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        state = json.dumps(line["event"], separators=(",", ":")).encode()
        try:
            event = store.codec.decode(line["type"], state)
        except StoreError:
            store.recorder.insert_events(
                [StoredEvent(line["stream_id"], line["event"]["version"], line["type"], state)]
            )
        else:
            store.append([event])


def run_ids(store: EventStore) -> list[str]:
    return [r.event.aggregate_id for r in store.read(types=["workflow_run.created"])]


# -- what is compared --------------------------------------------------------------------


def state_json(state: State) -> dict[str, Any]:
    return {
        "position": state.position,
        "timestamp": state.timestamp,
        "tasks": state.tasks.snapshot(),
        "workflows": state.workflows.snapshot(),
        "sessions": state.sessions.snapshot(),
        "projects": state.projects.snapshot(),
        "resources": state.resources.snapshot(),
        "task_stats": state.task_stats,
        "workflow_summary": state.workflow_summary,
        "resource_usage": state.resource_usage,
    }


def diff_json(diff: RunDiff) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(diff, enc_hook=_absent)
    out["same_definition"] = diff.same_definition
    out["is_empty"] = diff.is_empty
    out["text"] = diff.text().splitlines()
    return out


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HISTORIES)
def test_timeline(name: str, fresh_store: EventStore) -> None:
    store = imported(fresh_store, name)
    assert_golden(
        f"{name}.timeline.json",
        {
            "store": list(timeline(store)),
            "runs": {run: list(timeline(store, run=run).event_ids) for run in run_ids(store)},
        },
    )


@pytest.mark.parametrize("name", HISTORIES)
def test_state_at(name: str, fresh_store: EventStore) -> None:
    store = imported(fresh_store, name)
    states: dict[str, Any] = {}
    for probe in STATE_PROBES[name]:
        if isinstance(probe, int):
            states[f"position {probe}"] = state_json(state_at(store, position=probe))
        else:
            states[f"at {probe}"] = state_json(state_at(store, at=datetime.fromisoformat(probe)))
    states["end"] = state_json(state_at(store, position=store.max_position()))
    assert_golden(f"{name}.state.json", states)


def test_diff_of_two_runs(fresh_store: EventStore) -> None:
    store = imported(fresh_store, "two_runs")
    first, second = run_ids(store)
    assert diff_runs(store, first, first).is_empty
    assert_golden("two_runs.diff.json", diff_json(diff_runs(store, first, second)))


@pytest.mark.parametrize("name", HISTORIES)
def test_the_histories_verify_clean(name: str, fresh_store: EventStore) -> None:
    report = verify(imported(fresh_store, name))
    assert [v for v in report.violations if v.rule in PINNED_RULES] == []
    assert report.events == fresh_store.max_position()


def test_verify_report_of_a_broken_log(fresh_store: EventStore) -> None:
    load_rows(fresh_store, GOLDEN / "broken_log.jsonl")
    report = verify(fresh_store)
    assert not report.ok
    found = [v for v in report.violations if v.rule in PINNED_RULES]
    assert {v.rule for v in found} == set(PINNED_RULES), "the broken log should break every pinned rule"
    assert_golden("broken_log.verify.json", {"violations": found})


def test_the_import_refuses_the_broken_log(fresh_store: EventStore) -> None:
    with pytest.raises(ValidationError, match=r"^line 14: task\.completed event: .*attempt"):
        import_events(fresh_store, GOLDEN / "broken_log.jsonl")
    assert fresh_store.max_position() == 0
    first_lines = "".join((GOLDEN / "broken_log.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:13])
    with pytest.raises(ValidationError, match=r"^line 11: version 3 of task:chain-000002/b leaves a gap"):
        import_events(fresh_store, io.StringIO(first_lines))
    assert fresh_store.max_position() == 0


@pytest.mark.parametrize("name", HISTORIES)
def test_export_of_the_import_is_the_file(name: str, fresh_store: EventStore) -> None:
    out = io.StringIO()
    export_events(imported(fresh_store, name), out)
    assert out.getvalue() == (GOLDEN / f"{name}.jsonl").read_text(encoding="utf-8")


def _make_golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_golden_writes_the_committed_histories() -> None:
    """The generator is deterministic and the committed files are its output."""
    built: dict[str, str] = _make_golden().build()
    assert sorted(built) == sorted(f"{n}.jsonl" for n in (*HISTORIES, "broken_log"))
    for name, text in built.items():
        committed = (GOLDEN / name).read_text(encoding="utf-8")
        assert text == committed, (
            f"{name} differs from what make_golden.py writes; run python tests/golden/make_golden.py"
        )
