"""End to end through the console script against the Halaxy and Nookal emulators."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.emulators.halaxy import HalaxyEmulator
from connectors.emulators.halaxy import generate_clinic as halaxy_clinic
from connectors.emulators.nookal import NookalEmulator
from connectors.emulators.nookal import generate_clinic as nookal_clinic
from tests.cli import test_cli
from tests.cli.test_cli_pms_connectors import _ptdirect_for

FAST = {"PTSYNC_HALAXY_REQUESTS_PER_MINUTE": "60000", "PTSYNC_NOOKAL_REQUESTS_PER_MINUTE": "60000"}
SECRET = "halaxy-e2e-client-secret"
KEY = "nookal-e2e-api-key-123"
TODAY = date.today()


def ptsync(cwd, *args):
    return test_cli.ptsync(cwd, *args, env=FAST)


def _add(tmp_path, slug: str, *pms_args: str):
    return ptsync(
        tmp_path,
        "org",
        "add",
        slug,
        *pms_args,
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(tmp_path / "ptdirect.json"),
    )


@pytest.fixture
def halaxy(tmp_path):
    clinic = halaxy_clinic(patients=200, practitioners=16, appointments=900, today=TODAY)
    with HalaxyEmulator(
        clinic, client_id="cid-1", client_secret=SECRET, requests_per_window=10_000
    ) as emulator:
        _ptdirect_for(tmp_path / "ptdirect.json", [p["id"] for p in clinic["Practitioner"][:16]], "halaxy", 8)
        yield emulator


def test_a_halaxy_practice_syncs_end_to_end_and_its_secret_is_stored_encrypted(tmp_path, halaxy):
    # Given an organisation on the Halaxy emulator
    added = _add(
        tmp_path,
        "clinic-h",
        "--pms",
        "halaxy",
        "--pms-url",
        halaxy.base_url,
        "--pms-client-id",
        "cid-1",
        "--pms-client-secret",
        SECRET,
    )
    assert added.returncode == 0, added.stderr
    # When it syncs twice, with appointments changed in between
    first = ptsync(tmp_path, "sync", "clinic-h", "--wait")
    assert first.returncode == 0, first.stderr
    full = len(halaxy.log)
    halaxy.update_appointments(5, datetime.now(UTC) + timedelta(minutes=2))
    second = ptsync(tmp_path, "sync", "clinic-h", "--wait")
    assert second.returncode == 0, second.stderr
    # Then the report covers the practice (external referrers left out), the second run was
    # incremental, and the secret is nowhere in the database file in clear
    report = json.loads(ptsync(tmp_path, "report", "clinic-h", "--format", "json").stdout)
    assert report["summary"]["practitioners"] == 16
    assert report["summary"]["findings"].get("duplicate_patient_risk", 0) > 0
    assert len(halaxy.log) - full <= 10
    assert SECRET.encode() not in (test_cli.data_dir(tmp_path) / "ptsync.db").read_bytes()


@pytest.fixture
def nookal(tmp_path):
    clinic = nookal_clinic(patients=200, practitioners=16, appointments=900, classes=3, today=TODAY)
    with NookalEmulator(clinic, KEY) as emulator:
        _ptdirect_for(tmp_path / "ptdirect.json", [p["ID"] for p in clinic["practitioners"]], "nookal", 8)
        yield emulator


def test_a_nookal_clinic_syncs_end_to_end_and_a_refused_key_never_shows(tmp_path, nookal):
    # Given an organisation on the Nookal emulator
    added = _add(tmp_path, "clinic-n", "--pms", "nookal", "--pms-url", nookal.base_url, "--pms-key", KEY)
    assert added.returncode == 0, added.stderr
    # When it syncs, then the key is revoked and it syncs again
    synced = ptsync(tmp_path, "sync", "clinic-n", "--wait")
    assert synced.returncode == 0, synced.stderr
    report = json.loads(ptsync(tmp_path, "report", "clinic-n", "--format", "json").stdout)
    nookal.api_key = "another-key"
    refused = ptsync(tmp_path, "sync", "clinic-n", "--wait")
    # Then the first run read the clinic, the second failed naming the path, and the key is in
    # no output, no report and not in clear in the database
    assert report["summary"]["practitioners"] == 16
    assert report["summary"]["findings"].get("duplicate_patient_risk", 0) > 0
    assert refused.returncode == 1
    assert "nookal: GET /getPractitioners failed: L000_2 Invalid API key" in refused.stderr
    outputs = [synced.stdout, synced.stderr, refused.stdout, refused.stderr, json.dumps(report)]
    assert not any(KEY in text for text in outputs)
    assert KEY.encode() not in (test_cli.data_dir(tmp_path) / "ptsync.db").read_bytes()
