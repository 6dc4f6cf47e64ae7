"""Benchmark of the orchestration engine against bare baselines, in one run.

    python bench/run.py [--quick] [--only W1,W2,W3,W4,WF1000,APPEND,REPLAY,RES,EXEC] [--repeat N] [--json out.json]
    python bench/run.py --only REPLAY1M [--replay-events N] [--cache-dir DIR]

Every measurement runs in a fresh child process (``python bench/run.py --child SPEC``)
that reports its own peak RSS (``ru_maxrss``), so each number is that run's own peak.
Results are validated; the exit code is 1 if any validation fails (or a child
crashes). Targets are reported, never asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = Path(__file__).resolve()
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT_PREFIX = "BENCH-RESULT "
SECTIONS = ("W1", "W2", "W3", "W4", "WF1000", "APPEND", "REPLAY", "RES", "EXEC", "REPLAY1M")
# REPLAY1M (the replay tools on a 1,000,000-event log: a 666 MB file, ~3 minutes) runs
# only when named in --only.
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "REPLAY1M")
WORKLOADS = ("W1", "W2", "W3", "W4")
SIZES: dict[str, dict[str, int]] = {
    "full": {
        "W1": 2000,
        "W2": 300,
        "W3": 1000,
        "W4": 200,
        "WF1000": 1000,
        "APPEND": 8000,
        "REPLAY": 100_000,
        "REPLAY_BATCH": 4000,
        "RES_PAIRS": 250,  # allocate/deallocate pairs per thread (4 threads)
        "RES_W1": 2000,
        "EXEC_W1": 2000,  # W1 and W3 on each executor, and plain Dask
        "EXEC_W3": 1000,
        "REPLAY1M": 1_000_000,
    },
    "quick": {
        "W1": 200,
        "W2": 30,
        "W3": 100,
        "W4": 20,
        "WF1000": 100,
        "APPEND": 800,
        "REPLAY": 10_000,
        "REPLAY_BATCH": 400,
        "RES_PAIRS": 25,
        "RES_W1": 200,
        "EXEC_W1": 200,
        "EXEC_W3": 100,
        "REPLAY1M": 100_000,
    },
}
TARGET_W1_TASKS_PER_S = 5000.0
TARGET_W4_OVER_IDEAL = 0.15
TARGET_REPLAY_EVENTS_PER_S = 100_000.0
TARGET_W1_RSS_MB = 60.0
TARGET_WORKFLOW_VS_ORCH = 1.5  # a workflow of 1,000 independent steps vs the same tasks via add_tasks
TARGET_RESOURCE_VS_PLAIN = 1.3  # W1 with a shared read resource per task vs plain W1
TARGET_DASK_VS_PLAIN = 1.5  # W1 through the engine on the Dask executor vs plain dask.distributed
TARGET_STATE_AT_SECONDS = 10.0  # state_at(end) over the 1,000,000-event log
TARGET_STATE_AT_RSS_MB = 300.0
TARGET_EXPORT_EVENTS_PER_S = 200_000.0


# =============================================================================
# child side
# =============================================================================


def child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    kind = spec["kind"]
    try:
        if kind == "baseline":
            from bench import baseline

            out = baseline.run(spec)
        elif kind == "orch":
            from bench import orch

            out = orch.run(spec)
        elif kind == "engine":
            from bench import engine_wf

            out = engine_wf.run(spec)
        elif kind == "append":
            from bench import store_bench

            out = store_bench.run_append(spec)
        elif kind == "raw":
            from bench import store_bench

            out = store_bench.run_raw(spec)
        elif kind == "replay-build":
            from bench import store_bench

            out = store_bench.run_replay_build(spec)
        elif kind == "replay":
            from bench import store_bench

            out = store_bench.run_replay(spec)
        elif kind == "exec":
            from bench import exec_bench

            out = exec_bench.run(spec)
        elif kind == "res-alloc":
            from bench import res_bench

            out = res_bench.run(spec)
        elif kind == "replay1m":
            from bench import replay_big

            out = replay_big.run(spec)
        elif kind == "floor":
            import resource

            if spec["library"]:
                import engine.task_orchestrator  # noqa: F401
                import replay_tools.history  # noqa: F401
            out = {"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "errors": []}
        else:
            raise ValueError(f"unknown child kind {kind!r}")
    except BaseException:
        out = {"errors": [f"child crashed:\n{traceback.format_exc()}"], "crashed": True}
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return 1 if out["errors"] else 0


# =============================================================================
# parent side: running children
# =============================================================================


@dataclass
class Run:
    """One child's result."""

    key: tuple[str, ...]
    spec: dict[str, Any]
    out: dict[str, Any]
    wall: float

    @property
    def errors(self) -> list[str]:
        return list(self.out.get("errors", []))


class Children:
    def __init__(self, root: Path, timeout: float, keep: bool) -> None:
        self.root = root
        self.timeout = timeout
        self.keep = keep
        self.runs: list[Run] = []
        self._n = 0

    def run(self, key: tuple[str, ...], spec: dict[str, Any], *, tmpdir: Path | None = None) -> Run:
        self._n += 1
        own_dir = tmpdir is None
        work = tmpdir or self.root / f"run-{self._n:03d}"
        work.mkdir(parents=True, exist_ok=True)
        spec = {**spec, "tmpdir": str(work)}
        cmd = [sys.executable, str(RUN_PY), "--child", json.dumps(spec)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, cwd=ROOT, check=False)
        except subprocess.TimeoutExpired as e:
            out: dict[str, Any] = {"errors": [f"child timed out after {self.timeout:g}s: {e}"], "crashed": True}
        else:
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
            if lines:
                out = json.loads(lines[-1][len(RESULT_PREFIX) :])
            else:
                tail = (proc.stderr or proc.stdout)[-2000:]
                out = {"errors": [f"child exited {proc.returncode} without a result:\n{tail}"], "crashed": True}
            if proc.returncode != 0 and not out.get("errors"):
                out.setdefault("errors", []).append(f"child exited {proc.returncode}")
        wall = time.perf_counter() - t0
        if own_dir and not self.keep:
            shutil.rmtree(work, ignore_errors=True)
        run = Run(key, spec, out, wall)
        self.runs.append(run)
        return run


# =============================================================================
# parent side: the plan
# =============================================================================


@dataclass
class Row:
    """Several repetitions of one measurement, aggregated."""

    section: str
    key: tuple[str, ...]
    label: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    def values(self, name: str) -> list[float]:
        return [float(r.out[name]) for r in self.runs if r.out.get(name) is not None]

    def median(self, name: str) -> float | None:
        vals = self.values(name)
        return statistics.median(vals) if vals else None

    @property
    def seconds(self) -> float | None:
        return self.median("seconds")

    @property
    def rss_kib(self) -> float | None:
        vals = self.values("rss_kib")
        return max(vals) if vals else None

    @property
    def errors(self) -> list[str]:
        return [e for r in self.runs for e in r.errors]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.errors

    def extra(self, name: str) -> Any:
        """From the run with the median time (the other runs' counts differ a little)."""
        timed = [r for r in self.runs if r.out.get("seconds") is not None]
        if not timed:
            return None
        timed.sort(key=lambda r: r.out["seconds"])
        return timed[len(timed) // 2].out.get("extra", {}).get(name)


ENGINE_CONFIGS: list[tuple[str, str, str]] = [("engine", "sqlite", "workflow"), ("engine", "memory", "workflow")]
WORKLOAD_CONFIGS: dict[str, list[tuple[str, str, str]]] = {
    # (kind, backend, variant)
    "W1": [
        ("baseline", "threads", "-"),
        ("orch", "sqlite", "batch"),
        ("orch", "sqlite", "one-by-one"),
        ("orch", "sqlite-normal", "batch"),
        ("orch", "memory", "batch"),
        ("orch", "memory", "one-by-one"),
        *ENGINE_CONFIGS,
    ],
    **{
        w: [("baseline", "threads", "-"), ("orch", "sqlite", "batch"), ("orch", "memory", "batch"), *ENGINE_CONFIGS]
        for w in ("W2", "W3")
    },
    "W4": [
        ("baseline", "threads", "-"),
        ("orch", "sqlite", "batch"),
        ("orch", "sqlite-normal", "batch"),
        ("orch", "memory", "batch"),
        *ENGINE_CONFIGS,
    ],
}
# The target's own pair: 1,000 independent inc steps as one workflow vs the same 1,000
# tasks through TaskOrchestrator.add_tasks, on each store (the W1 graph, n = WF1000).
PAIR_CONFIGS: list[tuple[str, str, str]] = [
    ("orch", "sqlite", "batch"),
    ("engine", "sqlite", "workflow"),
    ("orch", "memory", "batch"),
    ("engine", "memory", "workflow"),
]
# RES: allocate/deallocate pairs from 4 threads (the lock-protected dict is the baseline),
# then W1 with and without a shared read resource per task, on each store.
RES_ALLOC_BACKENDS = ("lock", "sqlite", "memory")
# The lock baseline does 100x the pairs: at ~1 µs a pair, RES_PAIRS alone would time
# little more than the threads waking up. Compared by rate (pairs/s), not by time.
RES_LOCK_FACTOR = 100
RES_W1_CONFIGS: list[tuple[str, str]] = [
    ("sqlite", "batch"),
    ("sqlite", "batch-read"),
    ("memory", "batch"),
    ("memory", "batch-read"),
]
APPEND_MODES: list[tuple[str, str, dict[str, Any]]] = [
    # (key, kind, spec extras)
    ("raw", "raw", {"include_encode": False}),
    ("raw+encode", "raw", {"include_encode": True}),
    ("single", "append", {"mode": "single"}),
    ("async", "append", {"mode": "async"}),
    ("blocking", "append", {"mode": "blocking"}),
]


class Bench:
    def __init__(self, args: argparse.Namespace, children: Children) -> None:
        self.args = args
        self.children = children
        self.sizes = SIZES["quick" if args.quick else "full"]
        self.rows: dict[tuple[str, ...], Row] = {}

    def row(self, section: str, key: tuple[str, ...], **label: str) -> Row:
        if key not in self.rows:
            self.rows[key] = Row(section, key, label)
        return self.rows[key]

    def add(self, section: str, key: tuple[str, ...], spec: dict[str, Any], **label: str) -> Run:
        run = self.children.run(key, spec)
        self.row(section, key, **label).runs.append(run)
        return run

    def run_workloads(self, selected: list[str], progress: Any) -> None:
        timeout = 60.0 if self.args.quick else 120.0
        for rep in range(self.args.repeat):
            for w in selected:
                n = self.sizes[w]
                progress(f"{w} (n={n}), repetition {rep + 1}/{self.args.repeat}")
                if w == "WF1000":  # the pair: the W1 graph with n = WF1000 steps
                    configs, section, workload = PAIR_CONFIGS, "pair", "W1"
                else:
                    configs, section, workload = WORKLOAD_CONFIGS[w], "workload", w
                for kind, backend, variant in configs:
                    spec = {
                        "kind": kind,
                        "workload": workload,
                        "n": n,
                        "backend": backend,
                        "variant": variant,
                        "timeout": timeout,
                    }
                    self.add(section, (w, backend, variant), spec, workload=w, backend=backend, variant=variant)

    def run_append(self, progress: Any) -> None:
        n = self.sizes["APPEND"]
        for rep in range(self.args.repeat):
            progress(f"event append (n={n}), repetition {rep + 1}/{self.args.repeat}")
            for key, kind, extras in APPEND_MODES:
                self.add("append", ("APPEND", key), {"kind": kind, "n": n, **extras}, mode=key)

    def run_res(self, progress: Any) -> None:
        pairs, n = self.sizes["RES_PAIRS"], self.sizes["RES_W1"]
        timeout = 60.0 if self.args.quick else 120.0
        for rep in range(self.args.repeat):
            progress(
                f"resources: {pairs} alloc/dealloc pairs x 4 threads, W1 (n={n}) with/without a read resource, "
                f"repetition {rep + 1}/{self.args.repeat}"
            )
            for backend in RES_ALLOC_BACKENDS:
                n_pairs = pairs * RES_LOCK_FACTOR if backend == "lock" else pairs
                spec = {"kind": "res-alloc", "backend": backend, "n": n_pairs}
                self.add("res-alloc", ("RES", "alloc", backend), spec, backend=backend)
            for backend, variant in RES_W1_CONFIGS:
                spec = {
                    "kind": "orch",
                    "workload": "W1",
                    "n": n,
                    "backend": backend,
                    "variant": variant,
                    "timeout": timeout,
                }
                self.add("res-w1", ("RES", "W1", backend, variant), spec, backend=backend, variant=variant)

    def run_exec(self, progress: Any) -> None:
        """W1 and W3 through each executor, and plain Dask, interleaved per repetition."""
        from bench.exec_bench import RUNNERS

        timeout = 120.0 if self.args.quick else 300.0
        for rep in range(self.args.repeat):
            for workload in ("W1", "W3"):
                n = self.sizes[f"EXEC_{workload}"]
                progress(
                    f"executors: {workload} (n={n}) on threads, processes, dask, plain dask, "
                    f"repetition {rep + 1}/{self.args.repeat}"
                )
                for runner in RUNNERS:
                    spec = {"kind": "exec", "workload": workload, "n": n, "runner": runner, "timeout": timeout}
                    self.add("exec", ("EXEC", workload, runner), spec, workload=workload, runner=runner)

    def run_replay1m(self, progress: Any) -> None:
        from bench import replay_big

        n = self.args.replay_events or self.sizes["REPLAY1M"]
        cache = Path(self.args.cache_dir) if self.args.cache_dir else replay_big.default_cache_dir()
        progress(f"replay tools: the {n:,}-event log (generator v{replay_big.GENERATOR_VERSION}) in {cache}")
        build = self.children.run(
            ("REPLAY1M", "build"), {"kind": "replay1m", "op": "build", "n": n, "cache_dir": str(cache.resolve())}
        )
        self.row("replay1m", ("REPLAY1M", "build"), op="build").runs.append(build)
        if build.errors:
            return
        spec = {"kind": "replay1m", "path": build.out["path"], "meta": build.out["meta"]}
        for rep in range(self.args.repeat):
            progress(f"replay tools on {n:,} events, repetition {rep + 1}/{self.args.repeat}")
            for op in REPLAY1M_OPS:
                self.add("replay1m", ("REPLAY1M", op), {**spec, "op": op}, op=op)

    def run_replay(self, progress: Any) -> None:
        n, batch = self.sizes["REPLAY"], self.sizes["REPLAY_BATCH"]
        progress(f"replay: building a {n:,}-event SQLite log")
        log_dir = self.children.root / "replay-log"
        log_dir.mkdir()
        url = f"sqlite:///{log_dir.resolve() / 'events.db'}"
        build = self.children.run(
            ("REPLAY", "build"), {"kind": "replay-build", "n": n, "batch": batch, "url": url}, tmpdir=log_dir
        )
        self.row("append", ("APPEND", "build"), mode="build").runs.append(build)
        if build.errors:
            return
        for rep in range(self.args.repeat):
            progress(f"replay (n={n:,}), repetition {rep + 1}/{self.args.repeat}")
            self.add("replay", ("REPLAY",), {"kind": "replay", "n": n, "url": url})


# =============================================================================
# machine description
# =============================================================================


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fs_type(path: Path) -> str:
    best, fstype = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype


def _fdatasync_ms(directory: Path, n: int = 100) -> float:
    """Median time of rewriting one 4 KiB block and ``fdatasync`` (a commit's floor)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    samples = []
    try:
        os.pwrite(fd, b"x" * 4096, 0)
        os.fsync(fd)
        for i in range(n):
            os.pwrite(fd, bytes([i % 256]) * 4096, 0)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(samples) * 1000


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine_info(tmp: Path, children: Children) -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    bare = children.run(("floor", "bare"), {"kind": "floor", "library": False})
    lib = children.run(("floor", "library"), {"kind": "floor", "library": True})
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("codomyrmex-orchestration", "eventsourcing", "msgspec", "rich")},
        "git": _git(),
        "tmp": str(tmp),
        "tmp_fs": _fs_type(tmp.resolve()),
        "fdatasync_ms": _fdatasync_ms(tmp),
        "rss_floor_kib": {"bare": bare.out.get("rss_kib"), "library": lib.out.get("rss_kib")},
        "load_at_start": load_average(),
    }


# =============================================================================
# reporting
# =============================================================================


def _mb(kib: float | None) -> float | None:
    return kib * 1024 / 1e6 if kib is not None else None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _ok(row: Row) -> str:
    return "[green]✓[/]" if row.ok else "[bold red]✗ FAIL[/]"


W4_LABEL = {"sqlite": "durable SQLite", "sqlite-normal": "SQLite synchronous=normal", "memory": "memory://"}
RUNNER_LABEL = {
    ("threads", "-"): "baseline ThreadPool(4)",
    ("sqlite", "batch"): "SQLite · add_tasks",
    ("sqlite", "one-by-one"): "SQLite · add_task xN",
    ("sqlite-normal", "batch"): "SQLite sync=normal · add_tasks",
    ("memory", "batch"): "memory · add_tasks",
    ("memory", "one-by-one"): "memory · add_task xN",
    ("sqlite", "workflow"): "SQLite · engine workflow",
    ("memory", "workflow"): "memory · engine workflow",
}
STORE_LABEL = {"sqlite": "durable SQLite", "memory": "memory://"}
APPEND_LABEL = {
    "raw": "baseline: raw sqlite3 executemany, 1 txn (pre-encoded)",
    "raw+encode": "raw sqlite3 executemany, 1 txn, incl. msgspec encode",
    "single": "(a) store.append(all events) — one call",
    "async": "(b) 4 threads x append_async(1 event), then flush",
    "blocking": "(c) 4 threads x blocking append(1 event)",
    "build": "(d) replay-log build: store.append of {batch:,}-event batches",
}


def render(bench: Bench, machine: dict[str, Any], targets: list[dict[str, Any]], wall: float) -> Any:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    reps = bench.args.repeat
    m = machine
    console.print(
        f"[bold]codomyrmex-orchestration benchmark[/] ({'QUICK: sizes / 10' if bench.args.quick else 'full'}"
        f", {reps} repetition(s), each measurement in a fresh process)"
    )
    console.print(f"machine : {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['platform']}")
    console.print(
        f"python  : {m['python']}   sqlite {m['sqlite']}   " + "   ".join(f"{k} {v}" for k, v in m["versions"].items())
    )
    console.print(f"source  : git {m['git']}")
    console.print(
        f"load    : 1/5/15-min load average {m['load_at_start']} at start, {m.get('load_at_end', '?')} at end"
        " (other processes on these cores add noise; see min-max)"
    )
    floor = m["rss_floor_kib"]
    console.print(
        f"tmp     : {m['tmp']} ({m['tmp_fs']}), fdatasync median {m['fdatasync_ms']:.2f} ms;  RSS floor: "
        f"bare interpreter {_fmt(_mb(floor['bare']), '.1f', ' MB')}, library imported "
        f"{_fmt(_mb(floor['library']), '.1f', ' MB')}"
    )
    console.print()

    wl_rows = [r for r in bench.rows.values() if r.section == "workload"]
    if wl_rows:
        console.print(
            f"[bold]Task workloads[/] — TaskOrchestrator(max_workers=4) and OrchestrationEngine"
            f".execute_complex_workflow (one workflow per shape, session max_parallel_tasks=4, max_workers=4) vs "
            f"ThreadPoolExecutor(4); median of {reps}; 'vs base' = time / baseline time; 'vs orch' = engine "
            "time / TaskOrchestrator add_tasks time on the same store (higher is slower)"
        )
        t = Table()
        for col, just in [
            ("Workload", "left"),
            ("Runner", "left"),
            ("Tasks", "right"),
            ("Total s", "right"),
            ("min-max s", "right"),
            ("Exec s", "right"),
            ("Tasks/s", "right"),
            ("vs base", "right"),
            ("vs orch", "right"),
            ("RSS MB", "right"),
            ("Commits", "right"),
            ("Ev/commit", "right"),
            ("Valid", "center"),
            ("Notes", "left"),
        ]:
            # Notes wrap, so a narrow terminal squeezes them before the numbers
            t.add_column(col, justify=just, no_wrap=col != "Notes")  # type: ignore[arg-type]
        last_w = None
        for w in [w for w in WORKLOADS if any(r.key[0] == w for r in wl_rows)]:
            base = bench.rows.get((w, "threads", "-"))
            base_s = base.seconds if base else None
            for r in [r for r in wl_rows if r.key[0] == w]:
                _, backend, variant = r.key
                secs = r.seconds
                tasks = r.runs[0].out.get("tasks") if r.runs else None
                vals = r.values("seconds")
                notes = []
                ideal = _ideal(w, bench.sizes[w])
                if ideal and secs:
                    notes.append(f"{(secs / ideal - 1) * 100:+.1f}% vs ideal {ideal:.3f} s")
                peak = r.extra("peak_concurrency")
                if peak is not None:
                    notes.append(f"peak conc. {peak}")
                if r.extra("final") is not None:
                    notes.append(f"final value {r.extra('final')}")
                if r.extra("sum") is not None:
                    notes.append(f"reducer sum {r.extra('sum'):,}")
                if variant == "one-by-one" and r.median("add_seconds") is not None:
                    notes.append(f"last add at {r.median('add_seconds'):.3f} s")
                if r.extra("run_duration") is not None:
                    notes.append(f"run recorded {r.extra('run_duration'):.3f} s")
                if last_w is not None and w != last_w:
                    t.add_section()
                last_w = w
                t.add_row(
                    w,
                    RUNNER_LABEL[(backend, variant)],
                    _fmt(tasks, ","),
                    _fmt(secs, ".3f"),
                    f"{min(vals):.3f}-{max(vals):.3f}" if len(vals) > 1 else "—",
                    _fmt(r.median("exec_seconds"), ".3f"),
                    _fmt(tasks / secs if tasks and secs else None, ",.0f"),
                    "1.00"
                    if backend == "threads" and secs
                    else _fmt(secs / base_s if secs and base_s else None, ",.1f", "x"),
                    _fmt(_vs_orch(bench, r), ".2f", "x") if variant == "workflow" else "",
                    _fmt(_mb(r.rss_kib), ".1f"),
                    _fmt(r.extra("commits"), ","),
                    _fmt(r.extra("events") / r.extra("commits") if r.extra("commits") else None, ".1f"),
                    _ok(r),
                    "; ".join(notes),
                )
        console.print(t)
        console.print()

    pair = [b for b in ("sqlite", "memory") if any(r.key[:2] == ("WF1000", b) for r in bench.rows.values())]
    if pair:
        n = bench.sizes["WF1000"]
        console.print(
            f"[bold]Workflow vs TaskOrchestrator[/] — {n:,} independent inc steps as ONE execute_complex_workflow "
            f"vs the same {n:,} tasks through add_tasks + start_execution, same store; median of {reps}; "
            "ratio = engine median / orchestrator median"
        )
        t = Table()
        for col, just in [
            ("Store", "left"),
            ("Orchestrator s", "right"),
            ("min-max s", "right"),
            ("Engine s", "right"),
            ("min-max s", "right"),
            ("Engine / orch", "right"),
            ("Paired ratios min-max", "right"),
            ("Engine RSS MB", "right"),
            ("Valid", "center"),
        ]:
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for backend in pair:
            orch_row = bench.rows.get(("WF1000", backend, "batch"))
            eng_row = bench.rows.get(("WF1000", backend, "workflow"))
            ov = orch_row.values("seconds") if orch_row else []
            ev = eng_row.values("seconds") if eng_row else []
            paired = [b / a for a, b in zip(ov, ev, strict=False) if a]
            t.add_row(
                STORE_LABEL[backend],
                _fmt(orch_row.seconds if orch_row else None, ".3f"),
                f"{min(ov):.3f}-{max(ov):.3f}" if len(ov) > 1 else "—",
                _fmt(eng_row.seconds if eng_row else None, ".3f"),
                f"{min(ev):.3f}-{max(ev):.3f}" if len(ev) > 1 else "—",
                _fmt(_pair_ratio(bench, backend), ".2f", "x"),
                f"{min(paired):.2f}-{max(paired):.2f}x" if len(paired) > 1 else "—",
                _fmt(_mb(eng_row.rss_kib) if eng_row else None, ".1f"),
                "[green]✓[/]" if orch_row and eng_row and orch_row.ok and eng_row.ok else "[bold red]✗ FAIL[/]",
            )
        console.print(t)
        console.print()

    ap_rows = [r for r in bench.rows.values() if r.section == "append"]
    if ap_rows:
        base = bench.rows.get(("APPEND", "raw"))
        base_s = base.seconds if base else None
        console.print(
            f"[bold]Event append[/] to a durable SQLite file (WAL), group commit — median of {reps}; "
            "'vs base' = time / raw baseline time"
        )
        t = Table()
        for col, just in [
            ("Mode", "left"),
            ("Events", "right"),
            ("Seconds", "right"),
            ("min-max s", "right"),
            ("Events/s", "right"),
            ("vs base", "right"),
            ("Commits", "right"),
            ("Largest batch", "right"),
            ("Valid", "center"),
        ]:
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        order = ["raw", "raw+encode", "single", "async", "blocking", "build"]
        for r in sorted(ap_rows, key=lambda r: order.index(r.key[1])):
            secs = r.seconds
            events = r.runs[0].out.get("events") if r.runs else None
            vals = r.values("seconds")
            if r.key[1] == "build":
                ratio = "n/a"  # a different (larger) log
            elif r.key[1] == "raw":
                ratio = "1.00"
            else:
                ratio = _fmt(secs / base_s if secs and base_s else None, ",.2f", "x")
            t.add_row(
                APPEND_LABEL[r.key[1]].format(batch=bench.sizes["REPLAY_BATCH"]),
                _fmt(events, ","),
                _fmt(secs, ".4f"),
                f"{min(vals):.4f}-{max(vals):.4f}" if len(vals) > 1 else "—",
                _fmt(events / secs if events and secs else None, ",.0f"),
                ratio,
                _fmt(r.extra("commits"), ","),
                _fmt(r.extra("largest_batch"), ","),
                _ok(r),
            )
        console.print(t)
        if base and base.runs:
            ex = base.runs[0].out.get("extra", {})
            console.print(
                f"  raw connection: journal_mode={ex.get('journal_mode')}, synchronous={ex.get('synchronous')}"
                " (SQLite default, as the store's connections)"
            )
        console.print()

    rp = bench.rows.get(("REPLAY",))
    if rp:
        console.print(f"[bold]Replay[/]: History(open_store(url)).task_view() in a fresh process — median of {reps}")
        t = Table()
        for col, just in [
            ("Log", "left"),
            ("Events", "right"),
            ("Open s", "right"),
            ("Fold s", "right"),
            ("min-max s", "right"),
            ("Events/s", "right"),
            ("RSS MB", "right"),
            ("Valid", "center"),
        ]:
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        events = rp.runs[0].out.get("events") if rp.runs else None
        vals = rp.values("seconds")
        t.add_row(
            f"SQLite, {(events or 0) // 4:,} tasks x 4 events",
            _fmt(events, ","),
            _fmt(rp.median("open_seconds"), ".3f"),
            _fmt(rp.seconds, ".3f"),
            f"{min(vals):.3f}-{max(vals):.3f}" if len(vals) > 1 else "—",
            _fmt(events / rp.seconds if events and rp.seconds else None, ",.0f"),
            _fmt(_mb(rp.rss_kib), ".1f"),
            _ok(rp),
        )
        console.print(t)
        console.print()

    render_res(bench, console)
    render_exec(bench, console)
    render_replay1m(bench, console)

    if targets:
        console.print(
            "[bold]Targets[/] (reported, not asserted)"
            + (" — QUICK sizes: indicative only" if bench.args.quick else "")
        )
        t = Table()
        for col in ("Target", "Goal", "Measured", "Met?"):
            t.add_column(col, no_wrap=True)
        for tg in targets:
            met = tg["met"]
            t.add_row(
                tg["name"],
                tg["goal"],
                tg["measured"],
                "—" if met is None else ("[green]yes[/]" if met else "[yellow]NO[/]"),
            )
        console.print(t)
        console.print()

    failed = [r for r in bench.rows.values() if not r.ok]
    failed_runs = [r for r in bench.children.runs if r.errors and r.key[0] == "floor"]
    if failed or failed_runs:
        console.print("[bold red]VALIDATION FAILED[/]")
        for r in failed:
            console.print(f"[red]  {'/'.join(r.key)}: {len(r.runs)} run(s), {len(r.errors)} error(s)[/]")
            for e in r.errors[:6]:
                console.print(f"    - {e}", markup=False)
        for run in failed_runs:
            console.print(f"  {'/'.join(run.key)}: {run.errors}", markup=False)
    else:
        n = sum(len(r.runs) for r in bench.rows.values())
        console.print(
            f"[bold green]All validations passed[/] ({n} measured runs in fresh processes); "
            f"benchmark wall time {wall:.1f} s"
        )
    return console


REPLAY1M_OPS = (
    "scan-untyped",
    "scan-only",
    "scan-typed",
    "state-end",
    "state-mid",
    "timeline-run",
    "timeline-all",
    "export",
    "verify",
)
REPLAY1M_LABEL = {
    "scan-untyped": "baseline: sqlite3 scan + msgspec.json.decode per row",
    "scan-only": "sqlite3 scan, rows not decoded",
    "scan-typed": "sqlite3 scan + typed decode (event Structs)",
    "state-end": "state_at(position=end)",
    "state-mid": "state_at(position=n/2)",
    "timeline-run": "timeline(run=one run)",
    "timeline-all": "timeline() of the whole store, iterated",
    "export": "export_events(store, file)",
    "verify": "verify(store)",
}


def render_replay1m(bench: Bench, console: Any) -> None:
    """The REPLAY1M section: a table, then one machine-readable JSON line."""
    from rich.table import Table

    build = bench.rows.get(("REPLAY1M", "build"))
    if build is None:
        return
    out = build.runs[0].out if build.runs else {}
    meta = out.get("meta")
    if not meta:
        console.print("[bold red]REPLAY1M: the log could not be built[/]")
        for e in build.errors[:3]:
            console.print(f"  {e}", markup=False)
        console.print()
        return
    n, end = meta["events"], meta["end"]
    base = bench.rows.get(("REPLAY1M", "scan-untyped"))
    base_s = base.seconds if base else None
    made = f"built in {meta['build_seconds']:.1f} s" if out.get("built") else "cached"
    console.print(
        f"[bold]Replay tools on a {n:,}-event SQLite log[/] (generator v{meta['generator_version']}: "
        f"{end['runs']:,} workflow runs of 10 steps, {end['tasks']:,} tasks, {end['sessions']:,} sessions; "
        f"{meta['bytes'] / 1e6:,.0f} MB; {made}) — each measurement in a fresh process, median of "
        f"{bench.args.repeat}; 'vs base' = time / baseline time (higher is slower); RSS is the process's peak"
    )
    t = Table()
    for col, just in [
        ("Measurement", "left"),
        ("Events read", "right"),
        ("Seconds", "right"),
        ("min-max s", "right"),
        ("Events/s", "right"),
        ("vs base", "right"),
        ("Peak RSS MB", "right"),
        ("Valid", "center"),
        ("Notes", "left"),
    ]:
        t.add_column(col, justify=just, no_wrap=col != "Notes")  # type: ignore[arg-type]
    rows = []
    for op in REPLAY1M_OPS:
        r = bench.rows.get(("REPLAY1M", op))
        if r is None:
            continue
        secs = r.seconds
        events = r.runs[0].out.get("events") if r.runs else None
        rate = events / secs if events and secs else None
        ratio = secs / base_s if secs and base_s else None
        notes = []
        if op.startswith("state"):
            notes.append(f"{_fmt(r.extra('tasks'), ',')} tasks, {_fmt(r.extra('runs'), ',')} runs folded")
        elif op == "timeline-run":
            notes.append(f"{_fmt(r.extra('entries'), ',')} entries")
        elif op == "timeline-all":
            notes.append(f"{_fmt(r.extra('caused_links'), ',')} caused links")
        elif op == "export":
            size = r.extra("bytes")
            notes.append(f"{size / 1e6:,.0f} MB written" if size else "")
        if op != "scan-untyped" and r.median("open_seconds") is not None:
            notes.append(f"open {r.median('open_seconds') * 1000:.1f} ms (untimed)")
        t.add_row(
            REPLAY1M_LABEL[op],
            _fmt(events, ","),
            _fmt(secs, ".3f"),
            _span(r.values("seconds"), ".3f"),
            _fmt(rate, ",.0f"),
            "1.00" if op == "scan-untyped" and secs else _fmt(ratio, ".2f", "x"),
            _fmt(_mb(r.rss_kib), ".1f"),
            _ok(r),
            "; ".join(n for n in notes if n),
        )
        rows.append(
            {
                "op": op,
                "events": events,
                "seconds_median": secs,
                "seconds_all": r.values("seconds"),
                "events_per_s": rate,
                "vs_baseline": ratio,
                "peak_rss_mb": _mb(r.rss_kib),
                "ok": r.ok,
            }
        )
    console.print(t)
    console.print(
        "  checked: state_at against the generator's own count of tasks, runs and sessions by status (end and "
        "midpoint); the run's timeline holds its events in order; export wrote one line per event; verify found "
        "no violation; every scan read every row"
    )
    console.print()
    line = {
        "section": "REPLAY1M",
        "events": n,
        "generator_version": meta["generator_version"],
        "log_bytes": meta["bytes"],
        "build_seconds": meta["build_seconds"] if out.get("built") else None,
        "repetitions": bench.args.repeat,
        "baseline": "scan-untyped",
        "rows": rows,
    }
    print("REPLAY1M-JSON " + json.dumps(line), flush=True)
    console.print()


RES_ALLOC_LABEL = {
    "lock": "baseline: threading.Lock + dict counter",
    "sqlite": "ResourceManager · durable SQLite",
    "memory": "ResourceManager · memory://",
}


def _span(vals: list[float], spec: str) -> str:
    return f"{min(vals):{spec}}-{max(vals):{spec}}" if len(vals) > 1 else "—"


def render_res(bench: Bench, console: Any) -> None:
    """The RES section: allocate/deallocate pairs, and W1 with a shared read resource."""
    from rich.table import Table

    reps = bench.args.repeat
    alloc = [bench.rows[("RES", "alloc", b)] for b in RES_ALLOC_BACKENDS if ("RES", "alloc", b) in bench.rows]
    if alloc:
        pairs = bench.sizes["RES_PAIRS"]
        base = bench.rows.get(("RES", "alloc", "lock"))
        base_rate = _pairs_per_s(base) if base else None
        console.print(
            f"[bold]Resource allocation[/] — 4 threads, each {pairs:,} pairs of allocate_resources(user-k, "
            '{"semaphore": {"slots": 1}}) + deallocate_resources(user-k) on ONE semaphore resource '
            f"(capacity 64), vs the same loop on a threading.Lock-protected dict (x{RES_LOCK_FACTOR} the pairs, "
            f"so it is measurable); median of {reps}; 'vs lock' = lock pairs/s / pairs/s (higher is slower)"
        )
        t = Table()
        for col, just in [
            ("Runner", "left"),
            ("Pairs", "right"),
            ("Seconds", "right"),
            ("min-max s", "right"),
            ("Pairs/s", "right"),
            ("µs/pair", "right"),
            ("vs lock", "right"),
            ("Pairs/s by quarter of the run", "right"),
            ("Commits", "right"),
            ("RSS MB", "right"),
            ("Valid", "center"),
        ]:
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for r in alloc:
            secs = r.seconds
            total = r.runs[0].out.get("pairs") if r.runs else None
            rate = _pairs_per_s(r)
            quarters = r.extra("quarter_rates")
            t.add_row(
                RES_ALLOC_LABEL[r.key[2]],
                _fmt(total, ","),
                _fmt(secs, ".4f"),
                _span(r.values("seconds"), ".4f"),
                _fmt(rate, ",.0f"),
                _fmt(1e6 / rate if rate else None, ",.2f"),
                "1.00"
                if r.key[2] == "lock" and rate
                else _fmt(base_rate / rate if rate and base_rate else None, ",.0f", "x"),
                " / ".join(f"{q:,.0f}" for q in quarters) if quarters else "—",
                _fmt(r.extra("commits"), ","),
                _fmt(_mb(r.rss_kib), ".1f"),
                _ok(r),
            )
        console.print(t)
        console.print(
            "  checked: every allocation granted, every deallocation True, 0 allocated and no holder at the end, "
            "the log holds exactly 'pairs' allocation.granted/released and resource.allocated/released events "
            "(SQLite: the closed file re-read); Commits: store transactions in the timed loop"
        )
        console.print()

    stores = [b for b in ("sqlite", "memory") if ("RES", "W1", b, "batch-read") in bench.rows]
    if stores:
        n = bench.sizes["RES_W1"]
        console.print(
            f"[bold]Resource declarations[/] — W1 ({n:,} independent inc tasks, add_tasks + start_execution, "
            "TaskOrchestrator(max_workers=4)) with every task declaring TaskResource(LOCK, 'shared', mode='read') "
            f"vs plain W1, same run and store; median of {reps}; ratio = resource median / plain median"
        )
        t = Table()
        for col, just in [
            ("Store", "left"),
            ("Plain s", "right"),
            ("min-max s", "right"),
            ("Read resource s", "right"),
            ("min-max s", "right"),
            ("Resource / plain", "right"),
            ("Paired ratios min-max", "right"),
            ("Tasks/s plain", "right"),
            ("Tasks/s resource", "right"),
            ("RSS MB plain / res", "right"),
            ("Valid", "center"),
        ]:
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for backend in stores:
            plain = bench.rows.get(("RES", "W1", backend, "batch"))
            res = bench.rows[("RES", "W1", backend, "batch-read")]
            pv = plain.values("seconds") if plain else []
            rv = res.values("seconds")
            paired = [b / a for a, b in zip(pv, rv, strict=False) if a]
            ps, rs = (plain.seconds if plain else None), res.seconds
            tasks = res.runs[0].out.get("tasks") if res.runs else None
            t.add_row(
                STORE_LABEL[backend],
                _fmt(ps, ".3f"),
                _span(pv, ".3f") if pv else "—",
                _fmt(rs, ".3f"),
                _span(rv, ".3f") if rv else "—",
                _fmt(_res_ratio(bench, backend), ".2f", "x"),
                f"{min(paired):.2f}-{max(paired):.2f}x" if len(paired) > 1 else "—",
                _fmt(tasks / ps if tasks and ps else None, ",.0f"),
                _fmt(tasks / rs if tasks and rs else None, ",.0f"),
                f"{_fmt(_mb(plain.rss_kib) if plain else None, '.1f')} / {_fmt(_mb(res.rss_kib), '.1f')}",
                "[green]✓[/]" if plain and plain.ok and res.ok else "[bold red]✗ FAIL[/]",
            )
        console.print(t)
        console.print(
            "  checked as W1 (every task COMPLETED with i + 1, store without failures, SQLite re-read), plus: every "
            "task declares the resource (live and in the re-read log), nothing held at the end"
        )
        console.print()


EXEC_LABEL = {
    "threads": "engine · threads (max_workers=4)",
    "processes": "engine · processes (2 workers, max_workers=4)",
    "dask": "engine · dask (LocalCluster 2 workers, max_workers={in_flight})",
    "plain-dask": "baseline: plain dask.distributed (2 workers)",
}


def render_exec(bench: Bench, console: Any) -> None:
    """The EXEC section: W1 and W3 per executor, beside plain Dask."""
    from rich.table import Table

    from bench.exec_bench import DASK_IN_FLIGHT, RUNNERS

    rows = [r for r in bench.rows.values() if r.section == "exec"]
    if not rows:
        return
    console.print(
        "[bold]Executors[/] — W1 and W3 through TaskOrchestrator on durable SQLite with each executor, beside plain "
        "dask.distributed (client.map/submit + gather, no engine) on the same cluster shape; cluster start and "
        f"worker warm-up untimed; median of {bench.args.repeat}; 'vs dask' = time / plain Dask time"
    )
    t = Table()
    for col, just in [
        ("Workload", "left"),
        ("Runner", "left"),
        ("Tasks", "right"),
        ("Total s", "right"),
        ("min-max s", "right"),
        ("Tasks/s", "right"),
        ("vs dask", "right"),
        ("RSS MB", "right"),
        ("Valid", "center"),
        ("Notes", "left"),
    ]:
        t.add_column(col, justify=just, no_wrap=col != "Notes")  # type: ignore[arg-type]
    for w in ("W1", "W3"):
        plain = bench.rows.get(("EXEC", w, "plain-dask"))
        plain_s = plain.seconds if plain else None
        if w == "W3":
            t.add_section()
        for runner in RUNNERS:
            r = bench.rows.get(("EXEC", w, runner))
            if r is None:
                continue
            secs, vals = r.seconds, r.values("seconds")
            tasks = r.runs[0].out.get("tasks") if r.runs else None
            notes = [f"reducer sum {r.extra('sum'):,}"] if r.extra("sum") is not None else []
            if r.extra("commits"):
                notes.append(f"{r.extra('commits'):,} commits")
            if runner == "plain-dask":
                vs_dask = "1.00" if secs else "—"
            else:
                vs_dask = _fmt(secs / plain_s if secs and plain_s else None, ".2f", "x")
            t.add_row(
                w,
                EXEC_LABEL[runner].format(in_flight=DASK_IN_FLIGHT),
                _fmt(tasks, ","),
                _fmt(secs, ".3f"),
                _span(vals, ".3f"),
                _fmt(tasks / secs if tasks and secs else None, ",.0f"),
                vs_dask,
                _fmt(_mb(r.rss_kib), ".1f"),
                _ok(r),
                "; ".join(notes),
            )
    console.print(t)
    console.print(
        "  checked: every result (W3: the reducer's sum, count, first/last keys); engine rows also every task "
        "COMPLETED, no store failure, verify(store).ok; RSS is the engine process's (workers are other processes)"
    )
    console.print()


def _dask_ratio(bench: Bench, workload: str) -> float | None:
    engine = bench.rows.get(("EXEC", workload, "dask"))
    plain = bench.rows.get(("EXEC", workload, "plain-dask"))
    if engine is None or plain is None or not engine.seconds or not plain.seconds:
        return None
    return engine.seconds / plain.seconds


def _pairs_per_s(row: Row) -> float | None:
    secs = row.seconds
    total = row.runs[0].out.get("pairs") if row.runs else None
    return total / secs if total and secs else None


def _res_ratio(bench: Bench, backend: str) -> float | None:
    plain = bench.rows.get(("RES", "W1", backend, "batch"))
    res = bench.rows.get(("RES", "W1", backend, "batch-read"))
    if plain is None or res is None or not plain.seconds or not res.seconds:
        return None
    return res.seconds / plain.seconds


def _vs_orch(bench: Bench, row: Row) -> float | None:
    """An engine row's median time / the TaskOrchestrator add_tasks median on the same store."""
    w, backend, _ = row.key
    orch = bench.rows.get((w, backend, "batch"))
    if orch is None or not orch.seconds or not row.seconds:
        return None
    return row.seconds / orch.seconds


def _pair_ratio(bench: Bench, backend: str) -> float | None:
    engine = bench.rows.get(("WF1000", backend, "workflow"))
    return _vs_orch(bench, engine) if engine is not None else None


def _ideal(workload: str, n: int) -> float | None:
    from bench.actions import ideal_seconds

    return ideal_seconds(workload, n)


def evaluate_targets(bench: Bench) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rows = bench.rows

    def add(name: str, goal: str, measured: str, met: bool | None) -> None:
        out.append({"name": name, "goal": goal, "measured": measured, "met": met})

    r = rows.get(("W1", "sqlite", "batch"))
    if r and r.seconds:
        tps = r.runs[0].out["tasks"] / r.seconds
        add(
            "W1 throughput, SQLite · add_tasks (batch)",
            f">= {TARGET_W1_TASKS_PER_S:,.0f} tasks/s",
            f"{tps:,.0f} tasks/s",
            tps >= TARGET_W1_TASKS_PER_S,
        )
    r = rows.get(("W1", "sqlite-normal", "batch"))
    if r and r.seconds:
        tps = r.runs[0].out["tasks"] / r.seconds
        add(
            "W1 throughput, SQLite synchronous=normal · add_tasks (info: not power-loss durable)",
            f">= {TARGET_W1_TASKS_PER_S:,.0f} tasks/s",
            f"{tps:,.0f} tasks/s",
            tps >= TARGET_W1_TASKS_PER_S,
        )
    r = rows.get(("W1", "sqlite", "one-by-one"))
    if r and r.seconds:
        tps = r.runs[0].out["tasks"] / r.seconds
        add(
            "W1 throughput, SQLite · add_task xN (info: a durable commit per add)",
            f">= {TARGET_W1_TASKS_PER_S:,.0f} tasks/s",
            f"{tps:,.0f} tasks/s",
            tps >= TARGET_W1_TASKS_PER_S,
        )
    for backend, variant in (
        ("sqlite", "batch"),
        ("sqlite", "one-by-one"),
        ("memory", "batch"),
        ("memory", "one-by-one"),
    ):
        r = rows.get(("W1", backend, variant))
        if r and r.rss_kib:
            mb = _mb(r.rss_kib) or 0.0
            add(
                f"W1 peak RSS, {RUNNER_LABEL[(backend, variant)]}",
                f"< {TARGET_W1_RSS_MB:.0f} MB",
                f"{mb:.1f} MB (max of runs)",
                mb < TARGET_W1_RSS_MB,
            )
    for backend in ("sqlite", "sqlite-normal", "memory"):
        r = rows.get(("W4", backend, "batch"))
        ideal = _ideal("W4", bench.sizes["W4"])
        if r and r.seconds and ideal:
            over = r.seconds / ideal - 1
            add(
                f"W4 time, {W4_LABEL[backend]}",
                f"within {TARGET_W4_OVER_IDEAL:.0%} of {ideal:.3f} s (<= {ideal * (1 + TARGET_W4_OVER_IDEAL):.3f} s)",
                f"{r.seconds:.3f} s ({over:+.1%})",
                over <= TARGET_W4_OVER_IDEAL,
            )
    for backend in ("sqlite", "memory"):
        ratio = _pair_ratio(bench, backend)
        orch_row, eng_row = rows.get(("WF1000", backend, "batch")), rows.get(("WF1000", backend, "workflow"))
        if ratio is not None and orch_row is not None and eng_row is not None:
            n = bench.sizes["WF1000"]
            add(
                f"Workflow of {n:,} independent steps vs the same tasks via TaskOrchestrator, {STORE_LABEL[backend]}",
                f"<= {TARGET_WORKFLOW_VS_ORCH:.1f}x the TaskOrchestrator's time",
                f"{ratio:.2f}x ({eng_row.seconds:.3f} s / {orch_row.seconds:.3f} s)",
                ratio <= TARGET_WORKFLOW_VS_ORCH,
            )
    for backend in ("sqlite", "memory"):
        ratio = _res_ratio(bench, backend)
        plain, res = rows.get(("RES", "W1", backend, "batch")), rows.get(("RES", "W1", backend, "batch-read"))
        if ratio is not None and plain is not None and res is not None:
            add(
                f"Resource declarations: W1 with a shared read resource per task vs plain W1, {STORE_LABEL[backend]}",
                f"<= {TARGET_RESOURCE_VS_PLAIN:.1f}x plain W1",
                f"{ratio:.2f}x ({res.seconds:.3f} s / {plain.seconds:.3f} s)",
                ratio <= TARGET_RESOURCE_VS_PLAIN,
            )
    for workload in ("W1", "W3"):
        ratio = _dask_ratio(bench, workload)
        if ratio is not None:
            engine, plain = rows[("EXEC", workload, "dask")], rows[("EXEC", workload, "plain-dask")]
            add(
                f"{workload} through the engine on the Dask executor vs plain dask.distributed"
                + ("" if workload == "W1" else " (info)"),
                f"<= {TARGET_DASK_VS_PLAIN:.1f}x plain Dask",
                f"{ratio:.2f}x ({engine.seconds:.3f} s / {plain.seconds:.3f} s)",
                ratio <= TARGET_DASK_VS_PLAIN if workload == "W1" else None,
            )
    r = rows.get(("REPLAY1M", "state-end"))
    if r and r.seconds:
        n = r.runs[0].out["events"]
        add(f"state_at(end) over {n:,} events, time", f"< {TARGET_STATE_AT_SECONDS:g} s", f"{r.seconds:.2f} s",
            r.seconds < TARGET_STATE_AT_SECONDS)  # fmt: skip
        mb = _mb(r.rss_kib)
        if mb is not None:
            add(f"state_at(end) over {n:,} events, peak RSS", f"< {TARGET_STATE_AT_RSS_MB:g} MB",
                f"{mb:.0f} MB (max of runs)", mb < TARGET_STATE_AT_RSS_MB)  # fmt: skip
    r = rows.get(("REPLAY1M", "export"))
    if r and r.seconds:
        n = r.runs[0].out["events"]
        eps = n / r.seconds
        add(f"export of {n:,} events", f">= {TARGET_EXPORT_EVENTS_PER_S:,.0f} events/s", f"{eps:,.0f} events/s",
            eps >= TARGET_EXPORT_EVENTS_PER_S)  # fmt: skip
    r = rows.get(("REPLAY",))
    if r and r.seconds:
        eps = r.runs[0].out["events"] / r.seconds
        add(
            f"Replay of {r.runs[0].out['events']:,} events (fold only)",
            f">= {TARGET_REPLAY_EVENTS_PER_S:,.0f} events/s",
            f"{eps:,.0f} events/s",
            eps >= TARGET_REPLAY_EVENTS_PER_S,
        )
    return out


def to_json(bench: Bench, machine: dict[str, Any], targets: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    summary = []
    for r in bench.rows.values():
        summary.append(
            {
                "section": r.section,
                "key": list(r.key),
                "label": r.label,
                "repetitions": len(r.runs),
                "seconds_median": r.seconds,
                "seconds_all": r.values("seconds"),
                "exec_seconds_median": r.median("exec_seconds"),
                "add_seconds_median": r.median("add_seconds"),
                "open_seconds_median": r.median("open_seconds"),
                "items": r.runs[0].out.get("tasks", r.runs[0].out.get("events", r.runs[0].out.get("pairs")))
                if r.runs
                else None,
                "peak_rss_kib_max": r.rss_kib,
                "ok": r.ok,
                "errors": r.errors,
            }
        )
    return {
        "args": {"quick": bench.args.quick, "only": bench.args.only, "repeat": bench.args.repeat},
        "sizes": bench.sizes,
        "machine": machine,
        "summary": summary,
        "targets": targets,
        "runs": [{"key": list(r.key), "spec": r.spec, "result": r.out, "wall": r.wall} for r in bench.children.runs],
        "wall_seconds": wall,
        "ok": all(r.ok for r in bench.rows.values()),
    }


# =============================================================================
# main
# =============================================================================


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="sizes /10, one repetition (smoke run)")
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but REPLAY1M)",
    )
    p.add_argument("--repeat", type=int, default=None, help="repetitions per measurement (default 3, quick 1)")
    p.add_argument("--json", metavar="OUT", help="also write every result to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (databases) afterwards")
    p.add_argument(
        "--replay-events", type=int, default=None, metavar="N", help="REPLAY1M: the log's size (default 1,000,000)"
    )
    p.add_argument(
        "--cache-dir", default=None, metavar="DIR", help="REPLAY1M: where the generated log is cached (default: <tmp>)"
    )
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    only = [s.strip().upper() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        p.error(f"unknown --only name(s) {unknown}; choose from {','.join(SECTIONS)}")
    if args.replay_events is not None and args.replay_events < 10:
        p.error("--replay-events must be >= 10")
    args.sections = only or list(DEFAULT_SECTIONS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child is not None:
        return child_main(args.child)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="codomyrmex-bench-"))
    children = Children(tmp, timeout=120.0 if args.quick else 600.0, keep=args.keep)
    bench = Bench(args, children)

    def progress(message: str) -> None:
        print(f"  … {message}", file=sys.stderr, flush=True)

    try:
        machine = machine_info(tmp, children)
        workloads = [s for s in args.sections if s in (*WORKLOADS, "WF1000")]
        if workloads:
            bench.run_workloads(workloads, progress)
        if "APPEND" in args.sections:
            bench.run_append(progress)
        if "REPLAY" in args.sections:
            bench.run_replay(progress)
        if "RES" in args.sections:
            bench.run_res(progress)
        if "EXEC" in args.sections:
            bench.run_exec(progress)
        if "REPLAY1M" in args.sections:
            bench.run_replay1m(progress)
        wall = time.perf_counter() - started
        machine["load_at_end"] = load_average()
        targets = evaluate_targets(bench)
        render(bench, machine, targets, wall)
        if args.json:
            Path(args.json).write_text(json.dumps(to_json(bench, machine, targets, wall), indent=2, default=str))
            print(f"results written to {args.json}")
    finally:
        if args.keep:
            print(f"temporary files kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    floor_failed = any(r.errors for r in children.runs if r.key[0] == "floor")
    return 0 if all(r.ok for r in bench.rows.values()) and not floor_failed else 1


if __name__ == "__main__":
    sys.exit(main())
