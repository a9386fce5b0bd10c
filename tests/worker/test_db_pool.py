"""A pooled PostgreSQL connection whose server process ended is replaced before use (store/db.py)."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

from tests.conftest import POSTGRES_ADMIN_URL
from worker.store.db import Database


def _backend_pid(database: Database) -> int:
    with database.transaction() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_given_a_pooled_connection_the_server_just_ended_when_a_transaction_starts_then_it_runs_on_a_new_one(
    postgres_url: str,
) -> None:
    # Given: the pooled connection's server process ended a moment after it was returned (a
    # terminated backend, a crashed backend's reset, a restarted pooler)
    database = Database(postgres_url)
    try:
        dead = _backend_pid(database)
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (dead,))
        # When
        fresh = _backend_pid(database)
        # Then
        assert fresh != dead
    finally:
        database.dispose()
