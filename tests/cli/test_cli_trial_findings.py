"""Found by a new-user trial: what an admin mistypes or meets first, each a one-line answer."""

from __future__ import annotations

import json
import re
import socket
from datetime import date

from connectors.emulators.halaxy import HalaxyEmulator
from connectors.emulators.halaxy import generate_clinic as halaxy_clinic
from tests.cli.test_cli import ptsync
from tests.clinic_files import write_clinic


def _manual_clinic(tmp_path):
    pms, snapshot = write_clinic(tmp_path / "c")
    added = ptsync(tmp_path, "org", "add", "clinic-m", "--pms", "csv", "--pms-path", str(pms))
    assert added.returncode == 0, added.stderr
    return snapshot


def test_ptdirect_import_of_deeply_nested_json_is_one_line_not_a_traceback(tmp_path):
    # Given a manual clinic; When an admin imports a file nested too deeply (a wrong or hostile file)
    _manual_clinic(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    result = ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(deep))
    # Then one line names the file, as `read_json_file` does for snapshot files (README: "Errors
    # are one line on stderr ... never a traceback")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-400:]
    assert str(deep) in result.stderr


def test_ptdirect_import_refuses_a_file_over_PTSYNC_MAX_SNAPSHOT_MB(tmp_path):
    # Given a manual clinic and a valid PT Direct document of about 2 MB
    _manual_clinic(tmp_path)
    users = [
        {"email": f"u{i}@x.example", "name": f"U {i}", "status": "confirmed", "practitioner_access": True}
        for i in range(20_000)
    ]
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"schema": "ptsync.ptdirect/1", "users": users}))
    assert big.stat().st_size > 1024 * 1024
    # When it is imported with a 1 MB limit
    result = ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(big), env={"PTSYNC_MAX_SNAPSHOT_MB": "1"})
    # Then it is refused in one line, as README's Configuration table says, and nothing is recorded
    assert result.returncode == 1, result.stderr[-300:]
    assert "1 MB limit" in result.stderr
    assert "recorded version" not in result.stderr


def test_the_halaxy_client_secret_can_come_from_the_environment(tmp_path):
    # README: "No secret has to be typed on the command line: every key option ... also takes
    # `-` ... or `env:NAME`". Halaxy's secret is --pms-client-secret.
    clinic = halaxy_clinic(patients=20, practitioners=4, appointments=40, today=date.today())
    with HalaxyEmulator(clinic, client_id="cid-1", client_secret="s3cret-from-env") as halaxy:
        added = ptsync(
            tmp_path,
            "org",
            "add",
            "clinic-h",
            "--pms",
            "halaxy",
            "--pms-url",
            halaxy.base_url,
            "--pms-client-id",
            "cid-1",
            "--pms-client-secret",
            "env:HALAXY_SECRET",
            env={"HALAXY_SECRET": "s3cret-from-env"},
        )
    assert added.returncode == 0, added.stderr


def test_ptdirect_import_is_audited_as_the_same_person_as_approve(tmp_path):
    # Given a shell where USER is not set but the login name is known (cron, containers, sudo -i)
    snapshot = _manual_clinic(tmp_path)
    env = {"USER": "", "LOGNAME": "alice"}
    # When the admin imports PT Direct's state
    assert ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(snapshot), env=env).returncode == 0
    # Then the audit names them as every other command line action does: cli:USER@HOST
    # (README, Audit trail), not `cli:` or `cli:unknown`
    rows = json.loads(ptsync(tmp_path, "audit", "clinic-m", "--format", "json").stdout)
    recorded = [row for row in rows if row["action"] == "ptdirect_state_recorded"]
    assert recorded and recorded[0]["actor"] == f"cli:alice@{socket.gethostname()}", recorded


def test_approving_a_rejected_proposal_says_it_was_rejected_not_replaced_by_a_sync(tmp_path):
    # Given a proposal that a person rejected (no sync ran since)
    from tests.clinic_files import csv_org_add_args

    assert ptsync(tmp_path, *csv_org_add_args(tmp_path, "clinic-a")).returncode == 0
    assert ptsync(tmp_path, "sync", "clinic-a", "--wait").returncode == 0
    report = json.loads(ptsync(tmp_path, "report", "clinic-a", "--format", "json").stdout)
    proposal = report["proposal"]["id"]
    assert ptsync(tmp_path, "reject", proposal).returncode == 0
    # When someone approves it
    result = ptsync(tmp_path, "approve", proposal)
    # Then it is refused in one line that gives the real reason: it was rejected (by whom), not
    # "a newer sync replaced it", which sends the admin looking for a successor that does not exist
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "rejected" in line and "a newer sync replaced it" not in line, line


def test_ptdirect_edit_with_an_editor_that_does_not_exist_is_one_line(tmp_path):
    # Given a manual clinic; When $EDITOR names a program that is not installed (a typo, a
    # laptop's EDITOR=code on a server)
    _manual_clinic(tmp_path)
    editor = {"EDITOR": str(tmp_path / "no-such-editor")}
    result = ptsync(tmp_path, "ptdirect", "edit", "clinic-m", env=editor)
    # Then one line says so, no traceback, and nothing is recorded
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-300:]
    assert "no-such-editor" in result.stderr.strip().splitlines()[-1]
    assert "recorded version" not in result.stderr


def test_mark_applied_with_a_reason_but_no_step_is_refused_and_records_nothing(tmp_path):
    # Given a manual clinic with an open proposal
    snapshot = _manual_clinic(tmp_path)
    assert ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(snapshot)).returncode == 0
    assert ptsync(tmp_path, "sync", "clinic-m", "--wait").returncode == 0
    proposal = json.loads(ptsync(tmp_path, "report", "clinic-m", "--format", "json").stdout)["proposal"]["id"]
    # When the admin gives a reason but forgets --could-not (they meant: one step was not done)
    result = ptsync(tmp_path, "mark-applied", proposal, "--reason", "Cara has no PT Direct login yet")
    # Then it is refused in one line and nothing is recorded (today every step is recorded as
    # done and the reason is silently dropped)
    assert result.returncode == 1, result.stderr
    assert "--could-not" in result.stderr.strip().splitlines()[-1]
    history = ptsync(tmp_path, "ptdirect", "history", "clinic-m").stdout
    assert "checklist" not in history, history


def _web(tmp_path, *args: str, wait: float = 20.0):
    """`ptsync web ARGS` as a person runs it; ended after `wait` seconds if still serving."""
    import os
    import subprocess

    from tests.cli.test_cli import PTSYNC

    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env["XDG_DATA_HOME"] = str(tmp_path / ".data")
    pipe = subprocess.PIPE
    process = subprocess.Popen(
        [PTSYNC, "web", *args], cwd=tmp_path, env=env, stdout=pipe, stderr=pipe, text=True
    )
    try:
        out, err = process.communicate(timeout=wait)
        return process.returncode, out + err
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return None, out + err


def test_web_on_a_port_out_of_range_is_refused_instead_of_serving_elsewhere(tmp_path):
    # When an admin mistypes the port (99999); Then one line refuses it. Before the fix it printed
    # "serving on http://127.0.0.1:99999/" and listens on 34463 (99999 - 65536) instead.
    code, output = _web(tmp_path, "--port", "99999")
    assert code not in (None, 0), output
    assert "serving on http://127.0.0.1:99999/" not in output, output


def test_web_on_a_busy_port_is_one_error_line_and_never_claims_to_serve(tmp_path):
    # Given a port something else listens on
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # When ptsync web is started on it
        code, output = _web(tmp_path, "--port", str(port))
    # Then it exits non-zero with one `error:` line, and never says it is serving there
    assert code not in (None, 0), output
    assert f"serving on http://127.0.0.1:{port}/" not in output, output
    assert output.strip().splitlines()[-1].startswith("error:"), output


def test_proposals_shows_an_operation_already_approved_as_approved_not_as_needing_approval(tmp_path):
    # Given a manual clinic's proposal whose operations were approved (approvals carry over to
    # the proposals that replace it, so a listing must show them)
    snapshot = _manual_clinic(tmp_path)
    assert ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(snapshot)).returncode == 0
    assert ptsync(tmp_path, "sync", "clinic-m", "--wait").returncode == 0
    proposal = json.loads(ptsync(tmp_path, "report", "clinic-m", "--format", "json").stdout)["proposal"]["id"]
    assert ptsync(tmp_path, "approve", proposal).returncode == 0
    # When the admin lists the proposals
    listed = ptsync(tmp_path, "proposals", "clinic-m", env={"COLUMNS": "200"}).stdout
    # Then the approved operations read 'approved', and none is counted as still needing approval
    rows = [line for line in listed.splitlines() if "add_sharing_member" in line]
    assert rows and all("approved" in row for row in rows), listed
    [summary] = [line for line in listed.splitlines() if proposal[:8] in line and "approved" in line]
    assert " 0 " in summary, summary


def test_recording_a_big_pt_direct_state_lists_the_first_changes_and_counts_the_rest(tmp_path):
    # Given a manual clinic with a recorded PT Direct state, and a new document with 300 other
    # users (hundreds of changes against it)
    snapshot = _manual_clinic(tmp_path)
    assert ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(snapshot)).returncode == 0
    users = [
        {"email": f"u{i}@x.example", "name": f"U {i}", "status": "confirmed", "practitioner_access": True}
        for i in range(300)
    ]
    document = tmp_path / "pt.json"
    document.write_text(json.dumps({"schema": "ptsync.ptdirect/1", "users": users}))
    # When it is imported
    result = ptsync(tmp_path, "ptdirect", "import", "clinic-m", str(document))
    # Then the first 50 changes are listed and the rest counted, with where to see them all
    assert result.returncode == 0, result.stderr
    listed = [line for line in result.stderr.splitlines() if line.startswith("  ") and "..." not in line]
    assert len(listed) == 50, result.stderr[-500:]
    assert re.search(
        r"\.\.\. and [\d,]+ more \(all of them: `ptsync ptdirect history clinic-m`\)", result.stderr
    )
