"""Encoding events for the store: msgspec JSON, one typed decoder per event type.

The stored ``topic`` is the event's stable type name and the stored ``state`` is the
event's msgspec JSON (envelope included). Event types with registered upcasters are
decoded to a dict first, upcast step by step to the current schema, then converted;
all others decode straight into their Struct (~1 µs an event).
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect

from domain.errors import StoreError, ValidationError
from domain.events import EVENT_TYPES, UPCASTERS, Event, upcasters_for

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventCodec", "json_problem"]

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


def json_problem(value: object, path: str = "$") -> str | None:
    """Why ``value`` would not survive a JSON round trip unchanged, or None.

    msgspec encodes some values JSON cannot hold by changing them (NaN and infinities
    become ``null``, bytes become base64 text); user data that goes into events is
    checked here first so that what is recorded is what was given. Tuples and sets
    become lists (documented, harmless for data)."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return f"{where} is {item!r}, which JSON cannot represent"
        elif isinstance(item, bytes | bytearray | memoryview):
            return f"{where} is bytes; encode them (e.g. base64) or pass a file path"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"{where} has a non-string key {key!r}"
                stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return None


_NATIVE_LEAVES = (
    msgspec.inspect.AnyType,
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
)


def _is_json_native(t: msgspec.inspect.Type) -> bool:
    """Whether every value of type ``t`` decoded from JSON is a plain JSON value:
    ``Any``, strings, numbers, booleans, ``None``, lists of them and string-keyed dicts."""
    if isinstance(t, _NATIVE_LEAVES):
        return True
    if isinstance(t, msgspec.inspect.ListType):
        return _is_json_native(t.item_type)
    if isinstance(t, msgspec.inspect.DictType):
        return isinstance(t.key_type, msgspec.inspect.StrType) and _is_json_native(t.value_type)
    if isinstance(t, msgspec.inspect.UnionType):
        return all(_is_json_native(member) for member in t.types)
    return False


class _StoredSchema(msgspec.Struct):
    """The ``schema`` member of a stored event (1 when absent, as the upcast path reads
    it); every other member is skipped."""

    schema: int = 1


class EventCodec:
    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        self._raw = msgspec.json.Decoder()
        self._schema = msgspec.json.Decoder(_StoredSchema)
        self._json_native: dict[type[Event], bool] = {}

    def encode(self, event: Event) -> bytes:
        return self._encode(event, check_user_data=True)

    def encode_decoded(self, event: Event) -> bytes:
        """What :meth:`encode` gives for an event :meth:`decode` returned (an export
        re-encodes every event it reads), without walking its user data when that
        cannot matter: msgspec's JSON decoder yields no NaN, infinity or bytes, and only
        string keys, so when every user-data field of the type is JSON-native (``Any``,
        ``dict[str, ...]``, lists, strings, numbers, booleans, ``None``) the walk would
        find nothing. Events of a type with upcasters may have been built by them
        (Python code): their user data is walked all the same.
        Raises as :meth:`encode` does."""
        cls = type(event)
        native = self._json_native.get(cls)
        if native is None:
            info = msgspec.inspect.type_info(cls)
            native = self._json_native[cls] = isinstance(info, msgspec.inspect.StructType) and all(
                _is_json_native(field.type) for field in info.fields if field.name in cls.USER_DATA_FIELDS
            )
        if native and (not cls.USER_DATA_FIELDS or cls.TYPE not in UPCASTERS):
            try:
                data = self._encoder.encode(event)
            except (TypeError, ValueError, OverflowError):
                pass  # _encode reports it, below
            else:
                if len(data) <= self.max_event_bytes:
                    return data
            return self._encode(event, check_user_data=False)
        return self._encode(event, check_user_data=True)

    def _encode(self, event: Event, *, check_user_data: bool) -> bytes:
        try:
            data = self._encoder.encode(event)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValidationError(
                f"{event.type} for {event.aggregate_id!r} cannot be encoded: {e}",
                code="NOT_SERIALIZABLE",
                suggestions=["Use JSON-compatible values (dict, list, str, int, float, bool, None)."],
            ) from e
        for name in event.USER_DATA_FIELDS if check_user_data else ():
            problem = json_problem(getattr(event, name), f"{event.type}.{name}")  # msgspec took it: unchanged?
            if problem is not None:
                raise ValidationError(
                    f"{event.type} for {event.aggregate_id!r} cannot be encoded faithfully: {problem}",
                    code="NOT_SERIALIZABLE",
                    suggestions=["Use JSON-compatible values (dict, list, str, int, float, bool, None)."],
                )
        if len(data) > self.max_event_bytes:
            raise ValidationError(
                f"{event.type} for {event.aggregate_id!r} is {len(data)} bytes, over the "
                f"limit of {self.max_event_bytes} bytes",
                code="VALUE_TOO_LARGE",
                details={"size": len(data), "limit": self.max_event_bytes},
                suggestions=["Store large data elsewhere (a file) and pass its path."],
            )
        return data

    def decode(self, topic: str, state: bytes) -> Event:
        decoder = self._decoders.get(topic)
        if decoder is None:
            decoder = msgspec.json.Decoder(self._event_type(topic))
            self._decoders[topic] = decoder
        steps = UPCASTERS.get(topic)  # checked every time: upcasters may be registered late
        if steps:
            # A row stored at a schema no upcaster starts from needs no upcasting: it
            # decodes straight into its Struct, as the upcast path would convert it. The
            # upcast path handles the others, and any row the fast way rejects (so its
            # errors are the upcast path's).
            try:
                if self._schema.decode(state).schema not in steps:
                    fast: Event = decoder.decode(state)
                    return fast
            except msgspec.DecodeError:
                pass
            return self._decode_upcast(topic, self._event_type(topic), state)
        try:
            event: Event = decoder.decode(state)
        except msgspec.DecodeError as e:  # malformed JSON, or valid JSON of the wrong shape
            raise StoreError(f"stored {topic} event does not match its schema: {e}", code="CORRUPT_EVENT") from e
        return event

    @staticmethod
    def _event_type(topic: str) -> type[Event]:
        cls = EVENT_TYPES.get(topic)
        if cls is None:
            raise StoreError(
                f"unknown event type {topic!r} in the store (written by a newer version?)",
                code="UNKNOWN_EVENT_TYPE",
            )
        return cls

    def _decode_upcast(self, topic: str, cls: type[Event], state: bytes) -> Event:
        try:
            raw = self._raw.decode(state)
        except msgspec.DecodeError as e:
            raise StoreError(f"stored {topic} event is not valid JSON: {e}", code="CORRUPT_EVENT") from e
        if not isinstance(raw, dict):
            raise StoreError(f"stored {topic} event is not an object", code="CORRUPT_EVENT")
        steps = upcasters_for(topic)
        version = int(raw.get("schema", 1))
        while version in steps:
            raw = steps[version](raw)
            version += 1
            raw["schema"] = version
        try:
            return msgspec.convert(raw, cls)
        except msgspec.ValidationError as e:
            raise StoreError(
                f"stored {topic} event (schema {version}) cannot be upcast: {e}", code="CORRUPT_EVENT"
            ) from e
