"""Executors: where an attempt's action runs. One small interface; threads are the default.

The scheduler (``engine/task_orchestrator.py``) decides and records everything: which
attempt starts, its outcome, its soft and hard timeouts, its cancellation. An executor
only decides *where* the action function runs, and reports back what it gave.

=============  ==================================================================
``threads``    :class:`ThreadExecutor`: a thread of this process per running attempt.
``processes``  :class:`~engine.process_executor.ProcessExecutor`: a pool of worker
               processes; a hard timeout kills the worker process.
``dask``       :class:`~engine.dask_executor.DaskExecutor`: a Dask cluster
               (``distributed``), started locally or reached at an address.
=============  ==================================================================

The interface (:class:`Executor`):

* ``submit(job)`` runs a zero-argument job promptly on a thread of this process. The
  scheduler submits one job per attempt: it resolves the action, gathers its inputs,
  hands an :class:`ActionCall` to ``run_action`` and records the outcome.
* ``run_action(call, done)`` runs the action somewhere and calls ``done(result)``
  exactly once, with an :class:`ActionResult`, from any thread. The default runs it
  right here, in the calling thread (that is the thread executor); the process and
  Dask executors send it away and return at once.
* ``call.control`` (:class:`AttemptControl`) carries the scheduler's requests about
  the running attempt: ``request_stop()`` (soft timeout, cancellation: sets the flag
  an action's ``cancel_token`` reads) and ``kill()`` (hard timeout, cancellation).
  An executor binds its own ways of doing both; ``kill()`` returns what was done,
  which the scheduler records in the timeout's metadata.
* ``shutdown(wait, timeout)``.

An executor that only implements ``submit``/``shutdown`` (as before ``run_action``
existed) still works: actions then run in its submit threads, like the thread
executor.

The scheduler, not the executor, limits concurrency (a task is RUNNING only while it
holds one of ``max_workers`` slots). The thread executor keeps up to ``max_workers``
idle threads and starts a new one whenever a job arrives and none is idle, so an
*abandoned* job (timed out or cancelled: Python cannot kill a thread) keeps its thread
busy without taking capacity from the others. When the abandoned job finally returns,
its thread exits if enough others are idle.

Guarantees of :class:`ThreadExecutor`: soft isolation only (shared memory, shared
process); a hard timeout abandons the thread, it does not stop the work (recorded
with metadata ``abandoned: true``; a late result is recorded as
``task.late_result_discarded``).
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from domain.errors import OrchestrationError, ValidationError
from engine.registry import load_import_path

if TYPE_CHECKING:
    from engine.config import OrchestrationConfig

__all__ = [
    "EXECUTOR_NAMES",
    "ActionCall",
    "ActionResult",
    "AttemptControl",
    "CancelToken",
    "Executor",
    "ThreadExecutor",
    "executor_from_config",
    "failed",
    "make_executor",
    "run_here",
    "run_shipped",
]

Job = Callable[[], None]

#: The executor names configuration accepts (``executor`` key, ``CODOMYRMEX_EXECUTOR``).
EXECUTOR_NAMES: tuple[str, ...] = ("threads", "processes", "dask")


class StopFlag(Protocol):
    """What a :class:`CancelToken` reads: ``threading.Event``, ``multiprocessing.Event``
    and the Dask event wrapper all have this shape."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class CancelToken:
    """Passed to an action that declares a ``cancel_token`` parameter.

    ``is_set()`` (or ``cancelled``) turns true once the engine asks the action to stop:
    its task's ``soft_timeout`` passed, or the task was cancelled. ``wait(seconds)``
    sleeps up to ``seconds``, returning ``True`` as soon as a stop is asked. Stopping is
    the action's choice: it returns (or raises) and its outcome is recorded as usual.
    """

    __slots__ = ("_flag",)

    def __init__(self, flag: StopFlag) -> None:
        self._flag = flag

    def is_set(self) -> bool:
        return bool(self._flag.is_set())

    @property
    def cancelled(self) -> bool:
        return self.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._flag.wait(timeout))

    def __repr__(self) -> str:
        return f"CancelToken(set={self.is_set()})"


class AttemptControl:
    """The scheduler's requests about one attempt, and the executor's hooks for them.

    The scheduler calls :meth:`request_stop` (soft) and :meth:`kill` (hard) under its
    own lock, so the hooks an executor binds must be quick and must not block (send a
    signal, set a flag, hand the slow part to a thread)."""

    __slots__ = ("_flag", "_killed", "_lock", "_on_kill", "_on_stop", "_stopped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flag: threading.Event | None = None
        self._stopped = False
        self._killed = False
        self._on_stop: Callable[[], None] | None = None
        self._on_kill: Callable[[], dict[str, Any]] | None = None

    @property
    def stop_requested(self) -> bool:
        return self._stopped

    @property
    def kill_requested(self) -> bool:
        return self._killed

    def local_flag(self) -> threading.Event:
        """The stop flag of an action that runs in this process."""
        with self._lock:
            if self._flag is None:
                self._flag = threading.Event()
                if self._stopped:
                    self._flag.set()
            return self._flag

    def request_stop(self) -> None:
        """Ask the action to stop (soft): sets its stop flag, wherever it runs."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            flag, hook = self._flag, self._on_stop
        if flag is not None:
            flag.set()
        if hook is not None:
            hook()

    def kill(self) -> dict[str, Any] | None:
        """End the attempt's work (hard). Returns what the executor did (for the
        record), or ``None`` when no executor hook is bound: the executor's
        :attr:`Executor.timeout_metadata` then says what happens."""
        with self._lock:
            self._killed = True
            hook = self._on_kill
        return hook() if hook is not None else None

    def bind(
        self, *, on_stop: Callable[[], None] | None = None, on_kill: Callable[[], dict[str, Any]] | None = None
    ) -> bool:
        """Executor side: attach the ways to stop and kill this attempt's action.
        ``False`` when a kill was already requested (the action must not start).
        A stop requested before binding is passed on at once."""
        with self._lock:
            if self._killed:
                return False
            self._on_stop, self._on_kill = on_stop, on_kill
            stopped = self._stopped
        if stopped and on_stop is not None:
            on_stop()
        return True

    def unbind(self) -> None:
        """Executor side: the action ended; later requests have nothing to act on."""
        with self._lock:
            self._on_stop = self._on_kill = None


@dataclass(slots=True)
class ActionCall:
    """One attempt's action, ready to run: what the scheduler hands an executor."""

    task_id: str
    attempt: int
    module: str
    action: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    wants_cancel_token: bool
    control: AttemptControl
    # the duration clock of in-process runs (the orchestrator's runtime clock)
    monotonic: Callable[[], float] = time.perf_counter


@dataclass(slots=True)
class ActionResult:
    """What running an action gave: its return value, or the exception it raised (type
    name, message, formatted traceback), and how long it ran.

    ``lost``: there is no result and never will be, because the scheduler asked for
    the work to end (a killed worker process, a cancelled Dask future). The scheduler
    has already recorded why; it records nothing for a lost result.
    ``retryable``: false for failures a retry cannot fix (an action that cannot be
    shipped or imported, a result that cannot be sent back)."""

    ok: bool
    value: Any = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    execution_time: float = 0.0
    retryable: bool = True
    lost: bool = False


def failed(error: BaseException, *, retryable: bool = True, execution_time: float = 0.0) -> ActionResult:
    """A failure that happened around the action (not inside it): no traceback."""
    return ActionResult(
        False,
        error_type=type(error).__name__,
        error_message=str(error) or repr(error),
        retryable=retryable,
        execution_time=execution_time,
    )


def run_here(call: ActionCall) -> ActionResult:
    """Run the action in the calling thread."""
    kwargs = call.kwargs
    if call.wants_cancel_token:
        kwargs = {**kwargs, "cancel_token": CancelToken(call.control.local_flag())}
    clock = call.monotonic
    begin = clock()
    try:
        value = call.fn(**kwargs)
    except Exception as e:  # noqa: BLE001 -- any failure of user code is the outcome, recorded
        return ActionResult(
            False,
            error_type=type(e).__name__,
            error_message=str(e) or repr(e),
            traceback=traceback.format_exc(limit=8),
            execution_time=clock() - begin,
        )
    return ActionResult(True, value=value, execution_time=clock() - begin)


def run_shipped(module: str, qualname: str, kwargs: dict[str, Any], token: CancelToken | None = None) -> ActionResult:
    """Worker side (another process, another machine): import the action by its path
    and run it. Failures of the action are results, like :func:`run_here`'s."""
    try:
        fn = load_import_path(module, qualname)
    except Exception as e:  # noqa: BLE001 -- whatever the import raised, the worker cannot run it
        return ActionResult(
            False,
            error_type="ActionNotShippableError",
            error_message=f"the worker cannot import {module}.{qualname}: {type(e).__name__}: {e}",
            retryable=False,
        )
    if token is not None:
        kwargs = {**kwargs, "cancel_token": token}
    begin = time.perf_counter()
    try:
        value = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 -- any failure of user code is the outcome, recorded
        return ActionResult(
            False,
            error_type=type(e).__name__,
            error_message=str(e) or repr(e),
            traceback=traceback.format_exc(limit=8),
            execution_time=time.perf_counter() - begin,
        )
    return ActionResult(True, value=value, execution_time=time.perf_counter() - begin)


class Executor(ABC):
    """Runs jobs (zero-argument callables that report their own outcome) and actions."""

    name: str = "executor"
    #: The metadata of a hard timeout when no kill hook is bound to the attempt.
    timeout_metadata: Mapping[str, Any] = {"abandoned": True}

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None: ...

    def run_action(self, call: ActionCall, done: Callable[[ActionResult], None]) -> None:
        """Run ``call``'s action and call ``done(result)`` once. Default: here, now."""
        done(run_here(call))

    def describe(self) -> dict[str, Any]:
        """What this executor is, for status displays."""
        return {"executor": self.name}


class ThreadExecutor(Executor):
    name = "threads"

    def __init__(self, max_idle: int = 4, thread_name: str = "task-worker") -> None:
        self.max_idle = max(1, max_idle)
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._pending = 0
        self._threads: set[threading.Thread] = set()
        self._shutdown = False
        self._thread_name = thread_name
        self._counter = 0

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._shutdown:
                raise OrchestrationError("the executor is shut down", code="EXECUTOR_SHUT_DOWN")
            self._pending += 1
            spawn = self._idle < self._pending
            if spawn:
                self._counter += 1
                thread = threading.Thread(target=self._work, name=f"{self._thread_name}-{self._counter}", daemon=True)
                self._threads.add(thread)
        self._queue.put(job)
        if spawn:
            thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._idle += 1
            job = self._queue.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._threads.discard(me)
                    return
                self._pending -= 1
            job()
            with self._lock:
                if self._idle >= self.max_idle or self._shutdown:
                    self._threads.discard(me)
                    return

    @property
    def thread_count(self) -> int:
        with self._lock:
            return len(self._threads)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for t in threads:
                if t is not threading.current_thread():
                    t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


def make_executor(
    name: str,
    *,
    max_workers: int = 4,
    process_workers: int | None = None,
    dask_scheduler_address: str | None = None,
    dask_workers: int = 2,
) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTOR_NAMES`). Process and Dask
    executors start their workers on first use, not here."""
    if name == "threads":
        return ThreadExecutor(max_idle=max_workers)
    if name == "processes":
        from engine.process_executor import ProcessExecutor

        return ProcessExecutor(process_workers or max_workers)
    if name == "dask":
        from engine.dask_executor import DaskExecutor

        return DaskExecutor(dask_scheduler_address, n_workers=dask_workers)
    raise ValidationError(
        f"unknown executor {name!r}; known: {', '.join(EXECUTOR_NAMES)}",
        code="UNKNOWN_EXECUTOR",
        details={"executor": repr(name), "known": list(EXECUTOR_NAMES)},
        suggestions=[f"Use one of {', '.join(EXECUTOR_NAMES)}."],
    )


def executor_from_config(config: OrchestrationConfig) -> Executor:
    """The executor a resolved configuration names, with its settings."""
    return make_executor(
        config.executor,
        max_workers=config.max_workers,
        process_workers=config.process_workers,
        dask_scheduler_address=config.dask_scheduler_address,
        dask_workers=config.dask_workers,
    )
