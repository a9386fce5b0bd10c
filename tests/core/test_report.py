"""Diffing against the previous run, and the report document's contract."""

from __future__ import annotations

import json

from sharing import PhysitrackClient, ProposalInfo, RunInfo, SharingMember, build_report
from sharing.findings import FindingKind, fingerprint
from sharing.pseudonym import pseudonymise
from tests.clinic import Clinic

RUN = RunInfo("run-1", "manual", "succeeded", "2026-11-25T10:00:00Z", "2026-11-25T10:00:03Z")


def _clinic() -> Clinic:
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.co_treat("101", "103", patients=3)
    return clinic


def _report(clinic: Clinic, previous=None, proposal_id="prop-1") -> dict:
    result = clinic.reconcile()
    proposal = ProposalInfo(proposal_id, "proposed", result.operations) if result.operations else None
    return build_report("clinic-a", RUN, result, previous or {}, proposal)


def test_report_serialises_exactly_to_the_contract_shape():
    report = _report(_clinic())
    assert json.loads(json.dumps(report)) == report
    assert report["schema"] == "ptsync.report/1"
    assert report["org"] == "clinic-a"
    assert report["timezone"] == "UTC"
    assert report["run"] == {
        "id": "run-1",
        "trigger": "manual",
        "status": "succeeded",
        "started_at": "2026-11-25T10:00:00Z",
        "finished_at": "2026-11-25T10:00:03Z",
    }
    assert report["summary"] == {
        "practitioners": 2,
        "patients": 3,
        "findings": {"duplicate_patient_risk": 1, "missing_new_user": 1},
    }
    finding = report["findings"][0]
    assert set(finding) == {
        "kind",
        "severity",
        "state",
        "fingerprint",
        "message",
        "practitioners",
        "evidence",
        "operations",
    }
    assert finding["practitioners"][1] == {
        "pms_id": "101",
        "email": "ana@clinic.example",
        "name": "Ana Silva",
    }
    assert finding["operations"] == [{"op": "add_sharing_member", "email": "cara@clinic.example"}]
    assert report["proposal"]["operations"][0] == {
        "op": "add_sharing_member",
        "email": "cara@clinic.example",
        "share_content": True,
        "share_patients": True,
        "requires_approval": True,
        "reason": "Cara Lim should share patients with colleagues who treat the same patients",
    }
    assert report["resolved"] == []


def test_proposal_is_null_when_nothing_needs_to_change():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    assert _report(clinic)["proposal"] is None


def test_a_second_run_reports_the_same_findings_as_ongoing_not_new():
    first = _report(_clinic())
    previous = {f["fingerprint"]: f for f in first["findings"]}
    second = _report(_clinic(), previous)
    assert {f["state"] for f in first["findings"]} == {"new"}
    assert {f["state"] for f in second["findings"]} == {"ongoing"}


def test_a_fixed_finding_is_listed_as_resolved():
    first = _report(_clinic())
    previous = {f["fingerprint"]: f for f in first["findings"]}
    fixed = _clinic()
    fixed.members.append(SharingMember("cara@clinic.example", True, True))
    report = _report(fixed, previous)
    assert report["findings"] == []
    assert {f["kind"] for f in report["resolved"]} == {"duplicate_patient_risk", "missing_new_user"}
    assert {f["state"] for f in report["resolved"]} == {"resolved"}


def test_an_incomplete_run_marks_findings_indeterminate_and_resolves_nothing():
    first = _report(_clinic())
    previous = {f["fingerprint"]: f for f in first["findings"]}
    broken = Clinic()  # the fetch failed early: nobody was read
    broken.pms_complete = False
    report = _report(broken, previous)
    assert report["resolved"] == []
    assert {f["state"] for f in report["findings"]} == {"indeterminate"}
    assert {f["fingerprint"] for f in report["findings"]} == set(previous)


def test_fingerprints_depend_on_kind_and_subjects_only():
    a = fingerprint(FindingKind.DUPLICATE_PATIENT_RISK, ("pms:1", "pms:2"))
    b = fingerprint(FindingKind.DUPLICATE_PATIENT_RISK, ("pms:2", "pms:1"))
    c = fingerprint(FindingKind.MISSING_NEW_USER, ("pms:1", "pms:2"))
    assert a == b != c
    more_patients = _clinic()
    more_patients.co_treat("101", "103", patients=10)
    assert [f.fingerprint for f in more_patients.reconcile().findings] == [
        f.fingerprint for f in _clinic().reconcile().findings
    ]


def test_the_report_never_contains_a_patient_id_or_name():
    clinic = _clinic()
    clinic.clients = [
        PhysitrackClient("ana@clinic.example", "c1", "patient-1", "Pat Doe", 1980, "pat@mail.example"),
        PhysitrackClient("cara@clinic.example", "c2", "patient-1", "Pat Doe", 1980, "pat@mail.example"),
    ]
    text = json.dumps(_report(clinic))
    assert "existing_duplicate_patients" in text
    for secret in ("patient-1", "patient-2", "Pat Doe", "pat@mail.example"):
        assert secret not in text


def test_pseudonyms_differ_between_organisations():
    assert pseudonymise(b"org-a", "555") != pseudonymise(b"org-b", "555")
    assert pseudonymise(b"org-a", "555") == pseudonymise(b"org-a", "555")
