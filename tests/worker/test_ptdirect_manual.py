"""`--ptdirect manual`: PT Direct's state kept in ptsync, changed only by what a person records."""

from __future__ import annotations

import json

import pytest

from connectors.errors import ConnectorError
from tests.clinic_files import write_clinic
from worker.actors import apply_proposal
from worker.errors import InvalidInput
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
def manual_clinic(runtime, tmp_path):
    """Cara treats Ana's patients but is not in sharing; PT Direct's state is recorded by hand."""
    pms, snapshot = write_clinic(tmp_path / "clinic")
    add_organisation(
        runtime, NewOrganisation(slug="clinic-a", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    ptdirect_state.record(runtime, "clinic-a", json.loads(snapshot.read_text()), "ana", "import", "pt.json")
    return snapshot


def test_a_manual_mode_proposal_waits_for_a_person_and_converges_after_mark_applied(runtime, manual_clinic):
    # Given a sync that proposes adding Cara to practitioner sharing
    report = _sync(runtime)
    proposal_id = report["proposal"]["id"]
    # When the proposal is approved and the apply job runs
    service.approve(runtime, proposal_id, "ana")
    apply_proposal.send(proposal_id)
    drain()
    # Then nothing pretends PT Direct changed: the steps wait for a person, the state is unchanged
    found = service.checklist_steps(runtime, proposal_id)
    assert found.status == "approved"
    assert [step.status for step in found.steps] == ["manual"]
    assert ptdirect_state.latest(runtime, "clinic-a").version == 1
    # When the admin does the step in PT Direct and marks it applied
    service.mark_applied_by_hand(runtime, proposal_id, "ana")
    # Then a new version records the change, and the next sync has nothing left to do
    latest = ptdirect_state.latest(runtime, "clinic-a")
    assert latest.version == 2 and latest.source == "checklist" and latest.recorded_by == "ana"
    assert latest.changes == [
        "practitioner sharing: cara@clinic.example added (share content on, share patients on)"
    ]
    after = _sync(runtime)
    assert after["findings"] == [] and after["proposal"] is None
    assert service.checklist_steps(runtime, proposal_id).status == "applied"


def test_a_step_the_admin_could_not_do_is_recorded_as_such_and_proposed_again(runtime, manual_clinic):
    # Given an approved proposal
    proposal_id = _sync(runtime)["proposal"]["id"]
    service.approve(runtime, proposal_id, "ana")
    # When the admin records its only step as not possible, with a reason
    service.mark_applied_by_hand(runtime, proposal_id, "ana", could_not={0: "no admin rights"})
    # Then the step says so, no new state is recorded, and the next sync proposes it again
    found = service.checklist_steps(runtime, proposal_id)
    assert found.steps[0].status == "could_not_do" and found.steps[0].note == "no admin rights"
    assert found.status == "applied_by_hand" and "step 1 (no admin rights)" in found.error
    assert ptdirect_state.latest(runtime, "clinic-a").version == 1
    again = _sync(runtime)
    assert again["proposal"]["operations"][0]["email"] == "cara@clinic.example"


def test_an_unknown_step_is_refused_and_a_recorded_proposal_cannot_be_recorded_again(runtime, manual_clinic):
    # Given a proposal with one step
    proposal_id = _sync(runtime)["proposal"]["id"]
    # When a step it does not have is recorded; Then it is refused and nothing changes
    with pytest.raises(InvalidInput, match="has no step 7"):
        service.record_steps(runtime, proposal_id, "ana", done={6})
    assert ptdirect_state.latest(runtime, "clinic-a").version == 1
    # When its step is recorded twice; Then the second time is refused
    service.record_steps(runtime, proposal_id, "ana", done={0})
    with pytest.raises(InvalidInput, match="is applied_by_hand; only open proposals can be marked"):
        service.record_steps(runtime, proposal_id, "ana", done={0})
    assert ptdirect_state.latest(runtime, "clinic-a").version == 2


def test_each_recorded_state_is_a_version_with_who_when_where_and_what_changed(runtime, manual_clinic):
    # Given the recorded state; When someone records the same state, then a changed one
    document = json.loads(manual_clinic.read_text())
    assert ptdirect_state.record(runtime, "clinic-a", document, "ben", "page", "page") is None
    document["practitioner_sharing"]["members"][1]["share_patients"] = False
    document["master_account"] = {"email": "ana@clinic.example", "recipients": ["ben@clinic.example"]}
    recorded = ptdirect_state.record(runtime, "clinic-a", document, "ben", "page", "page")
    # Then only the change is a new version, described in PT Direct's words
    assert recorded.version == 2 and recorded.recorded_by == "ben"
    assert recorded.changes == [
        "practitioner sharing: ben@clinic.example share patients off",
        "master account set to ana@clinic.example",
        "master account recipient ben@clinic.example added",
    ]
    assert [v.version for v in ptdirect_state.history(runtime, "clinic-a")] == [2, 1]


def test_a_sync_before_anything_is_recorded_fails_saying_where_to_record_it(runtime, tmp_path):
    pms, _ = write_clinic(tmp_path / "clinic")
    add_organisation(
        runtime, NewOrganisation(slug="clinic-b", pms="csv", pms_path=str(pms), ptdirect="manual")
    )
    run_id, _ = request_sync(runtime, "clinic-b", "manual")
    assert run_sync(runtime, run_id).status == "failed"
    with runtime.db.transaction() as session:
        error = repo.get_run(session, run_id).error
    assert "no PT Direct state is recorded for clinic-b yet" in error and "/orgs/clinic-b/ptdirect" in error


def test_a_misspelt_snapshot_key_is_refused_with_its_path(runtime, manual_clinic):
    # Given a document whose practitioner sharing key is misspelt, and one with an unknown nested key
    document = json.loads(manual_clinic.read_text())
    document["practitioner_shareing"] = document.pop("practitioner_sharing")
    nested = json.loads(manual_clinic.read_text())
    nested["users"][0]["emial"] = "x@clinic.example"
    # When they are recorded; Then each is refused, naming the key's path, and nothing is stored
    with pytest.raises(ConnectorError) as misspelt:
        ptdirect_state.record(runtime, "clinic-a", document, "ana", "import", "pt.json")
    assert str(misspelt.value) == (
        "ptdirect file: pt.json, field 'practitioner_shareing': unknown key 'practitioner_shareing' "
        "(not part of ptsync.ptdirect/1; did you mean 'practitioner_sharing'?)"
    )
    with pytest.raises(ConnectorError, match=r"field 'users\[0\]\.emial': unknown key 'emial'"):
        ptdirect_state.record(runtime, "clinic-a", nested, "ana", "import", "pt.json")
    assert ptdirect_state.latest(runtime, "clinic-a").version == 1
