"""Shared fixtures: store URLs for every backend.

``store_url`` is parametrized over ``memory``, ``sqlite`` and ``postgresql``. The
PostgreSQL case is marked ``postgres`` (deselected by default; CI runs ``-m postgres``)
and uses ``CODOMYRMEX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), with one fresh schema per test. When the
server is unreachable the test is skipped, unless ``CODOMYRMEX_REQUIRE_POSTGRES=1``
(set by CI), where it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("CODOMYRMEX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def _pg_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store URL with a schema of its own, dropped afterwards."""
    try:
        conn = _pg_connect()
    except Exception as e:
        if os.environ.get("CODOMYRMEX_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but unreachable at {PG_URL}: {e}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {e}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}schema={schema}"
    finally:
        with _pg_connect() as conn2:
            conn2.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per backend; the same test runs against each."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def upstream_dir() -> Path:
    """The original project's workflow/template files (``../shared/upstream``)."""
    path = Path(os.environ.get("CODOMYRMEX_UPSTREAM_DIR", SHARED_DIR / "upstream"))
    if not path.is_dir():
        if os.environ.get("CODOMYRMEX_REQUIRE_UPSTREAM") == "1":
            pytest.fail(f"upstream files required but missing at {path}")
        pytest.skip(f"upstream files not present at {path} (they live beside the repository)")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With CODOMYRMEX_REQUIRE_POSTGRES=1 (CI), a skipped PostgreSQL test fails."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and item.get_closest_marker("postgres") is not None
        and os.environ.get("CODOMYRMEX_REQUIRE_POSTGRES") == "1"
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = f"PostgreSQL test skipped in CI: {report.longrepr}"


@pytest.fixture
def recorded_store(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store holding one completed and one failed run, and the failed run's id."""
    from engine.orchestration_engine import OrchestrationEngine
    from engine.registry import ActionRegistry

    registry = ActionRegistry()
    registry.register("t", "inc", lambda i: i + 1)

    def boom() -> None:
        raise RuntimeError("broken step")

    registry.register("t", "boom", boom)
    engine = OrchestrationEngine(data_dir=str(tmp_path / "data"), registry=registry)
    try:
        sid = engine.create_session("ann")
        ok = {"steps": [{"name": "a", "module": "t", "action": "inc", "parameters": {"i": 1}}]}
        bad = {"steps": [{"name": "b", "module": "t", "action": "boom"}]}
        assert engine.execute_complex_workflow(ok, session_id=sid)["success"]
        failed = engine.execute_complex_workflow(bad, session_id=sid)
        assert not failed["success"]
        return engine.store.url, failed["run_id"]
    finally:
        engine.close()
