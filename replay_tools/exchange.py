"""Export and import of event logs: the whole store, or one workflow run with everything
it references, as JSON Lines; and the JSON Schema of one exported line.

**File format** (``codomyrmex-events``, format version 1): UTF-8 JSON Lines, one event
per line, in the source's log order, nothing else (no header; blank lines are ignored
on import)::

    {"format": "codomyrmex-events", "format_version": 1, "position": 17,
     "type": "task.started", "schema": 1, "stream_id": "task:t-1",
     "event": {"type": "task.started", "aggregate_id": "t-1", "version": 3, ...}}

``format`` / ``format_version``
    identify the file format (this module reads version 1 only).
``position``
    the event's global position in the *source* store (strictly increasing in a file;
    the target store gives its own positions on import).
``type`` / ``schema``
    the event's stable type name and the schema version of ``event``. An export
    writes every event at its current schema (the store upcasts on read); an import
    accepts older schemas and upcasts them with the registered upcasters.
``stream_id``
    ``"<kind>:<aggregate id>"``, redundant with ``event`` and checked against it.
``event``
    the event exactly as the store holds it: its msgspec JSON (envelope included) as
    an object. Its ``version`` (the position in its stream) is kept on import, so the
    store's optimistic concurrency guard rejects a file whose events are already there.

:func:`event_json_schema` gives the JSON Schema (draft 2020-12) of one line with the
*current* schema of every event type.

**Run exports** (``run_id=...``) hold what is needed for that run and its tasks to look
in the target's views exactly as in the source: the run's own stream; every event
correlated with the run (its steps' task events); the whole stream of every task the
run created; the ``workflow.defined`` events of its workflow up to the definition
version it ran; the whole stream of its session, if it had one.

**Import** is all or nothing as far as validation goes: every line is parsed,
checked (format, known type, envelope, payload decodes and upcasts, stream versions
contiguous and following what the target already holds, encodable) before the first
event is appended; then the events are appended in position order, in atomic batches.
A conflict found up front (the target already holds some of the streams' versions,
e.g. the same file imported twice) is reported naming the line, and nothing is
appended. Only a writer racing the import can make a later batch conflict after
earlier ones were committed; the error then says how many events were committed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import msgspec

import domain  # noqa: F401 -- registers every event type
from domain.errors import ConcurrencyConflictError, OrchestrationError, ValidationError
from domain.events import EVENT_TYPES, Event, Recorded, event_schema
from domain.workflow import WorkflowDefined, WorkflowRunCreated
from engine.store import EventStore
from replay_tools.history import gc_paused, opened_store

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ExportSummary",
    "ImportSummary",
    "event_json_schema",
    "export_events",
    "import_events",
]

FORMAT = "codomyrmex-events"
FORMAT_VERSION = 1
LINE_KEYS = ("format", "format_version", "position", "type", "schema", "stream_id", "event")
IMPORT_BATCH = 1000

StoreLike = EventStore | str
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: source positions of the first and last event (0 if none)."""

    events: int
    first_position: int
    last_position: int
    types: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportSummary:
    """What an import appended. ``first_position``/``last_position`` are the positions
    in the export's source; ``target_first``/``target_last`` those the target gave."""

    events: int
    first_position: int
    last_position: int
    target_first: int
    target_last: int
    types: Mapping[str, int] = field(default_factory=dict)
    upcast: int = 0  # events read at an older schema than the current one


class _Line(msgspec.Struct, frozen=True):
    format: str
    format_version: int
    position: int
    type: str
    schema: int
    stream_id: str
    event: msgspec.Raw


# -- helpers -------------------------------------------------------------------------


def _is_path(target: object) -> bool:
    return isinstance(target, str | os.PathLike)


# -- export --------------------------------------------------------------------------


def export_events(store_or_url: StoreLike, out: IO[str] | PathLike, *, run_id: str | None = None) -> ExportSummary:
    """Write the whole store (or, with ``run_id``, one workflow run and everything it
    references) to ``out`` (a text stream or a path) as ``codomyrmex-events`` JSON
    Lines. Raises :class:`ValidationError` (``RUN_NOT_FOUND``) for an unknown run."""
    with opened_store(store_or_url) as store, gc_paused():
        events: Iterable[Recorded] = store.read() if run_id is None else _run_events(store, run_id)
        if _is_path(out):
            assert isinstance(out, str | os.PathLike)
            with Path(out).open("wb") as stream:  # UTF-8, "\n" line ends
                return _write(store, events, stream, binary=True)
        assert not isinstance(out, str | os.PathLike)
        return _write(store, events, out, binary=False)


def _write(store: EventStore, events: Iterable[Recorded], out: IO[str] | IO[bytes], *, binary: bool) -> ExportSummary:
    """Write one line per event to a text or binary stream, a chunk of lines at a time.
    A line is the msgspec JSON of a :class:`_Line`, put together from its parts (the
    bytes msgspec gives: members in field order, no spaces; the tests check it)."""
    encode = store.codec.encode_decoded
    counts: dict[type[Event], int] = {}
    type_json: dict[type[Event], tuple[bytes, str]] = {}  # event class -> (JSON of its type, "<kind>:")
    chunk: list[bytes] = []
    first = last = 0

    def write() -> None:
        lines = b"".join(chunk)
        chunk.clear()
        if binary:
            cast("IO[bytes]", out).write(lines)
        else:
            cast("IO[str]", out).write(lines.decode("utf-8"))

    try:
        for recorded in events:
            event = recorded.event
            cls = type(event)
            known = type_json.get(cls)
            if known is None:
                known = type_json[cls] = (_json(event.type), f"{event.KIND}:")
                counts[cls] = 0
            data = encode(event)  # first: the event's own encoding errors come first
            position = recorded.position
            # event.stream_id is "<kind>:<aggregate id>"
            chunk.append(_LINE % (position, known[0], event.schema, _json(known[1] + event.aggregate_id), data))
            counts[cls] += 1
            first = first or position
            last = position
            if len(chunk) >= _WRITE_LINES:
                write()
    finally:
        if chunk:  # the lines before a failure are written, as one by one
            write()
    out.flush()
    types = {cls.TYPE: n for cls, n in counts.items()}
    return ExportSummary(events=sum(types.values()), first_position=first, last_position=last, types=types)


_json = msgspec.json.Encoder().encode
# One line: position, type, schema, stream id, event (the JSON of each, in that order).
_LINE = (
    b'{"format":' + _json(FORMAT).replace(b"%", b"%%") + b',"format_version":' + _json(FORMAT_VERSION)
    + b',"position":%d,"type":%s,"schema":%d,"stream_id":%s,"event":%s}\n'
)  # fmt: skip
_WRITE_LINES = 200


def _run_events(store: EventStore, run_id: str) -> Iterator[Recorded]:
    created: WorkflowRunCreated | None = None
    for recorded in store.read(types=[WorkflowRunCreated.TYPE]):
        if recorded.event.aggregate_id == run_id:
            assert isinstance(recorded.event, WorkflowRunCreated)
            created = recorded.event
            break
    if created is None:
        raise ValidationError(
            f"no workflow run {run_id!r} in {store.url}",
            code="RUN_NOT_FOUND",
            details={"run_id": run_id},
            suggestions=["List the runs with the workflow view (WorkflowManager.list_runs or the replay CLI)."],
        )
    streams = {f"workflow_run:{run_id}"}
    streams.update(f"task:{task_id}" for task_id in created.step_tasks.values())
    if created.session_id:
        streams.add(f"session:{created.session_id}")
    definition = f"workflow:{created.workflow}"
    for recorded in store.read():
        event = recorded.event
        stream = event.stream_id
        if (
            stream in streams
            or event.correlation_id == run_id
            or (
                stream == definition
                and isinstance(event, WorkflowDefined)
                and event.version <= created.definition_version
            )
        ):
            if event.KIND == "task":
                streams.add(stream)  # a correlated task: its whole stream (normally all correlated anyway)
            yield recorded


# -- import --------------------------------------------------------------------------


@dataclass
class _Parsed:
    line_no: int
    position: int
    event: Event
    upcast: bool


def import_events(store_or_url: StoreLike, source: IO[str] | PathLike) -> ImportSummary:
    """Validate every line of a ``codomyrmex-events`` file, then append its events to
    the store in position order (see the module docstring). Raises
    :class:`ValidationError` naming the line of the first problem, or
    :class:`ConcurrencyConflictError` if the store already holds some of the events;
    in both cases nothing was appended."""
    with opened_store(store_or_url) as store:
        if _is_path(source):
            assert isinstance(source, str | os.PathLike)
            with Path(source).open(encoding="utf-8") as stream:
                parsed = _parse(store, stream)
        else:
            assert not isinstance(source, str | os.PathLike)
            parsed = _parse(store, source)
        _check_streams(store, parsed)
        return _append(store, parsed)


def _invalid(line_no: int, message: str, **details: Any) -> ValidationError:
    return ValidationError(
        f"line {line_no}: {message}",
        code="INVALID_EXPORT",
        details={"line": line_no, **details},
        suggestions=["Import a file written by export_events (format codomyrmex-events, version 1)."],
    )


def _parse(store: EventStore, source: Iterable[str]) -> list[_Parsed]:
    decoder = msgspec.json.Decoder(_Line)
    codec = store.codec
    parsed: list[_Parsed] = []
    last_position = 0
    for line_no, text in enumerate(source, start=1):
        if not text.strip():
            continue
        try:
            line = decoder.decode(text)
        except msgspec.DecodeError as e:
            raise _invalid(line_no, f"not a {FORMAT} line: {e}") from e
        if line.format != FORMAT or line.format_version != FORMAT_VERSION:
            raise _invalid(
                line_no,
                f"format {line.format!r} version {line.format_version}; expected {FORMAT!r} version {FORMAT_VERSION}",
            )
        if line.position <= last_position:
            raise _invalid(line_no, f"position {line.position} does not follow {last_position}")
        last_position = line.position
        cls = EVENT_TYPES.get(line.type)
        if cls is None:
            raise _invalid(line_no, f"unknown event type {line.type!r}", type=line.type)
        try:
            raw = msgspec.json.decode(line.event)
        except msgspec.DecodeError as e:  # pragma: no cover -- Raw holds valid JSON
            raise _invalid(line_no, f"event is not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise _invalid(line_no, "event is not a JSON object")
        if raw.get("type", line.type) != line.type:
            raise _invalid(line_no, f"event type {raw.get('type')!r} differs from the line's type {line.type!r}")
        if raw.get("schema", 1) != line.schema:
            raise _invalid(line_no, f"event schema {raw.get('schema')!r} differs from the line's schema {line.schema}")
        raw["type"] = line.type
        try:
            event = codec.decode(line.type, msgspec.json.encode(raw))
            codec.encode(event)  # size and faithfulness limits of the target, before anything is appended
        except OrchestrationError as e:
            raise _invalid(line_no, f"{line.type} event: {e.message}") from e
        if event.stream_id != line.stream_id:
            raise _invalid(line_no, f"stream_id {line.stream_id!r} does not match the event's {event.stream_id!r}")
        parsed.append(_Parsed(line_no, line.position, event, upcast=line.schema < event.schema))
    return parsed


def _check_streams(store: EventStore, parsed: list[_Parsed]) -> None:
    """Per stream: versions contiguous in the file, following what the store holds."""
    expected: dict[str, int] = {}
    for item in parsed:
        event = item.event
        stream = event.stream_id
        if stream not in expected:
            held = store.recorder.select_events(stream, desc=True, limit=1)
            current = held[0].originator_version if held else 0
            if event.version <= current:
                raise ConcurrencyConflictError(
                    f"line {item.line_no}: version {event.version} of {stream} is already in {store.url} "
                    f"(was this file imported already?); nothing was imported",
                    details={"line": item.line_no, "stream_id": stream, "version": event.version},
                )
            expected[stream] = current + 1
        if event.version != expected[stream]:
            raise _invalid(
                item.line_no,
                f"version {event.version} of {stream} leaves a gap (expected {expected[stream]})",
                stream_id=stream,
            )
        expected[stream] += 1


def _append(store: EventStore, parsed: list[_Parsed]) -> ImportSummary:
    types: Counter[str] = Counter(item.event.type for item in parsed)
    target_first = target_last = 0
    done = 0
    for start in range(0, len(parsed), IMPORT_BATCH):
        batch = parsed[start : start + IMPORT_BATCH]
        try:
            recorded = store.append([item.event for item in batch])
        except ConcurrencyConflictError as e:  # another writer raced this import
            raise ConcurrencyConflictError(
                f"lines {batch[0].line_no}-{batch[-1].line_no}: {e.message}; "
                f"{done} event(s) of this file were committed before",
                details={**e.details, "line": batch[0].line_no, "committed": done},
            ) from e
        if recorded:
            target_first = target_first or recorded[0].position
            target_last = recorded[-1].position
        done += len(batch)
    return ImportSummary(
        events=len(parsed),
        first_position=parsed[0].position if parsed else 0,
        last_position=parsed[-1].position if parsed else 0,
        target_first=target_first,
        target_last=target_last,
        types=dict(types),
        upcast=sum(1 for item in parsed if item.upcast),
    )


# -- schema --------------------------------------------------------------------------


def event_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one export line, with the current schema of every
    registered event type as the ``event`` member."""
    events = event_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{FORMAT} line (format version {FORMAT_VERSION})",
        "type": "object",
        "required": list(LINE_KEYS),
        "additionalProperties": False,
        "properties": {
            "format": {"const": FORMAT},
            "format_version": {"const": FORMAT_VERSION},
            "position": {"type": "integer", "minimum": 1},
            "type": {"enum": sorted(EVENT_TYPES)},
            "schema": {"type": "integer", "minimum": 1},
            "stream_id": {"type": "string"},
            "event": {"anyOf": events["anyOf"]},
        },
        "$defs": events["$defs"],
    }
