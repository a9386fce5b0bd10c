"""End to end through the console script: Semble against its emulator, and an appointment export."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.emulators.semble import SembleEmulator, generate_practice
from tests.cli import test_cli
from tests.cli.test_cli_pms_connectors import _ptdirect_for

FAST = {"PTSYNC_SEMBLE_REQUESTS_PER_MINUTE": "6000"}  # the emulator's limit is not under test here
TOKEN = "emulated-semble-token"
TODAY = date.today()


def ptsync(cwd, *args):
    return test_cli.ptsync(cwd, *args, env=FAST)


@pytest.fixture
def semble(tmp_path):
    data = generate_practice(patients=300, clinicians=16, bookings=1500, today=TODAY)
    clinicians = [u["id"] for u in data["users"] if u["isClinician"]]
    with SembleEmulator(data, TOKEN, requests_per_window=10_000) as emulator:
        _ptdirect_for(tmp_path / "ptdirect.json", clinicians, "semble", 8)
        yield emulator


def test_a_semble_practice_syncs_and_a_second_run_is_incremental(tmp_path, semble):
    # Given an organisation on the Semble emulator
    added = ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-s",
        "--pms",
        "semble",
        "--pms-key",
        TOKEN,
        "--pms-url",
        semble.graphql_url,
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(tmp_path / "ptdirect.json"),
    )
    assert added.returncode == 0, added.stderr
    # When it syncs twice, with 5 bookings cancelled in between
    first = ptsync(tmp_path, "sync", "clinic-s", "--wait")
    assert first.returncode == 0, first.stderr
    full = len(semble.log)
    semble.change_bookings(5, datetime.now(UTC) + timedelta(seconds=1))
    second = ptsync(tmp_path, "sync", "clinic-s", "--wait")
    assert second.returncode == 0, second.stderr
    # Then the report covers the practice, and the second run sent two requests (clinicians, changes)
    report = json.loads(ptsync(tmp_path, "report", "clinic-s", "--format", "json").stdout)
    assert report["summary"]["practitioners"] == 16
    assert report["summary"]["findings"].get("duplicate_patient_risk", 0) > 0
    assert full >= 1500 // 100 and len(semble.log) - full == 2
    assert TOKEN not in first.stderr + second.stderr


def test_an_appointment_export_syncs_and_a_bad_export_fails_the_run_and_keeps_the_report(tmp_path):
    # Given an organisation reading a generic export where two practitioners share patients
    export = tmp_path / "export"
    export.mkdir()
    day = (TODAY - timedelta(days=3)).isoformat()
    rows = [
        f"p{i % 4},P{i % 4} Example,practitioner{i % 4}@clinic.example,pat{i % 6},{day},booked"
        for i in range(24)
    ]
    header = "practitioner_id,practitioner_name,practitioner_email,patient_id,date,status"
    (export / "appointments.csv").write_text("\n".join([header, *rows]) + "\n")
    _ptdirect_for(tmp_path / "ptdirect.json", ["p0", "p1", "p2", "p3"], "export", 2)
    added = ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-e",
        "--pms",
        "export",
        "--pms-path",
        str(export),
        "--pms-format",
        "generic",
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(tmp_path / "ptdirect.json"),
    )
    assert added.returncode == 0, added.stderr
    # When it syncs
    first = ptsync(tmp_path, "sync", "clinic-e", "--wait")
    # Then the report has the four practitioners and their shared patients
    assert first.returncode == 0, first.stderr
    report = json.loads(ptsync(tmp_path, "report", "clinic-e", "--format", "json").stdout)
    assert report["summary"]["practitioners"] == 4
    assert report["summary"]["findings"].get("duplicate_patient_risk", 0) > 0
    # When a second export file with a bad row appears, Then the run fails naming it, and the report stays
    (export / "later.csv").write_text(f"{header}\np1,P1,practitioner1@clinic.example,pat1,someday,booked\n")
    failed = ptsync(tmp_path, "sync", "clinic-e", "--wait")
    assert failed.returncode == 1
    assert "later.csv, row 2, column 'date': expected a date (iso), got 'someday'" in failed.stderr
    after = json.loads(ptsync(tmp_path, "report", "clinic-e", "--format", "json").stdout)
    assert after["run"]["id"] == report["run"]["id"]
