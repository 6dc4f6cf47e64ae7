"""Smoke run of the benchmark (``python bench/run.py --quick``): every workload runs and
validates, on both stores, in fresh child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_quick_runs_and_validates(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out_json)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    for workload in ("W1", "W2", "W3", "W4"):
        assert workload in proc.stdout, f"{workload} missing from the output:\n{output[-5000:]}"
    assert "Event append" in proc.stdout
    assert "Replay" in proc.stdout
    assert "All validations passed" in proc.stdout
    report = json.loads(out_json.read_text())
    assert report["ok"] is True
    sections = {row["key"][0] for row in report["summary"]}
    assert {"W1", "W2", "W3", "W4", "APPEND", "REPLAY"} <= sections
