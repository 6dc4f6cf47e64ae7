"""Events (``domain.events``), the task aggregate (``domain.task``) and the store codec
(``engine.codec``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec
import pytest

from domain import events as events_module
from domain import task
from domain.enums import ResourceType, TaskStatus
from domain.errors import CorruptHistoryError, IllegalTransitionError, OrchestrationError, StoreError, ValidationError
from domain.events import (
    EVENT_TYPES,
    Event,
    EventMeta,
    Recorded,
    event_schema,
    event_type_name,
    register_event_types,
    register_upcaster,
    upcasters_for,
)
from domain.task import (
    TASK_EVENT_TYPES,
    TRIGGER_OF,
    ResourceSpec,
    TaskAdopted,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskLateResultDiscarded,
    TaskReady,
    TaskRetryScheduled,
    TaskReused,
    TaskSkipped,
    TaskSoftTimeoutReached,
    TaskStarted,
    TaskState,
    evolve,
)
from engine.codec import DEFAULT_MAX_EVENT_BYTES, EventCodec

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
META = EventMeta(timestamp=T0, actor="alice", correlation_id="run-1", causation_id="cmd-1")
ENVELOPE: dict[str, Any] = {
    "timestamp": T0,
    "actor": "alice",
    "correlation_id": "run-1",
    "causation_id": "cmd-1",
}


# -- one plausible instance per registered event type ------------------------------------

# Hand-written samples of the task events, every field set away from its default.
TASK_SAMPLES: dict[type[Event], Event] = {
    TaskCreated: TaskCreated(
        aggregate_id="t-1",
        version=1,
        **ENVELOPE,
        name="count lines",
        module="static_analysis",
        action="count_lines",
        description="counts the lines",
        parameters={"path": "src/", "depth": 2, "nested": {"a": [1, 2.5, None, True]}},
        dependencies=["t-0"],
        priority=4,
        resources=[
            ResourceSpec(type=ResourceType.CPU, identifier="cpu-0", mode="write", timeout=2.5),
            ResourceSpec(type=ResourceType.FILE, identifier="/tmp/x"),
        ],
        timeout=30.0,
        max_retries=5,
        retry_delay=0.25,
        tags=["analysis", "fast"],
        metadata={"origin": "test"},
        owner="bob",
        soft_timeout=20.0,
    ),
    TaskReady: TaskReady(aggregate_id="t-1", version=2, **ENVELOPE),
    TaskStarted: TaskStarted(aggregate_id="t-1", version=3, **ENVELOPE, attempt=1, deadline=T0 + timedelta(seconds=30)),
    TaskCompleted: TaskCompleted(
        aggregate_id="t-1",
        version=4,
        **ENVELOPE,
        attempt=1,
        data={"lines": 120, "files": ["a.py", "b.py"]},
        execution_time=0.5,
        memory_usage=12.5,
        metadata={"host": "h1"},
    ),
    TaskRetryScheduled: TaskRetryScheduled(
        aggregate_id="t-1",
        version=4,
        **ENVELOPE,
        attempt=1,
        error_type="RuntimeError",
        error_message="boom",
        execution_time=0.1,
        retry_at=T0 + timedelta(seconds=1),
    ),
    TaskFailed: TaskFailed(
        aggregate_id="t-1",
        version=6,
        **ENVELOPE,
        attempt=2,
        error_type="TimeoutError",
        error_message="timed out",
        execution_time=30.0,
        metadata={"traceback": "..."},
    ),
    TaskCancelled: TaskCancelled(aggregate_id="t-1", version=4, **ENVELOPE, reason="user", abandoned_attempt=1),
    TaskSkipped: TaskSkipped(
        aggregate_id="t-2", version=2, **ENVELOPE, dependency="t-1", dependency_status=TaskStatus.FAILED
    ),
    TaskLateResultDiscarded: TaskLateResultDiscarded(
        aggregate_id="t-1", version=5, **ENVELOPE, attempt=1, success=False, execution_time=31.0, error_type="X"
    ),
    TaskSoftTimeoutReached: TaskSoftTimeoutReached(
        aggregate_id="t-1", version=4, **ENVELOPE, attempt=1, soft_timeout=20.0
    ),
    TaskAdopted: TaskAdopted(aggregate_id="t-1", version=6, **ENVELOPE, owner="engine-b", previous_owner="engine-a"),
    TaskReused: TaskReused(aggregate_id="t-9", version=2, **ENVELOPE, source="run-1/t-9", data={"rows": 3}),
}


def _value_for(t: msgspec.inspect.Type) -> Any:
    """A plausible non-default value of a msgspec type (for event types added later)."""
    mi = msgspec.inspect
    if isinstance(t, mi.StrType):
        return "some-text"
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.IntType):
        return 7
    if isinstance(t, mi.FloatType):
        return 1.5
    if isinstance(t, mi.DateTimeType):
        return T0
    if isinstance(t, mi.EnumType):
        return list(t.cls)[-1]
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.AnyType):
        return {"k": [1, "two", None, 3.5]}
    if isinstance(t, mi.ListType):
        return [_value_for(t.item_type)]
    if isinstance(t, mi.DictType):
        return {"key": _value_for(t.value_type)}
    if isinstance(t, mi.UnionType):
        non_none = [u for u in t.types if not isinstance(u, mi.NoneType)]
        return _value_for(non_none[0]) if non_none else None
    if isinstance(t, mi.StructType):
        return t.cls(**{f.name: _value_for(f.type) for f in t.fields})
    raise AssertionError(f"no sample value for {t!r}: extend _value_for")


def generic_event(cls: type[Event]) -> Event:
    """An instance built from the field types alone, every field set; ``schema`` keeps
    the class default (the current schema, which decodes without upcasting)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    values = {f.name: _value_for(f.type) for f in info.fields if f.name != "schema"}
    values.update(aggregate_id="agg-1", version=3, timestamp=T0)
    return cls(**values)


def sample_event(cls: type[Event]) -> Event:
    return TASK_SAMPLES[cls] if cls in TASK_SAMPLES else generic_event(cls)


REGISTERED = [pytest.param(name, id=name) for name in sorted(EVENT_TYPES)]


@pytest.fixture
def codec() -> EventCodec:
    return EventCodec()


def test_task_events_are_registered() -> None:
    assert len(REGISTERED) >= len(TASK_EVENT_TYPES)
    for cls in TASK_EVENT_TYPES:
        assert EVENT_TYPES[event_type_name(cls)] is cls
    assert set(TASK_SAMPLES) == set(TASK_EVENT_TYPES)
    assert sorted(cls.TYPE for cls in TASK_EVENT_TYPES) == [
        "task.adopted",
        "task.cancelled",
        "task.completed",
        "task.created",
        "task.failed",
        "task.late_result_discarded",
        "task.ready",
        "task.retry_scheduled",
        "task.reused",
        "task.skipped",
        "task.soft_timeout_reached",
        "task.started",
    ]


@pytest.mark.parametrize("name", REGISTERED)
def test_registered_type_names(name: str) -> None:
    cls = EVENT_TYPES[name]
    assert issubclass(cls, Event)
    assert name == cls.TYPE
    assert event_type_name(cls) == name
    assert cls.KIND
    assert name.startswith(f"{cls.KIND}.")


@pytest.mark.parametrize("name", REGISTERED)
def test_round_trip_every_registered_type(codec: EventCodec, name: str) -> None:
    cls = EVENT_TYPES[name]
    event = sample_event(cls)
    data = codec.encode(event)
    assert isinstance(data, bytes)
    assert json.loads(data)["type"] == name
    decoded = codec.decode(name, data)
    assert type(decoded) is cls
    assert decoded == event
    assert decoded.timestamp.tzinfo is not None
    assert decoded.timestamp == T0
    assert codec.encode(decoded) == data
    # a second decode goes through the cached decoder and agrees
    assert codec.decode(name, data) == event


@pytest.mark.parametrize("name", REGISTERED)
def test_round_trip_generic_values(codec: EventCodec, name: str) -> None:
    cls = EVENT_TYPES[name]
    event = generic_event(cls)
    assert codec.decode(name, codec.encode(event)) == event


def test_round_trip_keeps_enum_and_nested_struct_types(codec: EventCodec) -> None:
    created = codec.decode("task.created", codec.encode(TASK_SAMPLES[TaskCreated]))
    assert isinstance(created, TaskCreated)
    assert created.resources[0] == ResourceSpec(type=ResourceType.CPU, identifier="cpu-0", mode="write", timeout=2.5)
    assert created.resources[0].type is ResourceType.CPU
    skipped = codec.decode("task.skipped", codec.encode(TASK_SAMPLES[TaskSkipped]))
    assert isinstance(skipped, TaskSkipped)
    assert skipped.dependency_status is TaskStatus.FAILED


def test_encoded_envelope(codec: EventCodec) -> None:
    doc = json.loads(codec.encode(TASK_SAMPLES[TaskReady]))
    assert doc == {
        "type": "task.ready",
        "aggregate_id": "t-1",
        "version": 2,
        "timestamp": "2024-05-06T07:08:09.123456Z",
        "actor": "alice",
        "correlation_id": "run-1",
        "causation_id": "cmd-1",
        "schema": 1,
    }


def test_envelope_defaults() -> None:
    event = TaskReady(aggregate_id="t", version=2, timestamp=T0)
    assert event.actor == "system"
    assert event.correlation_id == ""
    assert event.causation_id == ""
    assert event.schema == 1


def test_event_identity_properties() -> None:
    event = TaskStarted(aggregate_id="t-42", version=3, timestamp=T0, attempt=1)
    assert event.type == "task.started"
    assert event.event_id == "task:t-42@3"
    assert event.stream_id == "task:t-42"


@pytest.mark.parametrize("name", REGISTERED)
def test_event_identity_for_every_type(name: str) -> None:
    event = sample_event(EVENT_TYPES[name])
    kind = EVENT_TYPES[name].KIND
    assert event.type == name
    assert event.stream_id == f"{kind}:{event.aggregate_id}"
    assert event.event_id == f"{kind}:{event.aggregate_id}@{event.version}"


def test_events_are_frozen() -> None:
    event = TASK_SAMPLES[TaskReady]
    with pytest.raises(AttributeError):
        event.version = 9  # type: ignore[misc]


def test_recorded_wraps_event() -> None:
    rec = Recorded(12, TASK_SAMPLES[TaskReady])
    assert rec.position == 12
    assert rec.event is TASK_SAMPLES[TaskReady]


# -- registration ------------------------------------------------------------------------


class _NameClash(Event, frozen=True, kw_only=True, tag="task.ready"):
    KIND: ClassVar[str] = "task"


class _Untagged(Event, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "test"


def test_register_same_class_again_is_a_no_op() -> None:
    before = dict(EVENT_TYPES)
    register_event_types(TaskReady)
    assert dict(EVENT_TYPES) == before


def test_register_name_clash_raises_and_changes_nothing() -> None:
    before = dict(EVENT_TYPES)
    with pytest.raises(TypeError, match=r"task\.ready"):
        register_event_types(_NameClash)
    assert dict(EVENT_TYPES) == before
    assert EVENT_TYPES["task.ready"] is TaskReady
    assert _NameClash.TYPE == ""


def test_explicitly_tagged_type_name() -> None:
    assert event_type_name(TaskReady) == "task.ready"
    assert event_type_name(_NameClash) == "task.ready"


def test_untagged_type_has_no_stable_name() -> None:
    # Only event_type_name is called: register_event_types(_Untagged) would succeed today
    # and leave '_Untagged' in the global EVENT_TYPES.
    with pytest.raises(TypeError, match="_Untagged"):
        event_type_name(_Untagged)


def test_upcasters_for_unknown_type_is_empty() -> None:
    assert dict(upcasters_for("test.never_registered")) == {}


# -- schema ------------------------------------------------------------------------------


def test_event_schema_covers_every_registered_type() -> None:
    schema = event_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    refs = [entry["$ref"] for entry in schema["anyOf"]]
    assert len(refs) == len(EVENT_TYPES)
    defs = schema["$defs"]
    tags: dict[str, str] = {}
    for ref in refs:
        assert ref.startswith("#/$defs/")
        definition = defs[ref.removeprefix("#/$defs/")]
        assert "type" in definition["required"]
        (tag,) = definition["properties"]["type"]["enum"]
        tags[tag] = ref
        for field in ("aggregate_id", "version", "timestamp"):
            assert field in definition["required"]
    assert set(tags) == set(EVENT_TYPES)
    for cls in EVENT_TYPES.values():
        assert cls.__name__ in defs


def test_event_schema_of_chosen_types() -> None:
    schema = event_schema([TaskReady, TaskSkipped])
    assert schema["anyOf"] == [{"$ref": "#/$defs/TaskReady"}, {"$ref": "#/$defs/TaskSkipped"}]
    assert "TaskCreated" not in schema["$defs"]
    assert "TaskStatus" in schema["$defs"]  # referenced by TaskSkipped
    json.dumps(schema)


# -- encode: size limit and serializability ---------------------------------------------


def _completed(data: Any) -> TaskCompleted:
    return TaskCompleted(aggregate_id="t-1", version=4, timestamp=T0, attempt=1, data=data)


def test_default_limit() -> None:
    assert EventCodec().max_event_bytes == DEFAULT_MAX_EVENT_BYTES == 4 * 1024 * 1024


def test_oversized_event_raises_value_too_large() -> None:
    event = _completed("x" * 1000)
    size = len(EventCodec().encode(event))
    codec = EventCodec(max_event_bytes=size - 1)
    with pytest.raises(ValidationError) as info:
        codec.encode(event)
    err = info.value
    assert err.error_code == "VALUE_TOO_LARGE"
    assert err.details == {"size": size, "limit": size - 1}
    assert "task.completed" in err.message
    assert "'t-1'" in err.message
    assert isinstance(err, ValueError)


def test_event_exactly_at_the_limit_is_accepted() -> None:
    event = _completed("x" * 1000)
    size = len(EventCodec().encode(event))
    assert EventCodec(max_event_bytes=size).encode(event) == EventCodec().encode(event)


def test_default_limit_rejects_a_five_mib_payload() -> None:
    with pytest.raises(ValidationError) as info:
        EventCodec().encode(_completed("x" * (5 * 1024 * 1024)))
    assert info.value.error_code == "VALUE_TOO_LARGE"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(object(), id="object"),
        pytest.param({"f": lambda: None}, id="lambda-in-dict"),
        pytest.param([1j], id="complex-in-list"),
        pytest.param({(1, 2): "tuple key"}, id="tuple-key"),
    ],
)
def test_non_serializable_payload_raises(codec: EventCodec, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        codec.encode(_completed(value))
    err = info.value
    assert err.error_code == "NOT_SERIALIZABLE"
    assert isinstance(err.__cause__, TypeError)
    assert "task.completed" in err.message
    assert err.suggestions


def test_non_serializable_parameter_in_task_created(codec: EventCodec) -> None:
    event = task.create("t-9", META, name="n", module="m", action="a", parameters={"when": object()})
    with pytest.raises(ValidationError) as info:
        codec.encode(event)
    assert info.value.error_code == "NOT_SERIALIZABLE"


# -- decode: unknown and corrupt --------------------------------------------------------


def test_unknown_topic_raises_store_error(codec: EventCodec) -> None:
    data = codec.encode(TASK_SAMPLES[TaskReady])
    with pytest.raises(StoreError) as info:
        codec.decode("task.teleported", data)
    assert info.value.error_code == "UNKNOWN_EVENT_TYPE"
    assert "task.teleported" in info.value.message
    assert isinstance(info.value, OrchestrationError)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"type":"task.ready","aggregate_id":"t","version":2}', id="missing-timestamp"),
        pytest.param(
            b'{"type":"task.ready","aggregate_id":"t","version":"two","timestamp":"2024-01-01T00:00:00Z"}',
            id="wrong-field-type",
        ),
        pytest.param(
            b'{"type":"task.started","aggregate_id":"t","version":2,"timestamp":"2024-01-01T00:00:00Z","attempt":1}',
            id="other-type-tag",
        ),
        pytest.param(
            b'{"type":"task.ready","aggregate_id":"t","version":2,"timestamp":"yesterday"}',
            id="bad-timestamp",
        ),
    ],
)
def test_schema_mismatch_raises_corrupt_event(codec: EventCodec, payload: bytes) -> None:
    with pytest.raises(StoreError) as info:
        codec.decode("task.ready", payload)
    assert info.value.error_code == "CORRUPT_EVENT"
    assert "task.ready" in info.value.message


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b'{"type":"task.ready","aggregate_id":"t","ver', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe garbage", id="binary"),
    ],
)
def test_malformed_json_raises_corrupt_event(codec: EventCodec, payload: bytes) -> None:
    with pytest.raises(StoreError) as info:
        codec.decode("task.ready", payload)
    assert info.value.error_code == "CORRUPT_EVENT"


def test_decode_accepts_missing_defaults(codec: EventCodec) -> None:
    event = codec.decode(
        "task.ready", b'{"type":"task.ready","aggregate_id":"t","version":2,"timestamp":"2024-01-01T00:00:00Z"}'
    )
    assert event == TaskReady(aggregate_id="t", version=2, timestamp=datetime(2024, 1, 1, tzinfo=UTC))


# -- upcasting, with test-only event types ---------------------------------------------


class UpcastProbe(Event, frozen=True, kw_only=True, tag="test.upcast_probe"):
    """Schema 2 stores ``full_name``; schema 1 stored ``first`` and ``last``."""

    KIND: ClassVar[str] = "probe"

    full_name: str
    schema: int = 2


class UpcastChainProbe(Event, frozen=True, kw_only=True, tag="test.upcast_chain_probe"):
    """Schema 3 stores ``size_bytes`` (int); 2 stored ``size_kib``; 1 stored ``size`` as text."""

    KIND: ClassVar[str] = "probe"

    size_bytes: int
    schema: int = 3


PROBE_TYPES = (UpcastProbe, UpcastChainProbe)


def _probe_1_to_2(raw: dict[str, Any]) -> dict[str, Any]:
    raw = dict(raw)
    raw["full_name"] = f"{raw.pop('first')} {raw.pop('last')}"
    return raw


@pytest.fixture
def upcast_calls() -> Iterator[list[tuple[str, int]]]:
    """Registers the probe types and their upcasters; removes them afterwards so that
    the global registries are as before."""
    calls: list[tuple[str, int]] = []

    def chain_1_to_2(raw: dict[str, Any]) -> dict[str, Any]:
        calls.append(("chain", 1))
        return {**raw, "size_kib": float(raw.pop("size"))}

    def chain_2_to_3(raw: dict[str, Any]) -> dict[str, Any]:
        calls.append(("chain", 2))
        raw["size_bytes"] = int(raw.pop("size_kib") * 1024)
        return raw

    def probe_1_to_2(raw: dict[str, Any]) -> dict[str, Any]:
        calls.append(("probe", 1))
        return _probe_1_to_2(raw)

    for cls in PROBE_TYPES:
        assert cls.__struct_config__.tag not in EVENT_TYPES
    register_event_types(*PROBE_TYPES)
    register_upcaster("test.upcast_probe", 1, probe_1_to_2)
    register_upcaster("test.upcast_chain_probe", 1, chain_1_to_2)
    register_upcaster("test.upcast_chain_probe", 2, chain_2_to_3)
    try:
        yield calls
    finally:
        for cls in PROBE_TYPES:
            name = event_type_name(cls)
            EVENT_TYPES.pop(name, None)
            events_module._UPCASTERS.pop(name, None)


def _doc(type_name: str, **fields: Any) -> bytes:
    base = {"type": type_name, "aggregate_id": "p-1", "version": 1, "timestamp": "2024-05-06T07:08:09Z"}
    return json.dumps({**base, **fields}).encode()


def test_upcaster_turns_schema_1_into_schema_2(upcast_calls: list[tuple[str, int]]) -> None:
    assert set(upcasters_for("test.upcast_probe")) == {1}
    codec = EventCodec()
    event = codec.decode("test.upcast_probe", _doc("test.upcast_probe", first="Ada", last="Lovelace"))
    assert isinstance(event, UpcastProbe)
    assert event.full_name == "Ada Lovelace"
    assert event.schema == 2
    assert event.timestamp == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert event.event_id == "probe:p-1@1"
    assert upcast_calls == [("probe", 1)]


def test_upcaster_with_explicit_schema_1(upcast_calls: list[tuple[str, int]]) -> None:
    codec = EventCodec()
    event = codec.decode("test.upcast_probe", _doc("test.upcast_probe", schema=1, first="Grace", last="Hopper"))
    assert event == UpcastProbe(
        aggregate_id="p-1", version=1, timestamp=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), full_name="Grace Hopper"
    )


def test_current_schema_is_not_upcast(upcast_calls: list[tuple[str, int]]) -> None:
    codec = EventCodec()
    current = UpcastProbe(aggregate_id="p-2", version=4, timestamp=T0, full_name="Alan Turing")
    data = codec.encode(current)
    assert json.loads(data)["schema"] == 2
    assert codec.decode("test.upcast_probe", data) == current
    assert upcast_calls == []


def test_upcasters_chain_in_order(upcast_calls: list[tuple[str, int]]) -> None:
    codec = EventCodec()
    event = codec.decode("test.upcast_chain_probe", _doc("test.upcast_chain_probe", size="2.5"))
    assert isinstance(event, UpcastChainProbe)
    assert event.size_bytes == 2560
    assert event.schema == 3
    assert upcast_calls == [("chain", 1), ("chain", 2)]


def test_upcast_chain_starts_at_the_stored_schema(upcast_calls: list[tuple[str, int]]) -> None:
    codec = EventCodec()
    event = codec.decode("test.upcast_chain_probe", _doc("test.upcast_chain_probe", schema=2, size_kib=1.0))
    assert event.size_bytes == 1024
    assert event.schema == 3
    assert upcast_calls == [("chain", 2)]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'"text"', id="string"),
        pytest.param(_doc("test.upcast_probe", schema=2), id="schema-2-missing-field"),
        pytest.param(_doc("test.upcast_probe", schema=2, full_name=5), id="schema-2-wrong-type"),
    ],
)
def test_corrupt_upcast_document_raises_corrupt_event(upcast_calls: list[tuple[str, int]], payload: bytes) -> None:
    with pytest.raises(StoreError) as info:
        EventCodec().decode("test.upcast_probe", payload)
    assert info.value.error_code == "CORRUPT_EVENT"


def test_malformed_json_in_upcast_path_raises_corrupt_event(upcast_calls: list[tuple[str, int]]) -> None:
    with pytest.raises(StoreError) as info:
        EventCodec().decode("test.upcast_probe", b"{not json")
    assert info.value.error_code == "CORRUPT_EVENT"


def test_probe_types_are_gone_after_the_fixture() -> None:
    for cls in PROBE_TYPES:
        name = event_type_name(cls)
        assert name not in EVENT_TYPES
        assert dict(upcasters_for(name)) == {}
    with pytest.raises(StoreError):
        EventCodec().decode("test.upcast_probe", _doc("test.upcast_probe", full_name="x"))


# -- the task aggregate: decisions and evolve -------------------------------------------


def created_state(**definition: Any) -> TaskState:
    fields: dict[str, Any] = {"name": "n", "module": "m", "action": "a", **definition}
    return evolve(None, task.create("t-1", META, **fields))


def at(status: TaskStatus, *, attempt: int = 0, version: int = 5, **definition: Any) -> TaskState:
    state = created_state(**definition)
    state.status = status
    state.attempt = attempt
    state.version = version
    return state


def test_create() -> None:
    event = task.create("t-1", META, name="n", module="m", action="a", priority=3, dependencies=["t-0"])
    assert isinstance(event, TaskCreated)
    assert event.aggregate_id == "t-1"
    assert event.version == 1
    assert event.timestamp == T0
    assert event.actor == "alice"
    assert event.correlation_id == "run-1"
    assert event.causation_id == "cmd-1"
    assert event.priority == 3
    assert event.dependencies == ["t-0"]
    assert event.max_retries == 3
    assert event.retry_delay == 1.0
    state = evolve(None, event)
    assert state == TaskState(id="t-1", version=1, status=TaskStatus.PENDING, definition=event)
    assert state.attempt == 0
    assert state.retry_at is None
    assert state.retries_used == 0


def test_ready() -> None:
    state = created_state()
    event = task.ready(state, META)
    assert event == TaskReady(aggregate_id="t-1", version=2, **ENVELOPE)
    assert evolve(state, event) is state
    assert state.status is TaskStatus.READY
    assert state.version == 2


def test_start_with_timeout_sets_deadline() -> None:
    state = at(TaskStatus.READY, timeout=10.0)
    event = task.start(state, META)
    assert event == TaskStarted(
        aggregate_id="t-1", version=6, attempt=1, deadline=T0 + timedelta(seconds=10), **ENVELOPE
    )
    evolve(state, event)
    assert state.status is TaskStatus.RUNNING
    assert state.attempt == 1
    assert state.version == 6


def test_start_without_timeout_has_no_deadline() -> None:
    event = task.start(at(TaskStatus.READY, attempt=2), META)
    assert event.deadline is None
    assert event.attempt == 3


def test_complete() -> None:
    state = at(TaskStatus.RUNNING, attempt=2)
    event = task.complete(state, META, data={"x": 1}, execution_time=0.5, memory_usage=3.0, metadata={"m": 1})
    assert event == TaskCompleted(
        aggregate_id="t-1",
        version=6,
        attempt=2,
        data={"x": 1},
        execution_time=0.5,
        memory_usage=3.0,
        metadata={"m": 1},
        **ENVELOPE,
    )
    assert task.complete(state, META, data=None, execution_time=0.0).metadata == {}
    evolve(state, event)
    assert state.status is TaskStatus.COMPLETED


def test_attempt_failed_with_retries_left_schedules_retry() -> None:
    state = at(TaskStatus.RUNNING, attempt=1, max_retries=2, retry_delay=2.5)
    event = task.attempt_failed(state, META, error_type="RuntimeError", error_message="boom", execution_time=0.1)
    assert event == TaskRetryScheduled(
        aggregate_id="t-1",
        version=6,
        attempt=1,
        error_type="RuntimeError",
        error_message="boom",
        execution_time=0.1,
        retry_at=T0 + timedelta(seconds=2.5),
        **ENVELOPE,
    )
    evolve(state, event)
    assert state.status is TaskStatus.READY
    assert state.retry_at == T0 + timedelta(seconds=2.5)
    assert state.attempt == 1


def test_attempt_failed_without_retries_left_fails() -> None:
    state = at(TaskStatus.RUNNING, attempt=3, max_retries=2)
    assert state.retries_used == 2
    event = task.attempt_failed(
        state, META, error_type="ValueError", error_message="bad", execution_time=1.0, metadata={"k": "v"}
    )
    assert event == TaskFailed(
        aggregate_id="t-1",
        version=6,
        attempt=3,
        error_type="ValueError",
        error_message="bad",
        execution_time=1.0,
        metadata={"k": "v"},
        **ENVELOPE,
    )
    evolve(state, event)
    assert state.status is TaskStatus.FAILED


def test_attempt_failed_not_retryable_fails_even_with_retries_left() -> None:
    state = at(TaskStatus.RUNNING, attempt=1, max_retries=5)
    event = task.attempt_failed(
        state, META, error_type="UnknownActionError", error_message="x", execution_time=0.0, retryable=False
    )
    assert isinstance(event, TaskFailed)
    assert event.metadata == {}


def test_max_retries_zero_fails_on_first_attempt() -> None:
    state = at(TaskStatus.RUNNING, attempt=1, max_retries=0)
    event = task.attempt_failed(state, META, error_type="E", error_message="m", execution_time=0.0)
    assert isinstance(event, TaskFailed)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_counts_retries_after_the_first_attempt(max_retries: int) -> None:
    state = created_state(max_retries=max_retries, retry_delay=0.5)
    evolve(state, task.ready(state, META))
    outcomes: list[str] = []
    while True:
        evolve(state, task.start(state, META))
        event = task.attempt_failed(state, META, error_type="E", error_message="m", execution_time=0.0)
        evolve(state, event)
        outcomes.append(event.type)
        if isinstance(event, TaskFailed):
            break
        assert state.retry_at is not None
    assert outcomes == ["task.retry_scheduled"] * max_retries + ["task.failed"]
    assert state.attempt == max_retries + 1
    assert state.retries_used == max_retries
    assert state.status is TaskStatus.FAILED
    # ready, then a start and a failure per attempt
    assert state.version == 2 + 2 * (max_retries + 1)


def test_start_after_retry_clears_retry_at() -> None:
    state = at(TaskStatus.RUNNING, attempt=1)
    evolve(state, task.attempt_failed(state, META, error_type="E", error_message="m", execution_time=0.0))
    assert state.retry_at is not None
    evolve(state, task.start(state, META))
    assert state.retry_at is None
    assert state.attempt == 2
    assert state.status is TaskStatus.RUNNING


def test_cancel_running_records_abandoned_attempt() -> None:
    state = at(TaskStatus.RUNNING, attempt=2)
    event = task.cancel(state, META, reason="user asked")
    assert event == TaskCancelled(aggregate_id="t-1", version=6, reason="user asked", abandoned_attempt=2, **ENVELOPE)
    evolve(state, event)
    assert state.status is TaskStatus.CANCELLED


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.READY])
def test_cancel_not_running_abandons_nothing(status: TaskStatus) -> None:
    # READY after a retry has attempt > 0, but nothing is running.
    event = task.cancel(at(status, attempt=1), META)
    assert event.abandoned_attempt == 0
    assert event.reason == ""


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.READY])
def test_skip(status: TaskStatus) -> None:
    state = at(status)
    event = task.skip(state, META, dependency="t-0", dependency_status=TaskStatus.CANCELLED)
    assert event == TaskSkipped(
        aggregate_id="t-1", version=6, dependency="t-0", dependency_status=TaskStatus.CANCELLED, **ENVELOPE
    )
    evolve(state, event)
    assert state.status is TaskStatus.SKIPPED


@pytest.mark.parametrize("status", list(TaskStatus))
def test_discard_late_result_in_any_status_changes_only_the_version(status: TaskStatus) -> None:
    state = at(status, attempt=2)
    state.retry_at = T0
    before = dataclasses.replace(state)
    event = task.discard_late_result(state, META, attempt=1, success=True, execution_time=40.0, error_type=None)
    assert event == TaskLateResultDiscarded(
        aggregate_id="t-1", version=6, attempt=1, success=True, execution_time=40.0, error_type=None, **ENVELOPE
    )
    assert state == before
    evolve(state, event)
    assert state == dataclasses.replace(before, version=6)


def test_soft_timeout_reached_changes_only_the_version() -> None:
    state = at(TaskStatus.RUNNING, attempt=2, soft_timeout=1.5, timeout=3.0)
    before = dataclasses.replace(state)
    event = task.soft_timeout_reached(state, META)
    assert event == TaskSoftTimeoutReached(aggregate_id="t-1", version=6, attempt=2, soft_timeout=1.5, **ENVELOPE)
    evolve(state, event)
    assert state == dataclasses.replace(before, version=6)


@pytest.mark.parametrize("status", [s for s in TaskStatus if s is not TaskStatus.RUNNING])
def test_soft_timeout_reached_only_while_running(status: TaskStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        task.soft_timeout_reached(at(status, attempt=1, soft_timeout=1.0), META)


def test_soft_timeout_reached_needs_a_soft_timeout() -> None:
    with pytest.raises(IllegalTransitionError):
        task.soft_timeout_reached(at(TaskStatus.RUNNING, attempt=1), META)


def _decision(name: str) -> Callable[[TaskState], Event]:
    calls: dict[str, Callable[[TaskState], Event]] = {
        "ready": lambda s: task.ready(s, META),
        "start": lambda s: task.start(s, META),
        "complete": lambda s: task.complete(s, META, data=1, execution_time=0.0),
        "attempt_failed": lambda s: task.attempt_failed(s, META, error_type="E", error_message="m", execution_time=0.0),
        "attempt_failed_final": lambda s: task.attempt_failed(
            s, META, error_type="E", error_message="m", execution_time=0.0, retryable=False
        ),
        "cancel": lambda s: task.cancel(s, META),
        "skip": lambda s: task.skip(s, META, dependency="d", dependency_status=TaskStatus.FAILED),
    }
    return calls[name]


# Which trigger each decision asks for.
DECISION_TRIGGER = {
    "ready": "ready",
    "start": "start",
    "complete": "complete",
    "attempt_failed": "retry",
    "attempt_failed_final": "fail",
    "cancel": "cancel",
    "skip": "skip",
}


def _legal(trigger: str, status: TaskStatus) -> bool:
    return task.TASK.can(status, trigger)


ILLEGAL_DECISIONS = [
    pytest.param(name, status, id=f"{name}-{status.name}")
    for name, trigger in DECISION_TRIGGER.items()
    for status in TaskStatus
    if not _legal(trigger, status)
]

LEGAL_DECISIONS = [
    pytest.param(name, status, id=f"{name}-{status.name}")
    for name, trigger in DECISION_TRIGGER.items()
    for status in TaskStatus
    if _legal(trigger, status)
]


def test_decision_cases_are_not_empty() -> None:
    # 7 decisions x 7 statuses; legal: ready, start, complete, retry, fail once each,
    # cancel from 3 statuses, skip from 2.
    assert len(LEGAL_DECISIONS) == 10
    assert len(ILLEGAL_DECISIONS) == 7 * 7 - 10


@pytest.mark.parametrize(("name", "status"), ILLEGAL_DECISIONS)
def test_illegal_decision_raises_and_changes_nothing(name: str, status: TaskStatus) -> None:
    state = at(status, attempt=1)
    before = dataclasses.replace(state)
    with pytest.raises(IllegalTransitionError) as info:
        _decision(name)(state)
    assert info.value.trigger == DECISION_TRIGGER[name]
    assert info.value.state == status.value
    assert info.value.lifecycle == "task"
    assert info.value.details["aggregate_id"] == "t-1"
    assert state == before


@pytest.mark.parametrize(("name", "status"), LEGAL_DECISIONS)
def test_legal_decision_leads_where_the_lifecycle_says(name: str, status: TaskStatus) -> None:
    state = at(status, attempt=1)
    before = dataclasses.replace(state)
    event = _decision(name)(state)
    assert state == before  # deciding does not apply
    assert event.version == state.version + 1
    assert TRIGGER_OF[type(event)] == DECISION_TRIGGER[name]
    evolve(state, event)
    assert state.status is task.TASK.decide(status, DECISION_TRIGGER[name])
    assert state.version == before.version + 1


def test_trigger_of_covers_every_status_changing_event() -> None:
    assert set(TRIGGER_OF) == set(TASK_EVENT_TYPES) - {
        TaskCreated,
        TaskLateResultDiscarded,
        TaskAdopted,
        TaskSoftTimeoutReached,
    }
    assert set(TRIGGER_OF.values()) == task.TASK.triggers


def test_evolve_before_created_raises() -> None:
    with pytest.raises(CorruptHistoryError, match=r"task\.ready for task t-1 before task\.created"):
        evolve(None, TASK_SAMPLES[TaskReady])


def test_evolve_created_starts_fresh() -> None:
    state = at(TaskStatus.COMPLETED, attempt=3)
    fresh = evolve(state, TASK_SAMPLES[TaskCreated])
    assert fresh is not state
    assert fresh.status is TaskStatus.PENDING
    assert fresh.version == 1
    assert fresh.attempt == 0


def test_full_history_replays_to_the_same_state(codec: EventCodec) -> None:
    state = created_state(max_retries=1, timeout=5.0)
    history: list[Event] = [state.definition]

    def apply(event: Event) -> None:
        history.append(event)
        evolve(state, event)

    apply(task.ready(state, META))
    apply(task.start(state, META))
    apply(task.attempt_failed(state, META, error_type="TimeoutError", error_message="t", execution_time=5.0))
    apply(task.start(state, META))
    apply(task.discard_late_result(state, META, attempt=1, success=True, execution_time=6.0, error_type=None))
    apply(task.complete(state, META, data=[1, 2], execution_time=0.2))
    assert [e.version for e in history] == list(range(1, 8))
    assert state.status is TaskStatus.COMPLETED
    assert state.attempt == 2

    replayed: TaskState | None = None
    for event in history:
        replayed = evolve(replayed, codec.decode(event.type, codec.encode(event)))
    assert replayed == state
