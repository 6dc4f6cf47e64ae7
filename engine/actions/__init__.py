"""The project's built-in actions: real work done with the standard library and psutil.

::

    from engine.actions import register_builtin_actions
    from engine.registry import ActionRegistry

    registry = ActionRegistry()
    register_builtin_actions(registry, base_dir=".orchestration")

- ``environment_setup.check_environment``: :mod:`engine.actions.environment_setup`
- ``static_analysis.analyze_code_quality``: :mod:`engine.actions.static_analysis`
- ``data_visualization.create_bar_chart`` and ``create_analysis_chart``:
  :mod:`engine.actions.data_visualization`
- ``documentation.generate_docs``: :mod:`engine.actions.documentation`
- ``security_audit.scan_codebase``: :mod:`engine.actions.security_audit`
- ``shell.run``, only with ``enable_shell=True``: :mod:`engine.actions.shell`

Nothing is registered for what this project cannot really do, such as the upstream
workflows' ``ai_code_editing.generate_code_insights``: a task naming it fails with the
registry's ``UnknownActionError``. See ``docs/actions.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.actions import documentation, environment_setup, security_audit, shell, static_analysis
from engine.actions.data_visualization import bound_chart_actions
from engine.registry import ActionRegistry

__all__ = ["register_builtin_actions"]


def register_builtin_actions(
    registry: ActionRegistry, *, enable_shell: bool = False, base_dir: str | None = None
) -> list[tuple[str, str]]:
    """Register the built-in actions in ``registry``; return the ``(module, action)``
    pairs registered, in registration order.

    ``enable_shell`` also registers ``shell.run``, which runs any program: leave it off
    unless the task definitions are trusted. ``base_dir`` is where charts written without
    an ``output_path`` go (``<base_dir>/charts``; default ``./.orchestration/charts`` of
    the current directory at call time).

    Calling it again with the same arguments is harmless (the same functions are
    registered); a different ``base_dir`` raises the registry's ``DuplicateIdError``.
    """
    bar_chart, analysis_chart = bound_chart_actions(base_dir)
    actions: list[tuple[str, str, Callable[..., Any]]] = [
        ("environment_setup", "check_environment", environment_setup.check_environment),
        ("static_analysis", "analyze_code_quality", static_analysis.analyze_code_quality),
        ("data_visualization", "create_bar_chart", bar_chart),
        ("data_visualization", "create_analysis_chart", analysis_chart),
        ("documentation", "generate_docs", documentation.generate_docs),
        ("security_audit", "scan_codebase", security_audit.scan_codebase),
    ]
    if enable_shell:
        actions.append(("shell", "run", shell.run))
    for module, action, fn in actions:
        registry.register(module, action, fn)
    return [(module, action) for module, action, _ in actions]
