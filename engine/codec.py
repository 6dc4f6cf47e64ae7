"""Encoding events for the store: msgspec JSON, one typed decoder per event type.

The stored ``topic`` is the event's stable type name and the stored ``state`` is the
event's msgspec JSON (envelope included). Event types with registered upcasters are
decoded to a dict first, upcast step by step to the current schema, then converted;
all others decode straight into their Struct (~1 µs an event).
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.errors import StoreError, ValidationError
from domain.events import EVENT_TYPES, Event, upcasters_for

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


class EventCodec:
    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        self._raw = msgspec.json.Decoder()

    def encode(self, event: Event) -> bytes:
        try:
            data = self._encoder.encode(event)
        except (TypeError, ValueError, OverflowError) as e:
            raise ValidationError(
                f"{event.type} for {event.aggregate_id!r} cannot be encoded: {e}",
                code="NOT_SERIALIZABLE",
                suggestions=["Use JSON-compatible values (dict, list, str, int, float, bool, None)."],
            ) from e
        for name in event.USER_DATA_FIELDS:  # msgspec accepted it, but would it change it?
            problem = json_problem(getattr(event, name), f"{event.type}.{name}")
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
        if upcasters_for(topic):  # checked every time: upcasters may be registered late
            return self._decode_upcast(topic, self._event_type(topic), state)
        decoder = self._decoders.get(topic)
        if decoder is None:
            decoder = msgspec.json.Decoder(self._event_type(topic))
            self._decoders[topic] = decoder
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
