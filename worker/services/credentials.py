"""Admin tokens, browser sessions and webhook credentials: random, shown once, stored hashed
or encrypted. Tokens can carry an expiry and be revoked; a session lives in the database, so
logging out (or revoking its token) ends it on the server, not only in the browser."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select, update

from worker.clock import utcnow
from worker.errors import InvalidInput, NotFound
from worker.runtime import Runtime
from worker.services.audit import token_actor
from worker.store import repositories as repo
from worker.store.models import AdminSession, AdminToken, Organisation

TOKEN_PREFIX = "pts_"
SESSION_SECONDS = 8 * 3600
MAX_TOKEN_DAYS = 3650


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def create_admin_token(
    runtime: Runtime, slug: str, label: str, actor: str = "cli", *, expires_in_days: int | None = None
) -> str:
    """A new token (returned once, stored hashed); with `expires_in_days` it stops working then."""
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"--expires-in must be between 1 and {MAX_TOKEN_DAYS} days")
    label = label.strip()[:128] or "admin"
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        session.add(
            AdminToken(
                org_id=org.id,
                token_hash=token_hash(token),
                label=label,
                created_at=now,
                expires_at=expires_at,
            )
        )
        repo.audit(
            session, org.id, actor, "admin_token_created", now, label=label, expires_at=_iso(expires_at)
        )
    return token


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token (it is not stored) nor its hash."""

    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def list_admin_tokens(runtime: Runtime, slug: str) -> list[TokenInfo]:
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        rows = session.scalars(select(AdminToken).where(AdminToken.org_id == org.id).order_by(AdminToken.id))
        return [
            TokenInfo(row.id, row.label, row.created_at, row.last_used_at, row.expires_at, row.revoked_at)
            for row in rows
        ]


def revoke_admin_token(runtime: Runtime, slug: str, token_id: int, actor: str = "cli") -> TokenInfo:
    """Stop a token working at once, and end every session opened with it."""
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        row = session.get(AdminToken, token_id)
        if row is None or row.org_id != org.id:
            raise NotFound(
                f"organisation {slug} has no admin token {token_id} (list them: ptsync org tokens {slug})"
            )
        if row.revoked_at is None:
            row.revoked_at = now
            session.execute(
                update(AdminSession)
                .where(AdminSession.token_id == row.id, AdminSession.ended_at.is_(None))
                .values(ended_at=now)
            )
            repo.audit(session, org.id, actor, "admin_token_revoked", now, token_id=row.id, label=row.label)
        return TokenInfo(row.id, row.label, row.created_at, row.last_used_at, row.expires_at, row.revoked_at)


def _usable(row: AdminToken | None, now: datetime) -> bool:
    return row is not None and row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Principal:
    org_id: int
    slug: str
    token_id: int


def authenticate(runtime: Runtime, token: str | None) -> Principal | None:
    """The token's organisation, or None for an unknown, revoked or expired token."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = utcnow()
    with runtime.db.transaction() as session:
        row = session.scalar(select(AdminToken).where(AdminToken.token_hash == token_hash(token)))
        if row is None or not _usable(row, now):
            return None
        org = session.get(Organisation, row.org_id)
        row.last_used_at = now
        return Principal(org.id, org.slug, row.id)


def start_session(runtime: Runtime, principal: Principal) -> str:
    """A new browser session for a logged-in token; returns the cookie value (shown only to it)."""
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    with runtime.db.transaction() as session:
        session.execute(  # sessions over a day past their end are of no use to anyone
            delete(AdminSession).where(AdminSession.expires_at < now - timedelta(days=1))
        )
        session.add(
            AdminSession(
                id_hash=token_hash(cookie),
                org_id=principal.org_id,
                token_id=principal.token_id,
                created_at=now,
                expires_at=now + timedelta(seconds=SESSION_SECONDS),
            )
        )
        repo.audit(
            session, principal.org_id, token_actor(session, "web", principal.token_id), "logged_in", now
        )
    return cookie


def session_org(runtime: Runtime, cookie: str | None, slug: str) -> int | None:
    """The organisation id of a live session for `slug`: not ended, not expired, token usable."""
    if not cookie or len(cookie) > 200:
        return None
    now = utcnow()
    with runtime.db.transaction() as session:
        row = session.get(AdminSession, token_hash(cookie))
        if row is None or row.ended_at is not None or row.expires_at <= now:
            return None
        if not _usable(session.get(AdminToken, row.token_id), now):
            return None
        org = repo.find_org(session, slug)
        if org is None or org.id != row.org_id:
            return None
        return row.org_id


def session_token_id(runtime: Runtime, cookie: str | None) -> int | None:
    """The admin token a session was opened with (for the audit trail's "who")."""
    if not cookie or len(cookie) > 200:
        return None
    with runtime.db.transaction() as session:
        row = session.get(AdminSession, token_hash(cookie))
        return row.token_id if row is not None else None


def end_session(runtime: Runtime, cookie: str | None) -> None:
    """Log out: the session is ended on the server, so a replayed cookie is refused."""
    if not cookie or len(cookie) > 200:
        return
    now = utcnow()
    with runtime.db.transaction() as session:
        row = session.get(AdminSession, token_hash(cookie))
        if row is not None and row.ended_at is None:
            row.ended_at = now
            repo.audit(session, row.org_id, token_actor(session, "web", row.token_id), "logged_out", now)


@dataclass(frozen=True)
class WebhookCredentials:
    url_token: str
    signing_secret: str


def rotate_webhook_credentials(runtime: Runtime, slug: str, actor: str = "cli") -> WebhookCredentials:
    """A new URL token (for unsigned senders) and Standard Webhooks secret; old ones stop working."""
    url_token = secrets.token_urlsafe(32)
    signing_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        org.webhook_token_hash = token_hash(url_token)
        org.webhook_secret_encrypted = runtime.secrets.encrypt(signing_secret.encode())
        repo.audit(session, org.id, actor, "webhook_credentials_rotated", now)
    return WebhookCredentials(url_token, signing_secret)


def org_for_webhook_token(runtime: Runtime, url_token: str) -> Organisation:
    if not url_token or len(url_token) > 200:
        raise NotFound("unknown webhook URL")
    with runtime.db.transaction() as session:
        org = session.scalar(
            select(Organisation).where(Organisation.webhook_token_hash == token_hash(url_token))
        )
        if org is None:
            raise NotFound("unknown webhook URL")
        session.expunge(org)
        return org


def signing_secret(runtime: Runtime, encrypted: str | None) -> str | None:
    """The Standard Webhooks secret stored encrypted (None when none was set)."""
    if not encrypted:
        return None
    return runtime.secrets.decrypt(encrypted).decode()


@dataclass(frozen=True)
class Signer:
    """What the signed webhook endpoint needs of an organisation: its id and encrypted secret,
    and what relaying the webhook needs (in the same statement: `deliveries.OrgToRelay`)."""

    org_id: int
    secret_encrypted: str | None
    paused_at: datetime | None
    webhook_min_interval_seconds: int | None


def webhook_signer(connection: Connection, slug: str) -> Signer | None:
    """The organisation's id, encrypted signing secret and relay settings (not the whole row)."""
    row = connection.execute(_SIGNER_BY_SLUG, {"slug": slug}).first()
    return None if row is None else Signer(*row)


_SIGNER_BY_SLUG = select(
    Organisation.id,
    Organisation.webhook_secret_encrypted,
    Organisation.paused_at,
    Organisation.webhook_min_interval_seconds,
).where(Organisation.slug == bindparam("slug"))
