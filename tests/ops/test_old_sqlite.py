"""The embedded SQLite before 3.35, which has no RETURNING: webhooks are accepted and runs stored.

SQLite has RETURNING from 3.35 (2021-03). Python links the system's library, and systems that
run Python 3.11 still ship older ones: RHEL / Rocky / Alma 9 (its python3.11 package, SQLite
3.34.1), Ubuntu 20.04 with deadsnakes' Python 3.11 (3.31.1), Debian 11 with a pyenv-built 3.11
(3.34.1). SQLAlchemy knows: for SQLite before 3.35 it turns the dialect's
`insert_returning` off and reads a new id from the cursor's lastrowid instead. An explicit
`insert(...).returning(...)` would be rendered regardless, and such a SQLite refuses it
(`near "RETURNING": syntax error`): every webhook and schedule tick would fail to be accepted.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event, func, select

from tests.ops.conftest import SLUG
from worker.services.deliveries import Accepted, accept
from worker.services.sync import request_sync, run_sync
from worker.store import repositories as repo
from worker.store.models import Delivery, FindingRecord


def _as_sqlite_before_3_35(runtime, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The engine as SQLAlchemy sets it up for SQLite before 3.35, which also refuses RETURNING."""
    engine = runtime.db.engine
    for flag in ("insert_returning", "update_returning", "delete_returning"):
        monkeypatch.setattr(engine.dialect, flag, False)

    def refuse_returning(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        if "RETURNING" in statement.upper():
            raise sqlite3.OperationalError('near "RETURNING": syntax error')

    event.listen(engine, "before_cursor_execute", refuse_returning)
    request.addfinalizer(lambda: event.remove(engine, "before_cursor_execute", refuse_returning))


def test_given_sqlite_older_than_3_35_when_a_delivery_is_accepted_then_it_is_committed_and_its_id_returned(
    runtime, clinic, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # Given
    with runtime.db.transaction() as session:
        org_id = repo.get_org(session, SLUG).id
    _as_sqlite_before_3_35(runtime, monkeypatch, request)
    # When a webhook or schedule tick is accepted
    accepted = accept(runtime, org_id, "schedule", "tick-1", "tick", b"")
    # Then it is stored and its id handed back
    assert isinstance(accepted, Accepted) and not accepted.duplicate
    with runtime.db.transaction() as session:
        assert session.get(Delivery, accepted.delivery).delivery_id == "tick-1"


def test_given_sqlite_older_than_3_35_when_a_sync_runs_then_it_succeeds_and_stores_its_findings(
    runtime, clinic, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # Given (the rest of a run's statements: the claim, the findings' multi-row insert, ...)
    _as_sqlite_before_3_35(runtime, monkeypatch, request)
    # When
    run_id, _ = request_sync(runtime, SLUG, "manual")
    # Then
    assert run_sync(runtime, run_id).status == "succeeded"
    with runtime.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(FindingRecord)) > 0
