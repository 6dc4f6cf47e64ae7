"""Read-only tools over a store: history, timelines, the state at any moment, and the
CLI. Applying events runs projection code only, never an action."""

from replay_tools.history import History
from replay_tools.state import State, state_at, view_differences, views_equal
from replay_tools.timeline import Timeline, TimelineEntry, timeline
from replay_tools.verify import VerifyReport, Violation, verify

__all__ = [
    "History",
    "State",
    "Timeline",
    "TimelineEntry",
    "VerifyReport",
    "Violation",
    "state_at",
    "timeline",
    "verify",
    "view_differences",
    "views_equal",
]
