"""`--ptdirect manual`, adversarially: a stale plan must not reach a person's checklist.

With the API or file adapters a removal approved against an old picture waits for a sync after
the approval to confirm it (`proposals._confirmed_after`). A person following the
checklist is the applier in manual mode, and deserves the same guard.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clinic_files import add_departed_member, write_clinic
from tests.worker.test_ptdirect_manual import _sync
from tests.worker.test_stale_proposals import _set_active
from worker.actors import apply_proposal
from worker.inprocess import drain
from worker.services import proposals as service
from worker.services import ptdirect_state
from worker.services.orgs import NewOrganisation, add_organisation


def add_manual_clinic(runtime, tmp_path, *, departed: bool = False) -> tuple[Path, dict]:
    """clinic-a on a CSV folder, its PT Direct state recorded by hand; with `departed`, Dan (104)
    shares patients in PT Direct and is inactive in the PMS. Returns the folder and the state."""
    pms, snapshot = write_clinic(tmp_path / "clinic")
    if departed:
        add_departed_member(pms, snapshot, active=False)
    add_organisation(
        runtime, NewOrganisation(slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    state = json.loads(snapshot.read_text())
    ptdirect_state.record(runtime, "clinic-a", state, "ana", "import", "pt.json")
    return pms, state


def synced_proposal(runtime) -> str:
    """The id of the proposal a sync of clinic-a makes."""
    return _sync(runtime)["proposal"]["id"]


@pytest.fixture
def manual_clinic_with_dan(runtime, tmp_path):
    """Dan (104) shares patients in PT Direct and is inactive in the PMS; PT Direct is recorded by hand."""
    pms, _ = add_manual_clinic(runtime, tmp_path, departed=True)
    return pms


def test_a_removal_approved_after_the_practitioner_returned_is_not_a_checklist_step_before_a_sync(
    runtime, manual_clinic_with_dan
):
    """Given a manual-mode proposal to transfer Dan's patients and remove him (he looked departed)
    / When Dan comes back in the PMS, and the admin, not knowing, approves with the transfer
    confirmed and the apply job runs, before any sync / Then the checklist does not hand the
    admin 'remove Dan' as a step to do now: like the API path it must wait for a sync after the
    approval to confirm it (which here would close it)."""
    proposal_id = synced_proposal(runtime)
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
    proposal_id = synced_proposal(runtime)
    service.approve(runtime, proposal_id, "admin", transferred=True)
    apply_proposal.send(proposal_id)
    drain()  # the apply, the sync it asks for, and the apply that sync clears
    steps = service.checklist_steps(runtime, proposal_id).steps
    [removal] = [step for step in steps if "dan@clinic.example" in step.text and "Untick" in step.text]
    assert removal.status == "manual"
