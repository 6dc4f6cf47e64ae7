"""Run diffs and Mermaid diagrams, rebuilt from a real recorded history."""

from __future__ import annotations

import pytest

from domain.errors import NotFoundError, ValidationError
from replay_tools.diagrams import _node_ids, lifecycle_diagram, run_dag
from replay_tools.diff import ABSENT, diff_runs


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A store with run 1 of ``pipe`` v1 (a -> b, c; all succeed) and run 2 of ``pipe``
    v2 (a -> b -> d; b fails for ``mode='bad'``, so d is skipped; c removed)."""
    from engine.models import WorkflowStep
    from engine.orchestration_engine import OrchestrationEngine
    from engine.registry import ActionRegistry

    registry = ActionRegistry()
    registry.register("t", "echo", lambda value: {"value": value})

    def check(mode: str) -> str:
        if mode == "bad":
            raise RuntimeError("bad mode")
        return mode

    registry.register("t", "check", check)
    tmp = tmp_path_factory.mktemp("diff")
    engine = OrchestrationEngine(data_dir=str(tmp / "data"), registry=registry)
    try:
        wm = engine.workflow_manager

        def step(name: str, action: str, params: dict[str, object], deps: list[str] | None = None) -> WorkflowStep:
            return WorkflowStep(
                name=name, module="t", action=action, parameters=params, dependencies=deps or [], max_retries=0
            )

        wm.create_workflow(
            "pipe",
            [
                step("a", "echo", {"value": "{{x}}"}),
                step("b", "check", {"mode": "{{mode}}"}, ["a"]),
                step("c", "echo", {"value": 0}),
            ],
            save=False,
        )
        first = engine.execute_workflow("pipe", x=1, mode="good")
        assert first["success"], first
        wm.create_workflow(
            "pipe",
            [
                step("a", "echo", {"value": "{{x}}"}),
                step("b", "check", {"mode": "{{mode}}"}, ["a"]),
                step("d.final-step", "echo", {"value": 9}, ["b"]),
            ],
            save=False,
        )
        second = engine.execute_workflow("pipe", x=2, mode="bad", extra=True)
        assert not second["success"]
        return engine.store.url, first["run_id"], second["run_id"]
    finally:
        engine.close()


def test_diff_of_two_versions(two_runs: tuple[str, str, str]) -> None:
    url, r1, r2 = two_runs
    d = diff_runs(url, r1, r2)
    assert d.steps_added == ("d.final-step",)
    assert d.steps_removed == ("c",)
    assert d.outcome_changes == {"b": ("completed", "failed")}
    assert d.parameter_changes == {"extra": (ABSENT, True), "mode": ("good", "bad"), "x": (1, 2)}
    assert d.step_parameter_changes == {"a": {"value": (1, 2)}, "b": {"mode": ("good", "bad")}}
    assert d.definition_versions == (("pipe", 1), ("pipe", 2))
    assert not d.same_definition
    assert d.results_changed == {"a": ({"value": 1}, {"value": 2})}
    assert d.timing_changes == {}
    assert d.run_statuses == ("completed", "failed")
    assert not d.is_empty
    text = d.text()
    for fragment in ("pipe v1 -> pipe v2", "steps added: d.final-step", "steps removed: c", "b: completed -> failed"):
        assert fragment in text
    assert "x: 1 -> 2" in text and "extra: <absent> -> True" in text


def test_timing_threshold_is_absolute_seconds(two_runs: tuple[str, str, str]) -> None:
    url, r1, r2 = two_runs
    d = diff_runs(url, r1, r2, timing_threshold=0)
    assert set(d.timing_changes) <= {"a", "b"}
    for a, b in d.timing_changes.values():
        assert abs(a - b) > 0
    with pytest.raises(ValidationError):
        diff_runs(url, r1, r2, timing_threshold=-1)


def test_diff_with_itself_is_empty(two_runs: tuple[str, str, str]) -> None:
    url, r1, r2 = two_runs
    for run in (r1, r2):
        d = diff_runs(url, run, run)
        assert d.is_empty and d.same_definition
        assert "no differences" in d.text()


def test_unknown_run(two_runs: tuple[str, str, str]) -> None:
    url, r1, _ = two_runs
    with pytest.raises(NotFoundError):
        diff_runs(url, r1, "no-such-run")
    with pytest.raises(NotFoundError):
        diff_runs(url, "no-such-run", r1)
    with pytest.raises(NotFoundError):
        run_dag(url, "no-such-run")


def test_run_dag(two_runs: tuple[str, str, str]) -> None:
    url, r1, r2 = two_runs
    first = run_dag(url, r1).splitlines()
    assert first[0] == "flowchart LR"
    assert '    s_a["a<br/>completed (1)"]' in first
    assert '    s_b["b<br/>completed (1)"]' in first
    assert '    s_c["c<br/>completed (1)"]' in first
    assert "    s_a --> s_b" in first
    assert not any("--> s_c" in line for line in first)
    assert "    class s_a,s_b,s_c completed" in first
    second = run_dag(url, r2).splitlines()
    assert '    s_d_final_step["d.final-step<br/>skipped (0)"]' in second
    assert '    s_b["b<br/>failed (1)"]' in second
    assert "    s_b --> s_d_final_step" in second
    assert "    class s_a completed" in second
    assert "    class s_b failed" in second
    assert "    class s_d_final_step skipped" in second
    for name in ("completed", "failed", "skipped", "cancelled", "active"):
        assert any(line.startswith(f"    classDef {name} ") for line in second)


def test_node_ids_are_safe_and_unique() -> None:
    ids = _node_ids(["a b", "a-b", "a_b", 'x"<y>'])
    assert list(ids.values()) == ["s_a_b", "s_a_b_2", "s_a_b_3", "s_x__y_"]


def test_lifecycle_diagram() -> None:
    assert "RUNNING --> COMPLETED" in lifecycle_diagram("task")
    assert lifecycle_diagram("task").startswith("stateDiagram-v2")
    with pytest.raises(NotFoundError, match=r"known lifecycles: .*task"):
        lifecycle_diagram("spaceship")
