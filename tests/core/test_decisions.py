"""Decisions an admin can trust: identity edge cases, the master account, sudden PMS drops,
grouped findings and their wording. One test per case a careful clinic admin tried."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from sharing import (
    AccessGroup,
    AccessLog,
    AccessSource,
    Baseline,
    MasterAccount,
    PatientAccess,
    PmsLink,
    PmsPractitioner,
    Policy,
    PtUser,
    RunInfo,
    Severity,
    SharingMember,
    SharingScope,
    build_report,
    reconcile,
)
from tests.clinic import AS_OF, KEY, Clinic, kinds, of_kind, ops


def _destructive(result) -> list[tuple[str, str]]:
    return [(op.op.value, op.email) for op in result.operations if op.op.removal or op.op.advisory]


# --- Identity: never a destructive guess -------------------------------------------------------


def test_a_rehired_practitioner_linked_to_the_old_inactive_record_is_never_departed():
    # Given Ana left (record 101, inactive) and was re-hired (record 201, active, same email),
    # and PT Direct still links her user to 101 while she shares patients
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", active=False, member=True)
    clinic.practitioners.append(PmsPractitioner("201", "Ana Silva", "ana@clinic.example", True))
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.co_treat("201", "102")
    # When the run reconciles
    result = clinic.reconcile()
    # Then she is not departed, nothing removes or transfers her, and the admin is asked to fix the link
    assert "departed_practitioner" not in kinds(result)
    assert _destructive(result) == []
    [ambiguous] = of_kind(result, "ambiguous_match")
    assert ambiguous.evidence["reason"] == "stale_link"
    assert "Ana Silva (PMS id 101, inactive) and Ana Silva (PMS id 201, active)" in ambiguous.message
    assert "Update the PMS link in PT Direct" in ambiguous.message


def test_a_user_linked_to_a_gone_record_whose_email_is_active_under_a_new_record_is_not_departed():
    # Given the old record is gone from the PMS entirely and a new active record has the email
    clinic = Clinic()
    clinic.users.append(PtUser("ana@clinic.example", "Ana Silva", pms_link=PmsLink("cliniko", "999")))
    clinic.members.append(SharingMember("ana@clinic.example", True, True))
    clinic.practitioners.append(PmsPractitioner("201", "Ana Silva", "ana@clinic.example", True))
    # When the run reconciles
    result = clinic.reconcile()
    # Then nothing destructive is planned for her
    assert "departed_practitioner" not in kinds(result)
    assert _destructive(result) == []


def test_two_users_linked_to_one_record_one_without_an_address_are_an_ambiguity_not_a_crash():
    # Given two PT Direct users link to Ana's record, one of them with an address of spaces (the
    # core's callers refuse such an address; the core must still not fail on it)
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.users.append(PtUser("   ", "Ana (old login)", pms_link=PmsLink("cliniko", "101")))
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.co_treat("101", "102")
    # When the run reconciles
    result = clinic.reconcile()
    # Then her record has several candidates: reported, and nothing destructive planned
    [ambiguous] = of_kind(result, "ambiguous_match")
    assert "pms:101" in ambiguous.subjects
    assert _destructive(result) == []


def test_emails_in_another_unicode_form_match_the_same_person():
    # Given the PMS stores Zoé's email decomposed (e + combining accent) and PT Direct precomposed
    decomposed = unicodedata.normalize("NFD", "zoé@clinic.example")
    precomposed = unicodedata.normalize("NFC", " Zoé@Clinic.example ")
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioners.append(PmsPractitioner("102", "Zoé Roy", decomposed, True))
    clinic.users.append(PtUser(precomposed, "Zoé Roy"))
    clinic.members.append(SharingMember(precomposed, True, True))
    clinic.co_treat("101", "102")
    # When the run reconciles
    result = clinic.reconcile()
    # Then she is matched and already sharing: nothing to report or change
    assert result.findings == ()
    assert result.operations == ()


# --- The master account --------------------------------------------------------------------------


def test_a_master_account_that_treats_patients_is_a_master_account_issue_not_a_duplicate_risk():
    # Given Ana is the master account and also treats patients with Ben, who shares patients
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=False)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.master = MasterAccount("ana@clinic.example", ("ben@clinic.example",))
    clinic.co_treat("101", "102", patients=4)
    # When the run reconciles
    result = clinic.reconcile()
    # Then no duplicate risk tells the admin to put the master account into sharing
    assert of_kind(result, "duplicate_patient_risk") == []
    assert not [
        op for op in result.operations if op.email == "ana@clinic.example" and "sharing" in op.op.value
    ]
    [issue] = [
        f for f in of_kind(result, "master_account_issue") if f.evidence["problem"] == "treats_patients"
    ]
    assert "use a dedicated content-only account" in issue.message
    assert "4 patients" in issue.message


def test_the_designated_master_account_is_not_reported_as_an_unlinked_user():
    # Given a dedicated content account as the master account (no PMS practitioner)
    clinic = Clinic()
    clinic.content_account()
    clinic.practitioner("101", "Ana Silva", member=True)
    # When the run reconciles
    result = clinic.reconcile()
    # Then it is not an unlinked user on every run
    assert of_kind(result, "unlinked_user") == []


# --- A PMS read that suddenly loses people --------------------------------------------------------


def _team(clinic: Clinic, count: int, *, active: bool = True) -> list[str]:
    ids = []
    for index in range(count):
        pid = f"{200 + index}"
        clinic.practitioner(pid, f"Person{index} Team", member=True, active=active)
        ids.append(pid)
    return ids


def test_an_export_that_lists_no_practitioners_plans_no_removals_and_raises_one_high_finding():
    # Given ten sharing members, and an export that lists nobody
    clinic = Clinic()
    ids = _team(clinic, 10)
    clinic.practitioners.clear()
    # When the run reconciles against last run's roster
    result = clinic.reconcile_with(Baseline(frozenset(ids)))
    # Then nobody is departed, nothing is removed, and one high finding explains it
    assert kinds(result) == ["suspicious_pms_drop"]
    [drop] = result.findings
    assert drop.severity is Severity.HIGH
    assert "lists no practitioners at all" in drop.message and "--accept-drop" in drop.message
    assert _destructive(result) == []
    assert result.suspicious and not result.complete


def test_losing_more_than_the_threshold_at_once_is_suspicious():
    # Given 10 active practitioners last time and 4 of them inactive now (40% > 30%, 4 > 2)
    clinic = Clinic()
    ids = _team(clinic, 10)
    clinic.practitioners = [replace(p, active=False) if p.id in ids[:4] else p for p in clinic.practitioners]
    # When the run reconciles
    result = clinic.reconcile_with(Baseline(frozenset(ids)))
    # Then the drop is reported and no removal or transfer is planned
    [drop] = of_kind(result, "suspicious_pms_drop")
    assert drop.evidence["lost"] == ids[:4]
    assert "departed_practitioner" not in kinds(result)
    assert _destructive(result) == []


def test_a_loss_within_the_threshold_is_an_ordinary_departure():
    # Given 10 active practitioners last time and 2 of them inactive now (not more than 2 people)
    clinic = Clinic()
    ids = _team(clinic, 10)
    clinic.practitioners = [replace(p, active=False) if p.id in ids[:2] else p for p in clinic.practitioners]
    # When the run reconciles
    result = clinic.reconcile_with(Baseline(frozenset(ids)))
    # Then they are departures with their safeguards (transfer first, approval)
    assert "suspicious_pms_drop" not in kinds(result)
    assert len(of_kind(result, "departed_practitioner")) == 2
    assert all(op.requires_approval for op in result.operations if op.op.removal)


def test_a_per_organisation_threshold_is_honoured():
    # Given a stricter organisation: more than 10% and more than 0 people is suspicious
    clinic = Clinic()
    ids = _team(clinic, 10)
    clinic.practitioners = [replace(p, active=False) if p.id in ids[:2] else p for p in clinic.practitioners]
    policy = Policy(removal_threshold_percent=10, removal_threshold_people=0)
    # When the run reconciles
    result = clinic.reconcile_with(Baseline(frozenset(ids)), policy)
    # Then two leavers are already suspicious
    assert "suspicious_pms_drop" in kinds(result)


def test_an_accepted_drop_lets_the_departures_through():
    # Given the same big drop, confirmed by the admin
    clinic = Clinic()
    ids = _team(clinic, 10)
    clinic.practitioners = [replace(p, active=False) if p.id in ids[:4] else p for p in clinic.practitioners]
    # When the run reconciles with the drop accepted
    result = clinic.reconcile_with(Baseline(frozenset(ids), accept_drop=True))
    # Then they are departed and the transfer-first removals are proposed
    assert "suspicious_pms_drop" not in kinds(result)
    assert len(of_kind(result, "departed_practitioner")) == 4
    assert ("remove_sharing_member", "person0@clinic.example") in ops(result)


# --- Findings people can act on --------------------------------------------------------------------


def test_one_patient_seen_by_four_practitioners_gives_one_finding_per_person_not_sharing():
    # Given Ana and Ben share patients, Cara and Dan do not, and all four saw one patient
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.practitioner("104", "Dan Roe", member=True, share_patients=False)
    clinic.co_treat("101", "102", "103", "104", patients=1)
    # When the run reconciles
    result = clinic.reconcile()
    # Then two findings (Cara, Dan), each listing three colleagues, with every pair in the evidence
    risks = sorted(of_kind(result, "duplicate_patient_risk"), key=lambda risk: risk.practitioners[0].name)
    assert [risk.practitioners[0].name for risk in risks] == ["Cara Lim", "Dan Roe"]
    cara = risks[0]
    assert [p.name for p in cara.practitioners[1:]] == ["Ana Silva", "Ben Ode", "Dan Roe"]
    assert {tuple(pair["emails"]) for pair in cara.evidence["pairs"]} == {
        ("cara@clinic.example", "ana@clinic.example"),
        ("cara@clinic.example", "ben@clinic.example"),
        ("cara@clinic.example", "dan@clinic.example"),
    }
    assert "1 patient," in cara.message and "1 patients" not in cara.message
    assert cara.operations == (("add_sharing_member", "cara@clinic.example"),)


def test_a_grouped_finding_keeps_its_fingerprint_when_another_colleague_is_added():
    # Given Cara co-treats with Ana
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.co_treat("101", "103")
    before = of_kind(clinic.reconcile(), "duplicate_patient_risk")[0].fingerprint
    # When Cara also starts seeing Ben's patients
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.co_treat("102", "103")
    after = of_kind(clinic.reconcile(), "duplicate_patient_risk")
    # Then it is still the same finding (ongoing, not new), now naming both colleagues
    assert [risk.fingerprint for risk in after] == [before]
    assert after[0].evidence["colleagues"] == 2


def test_a_future_booking_is_described_as_booked_not_treated():
    # Given Cara's only shared patient is booked with both next week
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.co_treat("101", "103", patients=1, days_ago=-7)
    # When the run reconciles
    [risk] = of_kind(clinic.reconcile(), "duplicate_patient_risk")
    # Then the message says booked, and never that anyone treated the patient
    assert "Ana Silva (1 patient, booked for 2026-12-02)" in risk.message
    assert "treat" not in risk.message


def test_shared_days_years_apart_are_each_written_as_their_own_date():
    # Given Cara shares a patient with Ana last week and one with Ben booked three years ahead
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.co_treat("101", "103", patients=1, days_ago=7)
    clinic.co_treat("102", "103", patients=1, days_ago=-3 * 365)
    # When the run reconciles
    [risk] = of_kind(clinic.reconcile(), "duplicate_patient_risk")
    # Then each colleague is dated by their own shared day, in the message and in the pairs
    assert "Ana Silva (1 patient, most recently 2026-11-18)" in risk.message
    assert "Ben Ode (1 patient, booked for 2029-11-24)" in risk.message
    assert sorted(pair["last_shared_on"] for pair in risk.evidence["pairs"]) == ["2026-11-18", "2029-11-24"]


def test_someone_who_only_appears_through_an_access_group_is_not_said_to_treat_patients():
    # Given Gus has no PT Direct user and sees patients only through a shared access group
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("107", "Gus Hale", user=False)
    clinic.groups.append(AccessGroup("g1", "Front desk", ("101", "107")))
    clinic.rows.append(PatientAccess("107", "p1", AccessSource.ACCESS_GROUP, AS_OF))
    # When the run reconciles
    result = clinic.reconcile()
    # Then his finding says he has patients in the PMS, not that he treats them
    [licence] = of_kind(result, "no_physitrack_licence")
    assert licence.message.startswith("Gus Hale has 1 patient in the PMS")
    assert "treat" not in licence.message


def test_a_policy_change_alone_does_not_report_findings_as_resolved():
    # Given everyone must share (a policy): Eve, who co-treats with nobody, is missing
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("105", "Eve Park", member=False)
    everyone = Policy(sharing_scope=SharingScope.EVERYONE)
    first = clinic.reconcile(everyone)
    previous = {f.fingerprint: f.as_dict("new") for f in first.findings}
    assert previous
    # When the policy changes back to co-treating only, with nothing changed in the clinic
    second = clinic.reconcile(Policy())
    policy_only = frozenset(f.fingerprint for f in clinic.reconcile(everyone).findings)
    run = RunInfo("r2", "manual", "succeeded", None, None)
    report = build_report("org", run, second, previous, None, policy_only=policy_only)
    # Then nothing is reported as resolved
    assert report["resolved"] == []


def test_an_ambiguous_match_names_each_candidate_with_pms_id_and_state():
    # Given one PT Direct user whose email two PMS records share, one of them inactive
    clinic = Clinic()
    clinic.practitioners.append(PmsPractitioner("301", "Hana Ito", "hana@clinic.example", True))
    clinic.practitioners.append(PmsPractitioner("302", "Hana Ito (Pilates)", "hana@clinic.example", False))
    clinic.users.append(PtUser("hana@clinic.example", "Hana Ito"))
    # When the run reconciles
    [ambiguous] = of_kind(clinic.reconcile(), "ambiguous_match")
    # Then both records are named with their PMS ids and whether they are active
    assert "Hana Ito (PMS id 301, active) and Hana Ito (Pilates) (PMS id 302, inactive)" in ambiguous.message


def test_reconcile_without_a_baseline_is_unchanged_for_an_ordinary_clinic():
    # Given an ordinary clinic and no earlier run
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    # When it reconciles with an empty access log
    result = reconcile(
        clinic.pms(), clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=None
    )
    # Then nothing is suspicious
    assert not result.suspicious and result.complete
    assert isinstance(clinic.pms().access, AccessLog)
