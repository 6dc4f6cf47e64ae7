"""Domain model: enums, errors, events, lifecycles and aggregates. No I/O, no clock,
no logging: everything here is a pure function of its arguments."""

# Importing every aggregate module registers all event types, so a reader of the log
# (the replay tools) can decode any event without importing the engine.
from domain import enums, errors, events, idempotency, lease, lifecycles, project, resource, session, task, workflow

__all__ = [
    "enums",
    "errors",
    "events",
    "idempotency",
    "lease",
    "lifecycles",
    "project",
    "resource",
    "session",
    "task",
    "workflow",
]
