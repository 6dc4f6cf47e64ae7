"""Domain model: enums, errors, events, lifecycles and aggregates. No I/O, no clock,
no logging: everything here is a pure function of its arguments."""

from domain import enums, errors, events, lifecycles, task

__all__ = ["enums", "errors", "events", "lifecycles", "task"]
