"""ResourceManager: the spec's example, every method's return shape, bad input, best
fit, all-or-nothing with the rejection recorded, expiry, restart, concurrency, and the
view as the fold of the log."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from domain.enums import ResourceStatus, ResourceType
from domain.errors import IllegalTransitionError, NotFoundError, ValidationError
from domain.events import Event
from domain.resource import AllocationGranted, AllocationRejected
from engine.clock import Runtime, SequentialIds
from engine.resource_manager import ResourceManager
from engine.resource_models import Resource, ResourceAllocation, ResourceLimits
from engine.store import EventStore, open_store
from projections.resources import fold

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return time.perf_counter()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODOMYRMEX_ORCHESTRATION_DIR", str(tmp_path / "data"))
    for name in ("CODOMYRMEX_RESOURCE_CONFIG", "CODOMYRMEX_STORE_URL", "CODOMYRMEX_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manager(clock: ManualClock, tmp_path: Path) -> Iterator[ResourceManager]:
    """A manager on memory://, with a manual clock and two CPUs, a GPU and a lock."""
    m = ResourceManager(
        store="memory://",
        runtime=Runtime(clock=clock, ids=SequentialIds("r")),
        data_dir=tmp_path,
        system_resources=False,
    )
    assert m.add_resource(Resource(id="cpu-a", name="CPU A", type=ResourceType.CPU, capacity={"cores": 4}))
    assert m.add_resource(Resource(id="cpu-b", name="CPU B", type=ResourceType.CPU, capacity={"cores": 4}))
    assert m.add_resource(Resource(id="gpu0", name="GPU 0", type=ResourceType.GPU, capacity={"memory_gb": 24}))
    assert m.add_resource(Resource(id="deploy", name="Deploy lock", type=ResourceType.LOCK, capacity={"holders": 1}))
    yield m
    m.close()


def events(m: ResourceManager) -> list[Event]:
    return [r.event for r in m.store.read()]


def usage(m: ResourceManager, rid: str) -> dict[str, Any]:
    return m.get_resource_usage(rid)


def assert_view_is_fold(m: ResourceManager) -> None:
    m.store.flush()
    assert m.view.snapshot() == fold(m.store.read()).snapshot()


# -- the spec's example ------------------------------------------------------------------


def test_spec_example_as_written() -> None:
    manager = ResourceManager()
    try:
        allocation = manager.allocate_resources(
            "task_123",
            {
                "cpu": {"cores": 2},
                "memory": {"gb": 4},
                "disk": {"gb": 10},
            },
            timeout=60,
        )
        data_dir = Path(manager.data_dir)
        fits = (
            (psutil.cpu_count() or 1) >= 2
            and psutil.virtual_memory().total / 2**30 >= 4
            and psutil.disk_usage(str(data_dir)).total / 2**30 >= 10
        )
        if not fits:  # a machine too small for the example: rejected, and the log says why
            assert allocation is None
            assert manager.get_rejections("task_123")
            return
        assert allocation == {"cpu": "system_cpu", "memory": "system_memory", "disk": "system_disk"}
        held = manager.get_user_allocations("task_123")
        assert [(a["requirement"], a["resource_id"], a["allocated"]) for a in held] == [
            ("cpu", "system_cpu", {"cores": 2}),
            ("memory", "system_memory", {"gb": 4}),
            ("disk", "system_disk", {"gb": 10}),
        ]
        assert len({a["request_id"] for a in held}) == 1
        for a in held:
            start = datetime.fromisoformat(a["allocated_at"])
            assert datetime.fromisoformat(a["expires_at"]) - start == timedelta(seconds=60)
        cpu = manager.get_resource_usage("system_cpu")
        assert cpu["allocated"] == {"cores": 2}
        assert cpu["current_users"] == 1
        assert cpu["status"] == "in_use"
        assert manager.deallocate_resources("task_123") is True
        assert manager.get_user_allocations("task_123") == []
        assert manager.get_resource_usage("system_cpu")["allocated"] == {"cores": 0}
        assert manager.get_resource_usage("system_cpu")["status"] == "available"
    finally:
        manager.close()


def test_system_resources_describe_this_machine(tmp_path: Path) -> None:
    with ResourceManager(store="memory://", data_dir=tmp_path) as m:
        res = {r.id: r for r in m.list_resources()}
        assert set(res) == {"system_cpu", "system_memory", "system_disk"}
        assert res["system_cpu"].capacity == {"cores": psutil.cpu_count()}
        assert res["system_cpu"].type is ResourceType.CPU
        assert math.isclose(res["system_memory"].capacity["gb"], psutil.virtual_memory().total / 2**30, abs_tol=0.01)
        assert math.isclose(
            res["system_disk"].capacity["gb"], psutil.disk_usage(str(tmp_path)).total / 2**30, abs_tol=0.01
        )
        assert res["system_disk"].metadata["path"] == str(tmp_path.resolve())


# -- return shapes ---------------------------------------------------------------------


def test_return_shapes(manager: ResourceManager) -> None:
    resources = manager.list_resources()
    assert [r.id for r in resources] == ["cpu-a", "cpu-b", "gpu0", "deploy"]
    assert all(isinstance(r, Resource) and isinstance(r.limits, ResourceLimits) for r in resources)
    assert [r.id for r in manager.list_resources(resource_type=ResourceType.CPU)] == ["cpu-a", "cpu-b"]
    assert [r.id for r in manager.list_resources(resource_type="lock")] == ["deploy"]  # type: ignore[arg-type]
    assert manager.list_resources(status=ResourceStatus.IN_USE) == []

    allocation = manager.allocate_resources("u1", {"cpu": {"cores": 1}, "lock": {"holders": 1}}, timeout=30)
    assert allocation == {"cpu": "cpu-a", "lock": "deploy"}
    assert [r.id for r in manager.list_resources(status=ResourceStatus.IN_USE)] == ["cpu-a", "deploy"]

    one = manager.get_resource_usage("cpu-a")
    assert one == {
        "resource_id": "cpu-a",
        "name": "CPU A",
        "type": "cpu",
        "status": "in_use",
        "capacity": {"cores": 4},
        "allocated": {"cores": 1},
        "utilization": {"cores": 25.0},
        "current_users": 1,
        "total_allocations": 1,
    }
    system = manager.get_resource_usage()
    assert set(system) == {"total_resources", "total_allocations", "resources_by_type", "utilization_summary"}
    assert system["total_resources"] == 4
    assert system["total_allocations"] == 2
    assert system["resources_by_type"]["cpu"] == 2 and system["resources_by_type"]["gpu"] == 1
    assert set(system["resources_by_type"]) == {t.value for t in ResourceType}
    assert system["utilization_summary"] == {"cpu": 12.5, "gpu": 0.0, "lock": 100.0}

    held = manager.get_user_allocations("u1")
    assert [set(a) for a in held] == [
        {
            "allocation_id",
            "resource_id",
            "resource_name",
            "resource_type",
            "requirement",
            "request_id",
            "allocated",
            "allocated_at",
            "expires_at",
            "status",
        }
    ] * 2
    assert held[0]["expires_at"] == (T0 + timedelta(seconds=30)).isoformat()
    alloc = manager.get_allocation(held[0]["allocation_id"])
    assert isinstance(alloc, ResourceAllocation)
    assert alloc.allocated == {"cores": 1} and alloc.user_id == "u1"
    assert manager.get_allocation("nope") is None

    health = manager.health_check()
    assert set(health) == {"status", "checked_at", "resources", "issues"}
    assert health["status"] == "degraded"  # the lock is 100% held
    assert health["resources"]["deploy"]["healthy"] is False
    assert any("deploy" in issue and "90%" in issue for issue in health["issues"])

    assert manager.expire_allocations() == []
    assert manager.deallocate_resources("u1", [held[0]["allocation_id"]]) is True
    assert manager.deallocate_resources("u1", [held[0]["allocation_id"]]) is False  # already released
    assert manager.deallocate_resources("u1") is True
    assert manager.deallocate_resources("u1") is False
    assert manager.deallocate_resources("nobody") is False
    assert manager.health_check()["status"] == "healthy"
    r = manager.get_resource("cpu-a")
    assert r is not None and r.total_allocations == 1 and r.allocated == {"cores": 0} and r.current_users == set()
    assert manager.get_resource("nope") is None
    assert_view_is_fold(manager)


def test_add_resource_returns_false_for_a_taken_id(manager: ResourceManager) -> None:
    before = manager.store.max_position()
    assert manager.add_resource(Resource(id="gpu0", name="other", type=ResourceType.GPU)) is False
    assert manager.store.max_position() == before
    assert manager.get_resource("gpu0").name == "GPU 0"  # type: ignore[union-attr]


def test_add_resource_with_a_status_records_the_trigger(manager: ResourceManager) -> None:
    res = Resource(id="gpu1", name="GPU 1", type=ResourceType.GPU, status=ResourceStatus.MAINTENANCE)
    assert manager.add_resource(res)
    assert [e.type for e in events(manager)[-2:]] == ["resource.added", "resource.status_changed"]
    assert manager.get_resource_usage("gpu1")["status"] == "maintenance"


def test_empty_request_records_nothing(manager: ResourceManager) -> None:
    before = manager.store.max_position()
    assert manager.allocate_resources("u", {}) == {}
    assert manager.store.max_position() == before


# -- bad input: ValidationError, nothing recorded -------------------------------------------


@pytest.mark.parametrize(
    ("requirements", "timeout"),
    [
        pytest.param({"quantum": {"qubits": 1}}, None, id="unknown-type"),
        pytest.param({"cpu": {"cores": -1}}, None, id="negative"),
        pytest.param({"cpu": {"cores": "2"}}, None, id="string-amount"),
        pytest.param({"cpu": {"cores": True}}, None, id="bool-amount"),
        pytest.param({"cpu": {"cores": float("nan")}}, None, id="nan"),
        pytest.param({"cpu": {"cores": float("inf")}}, None, id="inf"),
        pytest.param({"cpu": {"threads": 1}}, None, id="capacity-key-missing"),
        pytest.param({"cpu": {}}, None, id="no-capacity-key"),
        pytest.param({"cpu": 2}, None, id="amounts-not-a-dict"),
        pytest.param([("cpu", {"cores": 1})], None, id="not-a-dict"),
        pytest.param({"cpu": {"cores": 1}}, 0, id="timeout-zero"),
        pytest.param({"cpu": {"cores": 1}}, -5, id="timeout-negative"),
        pytest.param({"cpu": {"cores": 1}}, "60", id="timeout-string"),
        pytest.param({"cpu": {"cores": 1}}, float("nan"), id="timeout-nan"),
        pytest.param({"cpu": {"cores": 1}}, True, id="timeout-bool"),
    ],
)
def test_bad_allocation_input(manager: ResourceManager, requirements: Any, timeout: Any) -> None:
    before = manager.store.max_position()
    with pytest.raises(ValidationError):
        manager.allocate_resources("u1", requirements, timeout=timeout)
    assert manager.store.max_position() == before


@pytest.mark.parametrize("user_id", ["", None, 5])
def test_bad_user_id(manager: ResourceManager, user_id: Any) -> None:
    with pytest.raises(ValidationError):
        manager.allocate_resources(user_id, {"cpu": {"cores": 1}})
    with pytest.raises(ValidationError):
        manager.deallocate_resources(user_id)
    with pytest.raises(ValidationError):
        manager.get_user_allocations(user_id)


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(Resource(id="", name="x", type=ResourceType.CPU), id="empty-id"),
        pytest.param(Resource(id="a b", name="x", type=ResourceType.CPU), id="space-in-id"),
        pytest.param(Resource(id="x", name="x", type="quantum"), id="unknown-type"),  # type: ignore[arg-type]
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, capacity={"cores": -1}), id="negative"),
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, capacity={"cores": "4"}), id="string"),
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, status=ResourceStatus.IN_USE), id="in-use"),
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, allocated={"cores": 1}), id="allocated"),
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, current_users={"u"}), id="users"),
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, metadata={"b": b"x"}), id="bytes"),
        pytest.param(Resource(id="x", name="x", type=ResourceType.CPU, tags="a"), id="tags"),  # type: ignore[arg-type]
        pytest.param(
            Resource(id="x", name="x", type=ResourceType.CPU, limits=ResourceLimits(max_concurrent_users=0)),
            id="limit-zero-users",
        ),
        pytest.param(
            Resource(id="x", name="x", type=ResourceType.CPU, limits={"max_things": 1}),  # type: ignore[arg-type]
            id="unknown-limit",
        ),
    ],
)
def test_bad_resource(manager: ResourceManager, resource: Resource) -> None:
    before = manager.store.max_position()
    with pytest.raises(ValidationError):
        manager.add_resource(resource)
    assert manager.store.max_position() == before


def test_add_resource_needs_a_resource(manager: ResourceManager) -> None:
    with pytest.raises(ValidationError):
        manager.add_resource({"id": "x", "type": "cpu"})  # type: ignore[arg-type]


def test_bad_deallocation_input(manager: ResourceManager) -> None:
    manager.allocate_resources("u1", {"cpu": {"cores": 1}})
    manager.allocate_resources("u2", {"cpu": {"cores": 1}})
    theirs = manager.get_user_allocations("u2")[0]["allocation_id"]
    mine = manager.get_user_allocations("u1")[0]["allocation_id"]
    before = manager.store.max_position()
    with pytest.raises(NotFoundError):
        manager.deallocate_resources("u1", [mine, "no-such-allocation"])
    with pytest.raises(ValidationError):
        manager.deallocate_resources("u1", [mine, theirs])
    with pytest.raises(ValidationError):
        manager.deallocate_resources("u1", mine)
    assert manager.store.max_position() == before
    assert manager.deallocate_resources("u1", []) is False
    assert len(manager.get_user_allocations("u1")) == 1


@pytest.mark.parametrize(("kwargs"), [{"resource_type": "quantum"}, {"status": "broken"}])
def test_bad_list_filters(manager: ResourceManager, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        manager.list_resources(**kwargs)


def test_unknown_resource_usage(manager: ResourceManager) -> None:
    with pytest.raises(NotFoundError):
        manager.get_resource_usage("nope")


def test_bad_expire_now(manager: ResourceManager) -> None:
    with pytest.raises(ValidationError):
        manager.expire_allocations(datetime(2026, 1, 1))  # naive


# -- best fit ----------------------------------------------------------------------------


def test_best_fit_picks_the_lowest_utilization_after_allocation(manager: ResourceManager) -> None:
    assert manager.add_resource(Resource(id="gpu1", name="GPU 1", type=ResourceType.GPU, capacity={"memory_gb": 16}))
    assert manager.allocate_resources("a", {"gpu": {"memory_gb": 12}}) == {"gpu": "gpu0"}  # 50% vs 75%
    # gpu0 would be 20/24 = 83%, gpu1 8/16 = 50%
    assert manager.allocate_resources("b", {"gpu": {"memory_gb": 8}}) == {"gpu": "gpu1"}
    # only gpu0 has room for 12 more (12 + 12 = 24); gpu1 has 8 free
    assert manager.allocate_resources("c", {"gpu": {"memory_gb": 12}}) == {"gpu": "gpu0"}
    assert manager.allocate_resources("d", {"gpu": {"memory_gb": 9}}) is None


def test_equal_resources_share_the_load(manager: ResourceManager) -> None:
    chosen = [manager.allocate_resources(f"u{i}", {"cpu": {"cores": 1}}) for i in range(4)]
    assert [c["cpu"] for c in chosen if c] == ["cpu-a", "cpu-b", "cpu-a", "cpu-b"]


def test_limits_are_enforced(manager: ResourceManager) -> None:
    limited = Resource(
        id="mem",
        name="Memory",
        type=ResourceType.MEMORY,
        capacity={"gb": 16},
        limits=ResourceLimits(max_memory_gb=12, max_concurrent_users=2, timeout_seconds=100),
    )
    assert manager.add_resource(limited)
    assert manager.allocate_resources("a", {"memory": {"gb": 13}}) is None  # over the 12 GB limit
    assert manager.allocate_resources("a", {"memory": {"gb": 6}}, timeout=500) == {"memory": "mem"}
    assert manager.allocate_resources("b", {"memory": {"gb": 2}}) == {"memory": "mem"}
    assert manager.allocate_resources("c", {"memory": {"gb": 1}}) is None  # a third user
    assert manager.allocate_resources("a", {"memory": {"gb": 4}}) == {"memory": "mem"}  # a's second: 12 GB in all
    assert manager.allocate_resources("b", {"memory": {"gb": 0.5}}) is None  # over 12
    expiries = [a["expires_at"] for u in "ab" for a in manager.get_user_allocations(u)]
    assert set(expiries) == {(T0 + timedelta(seconds=100)).isoformat()}  # timeout_seconds caps 500 and None
    rejected = manager.get_rejections("c")[0]
    assert "max_concurrent_users 2" in rejected["reason"]


# -- all or nothing --------------------------------------------------------------------------


def test_all_or_nothing_records_the_rejection(manager: ResourceManager) -> None:
    manager.allocate_resources("big", {"gpu": {"memory_gb": 20}})
    before = manager.store.max_position()
    result = manager.allocate_resources("u1", {"cpu": {"cores": 2}, "gpu": {"memory_gb": 8}, "lock": {"holders": 1}})
    assert result is None
    assert manager.get_user_allocations("u1") == []
    assert manager.get_resource_usage("cpu-a")["allocated"] == {"cores": 0}
    assert manager.get_resource_usage("deploy")["allocated"] == {"holders": 0}
    new = [r.event for r in manager.store.read(start=before + 1)]
    assert len(new) == 1
    rejected = new[0]
    assert isinstance(rejected, AllocationRejected)
    assert rejected.user_id == "u1"
    assert list(rejected.unmet) == ["gpu"]
    assert rejected.unmet["gpu"] == ["gpu0: memory_gb needs 8, free 4 of 24"]
    assert rejected.requirements == {"cpu": {"cores": 2}, "gpu": {"memory_gb": 8}, "lock": {"holders": 1}}
    assert not any(isinstance(e, AllocationGranted) and e.request_id == rejected.aggregate_id for e in events(manager))
    assert manager.get_rejections("u1")[0]["unmet"] == {"gpu": ["gpu0: memory_gb needs 8, free 4 of 24"]}
    assert_view_is_fold(manager)


def test_a_type_without_resources_is_unsatisfiable(manager: ResourceManager) -> None:
    assert manager.allocate_resources("u1", {"cpu": {"cores": 1}, "database": {"connections": 1}}) is None
    assert manager.get_rejections("u1")[0]["unmet"] == {"database": ["no resource of type 'database'"]}
    assert manager.get_user_allocations("u1") == []


# -- statuses -------------------------------------------------------------------------------


def test_maintenance_and_illegal_triggers(manager: ResourceManager) -> None:
    assert manager.set_resource_status("gpu0", "start_maintenance", "driver update") is ResourceStatus.MAINTENANCE
    assert manager.allocate_resources("u1", {"gpu": {"memory_gb": 1}}) is None
    assert manager.get_rejections("u1")[0]["unmet"] == {"gpu": ["gpu0: status maintenance"]}
    health = manager.health_check()
    assert health["status"] == "degraded"
    assert any("gpu0" in i and "maintenance" in i and "driver update" in i for i in health["issues"])
    assert manager.set_resource_status("gpu0", "end_maintenance") is ResourceStatus.AVAILABLE

    manager.allocate_resources("u1", {"cpu": {"cores": 1}})
    before = manager.store.max_position()
    with pytest.raises(IllegalTransitionError):
        manager.set_resource_status("cpu-a", "start_maintenance")  # IN_USE
    with pytest.raises(ValidationError):
        manager.set_resource_status("cpu-a", "release_all")  # follows allocations only
    with pytest.raises(ValidationError):
        manager.set_resource_status("cpu-a", "explode")
    with pytest.raises(NotFoundError):
        manager.set_resource_status("nope", "disable")
    assert manager.store.max_position() == before


def test_disabling_a_resource_in_use_revokes_its_allocations(manager: ResourceManager) -> None:
    manager.allocate_resources("u1", {"cpu": {"cores": 1}})
    manager.allocate_resources("u2", {"cpu": {"cores": 1}})
    manager.allocate_resources("u3", {"cpu": {"cores": 1}})  # cpu-a, cpu-b, cpu-a
    assert manager.set_resource_status("cpu-a", "disable", "hardware fault") is ResourceStatus.UNAVAILABLE
    assert manager.get_user_allocations("u1") == [] and manager.get_user_allocations("u3") == []
    assert len(manager.get_user_allocations("u2")) == 1
    assert manager.get_resource_usage("cpu-a")["allocated"] == {"cores": 0}
    kinds = [e.type for e in events(manager)[-5:]]
    assert kinds == [
        "allocation.revoked",
        "resource.released",
        "allocation.revoked",
        "resource.released",
        "resource.status_changed",
    ]
    assert manager.allocate_resources("u4", {"cpu": {"cores": 4}}) is None  # cpu-b has 3 free, cpu-a disabled
    assert manager.set_resource_status("cpu-a", "enable") is ResourceStatus.AVAILABLE
    assert manager.allocate_resources("u4", {"cpu": {"cores": 4}}) == {"cpu": "cpu-a"}
    assert_view_is_fold(manager)


# -- expiry -------------------------------------------------------------------------------


def test_expiry_with_the_real_clock_brings_capacity_back(tmp_path: Path) -> None:
    with ResourceManager(store="memory://", data_dir=tmp_path, system_resources=False) as m:
        m.add_resource(Resource(id="lock", name="lock", type=ResourceType.LOCK, capacity={"holders": 1}))
        assert m.allocate_resources("u1", {"lock": {"holders": 1}}, timeout=1) == {"lock": "lock"}
        allocation_id = m.get_user_allocations("u1")[0]["allocation_id"]
        assert m.allocate_resources("u2", {"lock": {"holders": 1}}) is None
        deadline = time.monotonic() + 5
        while m.get_user_allocations("u1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert m.get_user_allocations("u1") == []
        assert m.get_resource_usage("lock")["allocated"] == {"holders": 0}
        expired = [e for e in events(m) if e.type == "allocation.expired"]
        assert [e.aggregate_id for e in expired] == [allocation_id]
        assert expired[0].actor == "system"
        alloc = m.get_allocation(allocation_id)
        assert alloc is not None and alloc.metadata["status"] == "expired"
        assert m.get_resource("lock").total_usage_time == pytest.approx(1.0)  # type: ignore[union-attr]
        assert m.allocate_resources("u2", {"lock": {"holders": 1}}) == {"lock": "lock"}


def test_expire_allocations_on_demand(manager: ResourceManager, clock: ManualClock) -> None:
    manager.allocate_resources("u1", {"cpu": {"cores": 2}}, timeout=10)
    manager.allocate_resources("u2", {"cpu": {"cores": 2}}, timeout=20)
    manager.allocate_resources("u3", {"cpu": {"cores": 2}})
    assert manager.expire_allocations() == []
    first = manager.get_user_allocations("u1")[0]["allocation_id"]
    assert manager.expire_allocations(T0 + timedelta(seconds=10)) == [first]
    clock.advance(25)
    second = manager.get_user_allocations("u2")[0]["allocation_id"]
    assert manager.expire_allocations() == [second]
    assert manager.get_resource_usage("cpu-a")["allocated"] == {"cores": 2}  # u3's
    assert manager.get_resource_usage("cpu-b")["allocated"] == {"cores": 0}
    assert manager.get_resource("cpu-b").total_usage_time == 20.0  # type: ignore[union-attr]
    assert_view_is_fold(manager)


def test_overdue_allocation_is_a_health_issue(manager: ResourceManager, clock: ManualClock) -> None:
    manager._stop.set()  # the expiry thread stops at once: nobody expires the allocation
    manager.allocate_resources("u1", {"cpu": {"cores": 1}}, timeout=1)
    clock.advance(60)
    issues = manager.health_check()["issues"]
    assert any("past its expiry" in i for i in issues)
    assert "the allocation expiry thread has stopped" in issues


# -- restart, rebuild ----------------------------------------------------------------------


def test_restart_sees_the_same_view(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    clock = ManualClock()
    with ResourceManager(store=url, runtime=Runtime(clock=clock), data_dir=tmp_path) as m:
        m.add_resource(Resource(id="gpu0", name="GPU", type=ResourceType.GPU, capacity={"memory_gb": 24.5}))
        m.allocate_resources("a", {"cpu": {"cores": 1}, "gpu": {"memory_gb": 0.5}}, timeout=600)
        m.allocate_resources("b", {"gpu": {"memory_gb": 30}})  # rejected
        m.allocate_resources("c", {"memory": {"gb": 1.25}})
        m.deallocate_resources("c")
        m.set_resource_status("system_disk", "reserve")
        before = m.view.snapshot()
        usage_before = m.get_resource_usage()
        added_before = sum(1 for e in events(m) if e.type == "resource.added")
    with ResourceManager(store=url, runtime=Runtime(clock=clock), data_dir=tmp_path) as again:
        assert again.view.snapshot() == before
        assert again.get_resource_usage() == usage_before
        assert sum(1 for e in events(again) if e.type == "resource.added") == added_before == 4
        assert again.get_rejections("b")[0]["unmet"]["gpu"]
        assert len(again.get_user_allocations("a")) == 2
        assert again._expiry_thread is not None  # the log has a timed allocation
        assert_view_is_fold(again)


def test_two_managers_on_one_store_stay_consistent(tmp_path: Path) -> None:
    store = open_store("memory://")
    try:
        with ResourceManager(store=store, system_resources=False, data_dir=tmp_path) as a:
            a.add_resource(Resource(id="cpu", name="cpu", type=ResourceType.CPU, capacity={"cores": 8}))
            with ResourceManager(store=store, system_resources=False, data_dir=tmp_path) as b:
                assert b.get_resource("cpu") is not None
                assert a.allocate_resources("x", {"cpu": {"cores": 5}}) == {"cpu": "cpu"}
                assert b.allocate_resources("y", {"cpu": {"cores": 5}}) is None  # b sees a's grant
                assert b.allocate_resources("y", {"cpu": {"cores": 3}}) == {"cpu": "cpu"}
                assert a.get_resource_usage("cpu")["allocated"] == {"cores": 8}
                assert a.view.snapshot() == b.view.snapshot()
    finally:
        store.close()


# -- concurrency ----------------------------------------------------------------------------


def _hammer(m: ResourceManager, user: str, rounds: int, results: list[bool]) -> None:
    for _ in range(rounds):
        got = m.allocate_resources(user, {"cpu": {"cores": 1}})
        results.append(got is not None)
        if got is not None:
            assert m.get_resource_usage("cpu")["allocated"]["cores"] <= 3
            m.deallocate_resources(user)


def test_threads_never_over_allocate(tmp_path: Path) -> None:
    with ResourceManager(store="memory://", system_resources=False, data_dir=tmp_path) as m:
        m.add_resource(Resource(id="cpu", name="cpu", type=ResourceType.CPU, capacity={"cores": 3}))
        results: list[bool] = []
        threads = [threading.Thread(target=_hammer, args=(m, f"u{i}", 15, results)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 90 and any(results)
        held = max_concurrent_held(m)
        assert held <= 3
        assert m.get_resource_usage("cpu")["allocated"] == {"cores": 0}
        assert_view_is_fold(m)


def max_concurrent_held(m: ResourceManager) -> int:
    """The most cores ever held at once, replayed from the log."""
    held = peak = 0
    for e in events(m):
        if e.type == "resource.allocated":
            held += 1
            peak = max(peak, held)
        elif e.type == "resource.released":
            held -= 1
    return peak


def test_two_processes_worth_of_stores_on_one_sqlite_file(tmp_path: Path) -> None:
    """Two managers, each with its own store on the same file (as two processes would
    be): version conflicts are caught, each catches up from the log and decides again."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    stores = [open_store(url, follow_interval=0), open_store(url, follow_interval=0)]  # stale until a conflict
    try:
        first = ResourceManager(store=stores[0], system_resources=False, data_dir=tmp_path)
        first.add_resource(Resource(id="cpu", name="cpu", type=ResourceType.CPU, capacity={"cores": 3}))
        second = ResourceManager(store=stores[1], system_resources=False, data_dir=tmp_path)
        results: list[bool] = []
        threads = [
            threading.Thread(target=_grab, args=(mgr, f"{n}-{i}", results))
            for n, mgr in (("a", first), ("b", second))
            for i in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 3  # exactly the capacity, whoever won
        for mgr in (first, second):
            mgr._catch_up()
        assert first.view.snapshot() == second.view.snapshot() == fold(stores[0].read()).snapshot()
        assert first.get_resource_usage("cpu")["allocated"] == {"cores": 3}
        assert max_concurrent_held(first) == 3
        first.close()
        second.close()
    finally:
        for s in stores:
            s.close()


def test_a_stale_writer_conflicts_catches_up_and_decides_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    stores = [open_store(url, follow_interval=0), open_store(url, follow_interval=0)]  # stale until a conflict
    try:
        first = ResourceManager(store=stores[0], system_resources=False, data_dir=tmp_path)
        first.add_resource(Resource(id="cpu", name="cpu", type=ResourceType.CPU, capacity={"cores": 3}))
        second = ResourceManager(store=stores[1], system_resources=False, data_dir=tmp_path)
        assert first.allocate_resources("a", {"cpu": {"cores": 2}}) == {"cpu": "cpu"}
        assert second.get_resource_usage("cpu")["allocated"] == {"cores": 0}  # it has not seen that yet
        assert second.allocate_resources("b", {"cpu": {"cores": 2}}) is None  # decided again after the conflict
        assert stores[1].stats.conflicts == 1
        assert second.get_resource_usage("cpu")["allocated"] == {"cores": 2}
        assert second.get_rejections("b")[0]["unmet"] == {"cpu": ["cpu: cores needs 2, free 1 of 3"]}
        assert second.allocate_resources("b", {"cpu": {"cores": 1}}) == {"cpu": "cpu"}
        first._catch_up()
        assert first.view.snapshot() == second.view.snapshot() == fold(stores[0].read()).snapshot()
        first.close()
        second.close()
    finally:
        for s in stores:
            s.close()


def _grab(m: ResourceManager, user: str, results: list[bool]) -> None:
    results.append(m.allocate_resources(user, {"cpu": {"cores": 1}}) is not None)


# -- the resource configuration file ---------------------------------------------------------

CONFIG = {
    "resources": [
        {
            "id": "gpu0",
            "name": "GPU 0",
            "type": "gpu",
            "capacity": {"memory_gb": 24, "units": 1},
            "limits": {"max_concurrent_users": 1},
            "tags": ["cuda"],
        },
        {"id": "openai", "type": "external_api", "capacity": {"requests_per_minute": 60}},
        {"id": "deploy-lock", "type": "lock", "capacity": {"holders": 1}},
        {"id": "scratch", "type": "disk", "capacity": {"gb": 100}, "status": "maintenance"},
        {"id": "system_cpu", "type": "cpu", "name": "Pinned", "capacity": {"cores": 1}},
    ]
}


def test_resource_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(CONFIG))
    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("CODOMYRMEX_RESOURCE_CONFIG", str(path))
    with ResourceManager(store=url, data_dir=tmp_path) as m:
        res = {r.id: r for r in m.list_resources()}
        assert list(res) == ["gpu0", "openai", "deploy-lock", "scratch", "system_cpu", "system_memory", "system_disk"]
        assert res["gpu0"].tags == ["cuda"] and res["gpu0"].limits.max_concurrent_users == 1
        assert res["openai"].name == "openai" and res["openai"].type is ResourceType.EXTERNAL_API
        assert res["scratch"].status is ResourceStatus.MAINTENANCE
        assert res["system_cpu"].capacity == {"cores": 1}  # the config replaces the default
        assert m.allocate_resources("u", {"external_api": {"requests_per_minute": 30}}) == {"external_api": "openai"}
        assert m.health_check()["status"] == "degraded"  # scratch is in maintenance
    changed = json.loads(json.dumps(CONFIG))
    changed["resources"][0]["capacity"]["memory_gb"] = 48
    path.write_text(json.dumps(changed))
    with ResourceManager(store=url, data_dir=tmp_path) as again:
        assert again.get_resource("gpu0").capacity == {"memory_gb": 24, "units": 1}  # type: ignore[union-attr]
        assert any("gpu0" in i and "differs" in i for i in again.health_check()["issues"])
        assert sum(1 for e in events(again) if e.type == "resource.added") == 7


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="syntax"),
        pytest.param('{"resources": {"gpu0": {}}}', id="not-a-list"),
        pytest.param('{"resourcez": []}', id="unknown-top-key"),
        pytest.param('{"resources": [{"type": "gpu"}]}', id="no-id"),
        pytest.param('{"resources": [{"id": "g", "type": "warp"}]}', id="bad-type"),
        pytest.param('{"resources": [{"id": "g", "type": "gpu", "colour": 1}]}', id="unknown-key"),
        pytest.param('{"resources": [{"id": "g", "type": "gpu", "capacity": {"units": -1}}]}', id="negative"),
        pytest.param('{"resources": [{"id": "g", "type": "gpu", "capacity": {"units": NaN}}]}', id="nan"),
        pytest.param('{"resources": [{"id": "g", "type": "gpu", "status": "in_use"}]}', id="in-use"),
        pytest.param('{"resources": [{"id": "g", "type": "gpu", "limits": {"bogus": 1}}]}', id="bad-limit"),
        pytest.param('{"resources": [{"id": "g", "type": "gpu"}, {"id": "g", "type": "gpu"}]}', id="duplicate"),
    ],
)
def test_malformed_resource_config(tmp_path: Path, content: str) -> None:
    path = tmp_path / "resources.json"
    path.write_text(content)
    store = open_store("memory://")
    try:
        with pytest.raises(ValidationError, match=r"resources\.json"):
            ResourceManager(store=store, resource_config=path, data_dir=tmp_path)
        assert store.max_position() == 0  # nothing recorded, not even the system resources
    finally:
        store.close()


def test_missing_resource_config(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        ResourceManager(store="memory://", resource_config=tmp_path / "nope.json", data_dir=tmp_path)


def test_manager_does_not_close_a_store_it_was_given(tmp_path: Path) -> None:
    store: EventStore = open_store("memory://")
    ResourceManager(store=store, system_resources=False, data_dir=tmp_path).close()
    assert store.append([]) == []  # still open
    store.close()
