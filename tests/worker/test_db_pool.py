"""The PostgreSQL pool checks a connection that sat idle, and only that one (store/db.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import POSTGRES_ADMIN_URL
from worker.store import db as db_module
from worker.store.db import Database


@pytest.fixture
def database(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    yield database
    database.dispose()


@pytest.fixture
def pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ping the pool sends, recorded, still sent to the real server."""
    sent: list[object] = []
    real_ping = database.engine.dialect.do_ping

    def recording_ping(dbapi_connection):
        sent.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", recording_ping)
    return sent


def _backend_pid(database: Database) -> int:
    with database.transaction() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_given_a_connection_returned_a_moment_ago_when_the_next_transaction_starts_then_it_is_not_pinged(
    database: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    first = _backend_pid(database)
    # When
    second = _backend_pid(database)
    # Then
    assert second == first
    assert pings == []


def test_given_an_idle_connection_when_the_next_transaction_starts_then_it_is_pinged_once(
    database: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given
    _backend_pid(database)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    # When
    _backend_pid(database)
    # Then
    assert len(pings) == 1


def test_given_an_idle_connection_the_server_closed_when_a_transaction_starts_then_it_runs_on_a_new_one(
    database: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: the pooled connection's server process ended (as in a PostgreSQL restart)
    dead = _backend_pid(database)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (dead,))
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    # When
    fresh = _backend_pid(database)
    # Then
    assert fresh != dead
    assert len(pings) >= 1
