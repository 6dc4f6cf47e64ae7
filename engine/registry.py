"""The action registry: how a task's ``module``/``action`` names find a function.

Actions are registered explicitly::

    register_action("static_analysis", "count_lines", count_lines)

    @action("data_visualization", "create_bar_chart")
    def create_bar_chart(data: dict, title: str = "") -> dict: ...

An action is called with the task's ``parameters`` as keyword arguments. If it declares
a parameter named ``dependency_results`` it also receives the results of the task's
dependencies, as a dict ``{dependency task id: result data}`` in the order the
dependencies were declared (read from the committed log, so a re-run sees the same).
If it declares a parameter named ``cancel_token`` it receives a
:class:`~engine.executors.CancelToken` whose ``is_set()`` turns true when the engine
asks the action to stop (its task's ``soft_timeout`` passed, or the task was
cancelled); ``cancel_token.wait(seconds)`` sleeps, returning ``True`` early when asked.

Executors that run actions in other processes (``processes``, ``dask``) send the
action by its *import path*, ``fn.__module__`` and ``fn.__qualname__``
(:func:`import_path_of`); the worker imports it (:func:`load_import_path`). Only
functions defined at the top level of an importable module can travel that way: a
lambda, a closure, a bound method or a ``functools.partial`` registered in the parent
is refused with :class:`~domain.errors.ActionNotShippableError`.

Importing Python modules by name is off by default: a registry built with
``allow_imports=("mypkg.",)`` (or ``("*",)``) also resolves ``module``/``action`` as
``importlib.import_module(module).action`` for module names with those prefixes.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from domain.errors import ActionNotShippableError, DuplicateIdError, UnknownActionError, ValidationError

__all__ = [
    "DEFAULT_REGISTRY",
    "ActionRegistry",
    "RegisteredAction",
    "action",
    "import_path_of",
    "load_import_path",
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
    wants_cancel_token: bool = False


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
        entry = RegisteredAction(module, action, fn, "dependency_results" in params, "cancel_token" in params)
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


def import_path_of(
    fn: Callable[..., Any], module: str = "", action: str = "", *, allow_main: bool = False
) -> tuple[str, str]:
    """``(module name, qualified name)`` under which another process can import ``fn``,
    or :class:`ActionNotShippableError` naming the action ``module.action``.

    The path must lead back to ``fn`` itself in this process (so a decorated or
    re-bound name is caught here, not in the worker). ``allow_main``: functions of the
    ``__main__`` script are accepted (a spawned worker re-imports the script; a Dask
    worker on another machine cannot)."""
    name = f"{module}.{action}" if module or action else repr(fn)
    mod_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)

    def refuse(why: str) -> ActionNotShippableError:
        return ActionNotShippableError(
            f"action {name} cannot be sent to a worker process: {why}",
            details={"module": module, "action": action, "function": repr(fn)[:200]},
        )

    if not isinstance(mod_name, str) or not isinstance(qualname, str):
        raise refuse(f"{type(fn).__name__} objects have no module path (register a top-level function)")
    if "<" in qualname:  # <lambda>, <locals>
        raise refuse(f"{mod_name}.{qualname} is a lambda or is defined inside a function")
    if mod_name == "__main__":
        main = sys.modules.get("__main__")
        if not allow_main or not getattr(main, "__file__", None):
            raise refuse(
                f"{qualname} is defined in the __main__ script; workers import actions by module path"
                + ("" if allow_main else " (a Dask worker cannot import another process's script)")
            )
    module_obj = sys.modules.get(mod_name)
    found: Any = module_obj
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if module_obj is None or found is not fn:
        raise refuse(f"{mod_name}.{qualname} does not lead back to the registered function")
    return mod_name, qualname


def load_import_path(module: str, qualname: str) -> Callable[..., Any]:
    """The function at ``module``/``qualname`` (worker side of :func:`import_path_of`)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{module}.{qualname} is not callable")
    return found  # type: ignore[no-any-return]
