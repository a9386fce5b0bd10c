"""The audit trail: one helper to write an entry, one to read them, and the list of actions.

Every action that changes what ptsync or PT Direct does is written in the same transaction as
the change, with who did it and from where. `actor` is `<origin>:<who>`:

- `cli:USER@HOST` (or `cli:NAME` given with `--by`), `cli` for commands that do not say who;
- `api:token N "LABEL"` (an admin API token), `web:token N "LABEL"` (a page session);
- `worker`, `clock`, or a webhook source (`physitrack`, `fhir`, `generic`, `schedule`, `api`).

Entries are never pruned by the retention job; they go only with their organisation.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import socket
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.clock import iso, utcnow
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import AdminToken, AuditEntry

# The documented list (README "Audit trail"). A test checks every action written anywhere in
# the code is listed here, so a new action cannot go undocumented.
ACTIONS: dict[str, str] = {
    "organisation_added": "an organisation and its connections were added",
    "organisation_updated": "an organisation's settings or connections were changed",
    "organisation_paused": "scheduled syncs of an organisation were paused",
    "organisation_resumed": "scheduled syncs of an organisation were resumed",
    "organisation_removed": "an organisation was removed (its audit entries go with it)",
    "physitrack_key_set": "a practitioner's Physitrack API v2 key was stored or replaced",
    "admin_token_created": "an admin token was created",
    "admin_token_revoked": "an admin token was revoked",
    "webhook_credentials_rotated": "the webhook URLs and signing secret were replaced",
    "ptdirect_state_recorded": "a PT Direct state was entered by hand (manual PT Direct)",
    "sync_requested": "a sync was queued (by a person, a webhook or the full sync's schedule)",
    "sync_succeeded": "a sync finished and stored its report",
    "sync_failed": "a sync failed",
    "proposal_created": "a sync proposed changes",
    "proposal_approved": "a proposal was approved (and sent to be applied)",
    "proposal_rejected": "a proposal was rejected",
    "transfer_confirmed": "a person confirmed a departed practitioner's patients were transferred",
    "pms_drop_accepted": "a person confirmed that practitioners missing from the PMS really left",
    "proposal_steps_recorded": "a person recorded checklist steps as done or not doable in PT Direct",
    "logged_in": "a person logged in to the organisation's pages with an admin token",
    "logged_out": "a person logged out (the session ends on the server)",
    "secrets_reencrypted": "stored secrets were re-encrypted with the newest key (`ptsync rotate-secrets`)",
    "operation_applied": "one change was made in PT Direct",
    "proposal_applied": "every change of a proposal was made",
    "proposal_applied_by_hand": "a person marked a proposal as done by hand in PT Direct",
    "proposal_verified": "a later sync confirmed an applied proposal is in effect",
    "proposal_reopened": "a later sync found an applied proposal not in effect",
    "proposal_superseded": "PT Direct changed since planning, so the proposal was replaced",
    "proposal_failed": "applying a proposal failed",
    "notification_channel_added": "a notification channel was added",
    "notification_channel_removed": "a notification channel was removed",
    "notification_test_sent": "a test message was sent through the notification channels",
    "retention_pruned": "old runs, reports, findings and deliveries were deleted",
}

ORIGINS = {
    "cli": "command line",
    "api": "API token",
    "web": "page session",
    "worker": "worker",
    "clock": "clock",
}


def record(session: Session, org_id: int | None, actor: str, action: str, **detail: Any) -> None:
    """Write one audit entry in the caller's transaction. `action` must be in ACTIONS."""
    if action not in ACTIONS:
        raise ValueError(f"undocumented audit action {action!r}: add it to worker.services.audit.ACTIONS")
    repo.audit(session, org_id, actor, action, utcnow(), **detail)


def cli_actor(by: str = "") -> str:
    """The person at the terminal: `--by NAME` when given, else the login user and host."""
    if by:
        return by if by.startswith("cli:") else f"cli:{by}"
    try:
        user = getpass.getuser()
    except Exception:  # no login name in a container
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def token_actor(session: Session, origin: str, token_id: int) -> str:
    """`api:token 3 "ci bot"` or `web:token 3 "front desk"`: which token, with its label."""
    token = session.get(AdminToken, token_id)
    label = f' "{token.label}"' if token is not None else ""
    return f"{origin}:token {token_id}{label}"


def origin_of(actor: str) -> str:
    prefix = actor.split(":", 1)[0]
    return ORIGINS.get(prefix, "webhook" if prefix in ("physitrack", "fhir", "generic") else prefix)


@dataclass(frozen=True)
class AuditRow:
    at: str
    action: str
    actor: str
    origin: str
    detail: dict[str, Any]

    def summary(self) -> str:
        return ", ".join(f"{key}={_short(value)}" for key, value in sorted(self.detail.items()))


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def entries(runtime: Runtime, slug: str, since: datetime | None = None, limit: int = 1000) -> list[AuditRow]:
    """An organisation's audit entries, newest first."""
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        query = select(AuditEntry).where(AuditEntry.org_id == org.id)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        rows = session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
        return [
            AuditRow(iso(r.at) or "", r.action, r.actor, origin_of(r.actor), dict(r.detail)) for r in rows
        ]


def render_json(rows: list[AuditRow]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2) + "\n"


def render_csv(rows: list[AuditRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["at", "action", "actor", "origin", "detail"])
    for row in rows:
        writer.writerow(
            [row.at, row.action, _neutral(row.actor), row.origin, json.dumps(row.detail, sort_keys=True)]
        )
    return buffer.getvalue()


def _neutral(text: str) -> str:
    """A cell a spreadsheet must not run as a formula (an actor name is user input)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
