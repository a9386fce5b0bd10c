"""Physitrack v2 keys, the organisation's Physitrack region, proposal verification

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("physitrack_region", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("physitrack_url", sa.Text(), nullable=True))
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verified_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "physitrack_keys",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("practitioner_email", sa.String(length=320), nullable=False),
        sa.Column("key_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "practitioner_email"),
    )


def downgrade() -> None:
    op.drop_table("physitrack_keys")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_column("verified_at")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("physitrack_url")
        batch_op.drop_column("physitrack_region")
