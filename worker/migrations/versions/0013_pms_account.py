"""Each organisation's PMS account fingerprint (shared reads find their siblings by it); what the
requests a queued run serves need (the newest one's time, a report)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by `org add` / `org update` and by each organisation's next run (the hash needs its
    # decrypted key, which a migration does not hold); until then it is not found as a sibling.
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pms_account", sa.String(length=64), nullable=True))
        batch_op.create_index("organisations_by_pms_account", ["pms_kind", "pms_account"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("read_after", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("report_required", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("report_required")
        batch_op.drop_column("read_after")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index("organisations_by_pms_account")
        batch_op.drop_column("pms_account")
