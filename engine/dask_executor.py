"""DaskExecutor: actions on a Dask cluster (``distributed``); the engine records.

Needs the optional ``distributed`` package (``pip install 'codomyrmex-orchestration[dask]'``).

The cluster is either reached at ``scheduler_address`` (``tcp://host:8786``: a
``dask scheduler`` and ``dask worker`` processes started elsewhere, possibly on other
machines) or a ``LocalCluster(processes=True, n_workers=...)`` this executor starts on
first use and closes at shutdown.

Each attempt becomes one Dask task: ``client.submit(dask_run, module, qualname,
kwargs)``. ``dask_run`` (this module, so the workers must have this package installed)
imports the action by its import path (:func:`engine.registry.import_path_of`) and runs
it, catching its exceptions, so Dask always sees a successful task and retries stay
the scheduler's. Results return through ``client.gather`` in batches; the scheduler
checks and records them exactly as for threads. Every event is recorded by the engine
process; workers never touch the event store.

What travels: the action by import path (a function defined at the top level of a
module importable on every worker; functions of the ``__main__`` script, lambdas,
closures and bound methods cannot be sent: ``ActionNotShippableError``, not retried),
the parameters and dependency results (JSON data, pickled), the result (pickled).

Guarantees:

* **Isolation**: the action runs in a Dask worker process, on whichever machine the
  Dask scheduler picks; several actions share a worker process when it has several
  threads (``threads_per_worker``, 1 for the local cluster).
* **Hard timeout**: the future is cancelled. Dask cannot kill a running task: the
  scheduler forgets the task, but the worker thread running it goes on until the
  function returns, and its result is then dropped (no ``task.late_result_discarded``
  is recorded, as the result never comes back). The timeout is recorded with metadata
  ``abandoned: true, future_cancelled: true``. A task not yet started when cancelled
  never runs. Cancelling a running task does the same.
* **Soft timeout**: works. An action declaring ``cancel_token`` gets a token backed by
  a ``distributed.Event`` named for the attempt, which a stop request sets (from this
  process, through the Dask scheduler). ``is_set()`` asks the scheduler at most every
  0.1 s; ``wait(seconds)`` waits on the scheduler. The event is cleared when the
  attempt ends.
* **Lost workers**: a task whose worker dies is retried by Dask on another worker
  (Dask's own rule, up to ``distributed.scheduler.allowed-failures``); when Dask gives
  up, the attempt fails with Dask's error (``KilledWorker``), retried by the engine if
  the task has retries left.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from domain.errors import ActionNotShippableError, OrchestrationError, ValidationError
from engine.config import MAX_WORKERS_LIMIT
from engine.executors import ActionCall, ActionResult, CancelToken, Executor, Job, ThreadExecutor, failed, run_shipped
from engine.registry import import_path_of

__all__ = ["DaskExecutor", "dask_run"]

_POLL_SECONDS = 0.1
_EVENT_PREFIX = "codomyrmex-stop-"


def _distributed() -> Any:
    """The ``distributed`` package (optional: imported on use; typed loosely)."""
    return importlib.import_module("distributed")


class _DaskStopFlag:
    """The stop flag of an action on a Dask worker: a ``distributed.Event``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._event: Any = None
        self._set = False
        self._checked = 0.0

    def _get(self) -> Any:
        if self._event is None:
            self._event = _distributed().Event(self._name)
        return self._event

    def is_set(self) -> bool:
        if self._set:
            return True
        now = time.monotonic()
        if now - self._checked >= _POLL_SECONDS:
            self._checked = now
            self._set = bool(self._get().is_set())
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        self._set = bool(self._get().wait(timeout))
        return self._set


def dask_run(module: str, qualname: str, kwargs: dict[str, Any], stop_event: str | None) -> ActionResult:
    """What a Dask worker runs for one attempt."""
    token = CancelToken(_DaskStopFlag(stop_event)) if stop_event else None
    return run_shipped(module, qualname, kwargs, token)


class _InFlight:
    __slots__ = ("call", "done", "event", "future", "kill", "path")

    def __init__(
        self, call: ActionCall, done: Callable[[ActionResult], None], event: str | None, path: tuple[str, str]
    ) -> None:
        self.call = call
        self.done = done
        self.event = event
        self.path = path
        self.future: Any = None
        self.kill = False


class DaskExecutor(Executor):
    """Runs actions on a Dask cluster (see the module docstring).

    ``scheduler_address``: an existing cluster's scheduler; ``None`` starts a
    ``LocalCluster(processes=True, n_workers=n_workers, threads_per_worker=...)``.
    The client connects (or the cluster starts) on the first action, or at
    :meth:`start`.

    Batching: each message to the Dask scheduler costs more than a tiny task, so
    attempts go in batches: one ``client.map`` for every call queued while the previous
    submission was under way, one ``client.gather`` for every future finished meanwhile.
    While at least ``batch_from`` attempts are in flight (the workers have queued work,
    so waiting costs no throughput), submitting and collecting also wait up to
    ``batch_window`` seconds for more; with fewer in flight, each goes at once."""

    name = "dask"
    timeout_metadata = {"abandoned": True, "future_cancelled": True}

    def __init__(
        self,
        scheduler_address: str | None = None,
        *,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        connect_timeout: float = 30.0,
        batch_window: float = 0.03,
        batch_from: int = 32,
    ) -> None:
        for label, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS_LIMIT:
                raise ValidationError(f"dask {label} must be an integer from 1 to {MAX_WORKERS_LIMIT}, got {value!r}")
        if scheduler_address is not None and (not isinstance(scheduler_address, str) or not scheduler_address.strip()):
            raise ValidationError(f"dask scheduler address must be a non-empty string, got {scheduler_address!r}")
        self.scheduler_address = scheduler_address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.connect_timeout = connect_timeout
        self.batch_window = batch_window
        self.batch_from = batch_from
        self._jobs = ThreadExecutor(max_idle=4, thread_name="task-dispatch")
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._client: Any = None
        self._cluster: Any = None
        self._inflight: dict[str, _InFlight] = {}
        self._queued: list[_InFlight] = []  # taken by the next submission
        self._submitting = False
        self._finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._consumer: threading.Thread | None = None
        self._shutdown = False

    # -- the Executor interface ------------------------------------------------------

    def submit(self, job: Job) -> None:
        self._jobs.submit(job)

    def describe(self) -> dict[str, Any]:
        where = self.scheduler_address or f"LocalCluster(processes=True, n_workers={self.n_workers})"
        return {"executor": self.name, "scheduler": where}

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (connected on first use)."""
        self.start()
        return self._client

    def start(self) -> None:
        """Connect to the scheduler, or start the local cluster, now."""
        with self._start_lock:
            if self._shutdown:
                raise OrchestrationError("the executor is shut down", code="EXECUTOR_SHUT_DOWN")
            if self._client is not None:
                return
            try:
                distributed = _distributed()
            except ImportError as e:
                raise OrchestrationError(
                    "the dask executor needs the 'distributed' package",
                    code="EXECUTOR_UNAVAILABLE",
                    suggestions=["pip install 'codomyrmex-orchestration[dask]'", "Or use executor='threads'."],
                ) from e
            if self.scheduler_address is not None:
                client = distributed.Client(self.scheduler_address, timeout=self.connect_timeout, set_as_default=False)
            else:
                cluster = distributed.LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=self.threads_per_worker,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                try:
                    client = distributed.Client(cluster, timeout=self.connect_timeout, set_as_default=False)
                except BaseException:
                    cluster.close()
                    raise
                self._cluster = cluster
            self._client = client
            self._consumer = threading.Thread(target=self._consume, name="dask-results", daemon=True)
            self._consumer.start()

    def run_action(self, call: ActionCall, done: Callable[[ActionResult], None]) -> None:
        try:
            module, qualname = import_path_of(call.fn, call.module, call.action, allow_main=False)
        except ActionNotShippableError as e:
            done(failed(e, retryable=False))
            return
        self.start()
        event = f"{_EVENT_PREFIX}{uuid.uuid4().hex}" if call.wants_cancel_token else None
        flight = _InFlight(call, done, event, (module, qualname))
        if not call.control.bind(
            on_stop=(lambda: self._later(self._set_event, event)) if event else None,
            on_kill=lambda: self._kill(flight),
        ):
            done(ActionResult(False, lost=True))
            return
        with self._lock:
            self._queued.append(flight)
            submit = not self._submitting
            self._submitting = True
        if submit:
            self._jobs.submit(self._submit_queued)

    def _submit_queued(self) -> None:
        """Submit every queued call in one ``client.map`` (one graph update for the
        Dask scheduler instead of one per task); calls queued meanwhile go in the next
        one, as the store's group commit does with events."""
        while True:
            self._linger()
            with self._lock:
                batch, self._queued = self._queued, []
                if not batch or self._shutdown:
                    self._submitting = False
                    return
            try:
                futures = self._client.map(
                    dask_run,
                    [f.path[0] for f in batch],
                    [f.path[1] for f in batch],
                    [f.call.kwargs for f in batch],
                    [f.event for f in batch],
                    key=[f"{f.call.action}-{uuid.uuid4().hex}" for f in batch],
                    pure=False,
                )
            except Exception as e:  # noqa: BLE001 -- the client failed: these attempts failed
                for flight in batch:
                    flight.call.control.unbind()
                    flight.done(failed(e))
                continue
            cancel = []
            with self._lock:
                for flight, future in zip(batch, futures, strict=True):
                    flight.future = future
                    self._inflight[future.key] = flight
                    if flight.kill:
                        cancel.append(future)
            for future in futures:
                future.add_done_callback(self._finished.put)
            for future in cancel:
                self._later(future.cancel)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Cancel what is in flight, close the client and the local cluster."""
        with self._start_lock:
            if self._shutdown:
                return
            self._shutdown = True
            client, cluster, consumer = self._client, self._cluster, self._consumer
        with self._lock:
            flights = [*self._inflight.values(), *self._queued]
            self._inflight.clear()
            self._queued.clear()
        for flight in flights:
            flight.call.control.unbind()
            flight.done(ActionResult(False, lost=True))
        self._finished.put(None)
        if consumer is not None:
            consumer.join(timeout)
        if client is not None:
            if flights:
                client.cancel([f.future for f in flights if f.future is not None], force=True)
            client.close()
        if cluster is not None:
            cluster.close()
        self._jobs.shutdown(wait, timeout)

    # -- internals -------------------------------------------------------------------

    def _later(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a (blocking) client call off the caller's thread: the scheduler asks
        for stops and kills holding its lock."""
        with contextlib.suppress(OrchestrationError):  # shut down: nothing left to stop
            self._jobs.submit(lambda: fn(*args))

    def _set_event(self, name: str) -> None:
        _distributed().Event(name, client=self._client).set()

    def _clear_event(self, name: str) -> None:
        _distributed().Event(name, client=self._client).clear()

    def _kill(self, flight: _InFlight) -> dict[str, Any]:
        with self._lock:
            future = flight.future
            if future is None:
                flight.kill = True  # cancelled as soon as it is submitted
        if future is not None:
            self._later(future.cancel)
        return dict(self.timeout_metadata)

    def _linger(self) -> None:
        """Wait ``batch_window`` for a fuller batch, if many attempts are in flight."""
        if self.batch_window > 0 and len(self._inflight) + len(self._queued) >= self.batch_from:
            time.sleep(self.batch_window)

    def _consume(self) -> None:
        """Collect finished futures in batches: one gather per batch."""
        while True:
            first = self._finished.get()
            if first is None:
                return
            self._linger()
            batch = [first]
            while True:
                try:
                    more = self._finished.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._finished.put(None)
                    break
                batch.append(more)
            with self._lock:
                flights = [(f, self._inflight.pop(f.key, None)) for f in batch]
            done = [(f, fl) for f, fl in flights if fl is not None]
            results = self._results([f for f, _ in done])
            for (_, flight), result in zip(done, results, strict=True):
                flight.call.control.unbind()
                try:
                    flight.done(result)
                except Exception:
                    logging.getLogger(__name__).exception("recording a Dask result failed")
                if flight.event is not None and flight.call.control.stop_requested:
                    self._later(self._clear_event, flight.event)

    def _results(self, futures: list[Any]) -> list[ActionResult]:
        out: list[ActionResult | None] = [None] * len(futures)
        finished = [i for i, f in enumerate(futures) if f.status == "finished"]
        if finished:
            try:
                values = self._client.gather([futures[i] for i in finished])
            except Exception:  # noqa: BLE001 -- one bad future: fetch them one by one below
                values = None
            if values is not None:
                for i, value in zip(finished, values, strict=True):
                    out[i] = value
        for i, future in enumerate(futures):
            if out[i] is not None:
                continue
            if future.status == "cancelled":
                out[i] = ActionResult(False, lost=True)
                continue
            try:
                value = future.result()
            except Exception as e:  # noqa: BLE001 -- Dask's own failure (KilledWorker, ...) is the outcome
                out[i] = failed(e)
            else:
                out[i] = value
        return [r if isinstance(r, ActionResult) else failed(TypeError(f"unexpected result {r!r:.200}")) for r in out]
