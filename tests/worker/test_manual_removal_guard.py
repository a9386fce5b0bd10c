"""`--ptdirect manual`, adversarially: a stale plan must not reach a person's checklist.

With the API or file adapters a removal approved against an old picture waits for a sync after
the approval to confirm it (`proposals._confirmed_after_approval`). A person following the
checklist is the applier in manual mode, and deserves the same guard.
"""

from __future__ import annotations

import json

import pytest

from tests.clinic_files import add_departed_member, write_clinic
from tests.worker.test_stale_proposals import _set_active
from worker.actors import apply_proposal
from worker.inprocess import drain
from worker.services import proposals as service
from worker.services import ptdirect_state
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import request_sync, run_sync
from worker.store import repositories as repo


def _sync(runtime) -> dict:
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    assert run_sync(runtime, run_id).status == "succeeded"
    with runtime.db.transaction() as session:
        return repo.get_run(session, run_id).report


@pytest.fixture
def manual_clinic_with_dan(runtime, tmp_path):
    """Dan (104) shares patients in PT Direct and is inactive in the PMS; PT Direct is recorded by hand."""
    pms, snapshot = write_clinic(tmp_path / "clinic")
    add_departed_member(pms, snapshot, active=False)
    add_organisation(
        runtime, NewOrganisation(slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    ptdirect_state.record(runtime, "clinic-a", json.loads(snapshot.read_text()), "ana", "import", "pt.json")
    return pms


def test_a_removal_approved_after_the_practitioner_returned_is_not_a_checklist_step_before_a_sync(
    runtime, manual_clinic_with_dan
):
    """Given a manual-mode proposal to transfer Dan's patients and remove him (he looked departed)
    / When Dan comes back in the PMS, and the admin, not knowing, approves with the transfer
    confirmed and the apply job runs, before any sync / Then the checklist does not hand the
    admin 'remove Dan' as a step to do now: like the API path it must wait for a sync after the
    approval to confirm it (which here would close it)."""
    report = _sync(runtime)
    proposal_id = report["proposal"]["id"]
    _set_active(manual_clinic_with_dan, "104", True)
    service.approve(runtime, proposal_id, "admin", transferred=True)
    apply_proposal.send(proposal_id)
    drain()
    steps = service.checklist_steps(runtime, proposal_id).steps
    [removal] = [step for step in steps if "dan@clinic.example" in step.text and "Untick" in step.text]
    assert removal.status != "manual", "the checklist offers removing Dan, who is active again"


def test_a_removal_approved_by_hand_becomes_a_step_once_a_sync_after_the_approval_confirms_it(
    runtime, manual_clinic_with_dan
):
    """Given a manual-mode proposal to transfer Dan's patients and remove him, Dan still inactive /
    When the admin approves with the transfer confirmed and the apply job runs / Then the removal
    first waits while the apply asks for a sync, and once that sync still plans it, it is a step
    to do by hand."""
    report = _sync(runtime)
    proposal_id = report["proposal"]["id"]
    service.approve(runtime, proposal_id, "admin", transferred=True)
    apply_proposal.send(proposal_id)
    drain()  # the apply, the sync it asks for, and the apply that sync clears
    steps = service.checklist_steps(runtime, proposal_id).steps
    [removal] = [step for step in steps if "dan@clinic.example" in step.text and "Untick" in step.text]
    assert removal.status == "manual"
