"""`ptsync org list` reads through the driver alone; it must say exactly what the store says."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy import insert

from worker import views
from worker.clock import utcnow
from worker.crypto import SecretBox
from worker.runtime import Runtime
from worker.settings import Settings
from worker.store.db import Database
from worker.store.listing import organisation_rows
from worker.store.models import Organisation, Run
from worker.store.schema import schema_head


def _runtime(url: str) -> Runtime:
    key = Fernet.generate_key().decode()
    return Runtime(Settings(database_url=url, secret_key=key), Database(url), SecretBox([key]))


def test_the_driver_only_listing_equals_the_store_on_sqlite_and_postgresql(database_url: str) -> None:
    """Given organisations with runs, two requested in the same instant, when listed both ways,
    then the rows are equal and the newest run is the one with the highest id."""
    runtime = _runtime(database_url)
    runtime.db.migrate()
    now = utcnow().replace(microsecond=123456)
    with runtime.db.transaction() as session:
        session.execute(
            insert(Organisation),
            [
                {
                    "id": 1,
                    "slug": "b-clinic",
                    "pms_kind": "csv",
                    "ptdirect_kind": "file",
                    "pseudonym_key_encrypted": "-",
                    "created_at": now,
                    "paused_at": now,
                },
                {
                    "id": 2,
                    "slug": "a-clinic",
                    "pms_kind": "cliniko",
                    "ptdirect_kind": "manual",
                    "pseudonym_key_encrypted": "-",
                    "created_at": now,
                },
            ],
        )
        session.execute(
            insert(Run),
            [
                {
                    "id": "a" * 32,
                    "org_id": 2,
                    "trigger": "schedule",
                    "status": "failed",
                    "requested_at": now,
                    "finished_at": now + timedelta(seconds=5),
                },
                {
                    "id": "b" * 32,
                    "org_id": 2,
                    "trigger": "manual",
                    "status": "succeeded",
                    "requested_at": now,
                    "finished_at": now + timedelta(seconds=9),
                },
                {
                    "id": "c" * 32,
                    "org_id": 2,
                    "trigger": "schedule",
                    "status": "succeeded",
                    "requested_at": now - timedelta(hours=1),
                    "finished_at": now - timedelta(minutes=59),
                },
            ],
        )
    quick = organisation_rows(database_url, schema_head())
    stored = views.organisations(runtime)
    runtime.db.dispose()
    assert quick == stored
    assert [row.slug for row in quick] == ["a-clinic", "b-clinic"]
    newest = quick[0]
    assert (newest.last_status, newest.last_at) == ("succeeded", now + timedelta(seconds=9))
    assert quick[1].paused_at == now and quick[1].last_status is None


def test_no_database_or_an_old_schema_leaves_the_listing_to_the_store(tmp_path, database_url: str) -> None:
    """Given a missing file or a database not migrated, when listed through the driver, then None."""
    assert organisation_rows(f"sqlite:///{tmp_path / 'missing.db'}", schema_head()) is None
    assert organisation_rows(database_url, schema_head()) is None  # created, never migrated
    assert organisation_rows("mysql://somewhere/db", schema_head()) is None
