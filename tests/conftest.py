"""Services for the tests: a real Redis and real databases.

- Redis: ``WA_TEST_REDIS_URL`` (CI: the machine's Redis), else a private redis-server started here.
- Databases: SQLite always; PostgreSQL from ``WA_TEST_POSTGRES_URL``. Under CI (``CI=true``) a
  missing PostgreSQL fails the run instead of skipping.
- Parallel runs (``-n``): each pytest process takes its own Redis database, PostgreSQL database and
  ports (``support/workers.py``).
- Tiers: every test gets one tier marker at collection (``TIER_RULES``): fast, integration, system, slow.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
import redis as redis_lib
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url

from models.db import create, dispose_all
from models.migrate import upgrade
from wa_tasks.infra.redis_server import EmbeddedRedis
from wa_tasks.settings import Settings

# Customer data is encrypted at rest in every test: this process and the processes it starts share
# one key, set before anything reads the settings (importing the Celery app below does).
os.environ.setdefault("WA_ENCRYPTION_KEY", Fernet.generate_key().decode())

sys.path.insert(0, str(Path(__file__).parent))

from support.stack import Stack  # noqa: E402
from support.workers import free_port, postgres_url_for_worker, redis_url_for_worker  # noqa: E402

#: The in-process harness's fixtures (``inproc``, ``make_inproc``), for tests in any folder.
pytest_plugins = ["support.inproc_fixtures"]

IN_CI = os.environ.get("CI", "").lower() == "true"

TABLES = (
    "whatsapp_messages",
    "whatsapp_queue_jobs",
    "whatsapp_templates",
    "whatsapp_sessions",
    "whatsapp_opt_outs",
    "whatsapp_incoming",
    "whatsapp_daily_metrics",
    "whatsapp_contacts",
    "whatsapp_webhook_events",
)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("WA_TEST_REDIS_URL")
    if url:
        url = redis_url_for_worker(url)
        try:
            redis_lib.Redis.from_url(url).ping()
        except redis_lib.RedisError as exc:
            pytest.fail(f"WA_TEST_REDIS_URL={url} does not answer: {exc}")
        yield url
        return
    directory = Path(tempfile.mkdtemp(prefix="wa-redis-"))
    port = free_port()
    server = EmbeddedRedis(directory, persistent=False, port=port)
    server.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def postgres_url() -> str:
    """``WA_TEST_POSTGRES_URL``; without it the test is skipped, or fails under CI."""
    url = os.environ.get("WA_TEST_POSTGRES_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("CI must test PostgreSQL: set WA_TEST_POSTGRES_URL")
        pytest.skip("PostgreSQL not configured: set WA_TEST_POSTGRES_URL to run these tests on it")
    return postgres_url_for_worker(url)


def _reset_postgres(url: str) -> None:
    engine = create(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'wa-tasks.db'}"
    else:
        url = postgres_url()
        _reset_postgres(url)
    upgrade(url)
    yield url
    dispose_all()


def empty_tables(database_url: str) -> None:
    """Delete every row of the migrated database at ``database_url``."""
    engine = create(database_url)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def database(database_url: str) -> str:
    """A migrated database with empty tables."""
    empty_tables(database_url)
    return database_url


@pytest.fixture
def redis_clean(redis_url: str) -> str:
    redis_lib.Redis.from_url(redis_url).flushdb()
    return redis_url


def make_settings(database_url: str, redis_url: str, data_dir: Path) -> Settings:
    """The tests' settings: real services, short pacing and heartbeats (pacing has its own tests)."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
        pace_seconds=0.05,
        pace_jitter_seconds=0.0,
        # Ban safety has tests of its own; elsewhere a brand-new number's warm-up cap (20 a day)
        # would stop the tests that send hundreds of messages.
        safety_enabled=False,
        # Send windows have tests of their own; elsewhere a reminder or promotion sent at night
        # (the suite runs at any hour) would be held until the morning.
        window_promotion="always",
        window_reminder="always",
        heartbeat_seconds=0.5,
        live_state_ttl_seconds=3.0,
        lease_ttl_seconds=3.0,
        failover_grace_seconds=1.0,
        dispatch_retry_max_seconds=2.0,
        sim_latency_ms=20,
        sim_delivered_after_seconds=0.3,
        sim_read_after_seconds=0.3,
        log_level="INFO",
    )


@pytest.fixture
def settings(database: str, redis_clean: str, tmp_path: Path) -> Settings:
    """Settings for one test, on an emptied database and Redis (``make_settings``)."""
    return make_settings(database, redis_clean, tmp_path / "var")


@pytest.fixture
def stack(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A real worker and session host (started by the test with ``stack.start()``)."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    running = Stack(settings, logdir)
    try:
        yield running
    finally:
        running.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(running.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database (nothing migrated) on each backend, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = postgres_url()
    name = f"wa_empty_{uuid.uuid4().hex[:8]}"
    admin = create(base).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Tiers ------------------------------------------------------------------------------------------------

#: The test tiers, fastest first (`./dev test` runs ``fast``; `./dev test --tier NAME` one tier).
TIERS = ("fast", "integration", "system", "slow")

#: What puts a test in a tier slower than ``fast``: a fixture it uses (directly or through other
#: fixtures), or its file (a glob on the path from the repository root). A test is in the slowest
#: tier a row names, ``fast`` when none does. A tier marker written on the test, its class or its
#: module counts as one more row: it can put the test in a slower tier, never in a faster one. A test
#: that starts a worker, session host or web process without one of these fixtures needs a row here
#: or ``@pytest.mark.system``.
TIER_RULES: tuple[tuple[str, str, str], ...] = (
    # integration: a real Redis or database, servers of the test's own, one-shot child processes
    ("file", "tests/integration/*", "integration"),
    ("fixture", "redis_url", "integration"),
    ("fixture", "database_url", "integration"),
    ("fixture", "empty_database", "integration"),
    # system: started worker, session host, web, beat or Flower processes
    ("fixture", "stack", "system"),
    ("fixture", "web", "system"),
    ("fixture", "beats", "system"),
    ("fixture", "own_redis", "system"),  # a stack on a Redis of its own (tests/integration/test_recovery.py)
    ("file", "tests/integration/test_api.py", "system"),  # starts web processes in the tests too
    ("file", "tests/integration/test_processes.py", "system"),  # `./dev up` and the demo, whole
    # slow: the fault drills, fuzzing, the browser
    ("file", "*/test_drills.py", "slow"),
    ("file", "*fuzz*", "slow"),
    ("file", "*/test_pages.py", "slow"),
    ("fixture", "browser", "slow"),
    ("fixture", "page", "slow"),
)


#: Folders whose tests must stay in one tier (a glob on the path from the repository root): the
#: in-process tests are the fast tier's, and a fixture that would move one out is an error at
#: collection rather than a test quietly leaving ``./dev test``.
PINNED: tuple[tuple[str, str], ...] = (("tests/inproc/*", "fast"),)


def pinned_violation(path: str, tier: str) -> str | None:
    """Why a test at ``path`` may not be in ``tier`` (see ``PINNED``), or None."""
    for pattern, pinned in PINNED:
        if fnmatch(path, pattern) and tier != pinned:
            return f"tests in {pattern} stay in the {pinned} tier, this one is {tier} (a fixture or marker moved it)"
    return None


def tier_of(item: pytest.Item, root: Path) -> str:
    """The one tier of ``item`` (see ``TIER_RULES``)."""
    path = Path(os.path.relpath(item.path, root)).as_posix()
    fixtures = set(getattr(item, "fixturenames", ()))
    named = {marker.name for marker in item.iter_markers() if marker.name in TIERS}
    for kind, pattern, tier in TIER_RULES:
        if (kind == "fixture" and pattern in fixtures) or (kind == "file" and fnmatch(path, pattern)):
            named.add(tier)
    return max(named, key=TIERS.index, default="fast")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test exactly one tier marker: the one ``tier_of`` finds, in place of any written."""
    tiers = [(item, tier_of(item, config.rootpath)) for item in items]
    for item, tier in tiers:
        why = pinned_violation(Path(os.path.relpath(item.path, config.rootpath)).as_posix(), tier)
        if why:
            raise pytest.UsageError(f"{item.nodeid}: {why}")
    for item in items:
        for node in item.listchain():
            node.own_markers[:] = [marker for marker in node.own_markers if marker.name not in TIERS]
    for item, tier in tiers:
        item.add_marker(tier)
