"""Recovery benchmark: how long a new engine takes to take over N workflow runs that a
killed process left in flight (target: 1,000 runs in under 5 s).

    python bench/recovery.py [--runs 1000] [--steps 3] [--repeat 3]

A child process starts N runs of an N-step chain whose action blocks, and SIGKILLs
itself once all N runs are recorded (4 steps RUNNING, the rest READY or PENDING). Then,
on copies of that SQLite file, each in a fresh process, this script times

* the baseline: opening an engine on the store with ``recovery="off"`` (loading the
  log into the views, which any engine start pays), and
* opening it with ``recovery="resume"`` after the dead lease expired: the same, plus
  finding the open work, one takeover commit (``lease.taken_over`` + ``task.adopted``
  per task + the interrupted attempts) and scheduling it; and the time until every
  recovered run is recorded as ended (the action is a no-op in the recovering engine).

Printed: medians, the ratio to the baseline, and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_store(path: Path, runs: int, steps: int) -> None:
    """(child) start ``runs`` runs, die by SIGKILL once they are all recorded."""
    from engine.models import WorkflowStep
    from engine.orchestration_engine import OrchestrationEngine
    from engine.registry import ActionRegistry

    registry = ActionRegistry()
    registry.register("rb", "block", lambda: threading.Event().wait(3600))
    engine = OrchestrationEngine(store_url=f"sqlite:///{path}", registry=registry, data_dir=str(path.parent / "d"),
                                 lease_ttl=1.0)  # fmt: skip
    chain = [
        WorkflowStep(name=f"s{i}", module="rb", action="block", dependencies=[f"s{i - 1}"] if i else [])
        for i in range(steps)
    ]
    engine.workflow_manager.create_workflow("chain", chain, save=False)
    started = [0]
    lock = threading.Lock()

    def count(batch: object) -> None:
        with lock:
            started[0] += sum(1 for r in batch if r.event.type == "workflow_run.started")  # type: ignore[attr-defined]
            if started[0] >= runs:
                os.kill(os.getpid(), signal.SIGKILL)

    engine.store.subscribe(count)
    for _ in range(runs):
        threading.Thread(target=engine.execute_workflow, args=("chain",), daemon=True).start()
    time.sleep(600)


def time_open(path: Path, policy: str) -> dict[str, float]:
    """(child) open an engine with ``policy``; seconds, tasks adopted."""
    from engine.orchestration_engine import OrchestrationEngine
    from engine.registry import ActionRegistry

    registry = ActionRegistry()
    registry.register("rb", "block", lambda: None)
    begin = time.perf_counter()
    engine = OrchestrationEngine(store_url=f"sqlite:///{path}", registry=registry, data_dir=str(path.parent / "d"),
                                 recovery=policy)  # fmt: skip
    seconds = time.perf_counter() - begin
    finished = engine.workflow_manager.wait_recovered(300)
    ended = time.perf_counter() - begin
    report = engine.last_recovery
    adopted = len(report.tasks) if report is not None else 0
    runs = len(report.runs) if report is not None else 0
    engine.task_orchestrator.stop_execution()
    engine.close()
    if not finished:
        raise SystemExit("the recovered runs did not end within 300 s")
    return {"seconds": seconds, "ended": ended, "tasks": adopted, "runs": runs}


def child(args: list[str]) -> None:
    if args[0] == "make":
        make_store(Path(args[1]), int(args[2]), int(args[3]))
    else:
        print(json.dumps(time_open(Path(args[1]), args[2])))


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def measure(runs: int, steps: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src" / "events.db"
        source.parent.mkdir()
        begin = time.perf_counter()
        made = run_child("make", str(source), str(runs), str(steps))
        if made.returncode != -signal.SIGKILL:
            raise SystemExit(f"the store maker did not die as planned ({made.returncode}): {made.stderr[-2000:]}")
        made_seconds = time.perf_counter() - begin
        time.sleep(1.1)  # the dead lease (1 s) expires
        results: dict[str, list[dict[str, float]]] = {"off": [], "resume": []}
        for _ in range(repeat):
            for policy in ("off", "resume"):
                copy = Path(tmp) / f"{policy}-{len(results[policy])}" / "events.db"
                copy.parent.mkdir()
                for suffix in ("", "-wal", "-shm"):
                    if Path(f"{source}{suffix}").exists():
                        shutil.copy(f"{source}{suffix}", f"{copy}{suffix}")
                done = run_child("open", str(copy), policy)
                if done.returncode != 0:
                    raise SystemExit(f"opening with {policy} failed: {done.stderr[-2000:]}")
                results[policy].append(json.loads(done.stdout.strip().splitlines()[-1]))
    off = statistics.median(r["seconds"] for r in results["off"])
    resume = statistics.median(r["seconds"] for r in results["resume"])
    adopted = results["resume"][0]
    ended = statistics.median(r["ended"] for r in results["resume"])
    return {
        "runs_in_flight": runs,
        "steps": steps,
        "store_build_seconds": round(made_seconds, 2),
        "open_recovery_off_s": round(off, 3),
        "open_recovery_resume_s": round(resume, 3),
        "recovery_only_s": round(resume - off, 3),
        "all_recovered_runs_ended_s": round(ended, 3),
        "ratio_vs_open": round(resume / off, 2) if off else None,
        "tasks_adopted": adopted["tasks"],
        "runs_adopted": adopted["runs"],
        "target_s": 5.0,
        "met": resume < 5.0 and adopted["runs"] == runs,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    result = measure(args.runs, args.steps, args.repeat)
    print(f"{args.runs} runs in flight ({args.runs * args.steps} tasks), medians of {args.repeat}:")
    print(f"  open, recovery off (baseline)    {result['open_recovery_off_s']:.3f} s")
    print(f"  open, recovery resume            {result['open_recovery_resume_s']:.3f} s "
          f"({result['ratio_vs_open']}x the baseline; recovery itself {result['recovery_only_s']:.3f} s)")  # fmt: skip
    print(f"  every recovered run recorded as ended after {result['all_recovered_runs_ended_s']:.3f} s")
    print(f"  adopted {result['tasks_adopted']} tasks of {result['runs_adopted']} runs; target < 5 s: "
          f"{'met' if result['met'] else 'NOT met'}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
