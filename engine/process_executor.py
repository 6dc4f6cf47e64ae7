"""ProcessExecutor: actions in worker processes; a hard timeout kills the worker.

A pool of ``workers`` processes, started from a ``forkserver`` where the platform has
one, else by ``spawn`` (never ``fork``: this process has threads). Each worker process
runs one action at a time. One thread here owns each worker (its *slot*): it takes the
next call from a shared queue, sends the action's import path and keyword arguments
down the slot's pipe, and waits for the result or for the process to die.
``concurrent.futures.ProcessPoolExecutor`` is not used because it cannot end one task:
killing a worker breaks the whole pool.

What travels, and how:

* **The action** goes by import path (:func:`engine.registry.import_path_of`): the
  worker imports ``fn.__module__`` and looks up ``fn.__qualname__``. A lambda, a
  closure, a bound method or a ``functools.partial`` registered only in this process
  cannot be sent: the attempt fails with ``ActionNotShippableError`` (not retried).
  Functions of the ``__main__`` script are accepted (the worker re-imports the script,
  which therefore needs an ``if __name__ == "__main__":`` guard).
* **Arguments** are the task's parameters and dependency results (JSON data), pickled.
* **Results** come back pickled; one that cannot be pickled fails the attempt with
  ``ResultNotSerializable`` (not retried). The scheduler then checks the result as it
  does for threads (JSON-compatible, size), so outcomes are recorded identically.

Guarantees:

* **Isolation**: an action has its own process (memory, globals, crashes). A worker
  that dies on its own (a segfault, ``os._exit``, the OOM killer) fails its attempt
  with ``WorkerProcessDied`` (retryable) and is replaced.
* **Hard timeout**: the scheduler's kill request sends SIGKILL to the worker's process
  group (the worker and what it started, unless they left the group) while that
  worker runs the attempt. The timeout is recorded with metadata ``killed: true`` and
  the worker's ``pid``; no late result exists. The slot starts a replacement process,
  so the pool keeps its size. Cancelling a running task kills its worker the same way.
* **Soft timeout**: each slot has a ``multiprocessing.Event``; a stop request sets it
  while that slot runs the attempt, and an action declaring ``cancel_token`` reads it
  through a :class:`~engine.executors.CancelToken`. It is cleared before the slot's
  next call.
* Worker processes are not daemonic, so actions may start processes of their own;
  :meth:`ProcessExecutor.shutdown` (called by the orchestrator's ``close()``) stops
  them, and any left at interpreter exit are killed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import util as mp_util
from multiprocessing.connection import Connection
from typing import Any

from domain.errors import ActionNotShippableError, OrchestrationError, ValidationError
from engine.config import MAX_WORKERS_LIMIT
from engine.executors import (
    ActionCall,
    ActionResult,
    CancelToken,
    Executor,
    Job,
    ThreadExecutor,
    failed,
    run_shipped,
)
from engine.registry import import_path_of

__all__ = ["START_METHODS", "ProcessExecutor"]

START_METHODS = ("forkserver", "spawn")


@dataclass(frozen=True, slots=True)
class _Pending:
    call: ActionCall
    path: tuple[str, str]
    done: Callable[[ActionResult], None]


class _Slot:
    """One worker process and the thread here that owns it."""

    __slots__ = ("call", "conn", "index", "killed", "process", "stop", "thread")

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None  # a multiprocessing Process (its class depends on the context)
        self.conn: Connection | None = None
        self.stop: Any = None  # multiprocessing.Event of this process
        self.call: ActionCall | None = None
        self.killed = False
        self.thread: threading.Thread | None = None


def _worker_main(conn: Connection, stop: Any) -> None:
    """A worker process: run the actions sent down ``conn`` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # a group of its own, so a kill also ends what the action started
    token = CancelToken(stop)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        module, qualname, kwargs, wants_token = message
        result = run_shipped(module, qualname, kwargs, token if wants_token else None)
        try:
            conn.send(result)
        except Exception as e:  # noqa: BLE001 -- pickling fails before anything is written
            conn.send(
                ActionResult(
                    False,
                    error_type="ResultNotSerializable",
                    error_message=f"result of {module}.{qualname} cannot be sent back from the worker process: {e}",
                    execution_time=result.execution_time,
                    retryable=False,
                )
            )


def _kill_leftovers(slots: list[_Slot]) -> None:
    """At interpreter exit (an executor never shut down): end its worker processes."""
    for slot in slots:
        process = slot.process
        if process is not None and process.is_alive():
            process.kill()


class ProcessExecutor(Executor):
    """Runs actions in a pool of ``workers`` processes (see the module docstring).

    ``start_method``: ``"forkserver"`` (the default where available) or ``"spawn"``.
    Workers start on the first action, or at :meth:`start`."""

    name = "processes"
    timeout_metadata = {"killed": True}

    def __init__(self, workers: int = 2, *, start_method: str | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS_LIMIT:
            raise ValidationError(f"process workers must be an integer from 1 to {MAX_WORKERS_LIMIT}, got {workers!r}")
        available = mp.get_all_start_methods()
        method = start_method or ("forkserver" if "forkserver" in available else "spawn")
        if method not in START_METHODS or method not in available:
            raise ValidationError(
                f"start_method must be one of {[m for m in START_METHODS if m in available]}, got {start_method!r}"
            )
        self.workers = workers
        self.start_method = method
        self._ctx: Any = mp.get_context(method)
        self._jobs = ThreadExecutor(max_idle=max(2, workers), thread_name="task-dispatch")
        self._calls: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._started = False
        self._shutdown = False

    # -- the Executor interface ------------------------------------------------------

    def submit(self, job: Job) -> None:
        self._jobs.submit(job)

    def run_action(self, call: ActionCall, done: Callable[[ActionResult], None]) -> None:
        try:
            path = import_path_of(call.fn, call.module, call.action, allow_main=True)
        except ActionNotShippableError as e:
            done(failed(e, retryable=False))
            return
        self.start()
        self._calls.put(_Pending(call, path, done))

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "start_method": self.start_method}

    def start(self) -> None:
        """Start the worker processes now (otherwise the first action does)."""
        with self._start_lock:
            if self._shutdown:
                raise OrchestrationError("the executor is shut down", code="EXECUTOR_SHUT_DOWN")
            if self._started:
                return
            slots = [_Slot(i) for i in range(self.workers)]
            for slot in slots:
                self._spawn(slot)
            with self._lock:
                self._slots = slots
                self._started = True
            mp_util.Finalize(self, _kill_leftovers, args=(slots,), exitpriority=100)
            for slot in slots:
                slot.thread = threading.Thread(
                    target=self._serve, args=(slot,), name=f"process-slot-{slot.index}", daemon=True
                )
                slot.thread.start()

    def pids(self) -> list[int]:
        """The worker processes' ids, slot by slot (empty before the start)."""
        with self._lock:
            return [s.process.pid for s in self._slots if s.process is not None]

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop taking actions; kill workers still running one (their attempts were
        abandoned by the scheduler's close); idle workers exit; wait for them."""
        with self._start_lock, self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            slots = list(self._slots)
            for slot in slots:
                if slot.call is not None:
                    self._kill_locked(slot)
        left: list[_Pending] = []
        while True:
            try:
                pending = self._calls.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                left.append(pending)
        for pending in left:
            pending.done(ActionResult(False, lost=True))
        for _ in slots:
            self._calls.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        if wait:
            for slot in slots:
                if slot.thread is not None and slot.thread is not threading.current_thread():
                    slot.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._jobs.shutdown(wait, None if deadline is None else max(0.0, deadline - time.monotonic()))

    # -- slots -----------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        stop = self._ctx.Event()
        process = self._ctx.Process(
            target=_worker_main, args=(child, stop), name=f"codomyrmex-worker-{slot.index}", daemon=False
        )
        process.start()
        child.close()
        with self._lock:
            slot.process, slot.conn, slot.stop = process, parent, stop

    def _serve(self, slot: _Slot) -> None:
        while True:
            pending = self._calls.get()
            if pending is None:
                break
            result = self._run(slot, pending)
            try:
                pending.done(result)
            except Exception:  # noqa: BLE001 -- the slot must outlive a failing callback
                traceback.print_exc(file=sys.stderr)
        self._retire(slot)

    def _run(self, slot: _Slot, pending: _Pending) -> ActionResult:
        call = pending.call
        with self._lock:
            if self._shutdown:
                return ActionResult(False, lost=True)
            slot.call, slot.killed = call, False
            slot.stop.clear()
            conn, process = slot.conn, slot.process
        assert conn is not None
        bound = call.control.bind(on_stop=lambda: self._stop(slot, call), on_kill=lambda: self._kill(slot, call))
        result: ActionResult | None = None
        if bound:
            try:
                module, qualname = pending.path
                conn.send((module, qualname, call.kwargs, call.wants_cancel_token))
            except (OSError, ValueError):
                pass  # the process is gone: handled below
            else:
                result = self._await(conn, process)
            finally:
                call.control.unbind()
        with self._lock:
            killed = slot.killed or not bound
            slot.call = None
        if result is not None:
            return result
        if not bound:
            return ActionResult(False, lost=True)
        pid, code = self._reap(slot)
        if not self._shutdown:
            self._spawn(slot)  # the slot is reused: a fresh process takes the next call
        if killed:
            return ActionResult(False, lost=True)
        return ActionResult(
            False,
            error_type="WorkerProcessDied",
            error_message=f"worker process {pid} died (exit code {code}) while running {call.module}.{call.action}",
        )

    @staticmethod
    def _await(conn: Connection, process: Any) -> ActionResult | None:
        """The result sent down ``conn``, or None when the process died first."""
        while True:
            ready = multiprocessing.connection.wait([conn, process.sentinel])
            if conn in ready or conn.poll(0):
                try:
                    result = conn.recv()
                except (EOFError, OSError):
                    return None
                except Exception as e:  # noqa: BLE001 -- a result that does not unpickle here
                    return ActionResult(
                        False,
                        error_type="ResultNotSerializable",
                        error_message=f"the worker's result cannot be read here: {type(e).__name__}: {e}",
                        retryable=False,
                    )
                if isinstance(result, ActionResult):
                    return result
                return ActionResult(False, error_type="WorkerProtocolError", error_message=repr(result)[:200])
            if process.sentinel in ready:
                return None

    def _reap(self, slot: _Slot) -> tuple[int | None, int | None]:
        """Collect a dead worker; its pid and exit code."""
        with self._lock:
            process, conn = slot.process, slot.conn
            slot.process = slot.conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None, None
        process.join(5.0)
        pid, code = process.pid, process.exitcode
        if code is not None:
            process.close()
        return pid, code

    def _retire(self, slot: _Slot) -> None:
        """Shutdown: ask the idle worker to exit; kill it if it does not."""
        with self._lock:
            conn, process = slot.conn, slot.process
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        if process is not None:
            process.join(2.0)
            if process.exitcode is None:
                process.kill()
        self._reap(slot)

    def _stop(self, slot: _Slot, call: ActionCall) -> None:
        with self._lock:
            if slot.call is call and slot.stop is not None:
                slot.stop.set()

    def _kill(self, slot: _Slot, call: ActionCall) -> dict[str, Any]:
        with self._lock:
            if slot.call is not call:
                return {"killed": False, "finished": True}
            return self._kill_locked(slot)

    def _kill_locked(self, slot: _Slot) -> dict[str, Any]:
        """SIGKILL the slot's worker and its process group (lock held: the slot cannot
        move on to another call meanwhile)."""
        slot.killed = True
        process = slot.process
        if process is None:
            return {"killed": True, "pid": None}
        pid = process.pid
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            process.kill()  # not yet a group leader (just started), or no process groups
        return {"killed": True, "pid": pid}
