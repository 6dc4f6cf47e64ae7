"""Putting the built-in actions into a registry without overriding the user's.

``OrchestrationEngine`` and a default ``WorkflowManager`` use the default registry, where
users also register their own actions (``register_action``). A user's function for a
built-in name (say their own ``data_visualization.create_bar_chart``) wins: built-ins
are only added where the name is free.
"""

from __future__ import annotations

from engine.actions import register_builtin_actions
from engine.registry import ActionRegistry

__all__ = ["register_missing_builtins"]


def register_missing_builtins(
    registry: ActionRegistry, *, enable_shell: bool = False, base_dir: str | None = None
) -> list[tuple[str, str]]:
    """Register each built-in action whose name is not taken; return those added."""
    builtins = ActionRegistry()
    added = []
    for module, action in register_builtin_actions(builtins, enable_shell=enable_shell, base_dir=base_dir):
        if (module, action) not in registry:
            registry.register(module, action, builtins.resolve(module, action).fn)
            added.append((module, action))
    return added
