"""The audit trail (complete, shown by `ptsync audit` and its page) and the retention policy."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tests.clinic_files import write_clinic
from tests.ops.conftest import SLUG, sync_and_settle
from worker.cli import app
from worker.clock import utcnow
from worker.services import audit
from worker.services import proposals as proposal_service
from worker.services.credentials import create_admin_token
from worker.services.retention import prune
from worker.store.models import AuditEntry, Delivery, FindingRecord, Proposal, Run

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _count(runtime, model, *where) -> int:
    with runtime.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def _callee(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def test_every_audited_action_in_the_code_is_documented():
    # Given every action name the code writes to the audit log (the 4th argument of each call)
    written = set()
    for path in (ROOT / "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            is_audit = isinstance(node, ast.Call) and _callee(node.func) in (
                "repo.audit",
                "audit.record",
                "audit",
            )
            if is_audit and len(node.args) > 3 and isinstance(node.args[3], ast.Constant):
                written.add(node.args[3].value)
    # Then each is in the documented list, and the README names every listed action
    assert written and written <= set(audit.ACTIONS), written - set(audit.ACTIONS)
    readme = (ROOT / "README.md").read_text()
    assert [action for action in audit.ACTIONS if f"`{action}`" not in readme] == []


def test_audit_shows_who_did_what_and_from_where_as_table_json_and_csv(runtime, clinic, worker_thread):
    # Given a sync, an approval from the CLI and a token created by a person
    sync_and_settle(worker_thread)
    with runtime.db.transaction() as session:
        proposal_id = session.scalar(select(Proposal.id))
    assert runner.invoke(app, ["approve", proposal_id, "--by", "dana"]).exit_code == 0
    create_admin_token(runtime, SLUG, "front desk", actor=audit.cli_actor("erin"))
    assert (
        runner.invoke(app, ["notify", "add", SLUG, "email:admin@clinic.example", "--by", "erin"]).exit_code
        == 0
    )
    # When the audit trail is printed as JSON
    result = runner.invoke(app, ["audit", SLUG, "--format", "json"])
    rows = json.loads(result.stdout)
    # Then it holds each action with who, from where and when, newest first
    actions = [row["action"] for row in rows]
    assert {"sync_requested", "sync_succeeded", "proposal_created", "proposal_approved"} <= set(actions)
    assert {"admin_token_created", "notification_channel_added"} <= set(actions)
    approved = next(row for row in rows if row["action"] == "proposal_approved")
    assert approved["actor"] == "cli:dana" and approved["origin"] == "command line"
    assert approved["detail"] == {"proposal_id": proposal_id}
    assert [row["at"] for row in rows] == sorted((row["at"] for row in rows), reverse=True)
    added = next(row for row in rows if row["action"] == "notification_channel_added")
    assert added["detail"]["target"] == "email:admin@clinic.example"
    # and CSV and the table say the same
    table = list(csv.DictReader(io.StringIO(runner.invoke(app, ["audit", SLUG, "--format", "csv"]).stdout)))
    assert [row["action"] for row in table] == actions
    assert "cli:dana" in runner.invoke(app, ["audit", SLUG], env={"COLUMNS": "200"}).stdout
    # and --since filters by date
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert (
        json.loads(runner.invoke(app, ["audit", SLUG, "--since", tomorrow, "--format", "json"]).stdout) == []
    )


def test_an_api_approval_names_the_token_and_its_label(runtime, clinic, worker_thread):
    from fastapi.testclient import TestClient

    from worker.web import create_app

    # Given a proposal and an API token labelled "ci bot"
    sync_and_settle(worker_thread)
    token = create_admin_token(runtime, SLUG, "ci bot")
    with runtime.db.transaction() as session:
        proposal_id = session.scalar(select(Proposal.id))
    # When it is rejected through the API
    with TestClient(create_app(background=False)) as client:
        response = client.post(
            f"/api/v1/orgs/{SLUG}/proposals/{proposal_id}/reject",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    # Then the audit entry names the token and its label
    [row] = [r for r in audit.entries(runtime, SLUG) if r.action == "proposal_rejected"]
    assert re.fullmatch(r'api:token \d+ "ci bot"', row.actor) and row.origin == "API token"


def _age(runtime, days: int) -> None:
    """Make every run, finding and delivery `days` old (the clock is not faked: the rows are)."""
    with runtime.db.transaction() as session:
        for run in session.scalars(select(Run)):
            run.requested_at -= timedelta(days=days)
            run.finished_at -= timedelta(days=days)
        session.execute(update(Delivery).values(received_at=utcnow() - timedelta(days=days)))


def test_prune_keeps_the_latest_report_what_proposals_refer_to_and_the_audit_log(
    runtime, clinic, worker_thread
):
    # Given three runs 200 days old: the first with a proposal, then (Cara added to sharing) none
    sync_and_settle(worker_thread)
    write_clinic(clinic.parent, cara_in_sharing=True)
    for _ in range(2):
        sync_and_settle(worker_thread)
    with runtime.db.transaction() as session:
        session.execute(update(Proposal).values(status="rejected"))
    _age(runtime, 200)
    runs, audits = _count(runtime, Run), _count(runtime, AuditEntry)
    with runtime.db.transaction() as session:
        kept_for_proposal = set(session.scalars(select(Proposal.run_id)))
        latest = session.scalar(select(Run.id).order_by(Run.finished_at.desc(), Run.id.desc()).limit(1))
    # When a dry run looks, nothing changes and it says what would go
    dry = runner.invoke(app, ["prune", "--dry-run"])
    assert dry.exit_code == 0 and "would delete" in dry.stdout
    assert _count(runtime, Run) == runs
    # When the retention job runs
    result = prune(runtime, actor="clock")
    # Then only runs neither latest nor referred to by a proposal went, with their finding records
    remaining = set(_runs(runtime))
    assert remaining == kept_for_proposal | {latest}
    assert result.runs == runs - len(remaining) == 1
    assert _count(runtime, FindingRecord, FindingRecord.run_id.not_in(remaining)) == 0
    # and the audit log only grew (one entry saying what was pruned)
    assert _count(runtime, AuditEntry) == audits + 1
    # and a second pass finds nothing more
    assert prune(runtime).runs == 0


def test_prune_keeps_recent_runs(runtime, clinic, worker_thread):
    sync_and_settle(worker_thread)
    sync_and_settle(worker_thread)
    _age(runtime, 10)
    assert prune(runtime, days=180).runs == 0
    assert prune(runtime, days=5).runs == 0  # both runs proposed: their proposals keep them


def _runs(runtime) -> list[str]:
    with runtime.db.transaction() as session:
        return list(session.scalars(select(Run.id)))


def test_approving_from_the_cli_records_the_person_and_the_host(runtime, clinic, worker_thread):
    sync_and_settle(worker_thread)
    with runtime.db.transaction() as session:
        proposal_id = session.scalar(select(Proposal.id))
    proposal_service.reject(runtime, proposal_id, audit.cli_actor())
    [row] = [r for r in audit.entries(runtime, SLUG) if r.action == "proposal_rejected"]
    assert re.fullmatch(r"cli:[^@]+@.+", row.actor)
