"""The CLI, through its entry point: --version, demo, and user mistakes."""

from __future__ import annotations

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
