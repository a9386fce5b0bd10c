"""Manual mode hands steps over with a compare-and-set on the proposal, so a sync that superseded
it meanwhile wins."""

from __future__ import annotations

from tests.worker.test_manual_removal_guard import add_manual_clinic, synced_proposal
from worker.clock import utcnow
from worker.services import proposals as service
from worker.services.settle import _close
from worker.store import repositories as repo


def test_a_step_is_not_handed_over_on_a_proposal_a_sync_superseded_meanwhile(runtime, tmp_path):
    """Given a manual-mode proposal the admin approved / When the apply loads it (READ
    COMMITTED, no row lock), a sync's settle then supersedes it and closes its rows ('no longer
    called for'), and the apply goes on / Then no step of the superseded proposal is 'manual'.
    Before the fix, `_wait_for_person` writes each row's status through the ORM without re-checking the
    proposal's status (no CAS, no FOR UPDATE), so the closed rows become steps to do by hand on
    a superseded proposal: the person is told to make changes the newest sync no longer wants."""
    add_manual_clinic(runtime, tmp_path)
    proposal_id = synced_proposal(runtime)
    service.approve(runtime, proposal_id, "admin")

    with runtime.db.transaction() as applying:
        proposal = repo.get_proposal(applying, proposal_id)
        _ = [row.status for row in proposal.operations]  # loaded, as `apply` has them
        with runtime.db.transaction() as syncing:  # a sync settles meanwhile
            _close(
                syncing,
                repo.get_proposal(syncing, proposal_id),
                utcnow(),
                "nothing left to change: run X found none of it needed",
            )
        service._wait_for_person(applying, proposal, False)

    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        rows = [(row.op, row.status) for row in proposal.operations]
        status = proposal.status
    assert status == "superseded"
    assert all(state != "manual" for _, state in rows), rows
