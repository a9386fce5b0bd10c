"""Sending outbox messages: the actor's work, retries with backoff, and channel health.

`deliver` claims a pending row (compare-and-set on its attempt count, so two deliveries of the
same message id cannot both send), sends it, and records the outcome. A failure schedules the
next attempt with exponential backoff; the relay (in `web` and `clock`) re-sends due rows, and
after MAX_ATTEMPTS the row is `failed`. A channel's consecutive failures are counted so a
channel that keeps failing shows as `failing` in `notify list`, `org show` and the page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from worker.clock import utcnow
from worker.runtime import Runtime
from worker.services import audit
from worker.services.notifications import email_addresses
from worker.settings import Settings
from worker.store import repositories as repo
from worker.store.models import NotificationChannel, NotificationMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
SEND_LEASE = timedelta(minutes=2)
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
WEBHOOK_TIMEOUT = (3.0, 10.0)


class SendFailed(Exception):
    """The channel did not take the message. The text is safe to store (no secret, no URL)."""


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour: about 1 h 5 min over MAX_ATTEMPTS."""
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


@dataclass(frozen=True)
class Envelope:
    message_key: str  # stable across retries: the webhook-id
    title: str
    body: str
    payload: dict


def send(runtime: Runtime, channel: NotificationChannel, envelope: Envelope) -> None:
    """Send through one channel; raises SendFailed with a reason fit for the status page."""
    target = runtime.secrets.decrypt(channel.target_encrypted).decode()
    if channel.kind == "webhook":
        secret = (
            runtime.secrets.decrypt(channel.secret_encrypted).decode() if channel.secret_encrypted else ""
        )
        _send_webhook(target, secret, envelope)
    elif channel.kind == "email":
        _send_apprise(smtp_url(runtime.settings, email_addresses(target)), envelope, "email (SMTP)")
    else:
        _send_apprise(target, envelope, None)


def _send_webhook(url: str, secret: str, envelope: Envelope) -> None:
    import requests  # here, not at the top: every process that imports the actors imports this module
    from standardwebhooks.webhooks import Webhook

    body = json.dumps(envelope.payload, separators=(",", ":"), sort_keys=True)
    now = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": "ptsync-notifications",
        "webhook-id": envelope.message_key,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(envelope.message_key, now, body),
    }
    try:
        response = requests.post(url, data=body.encode(), headers=headers, timeout=WEBHOOK_TIMEOUT)
    except requests.RequestException as exc:
        raise SendFailed(f"webhook not reachable ({exc.__class__.__name__})") from None
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"webhook answered HTTP {response.status_code}")


def smtp_url(settings: Settings, to: list[str]) -> str:
    """The apprise mailto URL for the SMTP server configured in the environment."""
    from urllib.parse import quote, urlencode

    if not settings.smtp_host:
        raise SendFailed("email channel: PTSYNC_SMTP_HOST is not set")
    query = {
        "from": settings.smtp_from or settings.contact_email,
        "to": ",".join(to),
        "mode": {"starttls": "starttls", "ssl": "ssl", "none": "insecure"}[settings.smtp_security],
    }
    if settings.smtp_user:
        query["user"] = settings.smtp_user
        query["pass"] = settings.smtp_password
    scheme = "mailtos" if settings.smtp_security != "none" else "mailto"
    return f"{scheme}://{quote(settings.smtp_host)}:{settings.smtp_port}?{urlencode(query)}"


def _send_apprise(url: str, envelope: Envelope, name: str | None) -> None:
    import apprise

    from worker.logs import silence_apprise

    silence_apprise()
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise SendFailed(f"{name or 'channel'} URL is no longer valid")
    service = name or next(iter(notifier)).service_name
    if not notifier.notify(title=envelope.title, body=envelope.body):
        # apprise's own reasons may quote the URL (and its token): keep only the service name.
        raise SendFailed(f"{service} did not accept the message")


def dispatch(message_ids: Iterable[int]) -> None:
    """After commit: hand the messages to the actor. If the broker is down the relay sends them."""
    ids = list(message_ids)
    if not ids:
        return
    try:
        from worker.actors import deliver_notification

        for message_id in ids:
            deliver_notification.send(message_id)
    except Exception as exc:  # the rows are committed; the relay picks them up
        log.warning("notifications postponed: %s", exc.__class__.__name__)


def deliver(runtime: Runtime, message_id: int) -> str:
    """Send one outbox message if it is still pending. Returns its status afterwards."""
    now = utcnow()
    with runtime.db.transaction() as session:
        row = session.get(NotificationMessage, message_id)
        if row is None or row.status != "pending":
            return row.status if row else "missing"
        claimed = session.execute(
            update(NotificationMessage)
            .where(
                NotificationMessage.id == message_id,
                NotificationMessage.status == "pending",
                NotificationMessage.attempts == row.attempts,
            )
            .values(attempts=row.attempts + 1, next_attempt_at=now + SEND_LEASE)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return "pending"  # another delivery of the same message is sending it
        attempts = row.attempts + 1
        channel = session.get(NotificationChannel, row.channel_id)
        session.expunge(channel)
        envelope = Envelope(f"ptsync-notification-{row.id}", row.title, row.body, dict(row.payload))
    try:
        send(runtime, channel, envelope)
    except SendFailed as exc:
        return _record_failure(runtime, message_id, channel.id, attempts, str(exc))
    except Exception as exc:  # a bug or an unexpected library error: still counted, never lost
        log.exception("notification %s: unexpected error", message_id)
        return _record_failure(
            runtime, message_id, channel.id, attempts, f"internal error ({exc.__class__.__name__})"
        )
    done = utcnow()
    with runtime.db.transaction() as session:
        row = session.get(NotificationMessage, message_id)
        if row is not None:
            row.status, row.sent_at, row.last_error = "sent", done, None
        channel_row = session.get(NotificationChannel, channel.id)
        if channel_row is not None:
            channel_row.consecutive_failures = 0
            channel_row.last_success_at = done
            channel_row.last_attempt_at = done
            channel_row.last_error = None
    _observe(channel.kind, "sent")
    log.info("notification %s sent through %s channel %s", message_id, channel.kind, channel.id)
    return "sent"


def _record_failure(runtime: Runtime, message_id: int, channel_id: int, attempts: int, reason: str) -> str:
    now = utcnow()
    with runtime.db.transaction() as session:
        row = session.get(NotificationMessage, message_id)
        status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        if row is not None:
            row.status = status
            row.last_error = reason
            row.next_attempt_at = None if status == "failed" else now + backoff(attempts)
        channel = session.get(NotificationChannel, channel_id)
        if channel is not None:
            channel.consecutive_failures += 1
            channel.last_error = reason
            channel.last_attempt_at = now
            kind = channel.kind
        else:
            kind = "removed"
    log.warning("notification %s attempt %d failed: %s", message_id, attempts, reason)
    _observe(kind, "failed" if status == "failed" else "retry")
    return status


def _observe(kind: str, outcome: str) -> None:
    from worker import metrics

    metrics.NOTIFICATIONS.labels(kind, outcome).inc()


def relay_due(runtime: Runtime, send_message: Callable[[int], None], limit: int = 100) -> int:
    """Hand due pending messages (first send lost, or a retry whose backoff has passed) to the actor."""
    now = utcnow()
    with runtime.db.transaction() as session:
        due = list(
            session.scalars(
                select(NotificationMessage.id)
                .where(NotificationMessage.status == "pending", NotificationMessage.next_attempt_at <= now)
                .order_by(NotificationMessage.next_attempt_at)
                .limit(limit)
            )
        )
        if due:  # a short lease so the next relay pass does not send them again
            session.execute(
                update(NotificationMessage)
                .where(NotificationMessage.id.in_(due), NotificationMessage.status == "pending")
                .values(next_attempt_at=now + SEND_LEASE)
                .execution_options(synchronize_session=False)
            )
    for message_id in due:
        send_message(message_id)
    return len(due)


@dataclass(frozen=True)
class TestResult:
    channel_id: int
    display: str
    ok: bool
    error: str | None


def send_test(runtime: Runtime, slug: str, actor: str) -> list[TestResult]:
    """Send a test message through every channel now, recording each channel's health."""
    from worker.services.notify_events import page_link

    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        channels = list(
            session.scalars(select(NotificationChannel).where(NotificationChannel.org_id == org.id))
        )
        for channel in channels:
            session.expunge(channel)
        org_id = org.id
    results = []
    for channel in channels:
        now = utcnow()
        envelope = Envelope(
            f"ptsync-test-{channel.id}-{int(now.timestamp())}",
            f"{slug}: ptsync test message",
            f"This is a test from ptsync for clinic {slug}, sent by {actor}. Notifications for this clinic "
            f"will arrive here. Page: {page_link(slug)}",
            {
                "type": "ptsync.test",
                "timestamp": now.isoformat(),
                "data": {"org": slug, "link": page_link(slug)},
            },
        )
        try:
            send(runtime, channel, envelope)
            error = None
        except SendFailed as exc:
            error = str(exc)
        with runtime.db.transaction() as session:
            row = session.get(NotificationChannel, channel.id)
            if row is not None:
                row.last_attempt_at = utcnow()
                if error is None:
                    row.consecutive_failures, row.last_error, row.last_success_at = (
                        0,
                        None,
                        row.last_attempt_at,
                    )
                else:
                    row.consecutive_failures += 1
                    row.last_error = error
        results.append(TestResult(channel.id, channel.display, error is None, error))
    with runtime.db.transaction() as session:
        audit.record(
            session,
            org_id,
            actor,
            "notification_test_sent",
            channels=len(results),
            failed=[r.channel_id for r in results if not r.ok],
        )
    return results


def relay_notifications_quietly(runtime: Runtime) -> int:
    """The web process's relay pass: due messages to the actor; a broker outage only postpones."""
    try:
        from worker.actors import deliver_notification

        return relay_due(runtime, deliver_notification.send)
    except Exception as exc:
        log.warning("notification relay postponed: %s", exc.__class__.__name__)
        return 0
