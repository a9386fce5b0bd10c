"""The store against both SQLite and the real PostgreSQL: migrations, runs, leases, secrets."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import JSON, inspect, select, update
from sqlalchemy.exc import IntegrityError

from worker.clock import new_id, utcnow
from worker.crypto import SecretBox
from worker.services.orgs import NewOrganisation, add_organisation
from worker.settings import Settings
from worker.store import repositories as repo
from worker.store.db import Database
from worker.store.models import AuditEntry, Delivery, Organisation, Run
from worker.store.run_memory import run_memory


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


def test_credentials_are_stored_encrypted_and_decrypt_with_the_key(store):
    # Given an organisation added with a PMS key (a FHIR server's bearer token; nothing is tested)
    add_organisation(
        store,
        NewOrganisation(
            slug="clinic-f",
            pms="fhir",
            pms_url="https://fhir.example.test/r4",
            pms_key="sk-very-secret",
            ptdirect="manual",
        ),
    )
    # Then the database holds it encrypted, and the key decrypts it
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


class _OtherRequestFirst:
    """Request A queues and commits its run just before request B's insert, after B looked for
    a queued run and found none (`repo._insert_queued` and `repo.queued_run` as B sees them)."""

    def __init__(self, store, org, now, monkeypatch) -> None:
        self.store, self.org, self.now = store, org, now
        self.winner: tuple[Run, bool] | None = None
        self.b_lookups = 0
        self._insert, self._lookup, self._in_a = repo._insert_queued, repo.queued_run, False
        monkeypatch.setattr(repo, "_insert_queued", self.insert)
        monkeypatch.setattr(repo, "queued_run", self.lookup)

    def insert(self, session, values):
        if self.winner is None and not self._in_a:
            self._in_a = True
            with self.store.db.transaction() as other:
                self.winner = repo.queue_run(other, self.org, "webhook", self.now)
            self._in_a = False
        return self._insert(session, values)

    def lookup(self, session, org_id):
        if self._in_a:
            return self._lookup(session, org_id)
        self.b_lookups += 1
        self.before_b_looks(session)
        return None if self.b_lookups == 1 else self._lookup(session, org_id)

    def before_b_looks(self, session) -> None:
        """What happens just before B's lookups (nothing here)."""


def _deliver(store, org_id: int, delivery_id: str) -> int:
    from worker.services.deliveries import accept

    return accept(store, org_id, "generic", delivery_id, "appointment.updated", b"{}").delivery


def test_two_relays_racing_to_create_the_queued_run_one_creates_it_and_the_other_joins_it(
    store, org, monkeypatch
):
    from worker.services import deliveries

    # Given two webhooks for one organisation with no queued run, and relay B that found no
    # queued run and is about to insert one when relay A queues, sends and commits its own
    first, second = _deliver(store, org.id, "evt-a"), _deliver(store, org.id, "evt-b")
    sent: list[str] = []
    insert_queued, raced = repo._insert_queued, []

    def relay_a_commits_first(session, values):
        if not raced:
            raced.append(True)
            assert deliveries.relay(store, sent.append, only=first) == 2  # A covers both webhooks
        return insert_queued(session, values)

    monkeypatch.setattr(repo, "_insert_queued", relay_a_commits_first)
    # When relay B goes on
    deliveries.relay(store, sent.append, only=second)
    # Then A created the one run and B joined it (its insert did nothing; no error, no second
    # message, no second audit entry): one queued run, sent once, both deliveries relayed to it
    with store.db.transaction() as session:
        [run] = session.scalars(select(Run)).all()
        rows = session.execute(select(Delivery.status, Delivery.run_id).order_by(Delivery.id)).all()
        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "sync_requested")).all()
    assert raced and run.status == "queued" and sent == [run.id]
    assert [tuple(row) for row in rows] == [("relayed", run.id), ("relayed", run.id)]
    assert [entry.detail["delivery"] for entry in audits] == ["evt-a"]
    assert run.read_after is not None  # B's request joined it


def test_a_request_that_loses_the_race_joins_the_winners_run_with_what_it_needs(store, org, monkeypatch):
    # Given request B found no queued run, and request A queued and committed one before B's insert
    now = utcnow()
    race = _OtherRequestFirst(store, org, now, monkeypatch)
    # When B, which needs a full read and a report, queues its request
    with store.db.transaction() as session:
        run, created = repo.queue_run(
            session, repo.get_org(session, "clinic-a"), "manual", now, repo.Needs(full_pull=True, report=True)
        )
    # Then B joined A's run and the run now serves B's needs too
    winner, winner_created = race.winner
    assert (winner_created, created, run.id) == (True, False, winner.id)
    with store.db.transaction() as session:
        [stored] = session.scalars(select(Run)).all()
        assert (stored.id, stored.full_pull, stored.report_required) == (winner.id, True, True)
        assert stored.read_after == now


def test_when_the_race_winners_run_is_claimed_before_the_loser_joins_it_the_loser_queues_a_new_run(
    store, org, monkeypatch
):
    # Given request A's queued run committed before B's insert, and a worker claiming it just
    # after B's insert found it (so B can no longer join a run that started before its request)
    now = utcnow()
    race = _OtherRequestFirst(store, org, now, monkeypatch)

    def claimed_meanwhile(session) -> None:
        if race.b_lookups == 2:  # B's look after its insert did nothing: the worker took the run
            session.execute(update(Run).where(Run.id == race.winner[0].id).values(status=repo.RUNNING))

    race.before_b_looks = claimed_meanwhile
    # When B queues its request
    with store.db.transaction() as session:
        run, created = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", now)
    # Then B queued a new run of its own, next to the claimed one
    winner_id = race.winner[0].id
    assert created and run.id != winner_id
    with store.db.transaction() as session:
        statuses = dict(session.execute(select(Run.id, Run.status)).all())
    assert statuses == {winner_id: repo.RUNNING, run.id: repo.QUEUED}


def test_a_new_queued_run_comes_back_as_a_persistent_run_whose_changes_are_saved(store, org):
    # Given a run queued (inserted without the ORM) in a transaction
    with store.db.transaction() as session:
        run, created = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", utcnow())
        # When the caller changes it, as request_sync does with accept_drop
        assert created and run.accept_drop is False and run.enqueued_at is None
        run.accept_drop = True
    # Then the change is stored, and the run holds exactly what was inserted
    with store.db.transaction() as session:
        stored = session.get(Run, run.id)
        assert (stored.accept_drop, stored.status, stored.attempts, stored.report) == (
            True,
            "queued",
            0,
            None,
        )


@pytest.mark.postgres
def test_on_postgresql_a_racing_insert_waits_for_the_winners_transaction_then_joins_its_run(
    postgres_url, secret_key, tmp_path
):
    import threading

    from tests.clinic_files import write_clinic
    from worker.runtime import Runtime

    # Given request A has inserted a queued run and not committed yet
    database = Database(postgres_url)
    database.migrate()
    store = Runtime(
        Settings(database_url=postgres_url, secret_key=secret_key), database, SecretBox([secret_key])
    )
    pms, ptdirect = write_clinic(tmp_path)
    add_organisation(
        store,
        NewOrganisation(
            slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    outcome: dict[str, object] = {}
    try:
        with store.db.transaction() as first:
            winner, created = repo.queue_run(first, repo.get_org(first, "clinic-a"), "webhook", utcnow())
            assert created

            def request_b() -> None:
                with store.db.transaction() as second:
                    run, joined_created = repo.queue_run(
                        second, repo.get_org(second, "clinic-a"), "manual", utcnow()
                    )
                    outcome["b"] = (run.id, joined_created)

            # When request B queues meanwhile
            racer = threading.Thread(target=request_b)
            racer.start()
            racer.join(timeout=1.0)
            # Then B waits on the unique index while A's transaction is open ...
            assert racer.is_alive() and "b" not in outcome
        racer.join(timeout=10)
        # ... and once A commits, B's insert does nothing and B joins A's run
        assert outcome["b"] == (winner.id, False)
        with store.db.transaction() as session:
            assert session.scalars(select(Run.id)).all() == [winner.id]
    finally:
        database.dispose()


def _finished_run(store, now, *, complete: bool, roster: list[str] | None) -> str:
    """A run claimed and closed as succeeded through `save_run_outcome` (complete or not)."""
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", now)
    with store.db.transaction() as session:
        claim = repo.claim_run(session, run.id, now, timedelta(minutes=5))
        outcome = repo.RunOutcome(
            finished_at=now,
            report={"findings": []},
            counts={},
            complete=complete,
            roster=roster,
            plan=None if not complete else [],
            policy={},
            cursors=None,
            pms_state=None,
        )
        assert repo.save_run_outcome(session, claim, outcome, store.secrets)
    return run.id


def _baseline(session, org_id: int):
    """The baseline the next run of the organisation reads (`run_memory`, as `sync` reads it)."""
    memory = run_memory(session.connection(), org_id, "next-run", with_report=False)
    return repo.baseline_from(memory.roster, accept_drop=False)


def test_an_incomplete_run_after_a_complete_one_leaves_the_complete_ones_roster_as_the_baseline(store, org):
    # Given: a complete run that saw Ana and Ben, then an incomplete one (no roster: it is not
    # trusted to say who works at the clinic)
    now = utcnow()
    _finished_run(store, now - timedelta(minutes=2), complete=True, roster=["ana@x", "ben@x"])
    incomplete = _finished_run(store, now - timedelta(minutes=1), complete=False, roster=None)
    # When: the next run asks for its baseline
    with store.db.transaction() as session:
        baseline = _baseline(session, org.id)
        stored = session.scalar(select(Run.roster.is_(None)).where(Run.id == incomplete))
    # Then: the complete run's roster, and the incomplete run stored no roster at all (SQL NULL,
    # not a JSON null that `roster IS NOT NULL` would count as a roster)
    assert baseline is not None and baseline.active_practitioners == frozenset({"ana@x", "ben@x"})
    assert stored is True


def test_an_incomplete_run_after_a_complete_one_leaves_the_complete_ones_plan_as_the_current_plan(store, org):
    # Given: a complete run that planned nothing, then an incomplete one (no plan to trust)
    now = utcnow()
    complete = _finished_run(store, now - timedelta(minutes=2), complete=True, roster=["ana@x"])
    _finished_run(store, now - timedelta(minutes=1), complete=False, roster=None)
    # When: the current plan is looked up
    with store.db.transaction() as session:
        latest = repo.latest_complete_run(session, org.id)
    # Then: it is the complete run's
    assert latest is not None and latest.id == complete


def test_given_runs_stored_before_none_became_sql_null_when_the_baseline_is_read_then_the_json_null_is_no_roster(
    store, org
):
    # Given: a complete run, then an incomplete one written by an earlier release (a JSON null
    # in `roster` and `plan`, which `IS NOT NULL` counts as a value)
    now = utcnow()
    _finished_run(store, now - timedelta(minutes=2), complete=True, roster=["ana@x", "ben@x"])
    incomplete = _finished_run(store, now - timedelta(minutes=1), complete=False, roster=None)
    with store.db.engine.begin() as connection:
        connection.execute(
            update(Run.__table__)
            .where(Run.__table__.c.id == incomplete)
            .values(roster=JSON.NULL, plan=JSON.NULL)
        )
        stored = connection.execute(
            select(Run.__table__.c.roster.is_not(None)).where(Run.__table__.c.id == incomplete)
        ).scalar_one()
    assert stored  # the JSON null is there, and IS NOT NULL counts it
    # When
    with store.db.transaction() as session:
        baseline = _baseline(session, org.id)
        latest = repo.latest_complete_run(session, org.id)
    # Then: the complete run's roster and plan count, not the JSON nulls
    assert baseline is not None and baseline.active_practitioners == frozenset({"ana@x", "ben@x"})
    assert latest is not None and latest.id != incomplete


@contextlib.contextmanager
def _at_revision_0014(database_url: str, secret_key: str):
    """A database migrated to revision 0014 (before 0015 scrubbed what it shows) and one
    organisation in it: (runtime, organisation)."""
    from alembic import command

    from worker.runtime import Runtime
    from worker.store.db import alembic_config

    db = Database(database_url)
    try:
        command.upgrade(alembic_config(db.engine), "0014")
        runtime = Runtime(
            Settings(database_url=database_url, secret_key=secret_key), db, SecretBox([secret_key])
        )
        org = add_organisation(
            runtime, NewOrganisation(slug="clinic-h", pms="csv", pms_path=".", ptdirect="manual")
        )
        yield runtime, org
    finally:
        db.dispose()


def test_migrating_scrubs_secrets_older_releases_showed_in_the_audit_trail_and_channel_lists(
    database_url: str, secret_key: str
):
    """Given a database at revision 0014 whose audit trail holds a Halaxy client secret in clear
    (what `org update --pms-client-secret` wrote before 0015), and a catch-hook webhook channel
    listed and audited with the secret in its path / When it is migrated / Then the client secret
    reads "(secret changed)", the channel shows its host and first path segment only, in its
    list and in its audit entry, and everything else is as it was."""
    from worker.store.models import NotificationChannel

    hook = "https://hooks.zapier.com/hooks/catch/123456/PathSecret/"
    with _at_revision_0014(database_url, secret_key) as (runtime, org):
        db = runtime.db
        now = utcnow()
        with db.transaction() as session:
            repo.audit(
                session,
                org.id,
                "cli",
                "organisation_updated",
                now,
                changed={"pms_client_secret": "leaked-secret", "policy": "observe"},
            )
            repo.audit(
                session,
                org.id,
                "cli",
                "notification_channel_added",
                now,
                channel=1,
                kind="webhook",
                target=hook,
                events=["findings"],
            )
            session.add(
                NotificationChannel(
                    org_id=org.id,
                    kind="webhook",
                    target_encrypted=runtime.secrets.encrypt(hook.encode()),
                    display=hook,
                    events=["findings"],
                    min_severity="info",
                    digest="off",
                    created_at=now,
                    created_by="cli",
                    consecutive_failures=0,
                )
            )
        db.migrate()
        with db.transaction() as session:
            details = [
                entry.detail
                for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                if entry.action != "organisation_added"
            ]
            channel = session.scalar(select(NotificationChannel))
            assert channel.display == "https://hooks.zapier.com/hooks/…"
            assert runtime.secrets.decrypt(channel.target_encrypted).decode() == hook
        assert details == [
            {"changed": {"pms_client_secret": "(secret changed)", "policy": "observe"}},
            {
                "channel": 1,
                "kind": "webhook",
                "target": "https://hooks.zapier.com/hooks/…",
                "events": ["findings"],
            },
        ]


def test_migrating_drops_a_password_audited_inside_a_halaxy_token_url(database_url: str, secret_key: str):
    """Given a database at revision 0014 whose audit trail holds an `org update` of Halaxy's
    `--pms-token-url` given as `https://CLIENT:SECRET@host/token` (accepted then: only its scheme
    was checked) / When it is migrated / Then the URL is kept without its credentials (found by
    a review of 0015)."""
    with _at_revision_0014(database_url, secret_key) as (runtime, org):
        with runtime.db.transaction() as session:
            repo.audit(
                session,
                org.id,
                "cli",
                "organisation_updated",
                utcnow(),
                changed={"pms_token_url": "https://cid:TokenUrlSecret@auth.example/token"},
            )
        runtime.db.migrate()
        with runtime.db.transaction() as session:
            [detail] = [
                entry.detail
                for entry in session.scalars(select(AuditEntry))
                if entry.action == "organisation_updated"
            ]
    assert detail == {"changed": {"pms_token_url": "https://auth.example/token"}}
