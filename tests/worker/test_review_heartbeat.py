"""Review findings on the lease keeper (services/heartbeat.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.worker.test_heartbeat import LEASE, _claimed, _lease_of
from worker.clock import utcnow
from worker.services.heartbeat import Heartbeat
from worker.store import repositories as repo


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_given_one_runs_renewal_blocked_on_its_row_when_time_passes_then_another_runs_lease_is_still_renewed(
    store, org, tmp_path
):
    # Given two organisations' runs claimed in one process with a 1.5 s lease
    from tests.clinic_files import write_clinic
    from worker.services.orgs import NewOrganisation, add_organisation

    pms, ptdirect = write_clinic(tmp_path / "b")
    add_organisation(
        store,
        NewOrganisation(slug="clinic-b", pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)),
    )
    blocked = _claimed(store)
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, "clinic-b"), "manual", utcnow())
    with store.db.transaction() as session:
        other = repo.claim_run(session, run.id, utcnow(), LEASE)
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
