"""The store against both SQLite and the real PostgreSQL: migrations, runs, leases, secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from worker.clock import new_id, utcnow
from worker.crypto import SecretBox
from worker.services.orgs import NewOrganisation, add_organisation
from worker.settings import Settings
from worker.store import repositories as repo
from worker.store.db import Database
from worker.store.models import Organisation, Run


@pytest.fixture
def store(database_url: str, secret_key: str, tmp_path):
    from worker.runtime import Runtime

    db = Database(database_url)
    db.migrate()
    yield Runtime(Settings(database_url=database_url, secret_key=secret_key), db, SecretBox([secret_key]))
    db.dispose()


@pytest.fixture
def org(store, tmp_path):
    from tests.clinic_files import write_clinic

    pms, ptdirect = write_clinic(tmp_path)
    return add_organisation(
        store,
        NewOrganisation(
            slug="clinic-a",
            pms="csv",
            pms_path=str(pms),
            ptdirect="file",
            ptdirect_path=str(ptdirect),
            pms_key="sk-very-secret",
        ),
    )


def test_migrations_create_every_table_and_running_them_again_changes_nothing(store):
    store.db.migrate()
    tables = set(inspect(store.db.engine).get_table_names())
    assert {
        "organisations",
        "runs",
        "findings",
        "proposals",
        "proposal_operations",
        "sync_cursors",
        "audit_log",
        "alembic_version",
    } <= tables


def test_credentials_are_stored_encrypted_and_decrypt_with_the_key(store, org):
    with store.db.transaction() as session:
        stored = session.scalar(select(Organisation.pms_key_encrypted))
    assert "sk-very-secret" not in stored
    assert store.secrets.decrypt(stored) == b"sk-very-secret"


def test_duplicate_triggers_while_a_run_is_queued_join_that_run(store, org):
    now = utcnow()
    with store.db.transaction() as session:
        first, created_first = repo.queue_run(session, repo.get_org(session, "clinic-a"), "schedule", now)
    with store.db.transaction() as session:
        second, created_second = repo.queue_run(session, repo.get_org(session, "clinic-a"), "webhook", now)
    assert (created_first, created_second) == (True, False)
    assert first.id == second.id


def test_the_database_refuses_a_second_queued_run_for_one_organisation(store, org):
    now = utcnow()
    with store.db.transaction() as session:
        session.add(Run(id=new_id(), org_id=org.id, trigger="a", status="queued", requested_at=now))
    with pytest.raises(IntegrityError), store.db.transaction() as session:
        session.add(Run(id=new_id(), org_id=org.id, trigger="b", status="queued", requested_at=now))


def test_only_one_claim_wins_and_a_lapsed_lease_can_be_taken_over(store, org):
    now = utcnow()
    lease = timedelta(seconds=30)
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", now)
    with store.db.transaction() as session:
        first = repo.claim_run(session, run.id, now, lease)
    with store.db.transaction() as session:
        second = repo.claim_run(session, run.id, now + timedelta(seconds=1), lease)
    assert first is not None and second is None
    with store.db.transaction() as session:
        takeover = repo.claim_run(session, run.id, now + timedelta(seconds=31), lease)
    assert takeover is not None and takeover.token != first.token
    with store.db.transaction() as session:
        assert repo.finish_run(session, first, "succeeded", now) is False  # the stale worker
    with store.db.transaction() as session:
        assert repo.finish_run(session, takeover, "succeeded", now) is True
        assert repo.get_run(session, run.id).attempts == 2


def test_a_second_run_cannot_start_while_another_runs_for_the_organisation(store, org):
    now = utcnow()
    lease = timedelta(seconds=30)
    with store.db.transaction() as session:
        first, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", now)
    with store.db.transaction() as session:
        assert repo.claim_run(session, first.id, now, lease) is not None
    with store.db.transaction() as session:
        second, created = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", now)
    assert created
    with store.db.transaction() as session:
        assert repo.claim_run(session, second.id, now, lease) is None


def test_timestamps_come_back_in_utc(store, org):
    with store.db.transaction() as session:
        created = session.scalar(select(Organisation.created_at))
    assert created.utcoffset() == timedelta(0)


def test_the_quick_schema_check_agrees_with_alembic_before_and_after_migrating(database_url: str):
    """Given an empty database, when checked, migrated and checked again, then the file-based head
    is Alembic's head and the database is current only after migrating."""
    from alembic.script import ScriptDirectory

    from worker.store.db import alembic_config, schema_head, schema_revision

    db = Database(database_url)
    try:
        assert schema_head() == ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()
        assert schema_revision(db.engine) is None and not db.schema_is_current()
        db.migrate()
        assert schema_revision(db.engine) == schema_head() and db.schema_is_current()
    finally:
        db.dispose()


def test_the_migrations_create_exactly_the_schema_the_models_describe(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from worker.store.models import Base

    with store.db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_a_request_joining_a_queued_run_that_a_worker_claims_that_moment_gets_a_run_of_its_own(
    store, org, monkeypatch
):
    """Given an organisation's poll queued, and the nightly full sync asking for a run,
    When a worker claims the poll between the request finding it queued and joining it,
    Then the full sync does not join the claimed run (which started as an incremental poll,
    before the request): a new queued run carries it, with `full_pull` set; and a request that does
    join a still-queued run moves its `read_after` and records what it needs."""
    now = utcnow()
    with store.db.transaction() as session:
        poll, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "schedule:tick", now)
        poll_id = poll.id
    real_queued_run = repo.queued_run

    def found_then_claimed(session, org_id):
        found = real_queued_run(session, org_id)
        if found is not None and found.id == poll_id:
            with store.db.transaction() as worker:
                assert repo.claim_run(worker, poll_id, utcnow(), timedelta(seconds=30)) is not None
        return found

    monkeypatch.setattr(repo, "queued_run", found_then_claimed)
    with store.db.transaction() as session:
        full, created = repo.queue_run(
            session, repo.get_org(session, "clinic-a"), "schedule:full", now, repo.Needs(full_pull=True)
        )
        full_id = full.id
    assert created and full_id != poll_id
    monkeypatch.setattr(repo, "queued_run", real_queued_run)

    later = now + timedelta(seconds=5)
    with store.db.transaction() as session:
        joined, created = repo.queue_run(
            session, repo.get_org(session, "clinic-a"), "manual", later, repo.Needs(report=True)
        )
    assert joined.id == full_id and not created
    with store.db.transaction() as session:
        claimed, queued = session.get(Run, poll_id), session.get(Run, full_id)
        assert claimed.status == "running" and not claimed.full_pull
        assert queued.status == "queued" and queued.full_pull and queued.report_required
        assert queued.read_after == later
