"""Lease heartbeats (services/heartbeat.py): one thread per process renews every run's lease,
stops renewing a stopped run's, is not held up by one run whose renewal waits, and a forked
worker process renews with a thread of its own."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.clinic_files import write_clinic
from worker.clock import utcnow
from worker.crypto import SecretBox
from worker.runtime import Runtime
from worker.services.heartbeat import Heartbeat, RunTakenOver
from worker.services.orgs import NewOrganisation, add_organisation
from worker.settings import Settings
from worker.store import repositories as repo
from worker.store.db import Database
from worker.store.models import Run

LEASE = timedelta(seconds=1.5)  # renewed every 0.5 s


def _claimed(store) -> repo.Claim:
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", utcnow())
    with store.db.transaction() as session:
        return repo.claim_run(session, run.id, utcnow(), LEASE)


def _lease_of(store, claim: repo.Claim):
    with store.db.transaction() as session:
        return session.scalar(select(Run.lease_expires_at).where(Run.id == claim.run_id))


def _two_claimed(store, tmp_path) -> tuple[repo.Claim, repo.Claim]:
    """Runs of two organisations (clinic-a's and a new clinic-b's), claimed with LEASE."""
    pms, ptdirect = write_clinic(tmp_path / "b")
    add_organisation(
        store,
        NewOrganisation(
            slug="clinic-b", pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    first = _claimed(store)
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, "clinic-b"), "manual", utcnow())
    with store.db.transaction() as session:
        return first, repo.claim_run(session, run.id, utcnow(), LEASE)


def _keeper_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "lease-keeper")


def test_given_two_runs_in_one_process_when_they_work_then_one_thread_renews_both_leases(
    store, org, tmp_path
):
    # Given two organisations' runs claimed with a 1.5 s lease
    first, second = _two_claimed(store, tmp_path)
    beats = [Heartbeat(store, claim, LEASE) for claim in (first, second)]
    # When both work for longer than their lease
    for heartbeat in beats:
        heartbeat.start()
    try:
        time.sleep(LEASE.total_seconds() + 0.5)
        # Then both leases are still ahead of now, renewed by one keeper thread
        now = utcnow()
        assert all(_lease_of(store, claim) > now for claim in (first, second))
        assert _keeper_threads() == 1
    finally:
        for heartbeat in beats:
            heartbeat.stop()


def test_given_a_stopped_heartbeat_when_time_passes_then_its_lease_is_renewed_no_more(store, org):
    # Given a run whose heartbeat beat for a while, then stopped
    claim = _claimed(store)
    heartbeat = Heartbeat(store, claim, LEASE)
    heartbeat.start()
    time.sleep(1.2)
    heartbeat.stop()
    stopped_at = _lease_of(store, claim)
    # When more than a renewal interval passes
    time.sleep(1.2)
    # Then the lease is where the last renewal left it: it lapses, as a dead worker's would
    assert _lease_of(store, claim) == stopped_at


CHILD_LEASE = timedelta(seconds=2.1)  # renewed every 0.7 s; the child works for 3


def _beat_in_a_forked_child(database_url: str, secret_key: str, claim: repo.Claim, answers) -> None:
    db = Database(database_url)  # the child's own connections
    runtime = Runtime(Settings(database_url=database_url, secret_key=secret_key), db, SecretBox([secret_key]))
    heartbeat = Heartbeat(runtime, claim, CHILD_LEASE)
    heartbeat.start()
    time.sleep(3)
    heartbeat.stop()
    answers.put(_keeper_threads())
    db.dispose()


def test_given_a_forked_worker_process_when_its_run_works_then_its_own_thread_renews_the_lease(
    store, org, database_url, secret_key
):
    # Given a parent process whose keeper thread is running (a heartbeat started and stopped)
    parent_beat = Heartbeat(store, _claimed(store), LEASE)
    parent_beat.start()
    parent_beat.stop()
    with store.db.transaction() as session:
        session.execute(Run.__table__.update().values(status="succeeded", lease_token=None))
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, "clinic-a"), "manual", utcnow())
    with store.db.transaction() as session:
        claim = repo.claim_run(session, run.id, utcnow(), CHILD_LEASE)
    store.db.dispose()  # no pooled connection crosses the fork
    # When a forked child works on the run for longer than its lease
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_beat_in_a_forked_child, args=(database_url, secret_key, claim, answers))
    child.start()
    child.join(timeout=30)
    # Then the child renewed the lease (unrenewed, it would have lapsed 0.9 s ago) with a
    # keeper thread of its own
    assert child.exitcode == 0
    assert answers.get(timeout=5) == 1
    assert _lease_of(store, claim) > utcnow()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_given_one_runs_renewal_blocked_on_its_row_when_time_passes_then_another_runs_lease_is_still_renewed(
    store, org, tmp_path
):
    # Given two organisations' runs claimed in one process with a 1.5 s lease
    blocked, other = _two_claimed(store, tmp_path)
    beats = [Heartbeat(store, claim, LEASE) for claim in (blocked, other)]
    # And another transaction holding the first run's row (a long final commit, a stalled
    # connection) for twice the lease
    with store.db.engine.connect() as holder:
        holder.execute(text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": blocked.run_id})
        for heartbeat in beats:
            heartbeat.start()
        try:
            time.sleep(LEASE.total_seconds() * 2)
            # Then the second run, whose renewal nothing blocks, still holds its lease (a thread
            # per run renewed it; one keeper thread waits behind the first run's UPDATE)
            other_lease = _lease_of(store, other)
            now = utcnow()
            holder.rollback()
        finally:
            for heartbeat in beats:
                heartbeat.stop()
    assert other_lease > now


def test_given_a_run_another_worker_took_over_and_finished_when_the_first_workers_heartbeat_beats_then_that_worker_is_told_its_lease_is_lost(
    store, org
):
    # Given a run claimed by a first worker, which stalled past its lease: a second worker took
    # the run over (a new lease token) and finished it as succeeded
    claim = _claimed(store)
    heartbeat = Heartbeat(store, claim, LEASE)
    later = utcnow() + LEASE * 2
    with store.db.transaction() as session:
        takeover = repo.claim_run(session, claim.run_id, later, LEASE)
    assert takeover is not None and takeover.token != claim.token
    with store.db.transaction() as session:
        assert repo.finish_run(session, takeover, repo.SUCCEEDED, later)
    # When the first worker's heartbeat beats (its renewal finds its lease gone)
    assert heartbeat.beat() is False
    # Then the first worker is told to stop at its next check: the run's SUCCEEDED status is
    # the other worker's final commit, not this worker's own (its token never finished anything)
    with pytest.raises(RunTakenOver):
        heartbeat.check()


def test_given_a_worker_about_to_commit_its_run_when_its_own_final_commit_ends_the_lease_then_its_heartbeat_stops_quietly(
    store, org
):
    # Given a run whose worker said its final statement comes next
    claim = _claimed(store)
    heartbeat = Heartbeat(store, claim, LEASE)
    heartbeat.finishing()
    # When that final commit ends the lease (the run succeeded under this worker's own token)
    with store.db.transaction() as session:
        assert repo.finish_run(session, claim, repo.SUCCEEDED, utcnow())
    # Then the heartbeat stops beating without calling the lease lost: nothing to stop for
    assert heartbeat.beat() is False
    heartbeat.check()


def test_given_a_worker_still_working_when_its_lease_was_taken_over_then_its_heartbeat_reports_it_lost(
    store, org
):
    # Given a run whose lease another worker took over while the first still works on it
    claim = _claimed(store)
    heartbeat = Heartbeat(store, claim, LEASE)
    with store.db.transaction() as session:
        assert repo.claim_run(session, claim.run_id, utcnow() + LEASE * 2, LEASE) is not None
    # When the first worker's heartbeat beats
    assert heartbeat.beat() is False
    # Then its next check stops it
    with pytest.raises(RunTakenOver):
        heartbeat.check()
