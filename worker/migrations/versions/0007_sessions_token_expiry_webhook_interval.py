"""Server-side admin sessions, admin token expiry and revocation, webhook run interval

Revision ID: 0007
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expires_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("revoked_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_min_interval_seconds", sa.Integer(), nullable=False, server_default="60")
        )
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["token_id"], ["admin_tokens.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("admin_sessions_by_token", "admin_sessions", ["token_id"], unique=False)


def downgrade() -> None:
    op.drop_index("admin_sessions_by_token", table_name="admin_sessions")
    op.drop_table("admin_sessions")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("webhook_min_interval_seconds")
    with op.batch_alter_table("admin_tokens", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
