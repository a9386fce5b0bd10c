"""End to end through the console script against the Cliniko and FHIR emulators."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from connectors.emulators.cliniko import ClinikoEmulator, generate_account
from connectors.emulators.fhir import FhirEmulator
from connectors.emulators.sample import linked_ptdirect
from tests.cli import test_cli

FAST = {"PTSYNC_CLINIKO_REQUESTS_PER_MINUTE": "6000"}  # the emulator's limit is not under test here


def ptsync(cwd, *args):
    return test_cli.ptsync(cwd, *args, env=FAST)


KEY = "emulated-cliniko-key-au1"
TODAY = date.today()


def _ptdirect_for(path, practitioner_ids: list[str], system: str, members: int) -> None:
    linked_ptdirect(path, system, practitioner_ids, list(range(members)))


@pytest.fixture
def cliniko(tmp_path):
    data = generate_account(patients=300, practitioners=16, appointments=1500, today=TODAY, group_classes=3)
    with ClinikoEmulator(data, KEY, requests_per_window=10_000) as emulator:
        _ptdirect_for(tmp_path / "ptdirect.json", [p["id"] for p in data["practitioners"]], "cliniko", 8)
        yield emulator


def _add_cliniko_org(tmp_path, emulator):
    return ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-c",
        "--pms",
        "cliniko",
        "--pms-url",
        emulator.base_url,
        "--pms-key",
        KEY,
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(tmp_path / "ptdirect.json"),
    )


def test_a_cliniko_account_syncs_and_a_second_run_is_incremental(tmp_path, cliniko):
    # Given an organisation on the Cliniko emulator
    added = _add_cliniko_org(tmp_path, cliniko)
    assert added.returncode == 0, added.stderr
    # When it syncs twice, with 5 appointments changed in between
    first = ptsync(tmp_path, "sync", "clinic-c", "--wait")
    assert first.returncode == 0, first.stderr
    full_requests = len(cliniko.log)
    cliniko.update_appointments(5, datetime.now(UTC))
    second = ptsync(tmp_path, "sync", "clinic-c", "--wait")
    assert second.returncode == 0, second.stderr
    # Then the report covers the account, and the second run needed only a handful of requests
    report = json.loads(ptsync(tmp_path, "report", "clinic-c", "--format", "json").stdout)
    assert report["summary"]["practitioners"] == 16
    assert report["summary"]["findings"].get("duplicate_patient_risk", 0) > 0
    incremental = cliniko.log[full_requests:]
    assert len(incremental) <= 10
    assert all(
        any("updated_at:>" in q for q in r.query.get("q[]", []))
        for r in incremental
        if "appointments" in r.path or "attendees" in r.path
    )
    assert full_requests >= 1500 // 100


def test_a_bad_cliniko_payload_fails_the_run_and_keeps_the_previous_report(tmp_path, cliniko):
    _add_cliniko_org(tmp_path, cliniko)
    assert ptsync(tmp_path, "sync", "clinic-c", "--wait").returncode == 0
    before = json.loads(ptsync(tmp_path, "report", "clinic-c", "--format", "json").stdout)
    cliniko.update_row(
        "individual_appointments", 0, starts_at="yesterday-ish", updated_at="2999-01-01T00:00:00Z"
    )
    failed = ptsync(tmp_path, "sync", "clinic-c", "--wait")
    assert failed.returncode == 1
    assert (
        "cliniko: GET /individual_appointments item 0.starts_at: expected an ISO date or timestamp"
        in failed.stderr
    )
    after = ptsync(tmp_path, "report", "clinic-c", "--format", "json")
    assert json.loads(after.stdout)["run"]["id"] == before["run"]["id"]
    assert "the newest run" in after.stderr and "failed" in after.stderr


def test_org_add_refuses_a_cliniko_key_with_an_unknown_shard(tmp_path, cliniko):
    result = ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-x",
        "--pms",
        "cliniko",
        "--pms-key",
        "abc-zz9",
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(tmp_path / "ptdirect.json"),
    )
    assert result.returncode == 1
    assert "unknown shard '-zz9'" in result.stderr


@pytest.fixture
def fhir(tmp_path):
    practitioners = [
        {
            "resourceType": "Practitioner",
            "id": f"pr{i}",
            "active": i != 5,
            "name": [{"text": f"P{i} Example"}],
            "telecom": [{"system": "email", "value": f"practitioner{i}@clinic.example"}],
            "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
        }
        for i in range(6)
    ]
    start = f"{TODAY.isoformat()}T09:00:00Z"
    appointments = [
        {
            "resourceType": "Appointment",
            "id": f"a{n}",
            "status": "booked",
            "start": start,
            "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
            "participant": [
                {"actor": {"reference": f"Practitioner/pr{n % 3}"}},
                {"actor": {"reference": f"Patient/pt{n // 2}"}},
            ],
        }
        for n in range(60)
    ]
    care_teams = [
        {
            "resourceType": "CareTeam",
            "id": "c1",
            "status": "active",
            "subject": {"reference": "Patient/pt1"},
            "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
            "participant": [{"member": {"reference": "Practitioner/pr4"}}],
        }
    ]
    resources = {"Practitioner": practitioners, "Appointment": appointments, "CareTeam": care_teams}
    with FhirEmulator(resources, token="fhir-token") as emulator:
        _ptdirect_for(tmp_path / "ptdirect.json", [f"pr{i}" for i in range(6)], "fhir", 1)
        yield emulator


def test_a_fhir_server_syncs_end_to_end(tmp_path, fhir):
    added = ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-f",
        "--pms",
        "fhir",
        "--pms-url",
        fhir.base_url,
        "--pms-key",
        "fhir-token",
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(tmp_path / "ptdirect.json"),
    )
    assert added.returncode == 0, added.stderr
    synced = ptsync(tmp_path, "sync", "clinic-f", "--wait")
    assert synced.returncode == 0, synced.stderr
    report = json.loads(ptsync(tmp_path, "report", "clinic-f", "--format", "json").stdout)
    assert report["summary"]["practitioners"] == 6
    risky = {
        tuple(sorted(email.split("@")[0] for email in pair["emails"]))
        for f in report["findings"]
        if f["kind"] == "duplicate_patient_risk"
        for pair in f["evidence"]["pairs"]
    }
    emails = {p["pms_id"]: p["email"].split("@")[0] for f in report["findings"] for p in f["practitioners"]}
    # pt1: pr0, pr2 by appointment, pr4 by care team
    assert tuple(sorted((emails["pr0"], emails["pr1"]))) in risky
    assert tuple(sorted((emails["pr0"], emails["pr4"]))) in risky
    assert all(r.headers.get("authorization") == "Bearer fhir-token" for r in fhir.log)
