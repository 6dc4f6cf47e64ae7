"""The action registry: how a task's ``module``/``action`` names find a function.

Actions are registered explicitly::

    register_action("static_analysis", "count_lines", count_lines)

    @action("data_visualization", "create_bar_chart")
    def create_bar_chart(data: dict, title: str = "") -> dict: ...

An action is called with the task's ``parameters`` as keyword arguments. If it declares
a parameter named ``dependency_results`` it also receives the results of the task's
dependencies, as a dict ``{dependency task id: result data}`` in the order the
dependencies were declared (read from the committed log, so a re-run sees the same).

Importing Python modules by name is off by default: a registry built with
``allow_imports=("mypkg.",)`` (or ``("*",)``) also resolves ``module``/``action`` as
``importlib.import_module(module).action`` for module names with those prefixes.
"""

from __future__ import annotations

import importlib
import inspect
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from domain.errors import DuplicateIdError, UnknownActionError, ValidationError

__all__ = [
    "DEFAULT_REGISTRY",
    "ActionRegistry",
    "RegisteredAction",
    "action",
    "register_action",
]

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,199}$")


@dataclass(frozen=True)
class RegisteredAction:
    module: str
    action: str
    fn: Callable[..., Any]
    wants_dependency_results: bool


def _check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            f"{kind} name {value!r} is not valid: use letters, digits, '_', '.', '-' (at most 200)",
            details={kind: repr(value)},
        )
    return value


class ActionRegistry:
    """Thread-safe mapping ``(module, action) -> function``."""

    def __init__(self, *, allow_imports: Sequence[str] = ()) -> None:
        self._actions: dict[tuple[str, str], RegisteredAction] = {}
        self._lock = threading.Lock()
        self.allow_imports = tuple(allow_imports)

    def register(
        self, module: str, action: str, fn: Callable[..., Any], *, replace: bool = False
    ) -> Callable[..., Any]:
        _check_name("module", module)
        _check_name("action", action)
        if not callable(fn):
            raise ValidationError(f"action {module}.{action}: {fn!r} is not callable")
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # builtins without a signature
            params = {}  # type: ignore[assignment]
        entry = RegisteredAction(module, action, fn, "dependency_results" in params)
        with self._lock:
            existing = self._actions.get((module, action))
            if existing is not None and existing.fn is not fn and not replace:
                raise DuplicateIdError(
                    f"action {module}.{action} is already registered to {existing.fn!r}",
                    suggestions=["Pass replace=True to register a different function under this name."],
                )
            self._actions[(module, action)] = entry
        return fn

    def action(self, module: str, action: str, *, replace: bool = False) -> Callable[[F], F]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: F) -> F:
            self.register(module, action, fn, replace=replace)
            return fn

        return decorate

    def unregister(self, module: str, action: str) -> bool:
        with self._lock:
            return self._actions.pop((module, action), None) is not None

    def resolve(self, module: str, action: str) -> RegisteredAction:
        """The registered action, or :class:`UnknownActionError` naming both names."""
        entry = self._actions.get((module, action))
        if entry is not None:
            return entry
        if self._import_allowed(module):
            _check_name("module", module)
            _check_name("action", action)
            return self._import(module, action)
        known = [a for (m, a) in self._actions if m == module]
        raise UnknownActionError(module, action, known or None)

    def names(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for module, action in sorted(self._actions):
            out.setdefault(module, []).append(action)
        return out

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._actions

    def _import_allowed(self, module: str) -> bool:
        return any(p == "*" or module.startswith(p) for p in self.allow_imports)

    def _import(self, module: str, action: str) -> RegisteredAction:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise UnknownActionError(module, action) from e
        fn = getattr(mod, action, None)
        if not callable(fn):
            raise UnknownActionError(module, action, [])
        self.register(module, action, fn, replace=True)
        return self._actions[(module, action)]


DEFAULT_REGISTRY = ActionRegistry()


def register_action(module: str, action: str, fn: Callable[..., Any], *, replace: bool = False) -> Callable[..., Any]:
    """Register ``fn`` as ``module``/``action`` in the default registry."""
    return DEFAULT_REGISTRY.register(module, action, fn, replace=replace)


def action(module: str, name: str, *, replace: bool = False) -> Callable[[F], F]:
    """Decorator registering a function as ``module``/``name`` in the default registry."""
    return DEFAULT_REGISTRY.action(module, name, replace=replace)
