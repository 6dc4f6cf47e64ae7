"""Smoke run of the benchmark (``python bench/run.py --quick``): every workload runs and
validates, on both stores, through the TaskOrchestrator and as an engine workflow, in
fresh child processes; so do the resource measurements (RES) and the executors beside
plain Dask (EXEC)."""

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
    assert {"W1", "W2", "W3", "W4", "WF1000", "APPEND", "REPLAY", "RES", "EXEC"} <= sections
    keys = {tuple(row["key"]) for row in report["summary"]}
    for workload in ("W1", "W2", "W3", "W4", "WF1000"):
        for backend in ("sqlite", "memory"):
            assert (workload, backend, "workflow") in keys, f"no engine row for {workload} on {backend}"
    assert "Workflow vs TaskOrchestrator" in proc.stdout
    targets = [t["name"] for t in report["targets"]]
    assert sum("independent steps vs the same tasks via TaskOrchestrator" in name for name in targets) == 2
    assert "Resource allocation" in proc.stdout
    assert "Resource declarations" in proc.stdout
    for backend in ("lock", "sqlite", "memory"):
        assert ("RES", "alloc", backend) in keys, f"no RES allocation row for {backend}"
    for backend in ("sqlite", "memory"):
        for variant in ("batch", "batch-read"):
            assert ("RES", "W1", backend, variant) in keys, f"no RES W1 row for {backend}/{variant}"
    assert sum(name.startswith("Resource declarations:") for name in targets) == 2
    assert "Executors" in proc.stdout
    for workload in ("W1", "W3"):
        for runner in ("threads", "processes", "dask", "plain-dask"):
            assert ("EXEC", workload, runner) in keys, f"no EXEC row for {workload}/{runner}"
    assert any(name.startswith("W1 through the engine on the Dask executor") for name in targets)


@pytest.mark.slow
def test_recovery_benchmark_runs_and_meets_its_own_checks() -> None:
    """bench/recovery.py on a small store: a killed process's runs are all adopted and
    all end."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "bench/recovery.py", "--runs", "40", "--repeat", "1"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runs_adopted"] == 40 and result["tasks_adopted"] == 120
    assert result["met"] is True


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_replay1m_small_runs_and_validates(tmp_path: Path) -> None:
    """The REPLAY1M section on a small log (20,000 events, generated into a cache of its
    own): every replay tool and the raw baselines run in fresh processes and validate;
    the table, the JSON line and the targets come out. A second run reuses the cache."""
    out_json = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "run.py"),
        "--only",
        "REPLAY1M",
        "--quick",
        "--replay-events",
        "20000",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        str(out_json),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=100, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "Replay tools on a 20,000-event SQLite log" in proc.stdout
    assert "All validations passed" in proc.stdout
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPLAY1M-JSON ")]
    assert len(lines) == 1, output[-3000:]
    table = json.loads(lines[0].removeprefix("REPLAY1M-JSON "))
    ops = {row["op"]: row for row in table["rows"]}
    assert set(ops) == {
        "scan-untyped",
        "scan-only",
        "scan-typed",
        "state-end",
        "state-mid",
        "timeline-run",
        "timeline-all",
        "export",
        "verify",
    }
    assert all(row["ok"] and row["seconds_median"] > 0 and row["peak_rss_mb"] > 0 for row in ops.values())
    assert ops["scan-untyped"]["vs_baseline"] == 1.0
    assert table["events"] == 20_000 and table["build_seconds"] is not None
    report = json.loads(out_json.read_text())
    assert report["ok"] is True
    names = [t["name"] for t in report["targets"]]
    assert sum(name.startswith("state_at(end) over 20,000 events") for name in names) == 2
    assert sum(name.startswith("export of 20,000 events") for name in names) == 1
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=100, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert "; cached)" in again.stdout


@pytest.mark.postgres
def test_pg_append_benchmark_runs_and_validates(pg_url: str) -> None:
    """bench/pg_append.py on a few events: every mode writes a complete, valid log."""
    base = pg_url.split("?", 1)[0]
    done = subprocess.run(
        [sys.executable, "bench/pg_append.py", "--url", base, "--events", "400", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PG-APPEND-JSON "))
    rows = json.loads(line.removeprefix("PG-APPEND-JSON "))["rows"]
    assert len(rows) == 5 and all(r["ok"] and r["events"] == 400 for r in rows)
