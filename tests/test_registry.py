"""The action registry (``engine.registry``). Every test uses a fresh
``ActionRegistry``; the module-level helpers are checked with a cleanup fixture so the
default registry is left as it was."""

from __future__ import annotations

import math
import os.path
from collections.abc import Iterator
from typing import Any

import pytest

from domain.errors import DuplicateIdError, OrchestrationError, UnknownActionError, ValidationError
from engine import registry as registry_module
from engine.registry import DEFAULT_REGISTRY, ActionRegistry, RegisteredAction, action, register_action


def count_lines(path: str = "") -> int:
    return len(path)


def other_count(path: str = "") -> int:
    return 0


def with_dependencies(x: int, dependency_results: dict[str, Any]) -> int:
    return x + len(dependency_results)


def keyword_only_dependencies(*, dependency_results: dict[str, Any] | None = None) -> int:
    return len(dependency_results or {})


def with_kwargs(**kwargs: Any) -> int:
    return len(kwargs)


class CallableWithDependencies:
    def __call__(self, dependency_results: dict[str, Any]) -> int:
        return len(dependency_results)


@pytest.fixture
def reg() -> ActionRegistry:
    return ActionRegistry()


# -- register / resolve -----------------------------------------------------------------


def test_register_and_resolve(reg: ActionRegistry) -> None:
    assert reg.register("static_analysis", "count_lines", count_lines) is count_lines
    entry = reg.resolve("static_analysis", "count_lines")
    assert entry == RegisteredAction("static_analysis", "count_lines", count_lines, False)
    assert entry.fn("abc") == 3
    assert ("static_analysis", "count_lines") in reg
    assert ("static_analysis", "other") not in reg


def test_decorator_registers_and_returns_the_function(reg: ActionRegistry) -> None:
    @reg.action("data_visualization", "create_bar_chart")
    def create_bar_chart(data: dict[str, int], title: str = "") -> dict[str, Any]:
        return {"title": title, "bars": len(data)}

    assert create_bar_chart({"a": 1}, title="t") == {"title": "t", "bars": 1}
    entry = reg.resolve("data_visualization", "create_bar_chart")
    assert entry.fn is create_bar_chart
    assert entry.module == "data_visualization"
    assert entry.action == "create_bar_chart"


def test_decorator_duplicate_raises_unless_replace(reg: ActionRegistry) -> None:
    reg.register("m", "a", count_lines)
    with pytest.raises(DuplicateIdError):
        reg.action("m", "a")(other_count)
    assert reg.resolve("m", "a").fn is count_lines
    reg.action("m", "a", replace=True)(other_count)
    assert reg.resolve("m", "a").fn is other_count


def test_duplicate_of_a_different_function_raises(reg: ActionRegistry) -> None:
    reg.register("m", "a", count_lines)
    with pytest.raises(DuplicateIdError) as info:
        reg.register("m", "a", other_count)
    err = info.value
    assert isinstance(err, ValidationError)
    assert err.error_code == "DUPLICATE_ID"
    assert "m.a" in err.message
    assert any("replace=True" in s for s in err.suggestions)
    assert reg.resolve("m", "a").fn is count_lines


def test_same_function_again_is_fine(reg: ActionRegistry) -> None:
    reg.register("m", "a", count_lines)
    assert reg.register("m", "a", count_lines) is count_lines
    assert reg.resolve("m", "a").fn is count_lines
    assert reg.names() == {"m": ["a"]}


def test_replace_true_swaps_the_function(reg: ActionRegistry) -> None:
    reg.register("m", "a", count_lines)
    reg.register("m", "a", with_dependencies, replace=True)
    entry = reg.resolve("m", "a")
    assert entry.fn is with_dependencies
    assert entry.wants_dependency_results is True


def test_replace_true_on_a_new_name_just_registers(reg: ActionRegistry) -> None:
    reg.register("m", "a", count_lines, replace=True)
    assert reg.resolve("m", "a").fn is count_lines


def test_same_action_name_in_two_modules(reg: ActionRegistry) -> None:
    reg.register("m1", "run", count_lines)
    reg.register("m2", "run", other_count)
    assert reg.resolve("m1", "run").fn is count_lines
    assert reg.resolve("m2", "run").fn is other_count


def test_names_and_unregister(reg: ActionRegistry) -> None:
    assert reg.names() == {}
    reg.register("zeta", "b", count_lines)
    reg.register("alpha", "y", count_lines)
    reg.register("alpha", "x", other_count)
    assert reg.names() == {"alpha": ["x", "y"], "zeta": ["b"]}
    assert list(reg.names()) == ["alpha", "zeta"]
    assert reg.unregister("alpha", "x") is True
    assert reg.unregister("alpha", "x") is False
    assert reg.unregister("nope", "x") is False
    assert reg.names() == {"alpha": ["y"], "zeta": ["b"]}
    with pytest.raises(UnknownActionError):
        reg.resolve("alpha", "x")


def test_registries_are_independent() -> None:
    first, second = ActionRegistry(), ActionRegistry()
    first.register("m", "a", count_lines)
    assert ("m", "a") not in second
    with pytest.raises(UnknownActionError):
        second.resolve("m", "a")


# -- names and callables ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "_private",
        "static_analysis",
        "data-visualization",
        "pkg.sub.module",
        "A1",
        "x" * 200,
    ],
)
def test_valid_names(reg: ActionRegistry, name: str) -> None:
    reg.register(name, name, count_lines)
    assert reg.resolve(name, name).fn is count_lines


INVALID_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("1abc", id="leading-digit"),
    pytest.param("-abc", id="leading-dash"),
    pytest.param(".abc", id="leading-dot"),
    pytest.param("a b", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("x" * 201, id="too-long"),
    pytest.param("naïve", id="non-ascii"),
    pytest.param(None, id="none"),
    pytest.param(5, id="int"),
    pytest.param(b"bytes", id="bytes"),
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_module_name_raises(reg: ActionRegistry, name: Any) -> None:
    with pytest.raises(ValidationError) as info:
        reg.register(name, "ok", count_lines)
    assert info.value.error_code == "INVALID_INPUT"
    assert "module name" in info.value.message
    assert info.value.details == {"module": repr(name)}
    assert reg.names() == {}


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_action_name_raises(reg: ActionRegistry, name: Any) -> None:
    with pytest.raises(ValidationError) as info:
        reg.register("ok", name, count_lines)
    assert "action name" in info.value.message
    assert info.value.details == {"action": repr(name)}
    assert reg.names() == {}


@pytest.mark.parametrize("where", ["module", "action"])
def test_name_with_trailing_newline_is_invalid(reg: ActionRegistry, where: str) -> None:
    module, act = ("mod\n", "act") if where == "module" else ("mod", "act\n")
    with pytest.raises(ValidationError):
        reg.register(module, act, count_lines)


def test_invalid_name_in_decorator_raises_at_decoration(reg: ActionRegistry) -> None:
    decorate = reg.action("bad name", "a")
    with pytest.raises(ValidationError):
        decorate(count_lines)


@pytest.mark.parametrize("fn", [None, 42, "count_lines", {"fn": count_lines}])
def test_non_callable_raises(reg: ActionRegistry, fn: Any) -> None:
    with pytest.raises(ValidationError) as info:
        reg.register("m", "a", fn)
    assert "not callable" in info.value.message
    assert ("m", "a") not in reg


# -- unknown actions --------------------------------------------------------------------


def test_unknown_module_raises_naming_both(reg: ActionRegistry) -> None:
    reg.register("known", "a", count_lines)
    with pytest.raises(UnknownActionError) as info:
        reg.resolve("static_analysis", "count_lines")
    err = info.value
    assert isinstance(err, LookupError)
    assert isinstance(err, OrchestrationError)
    assert err.module == "static_analysis"
    assert err.action == "count_lines"
    assert "static_analysis" in err.message
    assert "count_lines" in err.message
    assert err.details == {"module": "static_analysis", "action": "count_lines"}
    assert len(err.suggestions) == 1
    assert "register_action('static_analysis', 'count_lines', fn)" in err.suggestions[0]


def test_unknown_action_in_known_module_raises_naming_both(reg: ActionRegistry) -> None:
    reg.register("viz", "line", count_lines)
    reg.register("viz", "bar", other_count)
    reg.register("other", "pie", other_count)
    with pytest.raises(UnknownActionError) as info:
        reg.resolve("viz", "pie")
    err = info.value
    assert err.module == "viz"
    assert err.action == "pie"
    assert err.message == "module 'viz' has no action 'pie'"
    assert err.details == {"module": "viz", "action": "pie"}
    assert err.suggestions[0].startswith("Register it:")
    assert err.suggestions[1] == "Actions registered for 'viz': bar, line."


# -- dependency_results detection --------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "wants"),
    [
        pytest.param(count_lines, False, id="plain"),
        pytest.param(with_dependencies, True, id="positional"),
        pytest.param(keyword_only_dependencies, True, id="keyword-only"),
        pytest.param(with_kwargs, False, id="var-kwargs"),
        pytest.param(lambda dependency_results: 0, True, id="lambda"),
        pytest.param(lambda deps: 0, False, id="lambda-other-name"),
        pytest.param(CallableWithDependencies(), True, id="callable-instance"),
        pytest.param(max, False, id="builtin-without-signature"),
        pytest.param(math.sqrt, False, id="builtin-with-signature"),
    ],
)
def test_wants_dependency_results(reg: ActionRegistry, fn: Any, wants: bool) -> None:
    reg.register("m", "a", fn)
    assert reg.resolve("m", "a").wants_dependency_results is wants


# -- importing modules by name ----------------------------------------------------------


def test_imports_are_off_by_default(reg: ActionRegistry) -> None:
    assert reg.allow_imports == ()
    with pytest.raises(UnknownActionError) as info:
        reg.resolve("math", "sqrt")
    assert info.value.module == "math"
    assert info.value.action == "sqrt"
    assert ("math", "sqrt") not in reg


def test_default_registry_does_not_import() -> None:
    assert DEFAULT_REGISTRY.allow_imports == ()
    assert ("math", "sqrt") not in DEFAULT_REGISTRY
    with pytest.raises(UnknownActionError):
        DEFAULT_REGISTRY.resolve("math", "sqrt")


def test_allowed_import_resolves_and_is_cached() -> None:
    reg = ActionRegistry(allow_imports=("math",))
    assert reg.allow_imports == ("math",)
    entry = reg.resolve("math", "sqrt")
    assert entry.fn is math.sqrt
    assert entry.fn(16) == 4.0
    assert entry.module == "math"
    assert entry.action == "sqrt"
    assert entry.wants_dependency_results is False
    assert ("math", "sqrt") in reg
    assert reg.resolve("math", "sqrt") is entry


def test_allow_imports_accepts_any_sequence() -> None:
    reg = ActionRegistry(allow_imports=["math"])
    assert reg.allow_imports == ("math",)
    assert reg.resolve("math", "floor").fn is math.floor


def test_star_allows_every_module() -> None:
    reg = ActionRegistry(allow_imports=("*",))
    assert reg.resolve("math", "sqrt").fn is math.sqrt
    assert reg.resolve("operator", "add").fn(2, 3) == 5


def test_prefix_allows_submodules_only_under_it() -> None:
    reg = ActionRegistry(allow_imports=("os.",))
    assert reg.resolve("os.path", "join").fn is os.path.join
    with pytest.raises(UnknownActionError):
        reg.resolve("math", "sqrt")


def test_disallowed_module_is_not_imported_even_if_loaded() -> None:
    reg = ActionRegistry(allow_imports=("mypkg.",))
    with pytest.raises(UnknownActionError):
        reg.resolve("math", "sqrt")


def test_allowed_but_missing_module_raises_unknown_action() -> None:
    reg = ActionRegistry(allow_imports=("*",))
    with pytest.raises(UnknownActionError) as info:
        reg.resolve("codomyrmex_no_such_module_xyz", "run")
    err = info.value
    assert err.module == "codomyrmex_no_such_module_xyz"
    assert err.action == "run"
    assert isinstance(err.__cause__, ImportError)
    assert ("codomyrmex_no_such_module_xyz", "run") not in reg


@pytest.mark.parametrize("name", ["no_such_function", "pi"])
def test_allowed_module_without_that_callable_raises(name: str) -> None:
    reg = ActionRegistry(allow_imports=("math",))
    with pytest.raises(UnknownActionError) as info:
        reg.resolve("math", name)
    assert info.value.message == f"module 'math' has no action '{name}'"
    assert ("math", name) not in reg


def test_registered_action_wins_over_import() -> None:
    reg = ActionRegistry(allow_imports=("math",))
    reg.register("math", "sqrt", count_lines)
    assert reg.resolve("math", "sqrt").fn is count_lines


# -- the default registry helpers -------------------------------------------------------

HELPER_MODULE = "tests_registry_helper_module"


@pytest.fixture
def clean_default() -> Iterator[ActionRegistry]:
    before = DEFAULT_REGISTRY.names()
    assert HELPER_MODULE not in before
    try:
        yield DEFAULT_REGISTRY
    finally:
        for act in DEFAULT_REGISTRY.names().get(HELPER_MODULE, []):
            DEFAULT_REGISTRY.unregister(HELPER_MODULE, act)
        assert DEFAULT_REGISTRY.names() == before


def test_register_action_uses_the_default_registry(clean_default: ActionRegistry) -> None:
    assert register_action(HELPER_MODULE, "count", count_lines) is count_lines
    assert clean_default.resolve(HELPER_MODULE, "count").fn is count_lines
    with pytest.raises(DuplicateIdError):
        register_action(HELPER_MODULE, "count", other_count)
    register_action(HELPER_MODULE, "count", other_count, replace=True)
    assert clean_default.resolve(HELPER_MODULE, "count").fn is other_count


def test_action_decorator_uses_the_default_registry(clean_default: ActionRegistry) -> None:
    @action(HELPER_MODULE, "deps")
    def deps(dependency_results: dict[str, Any]) -> int:
        return len(dependency_results)

    entry = clean_default.resolve(HELPER_MODULE, "deps")
    assert entry.fn is deps
    assert entry.wants_dependency_results is True
    assert deps({"t": 1}) == 1
    with pytest.raises(DuplicateIdError):
        action(HELPER_MODULE, "deps")(count_lines)
    action(HELPER_MODULE, "deps", replace=True)(count_lines)
    assert clean_default.resolve(HELPER_MODULE, "deps").fn is count_lines


def test_module_exports() -> None:
    assert set(registry_module.__all__) == {
        "DEFAULT_REGISTRY",
        "ActionRegistry",
        "RegisteredAction",
        "action",
        "import_path_of",
        "load_import_path",
        "register_action",
    }
