"""Deciding what to tell whom: notification messages written to the outbox.

Every function here runs inside the caller's transaction, so a message exists only if the
change it announces committed. Messages name the clinic, who and why in plain words (finding
messages already carry patients as pseudonyms only) and link to the organisation's page.

Dedupe: a finding is announced once per channel while it lasts (`notified_findings`, cleared
when it is resolved); every other message has a dedupe key unique per channel, so a failing
streak, a stale organisation or a waiting proposal is announced once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.clock import iso, utcnow
from worker.services.notifications import SEVERITIES
from worker.settings import get_settings
from worker.store.models import (
    NotificationChannel,
    NotificationMessage,
    NotifiedFinding,
    Organisation,
    Proposal,
)

FIRST_SEND_GRACE = timedelta(seconds=60)
"""The actor sent right after commit has this long before the relay sends the message again."""
MAX_LISTED = 20


def page_link(slug: str, path: str = "") -> str:
    return f"{get_settings().public_url.rstrip('/')}/orgs/{slug}/{path}"


def _at_least(severity: str, minimum: str) -> bool:
    rank = {name: index for index, name in enumerate(SEVERITIES)}
    return rank.get(severity, len(SEVERITIES)) <= rank.get(minimum, 1)


def _channels(session: Session, org_id: int, event: str) -> list[NotificationChannel]:
    rows = session.scalars(select(NotificationChannel).where(NotificationChannel.org_id == org_id))
    return [channel for channel in rows if event in channel.events]


def _enqueue(
    session: Session,
    channel: NotificationChannel,
    event: str,
    dedupe_key: str,
    title: str,
    body: str,
    data: dict[str, Any],
    run_id: str | None = None,
    *,
    hold: bool | None = None,
) -> int | None:
    """Add one outbox row unless the key was already used on this channel.

    Returns its id to send now, or None (a repeat, or held for the channel's daily digest).
    """
    now = utcnow()
    held = channel.digest == "daily" if hold is None else hold
    row = NotificationMessage(
        org_id=channel.org_id,
        channel_id=channel.id,
        event=event,
        dedupe_key=dedupe_key[:200],
        run_id=run_id,
        title=title,
        body=body,
        payload={"type": f"ptsync.{event}", "timestamp": iso(now), "data": data},
        status="held" if held else "pending",
        created_at=now,
        attempts=0,
        next_attempt_at=None if held else now + FIRST_SEND_GRACE,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None  # already announced
    return None if held else row.id


def _lines(findings: list[dict[str, Any]]) -> str:
    shown = [f"- {f['severity'].upper()} · {f['kind'].replace('_', ' ')}: {f['message']}" for f in findings]
    if len(findings) > MAX_LISTED:
        shown = [*shown[:MAX_LISTED], f"- ... and {len(findings) - MAX_LISTED} more"]
    return "\n".join(shown)


def _brief(finding: dict[str, Any]) -> dict[str, Any]:
    return {key: finding.get(key) for key in ("fingerprint", "kind", "severity", "state", "message")}


def record_for_run(
    session: Session, org: Organisation, report: dict[str, Any], proposal: Proposal | None
) -> list[int]:
    """Outbox rows for a finished run (call it in the run's final transaction). Returns ids to send."""
    channels = list(session.scalars(select(NotificationChannel).where(NotificationChannel.org_id == org.id)))
    if not channels:
        return []  # most organisations: nothing to tell anyone, and no query per kind of event
    ids = [
        *_new_findings(session, org, report, channels),
        *_high_findings_resolved(session, org, report, channels),
        *_proposal_waiting(session, org, report, proposal, channels),
    ]
    return [i for i in ids if i is not None]


def _listening(channels: list[NotificationChannel], event: str) -> list[NotificationChannel]:
    return [channel for channel in channels if event in channel.events]


def _new_findings(
    session: Session, org: Organisation, report: dict[str, Any], channels: list[NotificationChannel]
) -> list[int | None]:
    """Each `findings` channel hears of findings it was not told about yet (at its minimum severity)."""
    slug, run_id, link = org.slug, report["run"]["id"], page_link(org.slug)
    resolved = [f["fingerprint"] for f in report.get("resolved", [])]
    ids: list[int | None] = []
    for channel in _listening(channels, "findings"):
        if resolved:
            session.execute(
                delete(NotifiedFinding).where(
                    NotifiedFinding.channel_id == channel.id, NotifiedFinding.fingerprint.in_(resolved)
                )
            )
        known = set(
            session.scalars(
                select(NotifiedFinding.fingerprint).where(NotifiedFinding.channel_id == channel.id)
            )
        )
        fresh = [
            f
            for f in report.get("findings", [])
            if f["state"] != "indeterminate"
            and f["fingerprint"] not in known
            and _at_least(f["severity"], channel.min_severity)
        ]
        if not fresh:
            continue
        for finding in fresh:
            session.add(
                NotifiedFinding(
                    channel_id=channel.id, fingerprint=finding["fingerprint"], notified_at=utcnow()
                )
            )
        title = f"{slug}: {len(fresh)} new finding{'s' if len(fresh) != 1 else ''} in PT Direct sharing"
        body = f"ptsync found in clinic {slug} (run {run_id}):\n{_lines(fresh)}\n\nOpen the report: {link}"
        data = {"org": slug, "run_id": run_id, "link": link, "findings": [_brief(f) for f in fresh]}
        ids.append(_enqueue(session, channel, "findings", f"findings:{run_id}", title, body, data, run_id))
    return ids


def _high_findings_resolved(
    session: Session, org: Organisation, report: dict[str, Any], channels: list[NotificationChannel]
) -> list[int | None]:
    slug, run_id, link = org.slug, report["run"]["id"], page_link(org.slug)
    high_resolved = [f for f in report.get("resolved", []) if f.get("severity") == "high"]
    if not high_resolved:
        return []
    ids: list[int | None] = []
    for channel in _listening(channels, "resolved"):
        title = f"{slug}: {len(high_resolved)} high finding{'s' if len(high_resolved) != 1 else ''} resolved"
        body = f"Resolved in clinic {slug} (run {run_id}):\n{_lines(high_resolved)}\n\n{link}"
        data = {"org": slug, "run_id": run_id, "link": link, "resolved": [_brief(f) for f in high_resolved]}
        ids.append(_enqueue(session, channel, "resolved", f"resolved:{run_id}", title, body, data, run_id))
    return ids


def _proposal_waiting(
    session: Session,
    org: Organisation,
    report: dict[str, Any],
    proposal: Proposal | None,
    channels: list[NotificationChannel],
) -> list[int | None]:
    waiting = [op for op in proposal.operations if op.requires_approval] if proposal is not None else []
    if not waiting:
        return []
    slug, run_id, link = org.slug, report["run"]["id"], page_link(org.slug)
    steps = "\n".join(f"- {op.op.replace('_', ' ')}: {op.email}" for op in waiting[:MAX_LISTED])
    ids: list[int | None] = []
    for channel in _listening(channels, "proposal"):
        title = f"{slug}: a proposal waits for your approval ({len(waiting)} change(s))"
        body = (
            f"ptsync proposes changes to PT Direct sharing in clinic {slug} that need approval:\n"
            f"{steps}\n\nReview and approve or reject: {link}\n"
            f"(or: ptsync approve {proposal.id})"
        )
        data = {
            "org": slug,
            "run_id": run_id,
            "proposal_id": proposal.id,
            "link": link,
            "operations": [{"op": op.op, "email": op.email} for op in waiting],
        }
        ids.append(
            _enqueue(session, channel, "proposal", f"proposal:{proposal.id}", title, body, data, run_id)
        )
    return ids


def record_apply_event(
    session: Session, proposal: Proposal, outcome: str, reason: str | None = None
) -> list[int]:
    """An apply failed (`failed`) or waits for a person (`waiting`: transfer first; `manual`)."""
    org = session.get(Organisation, proposal.org_id)
    slug = org.slug
    if outcome == "failed":
        title = f"{slug}: applying proposal {proposal.id[:8]} failed"
        body = f"Applying changes to PT Direct in clinic {slug} failed: {reason}\n\n{page_link(slug)}"
        key = f"apply-failed:{proposal.id}:{(reason or '')[:60]}"
    elif outcome == "waiting":
        emails = sorted({op.email for op in proposal.operations if _waits_for_transfer(op)})
        title = f"{slug}: removals wait until patients are transferred"
        body = (
            f"In clinic {slug}, {', '.join(emails)} can be removed from practitioner sharing only after "
            f"their patients are transferred in PT Direct. Then confirm: ptsync approve {proposal.id} "
            f"--transferred, or on the page: {page_link(slug)}"
        )
        key = f"apply-waiting:{proposal.id}"
    else:
        steps = [op for op in proposal.operations if op.status == "manual"]
        title = f"{slug}: {len(steps)} step(s) to do by hand in PT Direct"
        body = (
            f"In clinic {slug}, some changes can only be made by a person in the PT Direct admin "
            f"console: {page_link(slug, f'proposals/{proposal.id}/checklist')}"
        )
        key = f"apply-manual:{proposal.id}"
    data = {
        "org": slug,
        "proposal_id": proposal.id,
        "outcome": outcome,
        "reason": reason,
        "link": page_link(slug),
    }
    ids = [
        _enqueue(session, channel, "apply", key, title, body, data)
        for channel in _channels(session, org.id, "apply")
    ]
    return [i for i in ids if i is not None]


def _waits_for_transfer(operation) -> bool:
    """A removal waiting for a person to transfer patients (not one waiting for a confirming sync)."""
    return operation.status == "waiting" and (operation.note or "").startswith("waiting until")


def record_apply_waits(session: Session, proposal: Proposal) -> list[int]:
    """After an apply pass: announce removals waiting for a transfer and steps left to a person."""
    statuses = {op.status for op in proposal.operations}
    ids = []
    if any(_waits_for_transfer(op) for op in proposal.operations):
        ids += record_apply_event(session, proposal, "waiting")
    if "manual" in statuses:
        ids += record_apply_event(session, proposal, "manual")
    return ids


def record_sync_failing(
    session: Session, org: Organisation, first_failed_run: str, failures: int, error: str
) -> list[int]:
    title = f"{org.slug}: syncs have failed {failures} times in a row"
    body = (
        f"ptsync could not sync clinic {org.slug} {failures} times in a row. Latest error: {error}\n"
        f"The report shown is the last good one. Run history: {page_link(org.slug)}"
    )
    data = {"org": org.slug, "failures": failures, "error": error, "link": page_link(org.slug)}
    ids = [
        _enqueue(session, channel, "failing", f"failing:{first_failed_run}", title, body, data)
        for channel in _channels(session, org.id, "failing")
    ]
    return [i for i in ids if i is not None]


def record_stale(
    session: Session, org: Organisation, last_success: datetime | None, since_key: str
) -> list[int]:
    when = iso(last_success) if last_success else "never"
    title = f"{org.slug}: no successful sync since {when}"
    body = (
        f"Clinic {org.slug} has had no successful sync for more than twice its schedule "
        f"({org.schedule}); last success: {when}. Check the run history: {page_link(org.slug)}"
    )
    data = {
        "org": org.slug,
        "last_success": iso(last_success),
        "schedule": org.schedule,
        "link": page_link(org.slug),
    }
    ids = [
        _enqueue(session, channel, "stale", f"stale:{since_key}", title, body, data)
        for channel in _channels(session, org.id, "stale")
    ]
    return [i for i in ids if i is not None]


def compile_digest(session: Session, channel: NotificationChannel, day: str) -> int | None:
    """Fold a daily-digest channel's held messages into one message for `day` (idempotent)."""
    held = list(
        session.scalars(
            select(NotificationMessage)
            .where(NotificationMessage.channel_id == channel.id, NotificationMessage.status == "held")
            .order_by(NotificationMessage.id)
        )
    )
    if not held:
        return None
    org = session.get(Organisation, channel.org_id)
    title = f"{org.slug}: daily ptsync digest for {day} ({len(held)} item(s))"
    body = "\n\n".join(f"## {row.title}\n{row.body}" for row in held)
    data = {"org": org.slug, "day": day, "items": [row.payload for row in held], "link": page_link(org.slug)}
    message_id = _enqueue(session, channel, "digest", f"digest:{day}", title, body, data, hold=False)
    if message_id is not None:
        for row in held:
            row.status = "digested"
    return message_id
