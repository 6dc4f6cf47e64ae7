"""The CLI, through its entry point: --version, demo, and user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from replay_tools.cli import main
from replay_tools.history import History


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("codomyrmex-orch ")


def test_demo_runs_a_real_graph_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich folds long cells at the default 80
    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert main(["demo", "--store", url]) == 0
    out = capsys.readouterr().out
    for expected in ("task.retry_scheduled", "TimeoutError", "task.skipped", "completed", "execution stats"):
        assert expected in out
    with History.open(url) as history:
        view = history.task_view()
    stats = view.stats()
    assert (stats["total_tasks"], stats["completed"], stats["failed"], stats["skipped"]) == (9, 7, 1, 1)
    summary = next(r for r in view.tasks.values() if r.name == "summarize")
    assert summary.result is not None
    assert summary.result.data["files"] > 10


def test_bad_store_url_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--store", "ftp://nowhere"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err
    assert "Traceback" not in err


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "replay_tools", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("codomyrmex-orch ")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_timeline_state_as_json(recorded_store: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, failed_run = recorded_store
    runs = run_json(capsys, "runs", "--store", url)
    assert isinstance(runs, list)
    assert [r["status"] for r in runs] == ["completed", "failed"]
    events = run_json(capsys, "timeline", failed_run, "--store", url)
    assert isinstance(events, list)
    types = [e["type"] for e in events]
    assert types[0] == "workflow_run.created"
    assert "task.failed" in types
    assert types[-1] == "workflow_run.failed"
    assert all(e["actor"] == "ann" for e in events)
    state = run_json(capsys, "state", "--at", "0", "--store", url)
    assert isinstance(state, dict)
    assert state["position"] == 0
    assert state["tasks"]["total_tasks"] == 0
    end = run_json(capsys, "state", "--at", "100000", "--store", url)
    assert isinstance(end, dict)
    assert end["workflows"]["completed"] == 1
    assert end["workflows"]["failed"] == 1
    schema = run_json(capsys, "schema")
    assert isinstance(schema, dict)
    assert "task.started" in json.dumps(schema)
    diagram = run_json(capsys, "diagram", "task")
    assert isinstance(diagram, dict)
    assert "RUNNING --> COMPLETED: complete" in diagram["mermaid"]


@pytest.mark.parametrize(
    "argv",
    [
        ["timeline", "no-such-run"],
        ["state", "--at", "yesterday"],
        ["state", "--at", "2026-01-01T00:00:00"],
        ["diagram", "spaceship"],
    ],
)
def test_user_mistakes_are_one_line(
    recorded_store: tuple[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    url, _ = recorded_store
    assert main([*argv, "--store", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert "Traceback" not in err


def test_missing_store_is_an_error_not_a_new_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "events.db"
    assert main(["runs", "--store", f"sqlite:///{missing}"]) == 1
    assert "no event store" in capsys.readouterr().err
    assert not missing.exists()


def test_export_then_import_reproduces_the_runs(
    recorded_store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, failed_run = recorded_store
    out = tmp_path / "run.jsonl"
    assert main(["export", failed_run, "--out", str(out), "--store", url]) == 0
    capsys.readouterr()
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    summary = run_json(capsys, "import", str(out), "--store", target)
    assert isinstance(summary, dict)
    assert summary["events"] == len(out.read_text().splitlines())
    runs = run_json(capsys, "runs", "--store", target)
    assert isinstance(runs, list)
    assert [(r["run_id"], r["status"]) for r in runs] == [(failed_run, "failed")]
    assert main(["import", str(out), "--store", target]) == 1  # again: a conflict, nothing duplicated
    assert "imported already" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.jsonl"), "--store", target]) == 1


def test_verify_command(recorded_store: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = recorded_store
    report = run_json(capsys, "verify", "--store", url)
    assert isinstance(report, dict)
    assert report["ok"] is True
    assert report["violations"] == []
    assert report["unchained"] == 0
    assert len(report["head"]) == 64 and report["head"] != "0" * 64
    import sqlite3

    path = url.split(":///", 1)[1]
    with sqlite3.connect(path) as conn:
        (rowid,) = conn.execute(
            "SELECT rowid FROM codomyrmex_events WHERE topic = 'task.ready' ORDER BY rowid LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM codomyrmex_events WHERE rowid = ?", (rowid,))
    assert main(["verify", "--store", url]) == 3
    out = capsys.readouterr().out
    assert "contiguous-versions" in out
    assert "hash-chain" in out


def test_diff_and_run_diagram(recorded_store: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, failed_run = recorded_store
    runs = run_json(capsys, "runs", "--store", url)
    assert isinstance(runs, list)
    ok_run = runs[0]["run_id"]
    assert main(["diff", ok_run, failed_run, "--store", url]) == 0
    out = capsys.readouterr().out
    assert "a" in out
    assert "b" in out
    same = run_json(capsys, "diff", ok_run, ok_run, "--store", url)
    assert isinstance(same, dict)
    assert same["empty"] is True
    dag = run_json(capsys, "diagram", failed_run, "--store", url)
    assert isinstance(dag, dict)
    assert dag["mermaid"].startswith("flowchart LR")
    assert "failed" in dag["mermaid"]
    assert main(["diff", ok_run, "no-such-run", "--store", url]) == 1
    assert capsys.readouterr().err.startswith("error:")


def test_status_and_health(recorded_store: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = recorded_store
    status = run_json(capsys, "status", "--store", url)
    assert isinstance(status, dict)
    assert status["workflows"]["completed"] == 1
    assert status["workflows"]["failed"] == 1
    assert status["sessions"] == {"total": 1, "active": 1}
    assert "system_cpu" in status["resources"]
    health = run_json(capsys, "health", "--store", url)
    assert isinstance(health, dict)
    assert health["overall_status"] == "healthy"  # 1 failure in 2 finished tasks: too few to judge
    assert main(["health", "--store", url]) == 0
    capsys.readouterr()


def test_rerun_command(recorded_store: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded runs used actions registered only in the fixture, so a CLI re-run
    (built-ins and --import modules only) cannot find them: it diverges at once."""
    url, failed_run = recorded_store
    assert main(["rerun", failed_run, "--store", url, "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["same"] is False
    assert out["first_divergence"]["step"] == "b"
    assert main(["rerun", failed_run, "--store", url, "--import", "no_such_module_xyz"]) == 1
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_run_a_workflow_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("def f():\n    return 1\n")
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            {
                "name": "scan-it",
                "steps": [
                    {"name": "scan", "module": "static_analysis", "action": "analyze_code_quality",
                     "parameters": {"path": "{{path}}"}},
                    {"name": "env", "module": "environment_setup", "action": "check_environment"},
                ],
            }
        )
    )  # fmt: skip
    store = f"sqlite:///{tmp_path / 'events.db'}"
    assert main(["run", str(flow), "--param", "path=./src", "--store", store, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["success"] is True
    assert out["results"]["scan"]["files"] == 1
    runs = run_json(capsys, "runs", "--store", store)
    assert isinstance(runs, list)
    assert runs[0]["workflow"] == "scan-it"
    assert main(["run", str(tmp_path / "missing.json"), "--store", store]) == 1
    assert main(["run", str(flow), "--param", "novalue", "--store", store]) == 1
    capsys.readouterr()


def test_markdown_report(recorded_store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, failed_run = recorded_store
    out = tmp_path / "report.md"
    assert main(["report", failed_run, "--out", str(out), "--store", url]) == 0
    capsys.readouterr()
    text = out.read_text()
    assert text.startswith(f"# Run `{failed_run}`")
    assert "| status | **failed** |" in text
    assert "| b | failed | 1 |" in text
    assert "RuntimeError: broken step" in text
    assert "```mermaid\nflowchart LR" in text
    assert "| workflow_run.failed |" in text
    assert main(["report", "no-such-run", "--store", url]) == 1
    assert capsys.readouterr().err.startswith("error:")
