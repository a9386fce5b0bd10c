"""What the audit trail and the channel lists show no longer holds secrets

Before this revision, changing `--pms-client-secret` wrote the new secret into the audit entry's
`changed` (the setting has no encrypted column of its own: it is stored inside the encrypted
OAuth client), and a webhook channel was listed, and audited, with its whole path, where catch
hooks (`https://hooks.zapier.com/hooks/catch/ID/SECRET/`) carry their secret. This revision
rewrites those entries' secret to "(secret changed)", as every other secret is audited (and
drops a `user:password@` from an audited URL, which a Halaxy token URL could carry), and
each webhook channel's shown form to its host and the path's first short segment (the channel
itself, stored encrypted, is unchanged). Rotate a Halaxy client secret that was changed that
way: it was readable by anyone who could read the audit trail or a backup of the database.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SECRETS = ("pms_key", "pms_client_secret", "ptdirect_key")
HIDDEN = "(secret changed)"
CHANNEL_ACTIONS = ("notification_channel_added", "notification_channel_removed")

_audit = sa.table(
    "audit_log",
    sa.column("id", sa.Integer),
    sa.column("action", sa.String),
    sa.column("detail", sa.JSON),
)
_channels = sa.table(
    "notification_channels",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("display", sa.String),
)


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_audit.c.id, _audit.c.action, _audit.c.detail).where(
            _audit.c.action.in_(("organisation_updated", *CHANNEL_ACTIONS))
        )
    )
    for entry_id, action, detail in rows.all():
        scrubbed = _scrubbed(action, detail or {})
        if scrubbed != detail:
            connection.execute(sa.update(_audit).where(_audit.c.id == entry_id).values(detail=scrubbed))
    channels = connection.execute(
        sa.select(_channels.c.id, _channels.c.display).where(_channels.c.kind == "webhook")
    )
    for channel_id, display in channels.all():
        if _shown(display) != display:
            connection.execute(
                sa.update(_channels).where(_channels.c.id == channel_id).values(display=_shown(display))
            )


def _scrubbed(action: str, detail: dict) -> dict:
    if action in CHANNEL_ACTIONS:
        if detail.get("kind") == "webhook" and isinstance(detail.get("target"), str):
            return {**detail, "target": _shown(detail["target"])}
        return detail
    changed = detail.get("changed")
    if not isinstance(changed, dict):
        return detail
    leaked = [name for name in SECRETS if name in changed and changed[name] != HIDDEN]
    # A URL setting given with `user:password@` (a Halaxy token URL could be, before 0015's
    # release refused it) keeps its address without the credentials.
    urls = {
        name: _without_credentials(value)
        for name, value in changed.items()
        if isinstance(value, str) and _without_credentials(value) != value
    }
    if not leaked and not urls:
        return detail
    return {**detail, "changed": {**changed, **urls, **dict.fromkeys(leaked, HIDDEN)}}


def _without_credentials(value: str) -> str:
    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.username is None and parts.password is None:
        return value
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _shown(display: str) -> str:
    """A stored webhook display (`scheme://host[:port]/path`) as channels are shown from this
    revision on (`worker.services.notifications`, copied: a migration keeps its own rules)."""
    scheme, _, rest = display.partition("://")
    authority, _, path = rest.partition("/")
    segments = [segment for segment in path.split("/") if segment]
    shown = "/" + segments[0] if segments and len(segments[0]) <= 20 else ""
    tail = "/…" if len(segments) > (1 if shown else 0) else ("" if shown else "/")
    return f"{scheme}://{authority}{shown}{tail}"


def downgrade() -> None:
    pass  # a secret removed from the audit trail is not put back
