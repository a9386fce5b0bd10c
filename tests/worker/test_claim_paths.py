"""How `run_sync` claims a run: without a savepoint when nothing stands in the way (most runs),
and again with one when another run of the organisation holds or held the claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from tests.clinic_files import write_clinic
from tests.conftest import migrated_runtime
from worker.clock import utcnow
from worker.services import sync
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import OrganisationBusy, request_sync, run_sync
from worker.store import repositories as repo
from worker.store.db import Database
from worker.store.models import Run


@pytest.fixture
def any_runtime(database_url: str, secret_key: str, monkeypatch):
    """The process runtime on SQLite and on PostgreSQL."""
    yield from migrated_runtime(monkeypatch, database_url, secret_key)


def _clinic(runtime, tmp_path) -> None:
    pms, ptdirect = write_clinic(tmp_path / "clinic")
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic", pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )


def _running_run(runtime, lease: timedelta) -> str:
    """A run of the clinic claimed by a worker, whose lease ends after `lease` (negative: lapsed)."""
    run_id, _ = request_sync(runtime, "clinic", "manual")
    with runtime.db.transaction() as session:
        assert repo.claim_run(session, run_id, utcnow(), lease)
    return run_id


def _queued_second_run(runtime) -> str:
    """A run queued beside the running one (as a webhook's run can be: its own row)."""
    with runtime.db.transaction() as session:
        org_id = session.scalar(select(Run.org_id))
        run = Run(id="second-run", org_id=org_id, trigger="manual", status="queued", requested_at=utcnow())
        session.add(run)
    return "second-run"


def _statements(runtime) -> list[str]:
    seen: list[str] = []
    event.listen(runtime.db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def test_given_no_other_run_when_a_run_is_synced_then_it_is_claimed_without_a_savepoint(
    any_runtime, tmp_path
):
    # Given: a clinic with one queued run
    _clinic(any_runtime, tmp_path)
    run_id, _ = request_sync(any_runtime, "clinic", "manual")
    seen = _statements(any_runtime)
    # When
    outcome = run_sync(any_runtime, run_id)
    # Then: it succeeded, and no savepoint was taken for the claim
    assert outcome.status == "succeeded"
    assert not [statement for statement in seen if "SAVEPOINT" in statement.upper()]


def test_given_a_queued_run_when_it_is_claimed_then_the_run_and_its_organisation_are_read_once(
    any_runtime, tmp_path
):
    # Given: a clinic with one queued run
    _clinic(any_runtime, tmp_path)
    run_id, _ = request_sync(any_runtime, "clinic", "manual")
    seen = _statements(any_runtime)
    # When
    assert run_sync(any_runtime, run_id).status == "succeeded"
    # Then: one read of the whole run (with its organisation joined), after the claim; no lazy
    # read of the organisation or of the run again (the session holds its objects weakly)
    whole_run = [s for s in seen if s.lstrip().startswith("SELECT runs.id, runs.org_id, runs.")]
    claim = next(index for index, s in enumerate(seen) if s.lstrip().startswith("UPDATE runs SET status"))
    assert len(whole_run) == 1 and seen.index(whole_run[0]) == claim + 1
    assert "JOIN organisations" in whole_run[0]
    assert not [s for s in seen if s.lstrip().startswith("SELECT organisations.")]


def test_given_a_claimed_run_then_its_organisation_is_the_stored_row_detached_and_reads_without_sql(
    any_runtime, tmp_path
):
    # Given: a clinic with settings away from their defaults, and one queued run
    from sqlalchemy import inspect

    from worker.store.models import Organisation

    _clinic(any_runtime, tmp_path)
    with any_runtime.db.transaction() as session:
        session.execute(
            Organisation.__table__.update().values(
                timezone="Australia/Sydney", webhook_min_interval_seconds=7, schedule="*/5 * * * *"
            )
        )
    run_id, _ = request_sync(any_runtime, "clinic", "manual")
    # When: a worker claims it
    with any_runtime.db.transaction() as session:
        claim, run = repo.claim_and_read_run(session, run_id, utcnow(), timedelta(minutes=5))
        stored = session.get(Organisation, claim.org_id)
        expected = {column.key: getattr(stored, column.key) for column in Organisation.__table__.columns}
    seen = _statements(any_runtime)
    org = run.organisation
    # Then: every column as stored, read without a statement, on an object no session holds
    assert {key: getattr(org, key) for key in expected} == expected
    assert (org.timezone, org.webhook_min_interval_seconds) == ("Australia/Sydney", 7)
    assert seen == [] and inspect(org).detached
    assert (run.id, run.org_id, run.trigger, bool(run.full_pull), bool(run.report_required)) == (
        run_id,
        claim.org_id,
        "manual",
        False,
        True,
    )


def test_given_another_run_holding_the_claim_when_a_second_is_synced_then_it_waits_and_changes_nothing(
    any_runtime, tmp_path
):
    # Given: one run running under a live lease, and a second run of the clinic queued
    _clinic(any_runtime, tmp_path)
    first = _running_run(any_runtime, timedelta(minutes=5))
    second = _queued_second_run(any_runtime)
    # When / Then: the second is told to come back later (the first claim's transaction was lost
    # to the one-running-run index; the second attempt, in a savepoint, says so)
    with pytest.raises(OrganisationBusy):
        run_sync(any_runtime, second)
    with any_runtime.db.transaction() as session:
        assert session.get(Run, first).status == "running"
        assert session.get(Run, second).status == "queued"
        assert session.get(Run, second).attempts == 0


def test_given_another_run_whose_worker_vanished_when_a_second_is_synced_then_it_closes_that_one_and_runs(
    any_runtime, tmp_path
):
    # Given: a run whose lease lapsed (its worker died) and a second run queued
    _clinic(any_runtime, tmp_path)
    lapsed = _running_run(any_runtime, timedelta(seconds=-1))
    second = _queued_second_run(any_runtime)
    # When
    outcome = run_sync(any_runtime, second)
    # Then: the lapsed run is closed as covered by the second, which ran
    assert outcome.status == "succeeded"
    with any_runtime.db.transaction() as session:
        closed = session.get(Run, lapsed)
        assert closed.status == "failed" and f"run {second} covers it" in closed.error
        assert session.get(Run, second).attempts == 1


@pytest.fixture
def postgres_runtime(postgres_url: str, secret_key: str, monkeypatch):
    """The process runtime on PostgreSQL, whose claims another worker's can overlap."""
    yield from migrated_runtime(monkeypatch, postgres_url, secret_key)


def test_given_a_lapsed_run_claimed_again_after_it_was_seen_lapsed_when_a_second_run_closes_it_then_the_live_claim_is_kept(
    postgres_runtime, tmp_path, monkeypatch
):
    # Given: a run whose worker vanished (its lease lapsed) and a second run of the clinic queued;
    # the lapsed run's redelivered message reaches another worker, which claims it again just
    # after this worker saw it lapsed (and before it closes it)
    _clinic(postgres_runtime, tmp_path)
    lapsed = _running_run(postgres_runtime, timedelta(seconds=-1))
    second = _queued_second_run(postgres_runtime)
    other_worker = Database(postgres_runtime.db.url)
    retaken: list[repo.Claim | None] = []
    running_run = repo.running_run

    def seen_then_retaken(session, org_id, other_than):
        found = running_run(session, org_id, other_than)
        if found is not None and not retaken:
            with other_worker.transaction() as other:
                retaken.append(repo.claim_run(other, lapsed, utcnow(), timedelta(minutes=5)))
        return found

    monkeypatch.setattr(repo, "running_run", seen_then_retaken)
    try:
        # When: this worker syncs the second run
        with pytest.raises(OrganisationBusy):
            run_sync(postgres_runtime, second)
    finally:
        other_worker.dispose()
    # Then: the other worker's live claim stands (one running run, the one it holds); the second
    # run waits for it instead of running beside it
    assert retaken and retaken[0] is not None
    with postgres_runtime.db.transaction() as session:
        retaken_run = session.get(Run, lapsed)
        assert (retaken_run.status, retaken_run.lease_token) == ("running", retaken[0].token)
        assert session.get(Run, second).status == "queued"


def test_given_the_claim_retried_with_a_savepoint_when_reading_the_stored_state_fails_then_the_run_is_not_left_claimed(
    any_runtime, tmp_path, monkeypatch
):
    # Given: a second run whose first claim met the running run, which then finished before the
    # claim was made again (with a savepoint); reading what the run keeps then fails (the
    # database locked past the busy timeout, say)
    from sqlalchemy.exc import OperationalError

    from worker.services import sync

    _clinic(any_runtime, tmp_path)
    first = _running_run(any_runtime, timedelta(minutes=5))
    second = _queued_second_run(any_runtime)
    claim_and_read_run = repo.claim_and_read_run

    def first_finishes_meanwhile(session, run_id, now, lease, *, savepoint=True):
        if savepoint:
            with any_runtime.db.transaction() as other:
                repo.fail_unfinished_run(other, first, utcnow(), "finished meanwhile")
        return claim_and_read_run(session, run_id, now, lease, savepoint=savepoint)

    def unreadable(*args, **kwargs):
        raise OperationalError("SELECT ...", {}, Exception("database is locked"))

    monkeypatch.setattr(repo, "claim_and_read_run", first_finishes_meanwhile)
    monkeypatch.setattr(sync, "_read_stored", unreadable)
    # When
    with pytest.raises(OperationalError):
        run_sync(any_runtime, second)
    # Then: the claiming transaction was rolled back whole, the claim with it (as the first
    # attempt's is): the retried message finds the run queued, not held by nobody for a lease
    with any_runtime.db.transaction() as session:
        run = session.get(Run, second)
        assert (run.status, run.attempts, run.lease_token) == ("queued", 0, None)


def test_given_one_run_at_two_workers_beside_a_lapsed_run_when_both_claim_at_once_then_one_runs_and_the_other_waits(
    postgres_runtime, tmp_path
):
    # Given: a run whose message two workers got at once (a redelivery), beside a run whose
    # worker vanished; each worker has its own connections (two Database objects)
    import threading
    from dataclasses import replace

    _clinic(postgres_runtime, tmp_path)
    workers = [replace(postgres_runtime, db=Database(postgres_runtime.db.url)) for _ in range(2)]
    try:
        for round_number in range(20):
            lapsed = _running_run(postgres_runtime, timedelta(seconds=-1))
            with postgres_runtime.db.transaction() as session:
                queued = Run(
                    id=f"queued-{round_number}",
                    org_id=session.get(Run, lapsed).org_id,
                    trigger="manual",
                    status="queued",
                    requested_at=utcnow(),
                )
                session.add(queued)
            start = threading.Barrier(len(workers))
            outcomes: list[object] = [None] * len(workers)

            def work(index: int, run_id: str = queued.id, start=start, outcomes=outcomes) -> None:
                start.wait()
                try:
                    outcomes[index] = run_sync(workers[index], run_id).status
                except Exception as exc:  # what each worker met is the point
                    outcomes[index] = exc

            # When: both claim it at the same moment
            threads = [threading.Thread(target=work, args=(index,)) for index in range(len(workers))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            # Then: one ran it (closing the lapsed run), the other was told the organisation is
            # busy; neither was aborted by PostgreSQL's deadlock detector
            kinds = sorted(
                outcome if isinstance(outcome, str) else type(outcome).__name__ for outcome in outcomes
            )
            assert kinds == ["OrganisationBusy", "succeeded"], (round_number, outcomes)
    finally:
        for worker in workers:
            worker.db.dispose()


def test_given_a_run_another_worker_claims_after_it_was_read_when_synced_then_it_waits_for_that_lease(
    any_runtime, tmp_path, monkeypatch
):
    # Given: a queued run that another worker (a redelivered message) claims just after this
    # worker read it and just before this worker's own claim
    _clinic(any_runtime, tmp_path)
    run_id, _ = request_sync(any_runtime, "clinic", "manual")
    claim_and_read_run = repo.claim_and_read_run
    taken: list[repo.Claim | None] = []

    def taken_meanwhile(session, run, now, lease, *, savepoint=True):
        if not taken:
            with any_runtime.db.transaction() as other:
                other_claim = claim_and_read_run(other, run, utcnow(), timedelta(minutes=5))
                taken.append(other_claim and other_claim[0])
        return claim_and_read_run(session, run, now, lease, savepoint=savepoint)

    monkeypatch.setattr(repo, "claim_and_read_run", taken_meanwhile)
    # When / Then: this worker is told to come back when the other's lease ends, not in a second
    # (it read the run as it is now, running, rather than as it was before its claim)
    with pytest.raises(OrganisationBusy) as busy:
        run_sync(any_runtime, run_id)
    assert taken and taken[0] is not None
    assert busy.value.delay_seconds > 60


@pytest.mark.parametrize("joining", ["manual", "schedule:full"])
def test_given_a_request_that_joins_the_queued_run_while_a_worker_claims_it_when_synced_then_the_run_serves_that_request(
    any_runtime, tmp_path, monkeypatch, joining
):
    # Given: a clinic with a report, and a webhook's run queued (it may keep the report when
    # nothing changed); a person's sync (needs a new report) or the nightly full sync (needs a
    # full read) joins that run after the worker first looked at it and before its claim
    _clinic(any_runtime, tmp_path)
    assert run_sync(any_runtime, request_sync(any_runtime, "clinic", "manual")[0]).status == "succeeded"
    run_id, _ = request_sync(any_runtime, "clinic", "generic:appointment.updated")
    claim_and_read_run = repo.claim_and_read_run
    joined: list[str] = []

    def join_then_claim(session, *args, **kwargs):
        if not joined:
            with any_runtime.db.transaction() as other:
                org = repo.get_org(other, "clinic")
                needs = repo.Needs(full_pull=joining == "schedule:full", report=True)
                run, created = repo.queue_run(other, org, joining, utcnow(), needs)
                joined.append(run.id)
                assert not created
        return claim_and_read_run(session, *args, **kwargs)

    monkeypatch.setattr(repo, "claim_and_read_run", join_then_claim)
    read_pms = sync._read_pms
    full_reads: list[bool] = []

    def spy(*args, full: bool, **kwargs):
        full_reads.append(full)
        return read_pms(*args, full=full, **kwargs)

    monkeypatch.setattr(sync, "_read_pms", spy)
    # When
    outcome = run_sync(any_runtime, run_id)
    # Then: the run it joined served it: a new report (not the kept one), and a full read for the
    # full sync's request
    assert joined == [run_id] and outcome.status == "succeeded"
    with any_runtime.db.transaction() as session:
        run = session.get(Run, run_id)
        assert run.report is not None
    assert full_reads == [joining == "schedule:full"]
