"""One test per rule: each finding kind, the window and status rules, identity matching."""

from __future__ import annotations

from sharing import (
    AccessGroup,
    AccessSource,
    AccessStatus,
    MasterAccount,
    PatientAccess,
    PhysitrackClient,
    PmsLink,
    PmsPractitioner,
    PtUser,
    Severity,
    SharingMember,
    UserStatus,
)
from tests.clinic import Clinic, kinds, of_kind, ops


def test_practitioners_who_treat_the_same_patients_but_do_not_share_are_a_duplicate_risk():
    # Given Ana shares patients and Cara, who treats three of Ana's patients, is not a member
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.co_treat("101", "103", patients=3, days_ago=5)
    # When the run reconciles
    result = clinic.reconcile()
    # Then one duplicate risk, about Cara (who must change), names Ana with the evidence
    [risk] = of_kind(result, "duplicate_patient_risk")
    assert [person.pms_id for person in risk.practitioners] == ["103", "101"]
    assert risk.message.startswith(
        "Cara Lim is not in practitioner sharing, but shares patients in the PMS with a colleague "
        "within the last 540 days: Ana Silva (3 patients, most recently 2026-11-20)."
    )
    assert risk.evidence["shared_patients"] == 3
    assert risk.evidence["pairs"] == [
        {
            "emails": ["cara@clinic.example", "ana@clinic.example"],
            "shared_patients": 3,
            "last_shared_on": "2026-11-20",
        }
    ]


def test_member_who_does_not_share_patients_is_a_risk_fixed_by_enabling_patient_sharing():
    # Given Ben is a member but shares content only
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    ben = clinic.practitioner("102", "Ben Ode", member=True, share_patients=False)
    clinic.co_treat("101", "102")
    # When the run reconciles
    result = clinic.reconcile()
    # Then the risk says Ben does not share patients and the plan turns it on
    [risk] = of_kind(result, "duplicate_patient_risk")
    assert "Ben Ode does not share patients in practitioner sharing" in risk.message
    assert ("enable_patient_sharing", ben) in ops(result)


def test_practitioners_who_already_share_patients_are_not_a_risk():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.co_treat("101", "102", patients=20)
    result = clinic.reconcile()
    assert result.findings == ()
    assert result.operations == ()


def test_shared_patients_older_than_the_lookback_window_do_not_count():
    # Given the only shared patients were seen 600 days ago (window: 540)
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    clinic.co_treat("101", "102", days_ago=600)
    # When the run reconciles
    result = clinic.reconcile()
    # Then there is no risk; a shorter window elsewhere is honoured the same way
    assert of_kind(result, "duplicate_patient_risk") == []
    assert result.patient_count == 0


def test_cancelled_archived_and_deleted_appointments_do_not_count():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    for status in (AccessStatus.CANCELLED, AccessStatus.ARCHIVED, AccessStatus.DELETED):
        clinic.co_treat("101", "102", status=status)
    result = clinic.reconcile()
    assert of_kind(result, "duplicate_patient_risk") == []


def test_one_cancelled_appointment_does_not_hide_an_attended_one_for_the_same_patient():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    [patient] = clinic.co_treat("101", "102", patients=1, status=AccessStatus.CANCELLED)
    seen = clinic.rows[-1].last_seen
    clinic.rows.append(PatientAccess("102", patient, AccessSource.CARE_TEAM, seen))
    clinic.rows.append(PatientAccess("101", patient, AccessSource.ASSIGNMENT, seen))
    result = clinic.reconcile()
    [risk] = of_kind(result, "duplicate_patient_risk")
    assert risk.evidence["shared_patients"] == 1


def test_members_of_a_shared_access_group_share_patients_without_common_appointments():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    clinic.groups.append(AccessGroup("g1", "Team North", ("101", "102")))
    result = clinic.reconcile()
    [risk] = of_kind(result, "duplicate_patient_risk")
    assert risk.evidence["pairs"][0]["access_groups"] == ["Team North"]
    assert "Ana Silva (through the PMS access group 'Team North')" in risk.message


def test_duplicate_risk_is_high_when_many_recent_shared_patients_and_low_when_few_and_old():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.practitioner("104", "Dan Roe", member=False)
    clinic.co_treat("101", "102", patients=6, days_ago=3)
    clinic.co_treat("101", "103", patients=1, days_ago=300)
    clinic.co_treat("101", "104", patients=1, days_ago=3)
    result = clinic.reconcile()
    severity = {f.practitioners[0].pms_id: f.severity for f in of_kind(result, "duplicate_patient_risk")}
    assert severity == {"102": Severity.HIGH, "103": Severity.LOW, "104": Severity.MEDIUM}


def test_new_practitioner_is_proposed_for_sharing():
    # Given Eve joined, accepted her invitation and already co-treats with Ana
    clinic = Clinic()
    clinic.content_account()
    clinic.practitioner("101", "Ana Silva", member=True)
    eve = clinic.practitioner("105", "Eve Park", member=False, recipient=False)
    clinic.co_treat("101", "105")
    # When the run reconciles
    result = clinic.reconcile()
    # Then she is missing from sharing and from the master recipients, and both are proposed
    missing = {f.evidence["missing_from"] for f in of_kind(result, "missing_new_user")}
    assert missing == {"practitioner_sharing", "master_recipients"}
    assert ("add_sharing_member", eve) in ops(result)
    assert ("add_master_recipient", eve) in ops(result)
    add = next(op for op in result.operations if op.op.value == "add_sharing_member")
    assert add.share_patients and add.share_content


def test_unconfirmed_user_is_a_pending_invitation_and_is_never_touched():
    clinic = Clinic()
    clinic.content_account()
    clinic.practitioner("101", "Ana Silva", member=True)
    fay = clinic.practitioner("106", "Fay Wu", confirmed=False, recipient=False)
    clinic.co_treat("101", "106")
    result = clinic.reconcile()
    [pending] = of_kind(result, "pending_invitation")
    assert pending.severity is Severity.LOW
    assert "has not accepted" in pending.message
    assert all(op.email != fay for op in result.operations)
    assert of_kind(result, "duplicate_patient_risk") == []


def test_treating_practitioner_without_a_physitrack_user_has_no_licence():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("107", "Gus Hale", user=False)
    clinic.co_treat("101", "107", patients=4)
    result = clinic.reconcile()
    [finding] = of_kind(result, "no_physitrack_licence")
    assert finding.severity is Severity.INFO
    assert finding.evidence["patients_in_window"] == 4
    assert finding.message == (
        "Gus Hale has 4 patients in the PMS within the last 540 days but no PT Direct user matches them."
    )


def test_practitioner_who_treats_nobody_in_the_window_needs_no_licence():
    clinic = Clinic()
    clinic.practitioner("107", "Gus Hale", user=False)
    assert of_kind(clinic.reconcile(), "no_physitrack_licence") == []


def test_a_matching_name_is_only_a_suggestion_never_a_match():
    # Given PT Direct has "gus.h@other.example" named Gus Hale, with no link and another email
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("107", "Gus Hale", user=False)
    clinic.users.append(PtUser("gus.h@other.example", "GUS HALE"))
    clinic.co_treat("101", "107")
    # When the run reconciles
    result = clinic.reconcile()
    # Then Gus is still unlicensed (with a suggestion), and nothing is planned for that user
    [finding] = of_kind(result, "no_physitrack_licence")
    assert finding.evidence["suggested_users"] == ["gus.h@other.example"]
    assert all(op.email != "gus.h@other.example" for op in result.operations)
    assert of_kind(result, "duplicate_patient_risk") == []


def test_inactive_member_who_shares_patients_is_departed_and_removal_waits_for_transfer():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    dan = clinic.practitioner("104", "Dan Roe", member=True, active=False)
    result = clinic.reconcile()
    [departed] = of_kind(result, "departed_practitioner")
    assert departed.severity is Severity.HIGH
    assert departed.evidence == {"reason": "inactive_in_pms"}
    assert "transfer their patients before removing them" in departed.message
    planned = [(op.op.value, op.email, op.requires_approval) for op in result.operations]
    assert planned == [("transfer_patients", dan, True), ("remove_sharing_member", dan, True)]


def test_user_linked_to_a_practitioner_gone_from_the_pms_is_departed():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.users.append(PtUser("zed@clinic.example", "Zed Old", pms_link=PmsLink("cliniko", "999")))
    clinic.members.append(SharingMember("zed@clinic.example", True, True))
    result = clinic.reconcile()
    [departed] = of_kind(result, "departed_practitioner")
    assert departed.evidence == {"reason": "gone_from_pms"}
    assert of_kind(result, "unlinked_user") == []


def test_user_with_no_pms_practitioner_is_unlinked():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.users.append(PtUser("admin@clinic.example", "Front Desk", practitioner_access=False))
    result = clinic.reconcile()
    [unlinked] = of_kind(result, "unlinked_user")
    assert unlinked.severity is Severity.INFO
    assert unlinked.practitioners[0].email == "admin@clinic.example"
    assert unlinked.evidence["practitioner_access"] is False


def test_master_account_in_patient_sharing_is_an_issue_and_is_never_given_patient_sharing():
    clinic = Clinic()
    clinic.content_account()
    clinic.members.append(SharingMember("content@clinic.example", True, True))
    clinic.practitioner("101", "Ana Silva", member=True)
    result = clinic.reconcile()
    problems = {f.evidence["problem"] for f in of_kind(result, "master_account_issue")}
    assert "in_patient_sharing" in problems
    assert all(op.email != "content@clinic.example" for op in result.operations)


def test_master_account_that_is_not_a_licensed_practitioner_and_has_no_recipients_is_flagged():
    clinic = Clinic()
    clinic.master = MasterAccount("ghost@clinic.example", ())
    clinic.practitioner("101", "Ana Silva", member=True, recipient=False)
    result = clinic.reconcile()
    problems = sorted(f.evidence["problem"] for f in of_kind(result, "master_account_issue"))
    assert problems == ["no_recipients", "not_a_licensed_practitioner"]


def test_the_pms_link_wins_over_a_different_email():
    clinic = Clinic()
    clinic.practitioners.append(PmsPractitioner("101", "Ana Silva", "ana.personal@mail.example"))
    clinic.users.append(PtUser("ana@clinic.example", "Ana Silva", pms_link=PmsLink("cliniko", "101")))
    result = clinic.reconcile()
    assert "unlinked_user" not in kinds(result)
    assert "ambiguous_match" not in kinds(result)


def test_email_matching_ignores_case_and_spaces_but_keeps_plus_addressing():
    clinic = Clinic()
    clinic.practitioners.append(PmsPractitioner("101", "Ana Silva", "  Ana@Clinic.Example "))
    clinic.practitioners.append(PmsPractitioner("102", "Ben Ode", "ben+physio@clinic.example"))
    clinic.users.append(PtUser("ana@clinic.example", "Ana Silva"))
    clinic.users.append(PtUser("ben@clinic.example", "Ben Ode"))
    result = clinic.reconcile()
    unlinked = [f.practitioners[0].email for f in of_kind(result, "unlinked_user")]
    assert unlinked == ["ben@clinic.example"]


def test_one_practitioner_linked_from_two_users_is_ambiguous_and_matches_neither():
    clinic = Clinic()
    clinic.practitioners.append(PmsPractitioner("101", "Ana Silva", "ana@clinic.example"))
    clinic.users.append(PtUser("ana@clinic.example", "Ana Silva", pms_link=PmsLink("cliniko", "101")))
    clinic.users.append(PtUser("ana2@clinic.example", "Ana S", pms_link=PmsLink("cliniko", "101")))
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.co_treat("101", "102")
    result = clinic.reconcile()
    [ambiguous] = of_kind(result, "ambiguous_match")
    assert ambiguous.evidence["candidates"] == ["ana2@clinic.example", "ana@clinic.example"]
    assert of_kind(result, "duplicate_patient_risk") == []
    assert all("ana" not in op.email for op in result.operations)


def test_one_user_matching_two_practitioners_is_ambiguous():
    clinic = Clinic()
    clinic.practitioners.append(PmsPractitioner("101", "Ana Silva", "ana@clinic.example"))
    clinic.practitioners.append(PmsPractitioner("201", "Ana Silva (Pilates)", "ANA@clinic.example"))
    clinic.users.append(PtUser("ana@clinic.example", "Ana Silva"))
    result = clinic.reconcile()
    [ambiguous] = of_kind(result, "ambiguous_match")
    assert ambiguous.evidence == {
        "side": "ptdirect",
        "reason": "several_candidates",
        "candidates": ["101", "201"],
    }
    assert [p.pms_id for p in ambiguous.practitioners] == ["101", "201"]


def test_the_same_pms_patient_under_two_practitioners_is_an_existing_duplicate():
    clinic = Clinic()
    ana = clinic.practitioner("101", "Ana Silva", member=True)
    ben = clinic.practitioner("102", "Ben Ode", member=True)
    clinic.clients = [
        PhysitrackClient(ana, "c1", external_id="555", name="Pat Doe"),
        PhysitrackClient(ben, "c2", external_id="555", name="Pat Doe"),
        PhysitrackClient(ben, "c3", external_id="556", name="Sam Kay"),
    ]
    result = clinic.reconcile()
    [duplicate] = of_kind(result, "existing_duplicate_patients")
    assert duplicate.severity is Severity.HIGH
    assert duplicate.evidence["copies"] == 2
    assert duplicate.evidence["patient"].startswith("pt_")
    without_pseudonym = duplicate.message.replace(duplicate.evidence["patient"], "")
    assert "555" not in without_pseudonym and "Pat Doe" not in without_pseudonym


def test_same_name_birth_year_and_email_under_two_practitioners_is_an_existing_duplicate():
    clinic = Clinic()
    ana = clinic.practitioner("101", "Ana Silva", member=True)
    ben = clinic.practitioner("102", "Ben Ode", member=True)
    clinic.clients = [
        PhysitrackClient(ana, "c1", name="Pat Doe", year_of_birth=1980, email="pat@mail.example"),
        PhysitrackClient(ben, "c2", name=" pat  DOE", year_of_birth=1980, email="PAT@mail.example"),
        PhysitrackClient(ben, "c3", name="Pat Doe", year_of_birth=1981, email="pat@mail.example"),
    ]
    [duplicate] = of_kind(clinic.reconcile(), "existing_duplicate_patients")
    assert duplicate.evidence["matched_on"] == "name_birth_year_email"
    assert duplicate.evidence["copies"] == 2


def test_existing_duplicates_are_not_checked_without_client_lists():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    assert clinic.clients is None
    assert "existing_duplicate_patients" not in kinds(clinic.reconcile())


def test_practitioner_ids_are_opaque_strings_even_when_they_look_like_numbers():
    clinic = Clinic()
    clinic.practitioner("0000000000000000101", "Ana Silva", member=True)
    clinic.practitioner("101", "Ben Ode", member=False)
    clinic.co_treat("0000000000000000101", "101")
    [risk] = of_kind(clinic.reconcile(), "duplicate_patient_risk")
    assert {p.pms_id for p in risk.practitioners} == {"0000000000000000101", "101"}


def test_access_sources_other_than_appointments_count():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    clinic.co_treat("101", "102", source=AccessSource.CARE_TEAM)
    assert len(of_kind(clinic.reconcile(), "duplicate_patient_risk")) == 1


def test_unconfirmed_member_gone_from_pms_is_not_reported_as_departed():
    clinic = Clinic()
    clinic.users.append(
        PtUser("old@clinic.example", "Old", UserStatus.UNCONFIRMED, pms_link=PmsLink("cliniko", "999"))
    )
    clinic.members.append(SharingMember("old@clinic.example", True, True))
    result = clinic.reconcile()
    assert of_kind(result, "departed_practitioner") == []
    assert result.operations == ()


def test_reordered_or_nearly_equal_names_are_suggested_but_unrelated_ones_are_not():
    from sharing.identity import suggest_by_name

    practitioners = [
        PmsPractitioner("1", "Ana Silva"),
        PmsPractitioner("2", "Ben Ode"),
        PmsPractitioner("3", "Cara Lim"),
    ]
    users = [
        ("silva ana", "a@x.example"),
        ("anna silva", "a2@x.example"),
        ("ben odegaard", "b@x.example"),
        ("dan roe", "d@x.example"),
    ]
    assert suggest_by_name(practitioners, users) == {"1": ("a2@x.example", "a@x.example")}
