"""Notification channels of an organisation: add, list (with their health), remove, test.

A channel is one of three kinds, told apart by its URL:

- `https://...` or `http://...`: a signed outbound webhook (Standard Webhooks; the `whsec_`
  secret is generated here and shown once);
- `email:someone@clinic.example` (or `mailto:` without `//`; several addresses separated by
  commas): email through the SMTP server configured in the environment (`PTSYNC_SMTP_*`);
- anything else: an apprise URL (`mailto://`, `slack://`, `msteams://`, `discord://`,
  `ntfy://`, `pover://`, `tgram://`, ...), checked by apprise when it is added.

Targets may hold tokens or passwords: they are stored encrypted and shown redacted.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select

from worker.clock import utcnow
from worker.errors import InvalidInput, NotFound
from worker.runtime import Runtime
from worker.services import audit
from worker.store import repositories as repo
from worker.store.models import NotificationChannel, NotificationMessage

EVENTS = ("findings", "proposal", "apply", "failing", "stale", "resolved")
EVENT_HELP = {
    "findings": "new findings at or above the channel's severity",
    "proposal": "a proposal waits for approval",
    "apply": "an apply failed or waits for a person (transfer first, steps by hand)",
    "failing": "syncs failed several times in a row",
    "stale": "no successful sync for more than twice the schedule",
    "resolved": "a high-severity finding was resolved",
}
SEVERITIES = ("high", "medium", "low", "info")
DIGESTS = ("none", "daily")
FAILING_AFTER = 3
"""Consecutive failed sends after which a channel is reported as failing."""


@dataclass(frozen=True)
class NewChannel:
    url: str
    events: tuple[str, ...] = EVENTS
    min_severity: str = "medium"
    digest: str = "none"


@dataclass(frozen=True)
class AddedChannel:
    id: int
    kind: str
    display: str
    signing_secret: str | None  # webhooks only; shown once


@dataclass(frozen=True)
class ChannelStatus:
    id: int
    kind: str
    display: str
    events: list[str]
    min_severity: str
    digest: str
    state: str  # ok, failing, untested
    consecutive_failures: int
    last_error: str | None
    last_success_at: datetime | None
    pending: int


def parse_events(text: str | None) -> tuple[str, ...]:
    """`findings,proposal` -> ('findings', 'proposal'); empty or `all` -> every event."""
    if not text or text.strip() == "all":
        return EVENTS
    events = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        raise InvalidInput(f"--events: unknown event {unknown[0]!r} (choose from {', '.join(EVENTS)})")
    return events


def classify_target(url: str) -> tuple[str, str]:
    """(kind, redacted display) of a channel URL, or InvalidInput with the reason."""
    url = url.strip()
    if not url:
        raise InvalidInput("the channel URL is empty")
    lowered = url.lower()
    if lowered.startswith(("http://", "https://")):
        return "webhook", _webhook_display(url)
    for prefix in ("email:", "mailto:"):
        if lowered.startswith(prefix) and not lowered.startswith(prefix + "//"):
            addresses = email_addresses(url)
            return "email", "email:" + ",".join(addresses)
    import apprise  # slow to import: only when a channel is added or sent

    from worker.logs import silence_apprise

    silence_apprise()
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        scheme = url.split(":", 1)[0] if ":" in url else url[:20]
        raise InvalidInput(
            f"not a notification URL apprise understands (scheme {scheme!r}); "
            "see README 'Notifications' for the URLs that work"
        )
    return "apprise", plugin.url(privacy=True)[:300]


_PRIVATE_SUFFIXES = (".local", ".lan", ".internal", ".home.arpa", ".localhost")
_SHOWN_SEGMENT = 20
"""A webhook path's first segment is shown when it is this short (a name, not a token)."""


def _webhook_display(url: str) -> str:
    """The redacted form of a webhook URL (scheme, host, port and the path's first short
    segment), after checking it: a host, a port in range, and https unless the host is on a
    private network (the messages name practitioners).

    The URL itself is never echoed in an error: it may carry a password or a token, and the
    page's answer travels in a redirect's address, which browsers and proxies keep. Only its
    first path segment is shown: catch hooks carry their secret further down the path.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("webhook URL has a port out of range (1-65535)") from None
    host = parts.hostname
    if not host:
        raise InvalidInput("webhook URL has no host")
    if parts.scheme.lower() == "http" and not _on_private_network(host):
        raise InvalidInput(
            f"webhook URL uses plain http:// to {host}, a public address: notifications name "
            "practitioners, so use https:// (http:// is for hosts on a private network)"
        )
    segments = [segment for segment in parts.path.split("/") if segment]
    shown = "/" + segments[0] if segments and len(segments[0]) <= _SHOWN_SEGMENT else ""
    rest = "/…" if len(segments) > (1 if shown else 0) else ("" if shown else "/")
    return f"{parts.scheme.lower()}://{host}{f':{port}' if port else ''}{shown}{rest}"


def _on_private_network(host: str) -> bool:
    """An address on a private network (RFC 1918, loopback, link-local, unique local) or a name
    that only resolves inside one (no dot, or a private-use suffix); no lookup is made."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the other ways to write an IPv4 address, which resolvers accept: 134744072, 0x08080808
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return "." not in host or host.lower().endswith(_PRIVATE_SUFFIXES)
    return address.is_private or address.is_loopback or address.is_link_local


def email_addresses(target: str) -> list[str]:
    addresses = [a.strip() for a in target.split(":", 1)[1].split(",") if a.strip()]
    if not addresses or any("@" not in a or " " in a for a in addresses):
        raise InvalidInput(f"not an email address list: {target!r} (use email:name@clinic.example)")
    return addresses


def add_channel(runtime: Runtime, slug: str, new: NewChannel, actor: str) -> AddedChannel:
    if new.min_severity not in SEVERITIES:
        raise InvalidInput(f"--min-severity must be one of {', '.join(SEVERITIES)}")
    if new.digest not in DIGESTS:
        raise InvalidInput(f"--digest must be one of {', '.join(DIGESTS)}")
    events = tuple(new.events)
    if not events:
        raise InvalidInput("choose at least one event to be told about")
    for event in events:
        if event not in EVENTS:
            raise InvalidInput(f"unknown event {event!r} (choose from {', '.join(EVENTS)})")
    kind, display = classify_target(new.url)
    secret = None
    if kind == "webhook":
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        channel = NotificationChannel(
            org_id=org.id,
            kind=kind,
            target_encrypted=runtime.secrets.encrypt(new.url.strip().encode()),
            display=display,
            events=list(events),
            min_severity=new.min_severity,
            digest=new.digest,
            secret_encrypted=runtime.secrets.encrypt(secret.encode()) if secret else None,
            created_at=utcnow(),
            created_by=actor[:128],
            consecutive_failures=0,
        )
        session.add(channel)
        session.flush()
        audit.record(
            session,
            org.id,
            actor,
            "notification_channel_added",
            channel=channel.id,
            kind=kind,
            target=display,
            events=list(events),
            min_severity=new.min_severity,
            digest=new.digest,
        )
        return AddedChannel(channel.id, kind, display, secret)


def remove_channel(runtime: Runtime, slug: str, channel_id: int, actor: str) -> None:
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        channel = session.get(NotificationChannel, channel_id)
        if channel is None or channel.org_id != org.id:
            raise NotFound(f"no notification channel {channel_id} in {slug} (see: ptsync notify list {slug})")
        audit.record(
            session,
            org.id,
            actor,
            "notification_channel_removed",
            channel=channel.id,
            kind=channel.kind,
            target=channel.display,
        )
        session.delete(channel)


def notification_status(runtime: Runtime, slug: str) -> list[ChannelStatus]:
    """Every channel of the organisation with its health, for `notify list`, `org show` and pages."""
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        pending = dict(
            session.execute(
                select(NotificationMessage.channel_id, func.count())
                .where(
                    NotificationMessage.org_id == org.id, NotificationMessage.status.in_(("pending", "held"))
                )
                .group_by(NotificationMessage.channel_id)
            ).all()
        )
        channels = session.scalars(
            select(NotificationChannel)
            .where(NotificationChannel.org_id == org.id)
            .order_by(NotificationChannel.id)
        )
        return [
            ChannelStatus(
                id=c.id,
                kind=c.kind,
                display=c.display,
                events=list(c.events),
                min_severity=c.min_severity,
                digest=c.digest,
                state=channel_state(c),
                consecutive_failures=c.consecutive_failures,
                last_error=c.last_error,
                last_success_at=c.last_success_at,
                pending=pending.get(c.id, 0),
            )
            for c in channels
        ]


def channel_state(channel: NotificationChannel) -> str:
    if channel.consecutive_failures >= FAILING_AFTER:
        return "failing"
    if channel.last_success_at is None:
        return "untested"
    return "ok"
