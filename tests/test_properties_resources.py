"""Property tests for the ResourceManager: a RuleBasedStateMachine adds resources,
allocates (one request at a time, checked against an independent model of best fit and
all-or-nothing, and several requests at once from threads), deallocates, changes
statuses, advances a manual clock and expires allocations, and feeds bad input. After
every step the invariants hold: capacity is never exceeded nor negative, allocated
amounts equal the sum of the active allocations, a rejected request owns no
allocation, the view equals the fold of the log, and a manager rebuilt from the log
equals the live one."""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.enums import AllocationStatus, ResourceStatus, ResourceType
from domain.errors import IllegalTransitionError, ValidationError
from domain.lifecycles import RESOURCE
from domain.resource import OPERATOR_TRIGGERS, ResourceBook, evolve
from engine.clock import Runtime, SequentialIds, SteppingClock
from engine.resource_manager import ResourceManager
from engine.resource_models import Resource, ResourceLimits
from engine.store import open_store
from projections.resources import ResourceRecord, ResourceView
from replay_tools.testing import assert_live_views_match_log

KEYS = {"cpu": ("cores",), "gpu": ("memory_gb", "units"), "memory": ("gb",), "lock": ("holders",)}
USERS = ("u0", "u1", "u2", "u3")
AMOUNT = st.sampled_from([0, 0.5, 1, 1, 1.5, 2, 2, 3, 4.5])
CAPACITY = st.sampled_from([1, 2, 2.5, 3, 4, 6, 8])


@st.composite
def requirements(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    types = draw(st.lists(st.sampled_from(sorted(KEYS)), min_size=1, max_size=3, unique=True))
    out: dict[str, dict[str, Any]] = {}
    for t in types:
        keys = draw(st.lists(st.sampled_from(KEYS[t]), min_size=1, unique=True))
        out[t] = {k: draw(AMOUNT) for k in keys}
        if draw(st.integers(0, 19)) == 0:
            out[t]["bogus"] = 1  # a capacity key no resource has
    return out


BAD_REQUESTS = st.sampled_from(
    [
        ({"warp": {"cores": 1}}, None),
        ({"cpu": {"cores": -1}}, None),
        ({"cpu": {"cores": "1"}}, None),
        ({"cpu": {"cores": None}}, None),
        ({"cpu": {}}, None),
        ({"cpu": {"cores": 1}}, 0),
        ({"cpu": {"cores": 1}}, -1.5),
        ({"cpu": {"cores": 1}}, float("inf")),
    ]
)


def _pct(used: Fraction, cap: Fraction) -> Fraction:
    return 100 * used / cap if cap > 0 else (Fraction(0) if used <= 0 else Fraction(100))


class ResourceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = SteppingClock(datetime(2026, 1, 1, tzinfo=UTC), step=timedelta(0))  # moves when told
        self.store = open_store("memory://")
        self.runtime = Runtime(clock=self.clock, ids=SequentialIds("p"))
        self.m = ResourceManager(store=self.store, runtime=self.runtime, data_dir=self.tmp.name, system_resources=False)
        self.extra = 0
        for rid, rtype, capacity, users in (
            ("cpu-0", ResourceType.CPU, {"cores": 4}, None),
            ("cpu-1", ResourceType.CPU, {"cores": 2.5}, 2),
            ("gpu-0", ResourceType.GPU, {"memory_gb": 8, "units": 2}, None),
            ("lock-0", ResourceType.LOCK, {"holders": 1}, None),
        ):
            assert self.m.add_resource(
                Resource(
                    id=rid,
                    name=rid,
                    type=rtype,
                    capacity=capacity,
                    limits=ResourceLimits(max_concurrent_users=users),
                )
            )

    def teardown(self) -> None:
        self.m.close()
        self.store.close()
        self.tmp.cleanup()

    # -- an independent model of one decision ----------------------------------------

    def _active_on(self, view: ResourceView, rid: str) -> list[Any]:
        return [a for a in view.allocations.values() if a.resource_id == rid and a.status is AllocationStatus.ACTIVE]

    def _expected(self, user: str, reqs: dict[str, dict[str, Any]]) -> tuple[str, dict[str, str] | set[str]]:
        """("invalid", ...), ("granted", {key: resource id}) or ("rejected", unmet keys)."""
        view = self.m.view
        chosen: dict[str, str] = {}
        unmet: set[str] = set()
        for key, amounts in reqs.items():
            of_type = [r for r in view.resources.values() if r.type.value == key]
            if of_type and not any(all(k in r.capacity for k in amounts) for r in of_type):
                return "invalid", set()
            best: tuple[Fraction, int, str] | None = None
            for order, r in enumerate(view.resources.values()):
                if r.type.value != key or r.status not in (ResourceStatus.AVAILABLE, ResourceStatus.IN_USE):
                    continue
                if not all(k in r.capacity for k in amounts):
                    continue
                active = self._active_on(view, r.id)
                users = {a.user_id for a in active}
                limit = r.limits.max_concurrent_users
                if limit is not None and user not in users and len(users) >= limit:
                    continue
                after = {
                    k: sum((Fraction(a.amounts.get(k, 0)) for a in active), Fraction(0)) + Fraction(v)
                    for k, v in amounts.items()
                }
                if any(after[k] > Fraction(r.capacity[k]) for k in amounts):
                    continue
                score = max(_pct(after[k], Fraction(r.capacity[k])) for k in amounts)
                if best is None or (score, order) < best[:2]:
                    best = (score, order, r.id)
            if best is None:
                unmet.add(key)
            else:
                chosen[key] = best[2]
        return ("rejected", unmet) if unmet else ("granted", chosen)

    # -- rules -------------------------------------------------------------------------

    @rule(
        rtype=st.sampled_from(sorted(KEYS)),
        caps=st.lists(CAPACITY, min_size=2, max_size=2),
        users=st.none() | st.integers(1, 2),
        reuse=st.booleans(),
    )
    def add_resource(self, rtype: str, caps: list[Any], users: int | None, reuse: bool) -> None:
        rid = "cpu-0" if reuse else f"extra-{self.extra}"
        capacity = dict(zip(KEYS[rtype], caps, strict=False))
        before = self.store.max_position()
        resource = Resource(
            id=rid,
            name=rid,
            type=ResourceType(rtype),
            capacity=capacity,
            limits=ResourceLimits(max_concurrent_users=users),
        )
        added = self.m.add_resource(resource)
        assert added is not reuse
        if reuse:
            assert self.store.max_position() == before
        else:
            self.extra += 1
            assert self.m.get_resource_usage(rid)["capacity"] == capacity

    @rule(user=st.sampled_from(USERS), reqs=requirements(), timeout=st.none() | st.integers(1, 5))
    def allocate(self, user: str, reqs: dict[str, dict[str, Any]], timeout: int | None) -> None:
        outcome, expected = self._expected(user, reqs)
        event(f"allocate: {outcome}")
        before = self.store.max_position()
        if outcome == "invalid":
            try:
                self.m.allocate_resources(user, reqs, timeout=timeout)
            except ValidationError:
                assert self.store.max_position() == before
                return
            raise AssertionError(f"{reqs} should be invalid")
        result = self.m.allocate_resources(user, reqs, timeout=timeout)
        if outcome == "granted":
            assert result == expected
            mine = self.m.get_user_allocations(user)[-len(reqs) :]
            assert {a["requirement"]: a["resource_id"] for a in mine} == expected
            assert len({a["request_id"] for a in mine}) == 1
            for a in mine:
                assert a["allocated"] == reqs[a["requirement"]]
                want = self.clock.now() + timedelta(seconds=timeout) if timeout else None
                assert a["expires_at"] == (want.isoformat() if want else None)
        else:
            assert result is None
            new = [r.event for r in self.store.read(start=before + 1)]
            assert [e.type for e in new] == ["allocation.rejected"]
            rejected: Any = new[0]
            assert set(rejected.unmet) == expected
            assert rejected.requirements == reqs

    @rule(user=st.sampled_from(USERS), data=st.data())
    def deallocate(self, user: str, data: st.DataObject) -> None:
        held = [a["allocation_id"] for a in self.m.get_user_allocations(user)]
        if data.draw(st.booleans(), label="all"):
            chosen = None
            expect = bool(held)
        else:
            ended = [a.id for a in self.m.view.allocations.values() if a.user_id == user and a.id not in held]
            # Indices, not sampled_from(ids): threads make the ids differ between runs, and
            # the shape of what is drawn must not.
            picks = data.draw(st.lists(st.integers(0, 15), max_size=4), label="picks")
            pool = held + ended
            chosen = [pool[i % len(pool)] for i in picks] if pool else []
            expect = any(a in held for a in chosen)
        assert self.m.deallocate_resources(user, chosen) is expect
        still = {a["allocation_id"] for a in self.m.get_user_allocations(user)}
        assert still == (set() if chosen is None else set(held) - set(chosen))

    @rule(seconds=st.integers(0, 4))
    def advance_and_expire(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        now = self.clock.now()
        due = {a.id for a in self.m.view.active() if a.expires_at is not None and a.expires_at <= now}
        returned = self.m.expire_allocations()
        assert set(returned) <= due  # the expiry thread may have taken some first
        self.store.flush()
        assert all(self.m.view.allocations[a].status is AllocationStatus.EXPIRED for a in due)
        assert not [a for a in self.m.view.active() if a.expires_at is not None and a.expires_at <= now]

    @rule(
        batch=st.lists(
            st.tuples(st.sampled_from(USERS), st.sampled_from([0.5, 1, 2, 3]), st.booleans()), min_size=2, max_size=5
        )
    )
    def allocate_from_threads(self, batch: list[tuple[str, Any, bool]]) -> None:
        barrier = threading.Barrier(len(batch))
        results: list[Any] = [None] * len(batch)
        errors: list[BaseException] = []

        def one(i: int, user: str, cores: Any, lock: bool) -> None:
            reqs: dict[str, dict[str, Any]] = {"cpu": {"cores": cores}}
            if lock:
                reqs["lock"] = {"holders": 1}
            barrier.wait()
            try:
                results[i] = self.m.allocate_resources(user, reqs, timeout=3)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i, *item)) for i, item in enumerate(batch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        rejected_users = [r.user_id for r in self.m.view.rejections.values()]
        for (user, _, lock), result in zip(batch, results, strict=True):
            if result is None:
                assert user in rejected_users
            else:
                assert set(result) == ({"cpu", "lock"} if lock else {"cpu"})
        event(f"threads: {sum(r is not None for r in results)} of {len(batch)} granted")

    @rule(rid=st.sampled_from(["cpu-0", "cpu-1", "gpu-0", "lock-0"]), trigger=st.sampled_from(OPERATOR_TRIGGERS))
    def change_status(self, rid: str, trigger: str) -> None:
        status = self.m.view.resources[rid].status
        before = self.store.max_position()
        if RESOURCE.can(status, trigger):
            assert self.m.set_resource_status(rid, trigger) is RESOURCE.decide(status, trigger)
            if trigger == "disable":
                assert not self._active_on(self.m.view, rid)
        else:
            try:
                self.m.set_resource_status(rid, trigger)
            except IllegalTransitionError:
                assert self.store.max_position() == before
                return
            raise AssertionError(f"{trigger} from {status} should be illegal")

    @rule(bad=BAD_REQUESTS, user=st.sampled_from(USERS))
    def bad_input(self, bad: tuple[Any, Any], user: str) -> None:
        before = self.store.max_position()
        try:
            self.m.allocate_resources(user, bad[0], timeout=bad[1])
        except ValidationError:
            assert self.store.max_position() == before
            return
        raise AssertionError(f"{bad} should be rejected as malformed")

    # -- invariants --------------------------------------------------------------------

    def _records(self) -> list[ResourceRecord]:
        self.store.flush()
        return list(self.m.view.resources.values())

    @invariant()
    def capacity_is_never_exceeded_nor_negative(self) -> None:
        for r in self._records():
            for key, cap in r.capacity.items():
                assert 0 <= r.allocated[key] <= cap, (r.id, key, r.allocated, cap)

    @invariant()
    def allocated_is_the_sum_of_active_allocations(self) -> None:
        view = self.m.view
        for r in self._records():
            active = self._active_on(view, r.id)
            for key in r.capacity:
                exact = sum((Fraction(a.amounts.get(key, 0)) for a in active), Fraction(0))
                assert Fraction(r.allocated[key]) == exact
            assert r.users == {u: sum(1 for a in active if a.user_id == u) for u in {a.user_id for a in active}}
            assert set(r.active) == {a.id for a in active}
            assert (r.status is ResourceStatus.IN_USE) == bool(active), (r.id, r.status, len(active))

    @invariant()
    def a_rejected_request_leaves_no_trace(self) -> None:
        self.store.flush()
        requests = {a.request_id for a in self.m.view.allocations.values()}
        assert not requests & set(self.m.view.rejections)

    def _live_view(self) -> dict[str, Any]:
        with self.m._view_lock:
            snapshot: dict[str, Any] = self.m.view.snapshot()
        return snapshot

    @invariant()
    def view_is_the_fold_of_the_log(self) -> None:
        assert_live_views_match_log(self.store, {"resources": self._live_view})
        book = ResourceBook()
        for recorded in self.store.read():
            evolve(book, recorded.event)
        assert book == self.m._book

    @invariant()
    def rebuilt_equals_live(self) -> None:
        self.store.flush()
        rebuilt = ResourceManager(
            store=self.store, runtime=self.runtime, data_dir=self.tmp.name, system_resources=False
        )
        try:
            assert rebuilt.view.snapshot() == self.m.view.snapshot()
            assert rebuilt.get_resource_usage() == self.m.get_resource_usage()
        finally:
            rebuilt.close()


TestResourceMachine = ResourceMachine.TestCase
TestResourceMachine.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
