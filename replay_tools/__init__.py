"""Read-only tools over a store: history, rebuilt views, and the CLI."""

from replay_tools.history import History

__all__ = ["History"]
