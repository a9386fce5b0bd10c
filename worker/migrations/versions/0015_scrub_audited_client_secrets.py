"""Audit entries of `org update` no longer hold a Halaxy client secret in clear

Before this revision, changing `--pms-client-secret` wrote the new secret into the audit entry's
`changed` (the setting has no encrypted column of its own: it is stored inside the encrypted
OAuth client). This revision rewrites those entries' value to "(secret changed)", as every other
secret is audited. Rotate a Halaxy client secret that was changed that way: it was readable by
anyone who could read the audit trail or a backup of the database.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SECRETS = ("pms_key", "pms_client_secret", "ptdirect_key")
HIDDEN = "(secret changed)"

_audit = sa.table(
    "audit_log",
    sa.column("id", sa.Integer),
    sa.column("action", sa.String),
    sa.column("detail", sa.JSON),
)


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_audit.c.id, _audit.c.detail).where(_audit.c.action == "organisation_updated")
    )
    for entry_id, detail in rows.all():
        changed = (detail or {}).get("changed")
        if not isinstance(changed, dict):
            continue
        leaked = [name for name in SECRETS if name in changed and changed[name] != HIDDEN]
        if leaked:
            scrubbed = {**detail, "changed": {**changed, **dict.fromkeys(leaked, HIDDEN)}}
            connection.execute(sa.update(_audit).where(_audit.c.id == entry_id).values(detail=scrubbed))


def downgrade() -> None:
    pass  # a secret removed from the audit trail is not put back
