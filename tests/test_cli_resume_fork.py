"""CLI resume RUN and fork RUN --from STEP, through the CLI's own entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay_tools.cli import main


def test_resume_and_fork_from_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLI_RF_DIR", str(tmp_path))
    (tmp_path / "broken-b").touch()
    flow = tmp_path / "flow.json"
    steps = [
        {"name": "a", "module": "cli_rf", "action": "step", "parameters": {"name": "a"}},
        {"name": "b", "module": "cli_rf", "action": "step", "parameters": {"name": "b"}, "dependencies": ["a"],
         "max_retries": 0},
        {"name": "c", "module": "cli_rf", "action": "step", "parameters": {"name": "c"}, "dependencies": ["b"]},
    ]  # fmt: skip
    flow.write_text(json.dumps({"name": "abc", "steps": steps}))
    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("CODOMYRMEX_ORCHESTRATION_DIR", str(tmp_path / "data"))
    imports = ["--import", "tests.cli_rf_actions"]
    assert main(["run", str(flow), "--store", url, *imports, "--json"]) == 3
    failed = json.loads(capsys.readouterr().out)
    effects = tmp_path / "effects"
    assert effects.read_text().split() == ["a", "b"]

    (tmp_path / "broken-b").unlink()
    assert main(["resume", failed["run_id"], "--store", url, *imports, "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["success"] and resumed["results"] == {"a": "A", "b": "B", "c": "C"}
    assert effects.read_text().split() == ["a", "b", "b", "c"]  # a was reused

    assert main(["fork", resumed["run_id"], "--from", "c", "--store", url, *imports, "--json"]) == 0
    forked = json.loads(capsys.readouterr().out)
    assert forked["success"] and effects.read_text().split() == ["a", "b", "b", "c", "c"]

    assert main(["timeline", forked["run_id"], "--store", url, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)[0]
    assert created["type"] == "workflow_run.created"
    assert f"forked_from={resumed['run_id']}" in created["summary"], created["summary"]

    assert main(["resume", "no-such-run", "--store", url, *imports]) == 1
    assert "no workflow run" in capsys.readouterr().err
    assert main(["fork", forked["run_id"], "--from", "zzz", "--store", url, *imports]) == 1
    assert "zzz" in capsys.readouterr().err
