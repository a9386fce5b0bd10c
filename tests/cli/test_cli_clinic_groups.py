"""Clinic groups through the console script: choose locations, scope, sync, read the scope back."""

from __future__ import annotations

import json
from datetime import date

from connectors.emulators.cliniko import ClinikoEmulator, generate_group
from tests.cli.test_cli import ptsync

KEY = "group-cliniko-key-au1"
FAST = {"PTSYNC_CLINIKO_REQUESTS_PER_MINUTE": "6000"}


def test_an_admin_lists_locations_scopes_an_organisation_and_reads_the_scope_in_its_report(tmp_path):
    """Given one organisation on the group's Cliniko account / When the admin lists the locations,
    tries a location that does not exist, then scopes it to North and syncs / Then the list has
    ids, names and counts, the bad location is one line naming the real ones, and `org show` and
    the report say the scope."""
    with ClinikoEmulator(generate_group(today=date.today()), KEY) as emulator:
        added = ptsync(
            tmp_path, "org", "add", "north", "--pms", "cliniko", "--pms-url", emulator.base_url,
            "--pms-key", KEY, "--policy", "observe", env=FAST,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        listed = ptsync(tmp_path, "org", "locations", "north", "--format", "json", env=FAST)
        assert [(row["id"], row["name"], row["practitioners"]) for row in json.loads(listed.stdout)] == [
            ("1", "North Physio", 3),
            ("2", "South Physio", 3),
            ("3", "East Physio", 3),
        ]
        wrong = ptsync(tmp_path, "org", "update", "north", "--locations", "9", env=FAST)
        assert wrong.returncode == 1
        assert wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
        assert "location 9 is not in cliniko" in wrong.stderr and "3 (East Physio)" in wrong.stderr
        scoped = ptsync(
            tmp_path, "org", "update", "north", "--locations", "1", "--policy", "propose", env=FAST
        )
        assert scoped.returncode == 0, scoped.stderr
        assert "3 of the PMS's 7 active practitioners are in this organisation" in scoped.stderr
        shown = json.loads(ptsync(tmp_path, "org", "show", "north", "--format", "json").stdout)
        assert shown["settings"]["locations"] == "1"
        table = ptsync(tmp_path, "org", "locations", "north", env=FAST).stdout
        assert "* │ 1" in table.replace("  ", " ") or "*  │ 1" in table
        empty = {"schema": "ptsync.ptdirect/1", "users": [], "master_account": None}
        (tmp_path / "pt.json").write_text(json.dumps({**empty, "practitioner_sharing": {"members": []}}))
        assert ptsync(tmp_path, "ptdirect", "import", "north", str(tmp_path / "pt.json")).returncode == 0
        synced = ptsync(tmp_path, "sync", "north", "--wait", env=FAST)
        assert synced.returncode == 0, synced.stderr
    report = ptsync(tmp_path, "report", "north")
    assert "scope: at North Physio (1); 4 practitioner(s) of the PMS account left out" in report.stdout
    document = json.loads(ptsync(tmp_path, "report", "north", "--format", "json").stdout)
    assert document["scope"]["locations"] == ["1"] and document["summary"]["practitioners"] == 3
    html = ptsync(tmp_path, "report", "north", "--format", "html").stdout
    assert 'id="scope"' in html and "at North Physio · 4 elsewhere" in html


def test_org_locations_on_a_nookal_clinic_lists_its_one_location_and_says_so_when_there_are_none(tmp_path):
    """Given the Nookal emulator's single clinic (every practitioner and appointment at location
    1) / When the admin lists its locations / Then it is one row with its active practitioners;
    and a PMS that lists no location at all says so in one line instead of an empty table."""
    from connectors.emulators.nookal import NookalEmulator
    from connectors.emulators.nookal import generate_clinic as nookal_clinic

    clinic = nookal_clinic(patients=40, practitioners=13, appointments=300, today=date.today())
    with NookalEmulator(clinic, "nookal-key") as emulator:
        added = ptsync(
            tmp_path, "org", "add", "clinic-n", "--pms", "nookal", "--pms-url", emulator.base_url,
            "--pms-key", "nookal-key", "--ptdirect", "manual",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        listed = ptsync(tmp_path, "org", "locations", "clinic-n", "--format", "json")
        assert [(row["id"], row["name"], row["practitioners"]) for row in json.loads(listed.stdout)] == [
            ("1", "Main clinic", 12)
        ]
        clinic["locations"] = []
        empty = ptsync(tmp_path, "org", "locations", "clinic-n")
    assert empty.returncode == 0 and empty.stdout == ""
    assert empty.stderr.strip() == (
        "clinic-n's PMS lists no locations: every practitioner it returns is read "
        "(--locations needs locations to choose from)"
    )
