"""A finishing run names the run queued behind it in its own closing transaction (one transaction
fewer per run, services/sync.py `_after_run_in`); nothing falls between that read and the commit,
on a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg

from tests.pg_rows import insert_organisation
from worker.clock import utcnow
from worker.services import sync
from worker.store import repositories as repo
from worker.store.db import Database


def _org_with_two_runs(url: str) -> None:
    Database(url).migrate()
    with psycopg.connect(url, autocommit=True) as connection:
        insert_organisation(connection, 1, "clinic", webhook_min_interval=0)
        _queue(connection, "working")


def _queue(connection: psycopg.Connection, run_id: str) -> None:
    connection.execute(
        "INSERT INTO runs (id, org_id, trigger, status, requested_at, attempts, accept_drop, full_pull,"
        " report_required) VALUES (%s, 1, 'generic:x', 'queued', now(), 0, false, false, false)",
        (run_id,),
    )


def test_given_a_run_closing_when_a_worker_claims_the_next_one_before_the_commit_then_it_waits_and_takes_it(
    postgres_url: str,
) -> None:
    # Given: the first run claimed and now closing: its UPDATE done and the next run's read made,
    # the commit not yet sent (the next run was requested after that read, so it was not named)
    _org_with_two_runs(postgres_url)
    closing, claiming = Database(postgres_url), Database(postgres_url)
    lease = timedelta(seconds=60)
    try:
        with closing.transaction() as session:
            claim = repo.claim_run(session, "working", utcnow(), lease)
        assert claim is not None
        taken: list[repo.Claim | None] = []
        with closing.transaction() as session:
            assert repo.finish_run(session, claim, repo.SUCCEEDED, utcnow())
            assert sync._after_run_in(session, "working") == sync.AfterRun("generic:x", None)
            with psycopg.connect(postgres_url, autocommit=True) as webhook:
                _queue(webhook, "next")  # requested (and committed) just after that read

            def claim_next() -> None:
                with claiming.transaction() as other:
                    taken.append(repo.claim_run(other, "next", utcnow(), lease))

            # When: a worker takes the next run's message before the closing commit
            worker = threading.Thread(target=claim_next)
            worker.start()
            worker.join(timeout=0.5)
            assert worker.is_alive(), "the claim should wait on the closing run's row"
        worker.join(timeout=10)
        # Then: it waited for the commit and took the run (not "organisation busy", which would
        # have postponed the run for up to a lease)
        assert taken and taken[0] is not None
    finally:
        closing.dispose()
        claiming.dispose()
