"""Shared fixtures: real SQLite and PostgreSQL databases, a real Redis, a runtime per test.

Locally, tests that need PostgreSQL or Redis skip when the service is down; under CI
(CI=true) they fail instead, so a missing service can never pass as green.

Everything the shell needs (dramatiq, SQLAlchemy, cryptography, Redis) is imported inside the
fixtures that use it, so the pure core's tests (tests/core) run where none of it is installed.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test process always uses the in-process StubBroker; Redis is reached through subprocesses.
os.environ.pop("PTSYNC_BROKER_URL", None)
# Never the real user's data directory (the embedded database's default home).
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="ptsync-tests-data-")

POSTGRES_ADMIN_URL = os.environ.get("PTSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PTSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: services are required)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"ptsync_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN_URL
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ptsync.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.fixture
def secret_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def process_runtime(monkeypatch, database_url: str, secret_key: str, **settings: str):
    """Point the process-wide runtime at `database_url` (with `PTSYNC_<NAME>` settings), yield
    it, then dispose of it and forget it: for fixtures that hand it to a test."""
    from worker import runtime as runtime_module
    from worker import settings as settings_module

    monkeypatch.setenv("PTSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("PTSYNC_SECRET_KEY", secret_key)
    for name, value in settings.items():
        monkeypatch.setenv(f"PTSYNC_{name.upper()}", value)
    settings_module.get_settings.cache_clear()
    runtime_module.get_runtime.cache_clear()
    built = runtime_module.get_runtime()
    yield built
    built.db.dispose()
    settings_module.get_settings.cache_clear()
    runtime_module.get_runtime.cache_clear()


def migrated_runtime(monkeypatch, database_url: str, secret_key: str):
    """`process_runtime` on a database migrated first (the runtime refuses an outdated schema;
    only the embedded SQLite default is made at start), for fixtures on any database."""
    from worker.store.db import Database

    database = Database(database_url)
    database.migrate()
    database.dispose()
    yield from process_runtime(monkeypatch, database_url, secret_key)


@pytest.fixture
def runtime(sqlite_url: str, secret_key: str, monkeypatch):
    """The process-wide runtime, pointed at this test's database (actors use it too)."""
    yield from process_runtime(monkeypatch, sqlite_url, secret_key, run_lease_seconds="3")


@pytest.fixture(autouse=True)
def fresh_stub_broker():
    """Each test starts with empty in-process queues.

    A worker stopped mid-test (the web app's, in the browser test) can leave a consumed but
    unacknowledged message behind, whose unfinished-task count would make `join` wait forever.
    """
    import sys
    from queue import Queue

    broker_module = sys.modules.get("worker.broker")
    if broker_module is None:  # nothing imported the broker yet: its queues are still empty
        yield
        return
    broker = broker_module.broker
    if hasattr(broker, "dead_letters_by_queue"):
        for name in list(broker.queues):
            broker.queues[name] = Queue()
        broker.dead_letters_by_queue.clear()
    yield
