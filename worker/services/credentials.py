"""Admin tokens and webhook credentials: random, shown once, stored hashed or encrypted."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from worker.clock import utcnow
from worker.errors import NotFound
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import AdminToken, Organisation

TOKEN_PREFIX = "pts_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_admin_token(runtime: Runtime, slug: str, label: str, actor: str = "cli") -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        session.add(AdminToken(org_id=org.id, token_hash=token_hash(token), label=label, created_at=now))
        repo.audit(session, org.id, actor, "admin_token_created", now, label=label)
    return token


@dataclass(frozen=True)
class Principal:
    org_id: int
    slug: str
    token_id: int


def authenticate(runtime: Runtime, token: str | None) -> Principal | None:
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    with runtime.db.transaction() as session:
        row = session.scalar(select(AdminToken).where(AdminToken.token_hash == token_hash(token)))
        if row is None:
            return None
        org = session.get(Organisation, row.org_id)
        row.last_used_at = utcnow()
        return Principal(org.id, org.slug, row.id)


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


def signing_secret_of(runtime: Runtime, org: Organisation) -> str | None:
    if not org.webhook_secret_encrypted:
        return None
    return runtime.secrets.decrypt(org.webhook_secret_encrypted).decode()
