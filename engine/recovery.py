"""Crash recovery: adopting the open work of engines whose lease expired.

When an engine process dies (``kill -9``, power loss, OOM) its tasks stay open in the
log: PENDING/READY ones wait, RUNNING ones have a ``task.started`` and no outcome. An
orchestrator's :meth:`~engine.task_orchestrator.TaskOrchestrator.recover` finds them
from the log alone and, per the policy, takes them over:

``resume`` (the default)
    one commit per dead owner: ``lease.taken_over`` (who recovered what, when), then
    per open task ``task.adopted``, and for a RUNNING task its attempt recorded as
    failed with ``error_type="AttemptInterrupted"`` (metadata ``interrupted: true``),
    which retries it if it has retries left (after its ``retry_delay``) or fails it,
    skipping its dependents, exactly like any failed attempt. Completed tasks keep
    their recorded results and never run again; waiting tasks continue.
``fail``
    the same adoption, but every open task is then cancelled with the reason
    "owner lost", so its run ends FAILED and nothing of it runs again.
``off``
    nothing is adopted.

Only expired leases are taken over (``lease.expires_at`` before this engine's clock; a
released lease with open work at once), and the ``lease.taken_over`` append is
version-guarded: of two engines recovering at once exactly one wins, the other's commit
conflicts and it adopts nothing of that owner. Tasks whose owner never held a lease
(logs written before leases existed) are adopted as if their lease had expired.

The functions here work on the orchestrator's internals on its behalf (same package);
they never run user code: adoption is decided from the log, and the adopted tasks run
later through the orchestrator's normal admission path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain import lease as L
from domain import task as T
from domain.enums import LeaseStatus, TaskStatus
from domain.errors import ConcurrencyConflictError, ValidationError
from domain.events import Event, EventMeta
from engine.leases import read_leases

if TYPE_CHECKING:
    from engine.task_orchestrator import TaskOrchestrator

__all__ = ["RECOVERY_POLICIES", "RecoveryReport", "TakeOver", "check_policy", "recover_tasks"]

RECOVERY_POLICIES: tuple[str, ...] = ("resume", "fail", "off")


@dataclass(frozen=True, slots=True)
class TakeOver:
    """The work of one dead owner, as adopted."""

    previous_owner: str
    tasks: tuple[str, ...]
    runs: tuple[str, ...]
    interrupted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :func:`recover_tasks` adopted (empty when nothing was in flight)."""

    policy: str
    taken_over: tuple[TakeOver, ...] = ()
    contested: tuple[str, ...] = ()
    """Owners another engine took over first (their work is not ours)."""
    alive: tuple[str, ...] = field(default=())
    """Owners with open work whose lease has not expired (left alone)."""

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for take in self.taken_over for t in take.tasks)

    @property
    def runs(self) -> tuple[str, ...]:
        return tuple(r for take in self.taken_over for r in take.runs)


def check_policy(policy: object) -> str:
    if policy not in RECOVERY_POLICIES:
        raise ValidationError(
            f"recovery policy must be one of {RECOVERY_POLICIES}, got {policy!r}", code="INVALID_RECOVERY_POLICY"
        )
    return str(policy)


def recover_tasks(orch: TaskOrchestrator, policy: str = "resume") -> RecoveryReport:
    """Adopt the open tasks of every owner whose lease expired (see the module)."""
    policy = check_policy(policy)
    if policy == "off":
        return RecoveryReport(policy)
    orch.store.flush()
    now = orch.runtime.clock.now()
    leases = read_leases(orch.store)
    orch.store.catch_up()  # what other processes committed reaches the views and write model
    states = orch.others_open_tasks()
    by_owner: dict[str, list[str]] = {}
    for task_id, state in states.items():
        by_owner.setdefault(state.owner, []).append(task_id)
    taken: list[TakeOver] = []
    contested: list[str] = []
    alive: list[str] = []
    if by_owner:
        orch.lease.ensure()  # the adopter needs a live lease before it owns anything
    for owner, task_ids in sorted(by_owner.items()):
        lease = leases.get(owner)
        if lease is not None and (lease.status is LeaseStatus.TAKEN_OVER or not lease.expired(now)):
            alive.append(owner)
            continue
        take, events = _plan(orch, owner, lease, task_ids, states, now)
        try:
            orch.store.append(events)
        except ConcurrencyConflictError:
            contested.append(owner)
            continue
        taken.append(take)
        orch.install_adopted(task_ids, {t: states[t] for t in task_ids}, events, policy)
    return RecoveryReport(policy, tuple(taken), tuple(contested), tuple(alive))


def _plan(
    orch: TaskOrchestrator,
    owner: str,
    lease: L.LeaseState | None,
    task_ids: Sequence[str],
    states: dict[str, T.TaskState],
    now: object,
) -> tuple[TakeOver, list[Event]]:
    """The adoption commit for one owner; evolves ``states`` of the adopted tasks."""
    me = orch.instance_id
    interrupted = [t for t in task_ids if states[t].status is TaskStatus.RUNNING]
    runs = sorted({str(states[t].definition.metadata.get("run_id", "")) for t in task_ids} - {""})
    meta = EventMeta(timestamp=orch.runtime.clock.now(), actor=orch.actor, correlation_id=f"recovery:{me}")
    events: list[Event] = []
    cause = ""
    if lease is not None:
        taken = L.take_over(lease, meta, by=me, tasks=list(task_ids), runs=runs, interrupted=interrupted)
        events.append(taken)
        cause = taken.event_id
    for task_id in task_ids:
        state = states[task_id] = copy.copy(states[task_id])
        task_meta = EventMeta(
            timestamp=meta.timestamp,
            actor=state.definition.actor,
            correlation_id=state.definition.correlation_id,
            causation_id=cause,
        )
        adopted = T.adopt(state, task_meta, owner=me)
        T.evolve(state, adopted)
        events.append(adopted)
        if state.status is TaskStatus.RUNNING:
            failed = T.attempt_failed(
                state,
                EventMeta(
                    timestamp=meta.timestamp,
                    actor=task_meta.actor,
                    correlation_id=task_meta.correlation_id,
                    causation_id=adopted.event_id,
                ),
                error_type="AttemptInterrupted",
                error_message=(
                    f"attempt {state.attempt} was interrupted: its engine {owner or '(unknown)'} stopped "
                    "without recording an outcome"
                ),
                execution_time=0.0,
                metadata={"interrupted": True, "previous_owner": owner},
            )
            T.evolve(state, failed)
            events.append(failed)
    return TakeOver(owner, tuple(task_ids), tuple(runs), tuple(interrupted)), events
