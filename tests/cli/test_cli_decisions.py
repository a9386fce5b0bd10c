"""The decisions of the hard cases, as a user meets them on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import ptsync
from tests.clinic_files import csv_org_add_args


def _proposal_id(folder: Path) -> str:
    report = json.loads(ptsync(folder, "report", "clinic-a", "--format", "json").stdout)
    return report["proposal"]["id"]


def test_approving_a_proposal_that_a_newer_run_closed_exits_non_zero_in_one_line(tmp_path):
    # Given a proposal to add Cara, and an admin who added her in PT Direct before approving
    assert ptsync(tmp_path, *csv_org_add_args(tmp_path)).returncode == 0
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    stale = _proposal_id(tmp_path)
    snapshot = tmp_path / "ptdirect.json"
    document = json.loads(snapshot.read_text())
    document["practitioner_sharing"]["members"].append(
        {"email": "cara@clinic.example", "share_content": True, "share_patients": True}
    )
    snapshot.write_text(json.dumps(document))
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    # When the old proposal is approved
    approved = ptsync(tmp_path, "approve", stale)
    # Then the command fails with one line that says why, and nothing is applied
    assert approved.returncode == 1
    assert approved.stderr.count("\n") == 1
    assert f"proposal {stale} is superseded" in approved.stderr
    assert "Traceback" not in approved.stderr


def test_apply_safe_shows_what_it_fixed_and_the_sync_line_counts_it(tmp_path):
    # Given an apply-safe organisation where Cara should be added
    assert ptsync(tmp_path, *csv_org_add_args(tmp_path, "clinic-a", "--policy", "apply-safe")).returncode == 0
    # When it syncs
    synced = ptsync(tmp_path, "sync", "clinic-a", "--wait")
    # Then the line says how many operations were applied, and the report shows the findings as fixed
    assert synced.returncode == 0, synced.stderr
    assert "(1 applied automatically)" in synced.stderr
    report = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    assert {f["state"] for f in report["findings"]} == {"fixed"}


def test_org_add_takes_the_reconciliation_settings_and_refuses_a_bad_time_zone(tmp_path):
    # Given the settings a careful admin sets on day one
    args = csv_org_add_args(
        tmp_path,
        "clinic-a",
        "--sharing-scope",
        "everyone",
        "--master-recipients",
        "manual",
        "--lookback-days",
        "365",
        "--removal-threshold",
        "20",
        "--timezone",
        "Australia/Sydney",
    )
    # When the organisation is added, and another with a misspelt zone
    added = ptsync(tmp_path, *args)
    bad = ptsync(tmp_path, *csv_org_add_args(tmp_path / "b", "clinic-b", "--timezone", "Australia/Sidney"))
    # Then the first is stored and syncs under them; the second is one line and nothing is added
    assert added.returncode == 0, added.stderr
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    report = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    assert report["summary"]["findings"].get("missing_new_user")  # everyone must share
    assert bad.returncode == 1
    assert "--timezone 'Australia/Sidney' is not an IANA time zone name" in bad.stderr
    assert "clinic-b" not in ptsync(tmp_path, "org", "list").stdout


def test_a_sync_that_lost_most_practitioners_warns_and_accept_drop_confirms_it(tmp_path):
    # Given a synced clinic whose next export lists only Ana
    assert (
        ptsync(
            tmp_path, *csv_org_add_args(tmp_path, "clinic-a", "--removal-threshold-people", "1")
        ).returncode
        == 0
    )
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    pms = tmp_path / "pms"
    (pms / "practitioners.csv").write_text(
        "id,name,email,active,updated_at\n101,Ana Silva,ana@clinic.example,true,\n"
    )
    (pms / "patient_access.csv").write_text("practitioner_id,patient_id,source,last_seen\n")
    # When it syncs, then syncs again accepting the drop
    suspicious = ptsync(tmp_path, "sync", "clinic-a", "--wait")
    accepted = ptsync(tmp_path, "sync", "clinic-a", "--wait", "--accept-drop")
    # Then the first warns and proposes no removal; the second treats Ben as departed
    assert suspicious.returncode == 0 and "--accept-drop" in suspicious.stderr
    assert accepted.returncode == 0 and "--accept-drop" not in accepted.stderr
    report = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    assert "departed_practitioner" in report["summary"]["findings"]
