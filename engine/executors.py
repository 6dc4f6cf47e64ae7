"""Executors: where actions run. One small interface; threads are the default.

The scheduler, not the executor, limits concurrency (a task is RUNNING only while it
holds one of ``max_workers`` slots). An executor only has to start a submitted job
promptly. The thread executor keeps up to ``max_workers`` idle threads and starts a new
one whenever a job arrives and none is idle, so an *abandoned* job (timed out or
cancelled: Python cannot kill a thread) keeps its thread busy without taking capacity
from the others. When the abandoned job finally returns, its thread exits if enough
others are idle.

Guarantees of :class:`ThreadExecutor`: soft isolation only (shared memory, shared
process); a hard timeout abandons the thread, it does not stop the work.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from domain.errors import OrchestrationError

__all__ = ["Executor", "ThreadExecutor"]

Job = Callable[[], None]


class Executor(ABC):
    """Runs jobs (zero-argument callables that report their own outcome)."""

    name: str = "executor"

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None: ...


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
