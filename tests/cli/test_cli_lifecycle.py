"""The CLI as people use it: lifecycle commands, secrets off the command line, one-line errors."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from connectors.emulators.cliniko import ClinikoEmulator, generate_account
from tests.cli.test_cli import PTSYNC, data_dir, ptsync
from tests.clinic_files import csv_org_add_args, write_clinic

UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there


def test_version_and_the_first_run_saying_where_the_database_is_found_from_any_folder(tmp_path):
    # Given a new user; When they add an organisation in one folder
    first = tmp_path / "one"
    first.mkdir()
    added = ptsync(tmp_path, *csv_org_add_args(first, "clinic-a"))
    # Then the first run says where the database is, and the version is printed on request
    assert added.returncode == 0, added.stderr
    assert f"created ptsync's database at {data_dir(tmp_path) / 'ptsync.db'}" in added.stderr
    assert ptsync(tmp_path, "--version").stdout.strip() == "ptsync 0.1.0"
    # When they list organisations from another folder (as cron would)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"XDG_DATA_HOME": str(tmp_path / ".data")}
    listed = ptsync(elsewhere, "org", "list", env=env)
    # Then the same organisation is there, active, with its next scheduled sync
    assert "clinic-a" in listed.stdout and "active" in listed.stdout
    assert "created ptsync's database" not in listed.stderr


def test_keys_come_from_stdin_or_the_environment_and_org_show_never_prints_them(tmp_path):
    # Given a FHIR organisation whose token is read from stdin, and then changed from a variable
    write_clinic(tmp_path / "c")
    args = [
        "org",
        "add",
        "clinic-f",
        "--pms",
        "fhir",
        "--pms-url",
        "http://127.0.0.1:9/fhir",
        "--pms-key",
        "-",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(XDG_DATA_HOME=str(tmp_path / ".data"), COLUMNS="200", FHIR_TOKEN="token-from-env")
    added = subprocess.run(
        [PTSYNC, *args, "--no-test"],
        input="token-from-stdin\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    updated = subprocess.run(
        [
            PTSYNC,
            "org",
            "update",
            "clinic-f",
            "--pms-key",
            "env:FHIR_TOKEN",
            "--policy",
            "observe",
            "--no-test",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert updated.returncode == 0 and "updated clinic-f: pms_key, policy" in updated.stderr
    # When the organisation is shown as JSON
    shown = ptsync(tmp_path, "org", "show", "clinic-f", "--format", "json")
    document = json.loads(shown.stdout)
    # Then every setting is there, the key only as "set", and no secret anywhere
    assert document["settings"]["pms_key"] == "set" and document["settings"]["policy"] == "observe"
    assert document["last_run"] is None and document["paused"] is False
    assert "token-from" not in shown.stdout + shown.stderr + updated.stderr
    assert "token-from" not in (data_dir(tmp_path) / "ptsync.db").read_bytes().decode("latin-1")


def test_approve_with_a_file_pause_runs_and_remove_with_confirmation(tmp_path):
    # Given an organisation with a PT Direct snapshot file and one run
    ptsync(tmp_path, *csv_org_add_args(tmp_path, "clinic-a"))
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    proposal = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)["proposal"]["id"]
    # When its proposal is approved; Then it says the file was written and PT Direct was not touched
    approved = ptsync(tmp_path, "approve", proposal)
    assert "the changes were written to the snapshot file" in approved.stderr
    assert "PT Direct itself was not touched" in approved.stderr
    # When it is paused, a manual sync says so, and the run history still shows the run
    assert "clinic-a is paused" in ptsync(tmp_path, "org", "pause", "clinic-a").stderr
    paused = ptsync(tmp_path, "sync", "clinic-a")
    assert paused.returncode == 1 and "organisation clinic-a is paused" in paused.stderr
    assert "succeeded" in ptsync(tmp_path, "runs", "clinic-a").stdout
    # When it is removed without --yes and no terminal to ask on, nothing happens
    refused = ptsync(tmp_path, "org", "remove", "clinic-a")
    assert refused.returncode == 1 and "confirm with --yes" in refused.stderr
    # With --yes it is gone, with all its data
    removed = ptsync(tmp_path, "org", "remove", "clinic-a", "--yes")
    assert removed.returncode == 0 and "removed clinic-a and" in removed.stderr
    assert "proposals: 1" in removed.stderr and "runs: 1" in removed.stderr


def test_an_unreachable_pms_is_named_with_its_host_and_why_once_in_one_line_at_any_width(tmp_path):
    # Given a Cliniko URL where nothing listens, on a narrow terminal
    write_clinic(tmp_path / "c")
    args = ["org", "add", "clinic-c", "--pms", "cliniko", "--pms-key", "k-au1", "--pms-url", UNREACHABLE]
    # When the organisation is added (its connections are tested first)
    added = ptsync(tmp_path, *args, env={"COLUMNS": "40"})
    # Then one line says which connection, which host and why; nothing is stored, no traceback
    errors = [line for line in added.stderr.splitlines() if line.startswith("error:")]
    assert added.returncode == 1 and len(errors) == 1
    assert (
        "PMS (cliniko, http://127.0.0.1:9/v1): cliniko: GET /v1/practitioners failed: cannot reach 127.0.0.1:9: the connection was refused"
        in errors[0]
    )
    assert added.stderr.count("cannot reach") == 1 and "Traceback" not in added.stderr
    # And with --no-test it is stored (so nothing was stored before), and `org test` names the failing connection
    assert ptsync(tmp_path, *args, "--no-test").returncode == 0
    tested = ptsync(tmp_path, "org", "test", "clinic-c")
    assert (
        tested.returncode == 1
        and "FAILED  PMS (cliniko" in tested.stdout
        and "ok  PT Direct (manual)" in tested.stdout
    )


def test_a_url_without_its_api_path_gets_a_hint(tmp_path):
    # Given a running Cliniko, addressed without its /v1
    account = generate_account(
        patients=5, practitioners=2, appointments=5, today=__import__("datetime").date.today()
    )
    with ClinikoEmulator(account, "key") as cliniko:
        added = ptsync(
            tmp_path,
            "org",
            "add",
            "clinic-c",
            "--pms",
            "cliniko",
            "--pms-key",
            "key-au1",
            "--pms-url",
            cliniko.url,
        )
    assert added.returncode == 1
    assert f"the URL {cliniko.url} has no API path: Cliniko's ends in /v1" in added.stderr


def test_report_into_a_missing_folder_is_one_line(tmp_path):
    # When a report is written into a folder that does not exist; Then one line says so
    result = ptsync(tmp_path, "report", "clinic-a", "--format", "json", "--output", "nowhere/report.json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --output nowhere/report.json: the folder nowhere does not exist"
    )


def test_manual_mode_from_the_command_line_import_approve_checklist_mark_applied(tmp_path):
    # Given a clinic with --ptdirect manual whose PT Direct state is imported from a file
    pms, snapshot = write_clinic(tmp_path / "c")
    ptsync(tmp_path, "org", "add", "clinic-m", "--pms", "csv", "--pms-path", str(pms))
    imported = ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(snapshot))
    assert "recorded version 1" in imported.stderr
    # And `ptdirect edit` records what the editor saved, as a new version
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i \'s/"name": "Ben"/"name": "Benjamin"/\' "$1"\n')
    editor.chmod(0o755)
    edited = ptsync(tmp_path, "ptdirect", "edit", "clinic-m", env={"EDITOR": str(editor)})
    assert "recorded version 2" in edited.stderr and "name 'Ben' -> 'Benjamin'" in edited.stderr
    history = ptsync(tmp_path, "ptdirect", "history", "clinic-m").stdout
    assert "edit" in history and "import" in history and "Benjamin" in history
    ptsync(tmp_path, "sync", "clinic-m", "--wait")
    proposal = json.loads(ptsync(tmp_path, "report", "clinic-m", "--format", "json").stdout)["proposal"]["id"]
    # When the proposal is approved; Then it says PT Direct did not change
    approved = ptsync(tmp_path, "approve", proposal)
    assert "PT Direct has not been changed" in approved.stderr and "manual" in approved.stdout
    checklist = ptsync(tmp_path, "checklist", proposal).stdout
    assert "1. Open “Practitioner sharing”" in checklist and "cara@clinic.example" in checklist
    # When the admin marks it applied; Then the new state is recorded (convergence: tests/worker)
    marked = ptsync(tmp_path, "mark-applied", proposal)
    assert "recorded the new PT Direct state in ptsync" in marked.stderr
    # And a misspelt key in an imported file is refused with its path
    broken = json.loads(snapshot.read_text())
    broken["user"] = broken.pop("users")
    snapshot.write_text(json.dumps(broken))
    refused = ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(snapshot))
    assert refused.returncode == 1
    assert (
        "field 'user': unknown key 'user' (not part of ptsync.ptdirect/1; did you mean 'users'?)"
        in refused.stderr
    )


@pytest.mark.slow
def test_sync_wait_on_a_terminal_reports_the_first_failed_attempt_at_once_and_when_it_retries(tmp_path):
    # Given an organisation whose PMS cannot be reached
    write_clinic(tmp_path / "c")
    args = [
        "org",
        "add",
        "clinic-c",
        "--pms",
        "cliniko",
        "--pms-key",
        "k-au1",
        "--pms-url",
        UNREACHABLE,
        "--no-test",
    ]
    assert ptsync(tmp_path, *args).returncode == 0
    # When `sync --wait` runs on an interactive terminal
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(XDG_DATA_HOME=str(tmp_path / ".data"), COLUMNS="200", TERM="xterm")
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [PTSYNC, "sync", "clinic-c", "--wait", "--timeout", "6"],
        cwd=tmp_path,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    seen, first_output, first_seen = b"", None, None
    while process.poll() is None or select.select([primary], [], [], 0.2)[0]:
        if select.select([primary], [], [], 0.2)[0]:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            seen += chunk
            first_output = first_output or time.monotonic()
            if first_seen is None and b"attempt 1 of 6 failed" in seen:
                first_seen = time.monotonic() - first_output
    process.wait(timeout=30)
    os.close(primary)
    text = seen.decode(errors="replace")
    # Then the first failure is said at once (seconds after waiting began, not after the retries),
    # with the host, why, and when the worker tries again
    assert first_seen is not None and first_seen < 5, text
    assert "cannot reach 127.0.0.1:9: the connection was refused" in text
    assert "the worker tries again in 2-4 s" in text
    assert text.count("attempt 1 of 6 failed") == 1 and "Traceback" not in text
    assert sys.platform != "win32"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "PTSYNC_RUN_LEASE_SECONDS",
            "1",
            "PTSYNC_RUN_LEASE_SECONDS='1': should be greater than or equal to 2",
        ),
        ("PTSYNC_RUN_LEASE_SECONDS", "soon", "PTSYNC_RUN_LEASE_SECONDS='soon': should be a valid integer"),
        ("PTSYNC_SMTP_SECURITY", "tls", "PTSYNC_SMTP_SECURITY='tls': should be one of starttls, ssl, none"),
        ("PTSYNC_LOG_LEVEL", "LOUD", "PTSYNC_LOG_LEVEL='LOUD': should be one of DEBUG, INFO, WARNING, ERROR"),
        ("PTSYNC_DATABASE_URL", "ptsync.db", "PTSYNC_DATABASE_URL: should be a PostgreSQL or SQLite URL"),
        ("PTSYNC_BROKER_URL", "localhost:6379", "PTSYNC_BROKER_URL: should be a Redis URL"),
        (
            "PTSYNC_CONTACT_EMAIL",
            "ops@clinic.example\r\nX-Injected: 1",
            "PTSYNC_CONTACT_EMAIL='ops@clinic.example\\r\\nX-Injected: 1': should be an email address on one line",
        ),
        (
            "PTSYNC_SMTP_FROM",
            "a@clinic.example\nBcc: b@else.example",
            "PTSYNC_SMTP_FROM='a@clinic.example\\nBcc",
        ),
        (
            "PTSYNC_DATABASE_URL",
            "mysql://root@db/ptsync",
            "PTSYNC_DATABASE_URL: should be a PostgreSQL or SQLite URL",
        ),
        ("PTSYNC_MAX_EXPORT_MB", "2GB", "PTSYNC_MAX_EXPORT_MB='2GB': should be a valid integer"),
        (
            "PTSYNC_PUBLIC_URL",
            "javascript:alert(1)",
            "PTSYNC_PUBLIC_URL: should be the http:// or https:// address",
        ),
    ],
)
@pytest.mark.parametrize("command", [["org", "list"], ["worker"], ["web"]])
def test_given_a_malformed_setting_when_any_command_starts_then_one_line_names_the_variable_and_nothing_is_created(
    tmp_path, variable, value, says, command
):
    # Given an operator's environment with one malformed PTSYNC_ variable
    # When a command starts (one that lists, or a long-running process)
    started = ptsync(tmp_path, *command, env={variable: value})
    # Then it exits 1 with one line naming the variable, its value and what it should be
    lines = started.stderr.strip().splitlines()
    assert started.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("error: configuration: ")
    assert says in started.stderr and "Traceback" not in started.stderr
    # And nothing was created: no database, no key file
    assert not data_dir(tmp_path).exists() or not any(data_dir(tmp_path).iterdir())


def test_given_a_malformed_setting_whose_name_says_secret_when_it_is_reported_then_its_value_is_not_echoed():
    # Given a validation error on a variable named like a secret (a password, a key, a URL)
    from pydantic import BaseModel, Field, ValidationError

    from worker.settings import settings_problem

    class Secrets(BaseModel):
        smtp_password: str = Field(min_length=50)
        database_url: str = Field(pattern="^postgresql")

    # When ptsync words the problem
    with pytest.raises(ValidationError) as error:
        Secrets(smtp_password="hunter2", database_url="mysql://admin:hunter2@db/ptsync")
    said = settings_problem(error.value)
    # Then each variable is named, in one line, without its value
    assert "PTSYNC_SMTP_PASSWORD:" in said and "PTSYNC_DATABASE_URL:" in said
    assert "hunter2" not in said and "\n" not in said


def test_given_a_malformed_secret_key_when_a_command_starts_then_it_says_so_in_one_line_before_creating_the_database(
    tmp_path,
):
    # Given an operator's PTSYNC_SECRET_KEY that is not a Fernet key, and no database yet
    # When a command that needs the database starts
    started = ptsync(tmp_path, "org", "list", env={"PTSYNC_SECRET_KEY": "not-a-fernet-key"})
    # Then one line says the key is wrong (never what it is), and no database was created
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        "error: PTSYNC_SECRET_KEY is not a valid Fernet key (or comma-separated list of keys)"
    ]
    assert not (data_dir(tmp_path) / "ptsync.db").exists()


def test_given_a_database_that_exists_when_org_list_starts_with_a_malformed_secret_key_then_it_is_refused_too(
    tmp_path,
):
    # Given a database that exists (org list then reads it through its quick, driver-only path)
    assert ptsync(tmp_path, "org", "list").returncode == 0
    # When org list starts with a PTSYNC_SECRET_KEY that is not a Fernet key
    started = ptsync(tmp_path, "org", "list", env={"PTSYNC_SECRET_KEY": "not-a-fernet-key"})
    # Then it is refused in the same one line as every other command
    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == (
        "error: PTSYNC_SECRET_KEY is not a valid Fernet key (or comma-separated list of keys)"
    )


def test_given_a_sqlite_database_in_a_folder_that_cannot_be_made_when_a_command_starts_then_one_line_says_why(
    tmp_path,
):
    # Given a PTSYNC_DATABASE_URL whose folder sits under a file (it can never be created)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    url = f"sqlite:///{blocker}/ptsync.db"
    # When a command starts
    started = ptsync(tmp_path, "org", "list", env={"PTSYNC_DATABASE_URL": url})
    # Then one line names the database file and why it cannot be made
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        f"error: cannot create the SQLite database {blocker}/ptsync.db: {blocker} is a file, not a folder"
    ]


def test_given_a_log_level_logging_knows_by_another_name_when_a_command_starts_then_it_runs(tmp_path):
    # Given PTSYNC_LOG_LEVEL set to a level `logging` takes but ptsync's message does not list
    # When a command starts
    listed = ptsync(tmp_path, "org", "list", env={"PTSYNC_LOG_LEVEL": "warn"})
    # Then it runs as before the level was checked
    assert listed.returncode == 0, listed.stderr
