"""Manual mode hands steps over with a compare-and-set on the proposal, so a sync that superseded
it meanwhile wins."""

from __future__ import annotations

import json

from tests.clinic_files import write_clinic
from worker.clock import utcnow
from worker.services import proposals as service
from worker.services import ptdirect_state
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.settle import _close
from worker.services.sync import request_sync, run_sync
from worker.store import repositories as repo


def test_a_step_is_not_handed_over_on_a_proposal_a_sync_superseded_meanwhile(runtime, tmp_path):
    """Given a manual-mode proposal the admin approved / When the apply loads it (READ
    COMMITTED, no row lock), a sync's settle then supersedes it and closes its rows ('no longer
    called for'), and the apply goes on / Then no step of the superseded proposal is 'manual'.
    Today `_wait_for_person` writes each row's status through the ORM without re-checking the
    proposal's status (no CAS, no FOR UPDATE), so the closed rows become steps to do by hand on
    a superseded proposal: the person is told to make changes the newest sync no longer wants."""
    pms, snapshot = write_clinic(tmp_path / "clinic")
    add_organisation(
        runtime, NewOrganisation(slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    ptdirect_state.record(runtime, "clinic-a", json.loads(snapshot.read_text()), "ana", "import", "pt.json")
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    assert run_sync(runtime, run_id).status == "succeeded"
    with runtime.db.transaction() as session:
        proposal_id = repo.get_run(session, run_id).report["proposal"]["id"]
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
