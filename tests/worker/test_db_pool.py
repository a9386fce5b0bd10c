"""A pooled PostgreSQL connection whose server process ended is replaced before use, and one the
server still serves is used without a round trip to check it (store/db.py)."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import POSTGRES_ADMIN_URL
from worker.store import db as db_module
from worker.store.db import Database


def _backend_pid(database: Database) -> int:
    with database.transaction() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(pid: int) -> None:
    """End the server process of a connection, and wait until it is gone."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)


@pytest.fixture
def database(postgres_url: str):
    database = Database(postgres_url)
    yield database
    database.dispose()


@pytest.fixture
def pings(database: Database, monkeypatch) -> list[int]:
    """Counts the round trips made to check a pooled connection (the dialect's ping)."""
    made: list[int] = []
    ping = database.engine.dialect.do_ping

    def counted(dbapi_connection) -> bool:
        made.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", counted)
    return made


def test_given_a_pooled_connection_the_server_just_ended_when_a_transaction_starts_then_it_runs_on_a_new_one(
    database: Database,
) -> None:
    # Given: the pooled connection's server process ended a moment after it was returned (a
    # terminated backend, a crashed backend's reset, a restarted pooler)
    dead = _backend_pid(database)
    _terminate(dead)
    # When
    fresh = _backend_pid(database)
    # Then
    assert fresh != dead


def test_given_a_connection_returned_a_moment_ago_and_still_served_when_a_transaction_starts_then_it_is_used_without_a_check(
    database: Database, pings: list[int]
) -> None:
    # Given: a connection back in the pool a moment ago, its server process still there
    first = _backend_pid(database)
    # When
    second = _backend_pid(database)
    # Then: the same connection, and no round trip to check it
    assert second == first
    assert pings == []


def test_given_a_connection_idle_longer_than_trusted_when_a_transaction_starts_then_a_round_trip_checks_it(
    database: Database, pings: list[int], monkeypatch
) -> None:
    # Given: a connection that has been idle in the pool longer than is trusted without a check
    first = _backend_pid(database)
    monkeypatch.setattr(db_module, "TRUSTED_IDLE_SECONDS", 0.0)
    # When
    second = _backend_pid(database)
    # Then: it was checked with one round trip, and used
    assert pings == [1]
    assert second == first


def test_given_an_idle_connection_whose_server_ended_when_its_check_fails_then_the_transaction_runs_on_a_new_one(
    database: Database, pings: list[int], monkeypatch
) -> None:
    # Given: a long-idle pooled connection whose server process ended
    dead = _backend_pid(database)
    monkeypatch.setattr(db_module, "TRUSTED_IDLE_SECONDS", 0.0)
    _terminate(dead)
    # When
    fresh = _backend_pid(database)
    # Then: the check found it gone and a new connection served the transaction
    assert fresh != dead
    assert pings
