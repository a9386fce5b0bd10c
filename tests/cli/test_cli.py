"""The `ptsync` console script, run as a user would: a fresh folder, the embedded default."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.clinic_files import csv_org_add_args

PTSYNC = str(Path(sys.executable).parent / "ptsync")
ALL_KINDS = {
    "duplicate_patient_risk",
    "missing_new_user",
    "pending_invitation",
    "no_physitrack_licence",
    "departed_practitioner",
    "unlinked_user",
    "master_account_issue",
    "ambiguous_match",
    "existing_duplicate_patients",
}


def data_dir(cwd: Path) -> Path:
    """Where the embedded database of a test's user lives (the user data directory)."""
    return cwd / ".data" / "ptsync"


def ptsync(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    clean["COLUMNS"] = "200"
    clean["XDG_DATA_HOME"] = str(cwd / ".data")  # each test is a user of its own
    clean.update(env or {})
    return subprocess.run([PTSYNC, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120)


def _add_clinic(tmp_path: Path, policy: str = "propose") -> subprocess.CompletedProcess:
    return ptsync(tmp_path, *csv_org_add_args(tmp_path, "clinic-a", "--policy", policy))


def test_demo_shows_every_finding_kind_and_a_second_run_shows_them_as_ongoing(tmp_path):
    # Given a fresh folder; When the demo runs twice
    first = ptsync(tmp_path, "demo")
    second = ptsync(tmp_path, "demo")
    # Then both succeed, the report covers every finding kind, and the second run's are ongoing
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    report = json.loads(ptsync(tmp_path, "report", "demo-clinic", "--format", "json").stdout)
    assert {f["kind"] for f in report["findings"]} == ALL_KINDS
    assert {f["state"] for f in report["findings"]} == {"ongoing"}
    assert "new" in first.stdout and "ongoing" in second.stdout


def test_given_a_demo_whose_folder_was_deleted_when_the_demo_runs_again_then_it_writes_the_clinic_again(
    tmp_path,
):
    # Given a demo that ran once, and its folder deleted since (a person tidying up)
    assert ptsync(tmp_path, "demo").returncode == 0
    shutil.rmtree(tmp_path / "ptsync-demo")
    # When the demo runs again
    again = ptsync(tmp_path, "demo")
    # Then it writes the clinic again, says so, and succeeds
    assert again.returncode == 0, again.stderr
    assert "wrote the demo clinic's PMS export and PT Direct snapshot to" in again.stderr
    assert (tmp_path / "ptsync-demo" / "practitioners.csv").exists()


def test_org_add_then_sync_wait_then_report_json_on_the_embedded_default(tmp_path):
    assert _add_clinic(tmp_path).returncode == 0
    synced = ptsync(tmp_path, "sync", "clinic-a", "--wait")
    assert synced.returncode == 0, synced.stderr
    assert "succeeded" in synced.stderr
    result = ptsync(tmp_path, "report", "clinic-a", "--format", "json")
    report = json.loads(result.stdout)  # stdout holds only the document
    assert report["schema"] == "ptsync.report/1"
    assert report["run"]["status"] == "succeeded"
    assert report["summary"]["findings"] == {"duplicate_patient_risk": 1, "missing_new_user": 1}
    assert report["proposal"]["operations"][0]["op"] == "add_sharing_member"
    assert (data_dir(tmp_path) / "ptsync.db").exists()
    assert stat.S_IMODE((data_dir(tmp_path) / "ptsync.key").stat().st_mode) == 0o600


def test_report_as_csv_and_html_to_a_file(tmp_path):
    _add_clinic(tmp_path)
    ptsync(tmp_path, "sync", "clinic-a", "--wait")
    csv_text = ptsync(tmp_path, "report", "clinic-a", "--format", "csv").stdout
    assert csv_text.splitlines()[0] == "state,kind,severity,fingerprint,practitioners,emails,message"
    assert len(csv_text.splitlines()) == 3
    written = ptsync(tmp_path, "report", "clinic-a", "--format", "html", "--output", "report.html")
    assert written.returncode == 0 and written.stdout == ""
    html = (tmp_path / "report.html").read_text()
    assert "<h1>Sharing report for clinic-a</h1>" in html and "Cara Lim" in html


def test_a_bad_csv_exits_non_zero_names_the_file_and_line_and_stores_no_report(tmp_path):
    _add_clinic(tmp_path)
    with (tmp_path / "pms" / "practitioners.csv").open("a") as handle:
        handle.write("104,Dan Roe,dan@clinic.example,sometimes,\n")
    synced = ptsync(tmp_path, "sync", "clinic-a", "--wait")
    assert synced.returncode == 1
    assert (
        "practitioners.csv, line 5, field 'active': expected true or false, got 'sometimes'" in synced.stderr
    )
    assert "Traceback" not in synced.stderr
    report = ptsync(tmp_path, "report", "clinic-a")
    assert report.returncode == 1 and "no report for clinic-a yet: the last run failed" in report.stderr
    assert ptsync(tmp_path, "proposals", "clinic-a").stderr.strip() == "no proposals for clinic-a"


def test_an_unknown_organisation_is_one_clear_line_and_a_non_zero_exit(tmp_path):
    for args in (("sync", "nope", "--wait"), ("report", "nope"), ("proposals", "nope")):
        result = ptsync(tmp_path, *args)
        assert result.returncode == 1
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line == "error: unknown organisation 'nope' (add it with: ptsync org add nope ...)"
        assert "Traceback" not in result.stderr


def test_org_add_rejects_bad_settings_without_storing_anything(tmp_path):
    missing = ptsync(
        tmp_path,
        "org",
        "add",
        "clinic-a",
        "--pms",
        "csv",
        "--pms-path",
        "nowhere",
        "--ptdirect",
        "file",
        "--ptdirect-path",
        "nothing.json",
    )
    assert missing.returncode == 1 and "--pms-path nowhere: not a folder" in missing.stderr
    unavailable = ptsync(tmp_path, "org", "add", "clinic-a", "--pms", "fhir", "--ptdirect", "file")
    assert "--pms fhir needs --pms-url" in unavailable.stderr
    assert "clinic-a" not in ptsync(tmp_path, "org", "list").stdout


def test_approve_applies_the_proposal_and_the_next_sync_has_nothing_left_to_do(tmp_path):
    _add_clinic(tmp_path)
    ptsync(tmp_path, "sync", "clinic-a", "--wait")
    proposal_id = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)["proposal"][
        "id"
    ]
    approved = ptsync(tmp_path, "approve", proposal_id, "--by", "ana")
    assert approved.returncode == 0, approved.stderr
    assert "applied" in approved.stdout
    ptsync(tmp_path, "sync", "clinic-a", "--wait")
    report = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    assert report["findings"] == [] and report["proposal"] is None
    assert len(report["resolved"]) == 2


def test_a_database_other_than_sqlite_requires_a_secret_key(tmp_path, postgres_url):
    result = ptsync(tmp_path, "org", "list", env={"PTSYNC_DATABASE_URL": postgres_url})
    assert result.returncode == 1
    assert "schema is not up to date" in result.stderr or "PTSYNC_SECRET_KEY is required" in result.stderr
    migrated = ptsync(tmp_path, "migrate", env={"PTSYNC_DATABASE_URL": postgres_url})
    assert migrated.returncode == 0, migrated.stderr
    result = ptsync(tmp_path, "org", "list", env={"PTSYNC_DATABASE_URL": postgres_url})
    assert result.stderr.strip() == "error: PTSYNC_SECRET_KEY is required when the database is not SQLite"


def test_ptsync_worker_prefetches_one_sync_per_thread_and_half_as_many_again(monkeypatch, tmp_path):
    """Given `ptsync worker --threads 2` (and 4) on a Redis broker / When it starts dramatiq /
    Then dramatiq is told to prefetch 3 (and 6) queued messages and to look at Redis at least
    every 100 ms, and the operator's own `dramatiq_queue_prefetch` and `dramatiq_worker_timeout`
    win when set."""
    from typer.testing import CliRunner

    from worker import cli

    started: list[tuple[str, list[str], str | None, str | None]] = []
    monkeypatch.setenv("PTSYNC_BROKER_URL", "redis://127.0.0.1:6379/15")
    monkeypatch.setattr(
        cli.os,
        "execv",
        lambda path, argv: started.append(
            (path, argv, os.environ.get("dramatiq_queue_prefetch"), os.environ.get("dramatiq_worker_timeout"))  # noqa: SIM112
        ),
    )
    monkeypatch.setattr("worker.worker_ops.prepare_worker_environment", lambda port: [])
    monkeypatch.setattr(cli, "_runtime", lambda: SimpleNamespace(db=SimpleNamespace(dispose=lambda: None)))
    from worker import settings as settings_module

    settings_module.get_settings.cache_clear()
    for threads, operator in (("2", None), ("4", None), ("4", "1")):
        monkeypatch.delenv("dramatiq_queue_prefetch", raising=False)
        monkeypatch.delenv("dramatiq_worker_timeout", raising=False)
        if operator:
            monkeypatch.setenv("dramatiq_queue_prefetch", operator)
            monkeypatch.setenv("dramatiq_worker_timeout", "500")
        result = CliRunner().invoke(cli.app, ["worker", "--threads", threads])
        assert result.exit_code == 0, result.output
    settings_module.get_settings.cache_clear()
    assert [(prefetch, idle_poll) for _, _, prefetch, idle_poll in started] == [
        ("3", "100"),
        ("6", "100"),
        ("1", "500"),
    ]
    assert started[0][1][-2:] == ["--threads", "2"]
