"""End to end through the console script with the PT Direct bridge and Physitrack v2 emulators."""

from __future__ import annotations

import json

import pytest

from connectors.emulators.physitrack_v2 import PhysitrackV2Emulator
from connectors.emulators.ptdirect_bridge import PtDirectBridgeEmulator
from tests.cli.test_cli import data_dir, ptsync
from tests.clinic_files import write_clinic


@pytest.fixture
def emulators(tmp_path):
    _, ptdirect_file = write_clinic(tmp_path)
    clients = {
        "key-ana": [
            {"id": 1, "external_id": "p1", "first_name": "Pat", "last_name": "Doe", "year_of_birth": 1980}
        ],
        "key-ben": [
            {"id": 9, "external_id": "p1", "first_name": "Pat", "last_name": "Doe", "year_of_birth": 1980}
        ],
    }
    with (
        PtDirectBridgeEmulator(json.loads(ptdirect_file.read_text()), "bridge-key") as bridge,
        PhysitrackV2Emulator(clients) as physitrack,
    ):
        yield bridge, physitrack


def _add_bridge_org(tmp_path, bridge, physitrack):
    return ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-a",
        "--pms",
        "csv",
        "--pms-path",
        str(tmp_path / "pms"),
        "--ptdirect",
        "api",
        "--ptdirect-url",
        f"{bridge.url}/v1",
        "--ptdirect-key",
        "bridge-key",
        "--physitrack-url",
        physitrack.base_url,
    )


def test_sync_approve_and_sync_again_converges_through_the_bridge(tmp_path, emulators):
    bridge, physitrack = emulators
    # Given an organisation on the bridge, with Physitrack keys for Ana and Ben
    added = _add_bridge_org(tmp_path, bridge, physitrack)
    assert added.returncode == 0, added.stderr
    for email, key in (("ana@clinic.example", "key-ana"), ("ben@clinic.example", "key-ben")):
        stored = ptsync(tmp_path, "org", "physitrack-key", "clinic-a", email, "--key", key)
        assert stored.returncode == 0 and key not in stored.stderr
    # When it syncs, the proposal is approved, and it syncs again
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    report = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    assert report["summary"]["findings"] == {
        "duplicate_patient_risk": 1,
        "existing_duplicate_patients": 1,
        "missing_new_user": 1,
    }
    approved = ptsync(tmp_path, "approve", report["proposal"]["id"], "--by", "admin")
    assert approved.returncode == 0, approved.stderr
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    # Then the bridge changed once, and nothing is left to do
    assert dict(bridge.changes) == {("add_sharing_member", "cara@clinic.example"): 1}
    after = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    assert after["proposal"] is None
    assert {f["kind"] for f in after["findings"]} == {"existing_duplicate_patients"}
    assert "key-ana" not in (data_dir(tmp_path) / "ptsync.db").read_bytes().decode("latin-1")


def test_a_refused_physitrack_key_fails_the_run_naming_the_practitioner_only(tmp_path, emulators):
    bridge, physitrack = emulators
    _add_bridge_org(tmp_path, bridge, physitrack)
    ptsync(tmp_path, "org", "physitrack-key", "clinic-a", "cara@clinic.example", "--key", "sk-stale-key")
    synced = ptsync(tmp_path, "sync", "clinic-a", "--wait")
    assert synced.returncode == 1
    assert "the API key of cara@clinic.example was refused (401)" in synced.stderr
    assert "sk-stale-key" not in synced.stderr
