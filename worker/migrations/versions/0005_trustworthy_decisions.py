"""Trustworthy decisions: per-operation approvals, plan confirmation, removal thresholds, time zone

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("removal_threshold_percent", sa.Integer(), nullable=False, server_default="30")
        )
        batch_op.add_column(
            sa.Column("removal_threshold_people", sa.Integer(), nullable=False, server_default="2")
        )
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC"))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accept_drop", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("roster", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("policy", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("enqueued_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("confirmed_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("superseded_by", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("apply_requested_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("proposal_operations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approved_at", worker.store.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("approved_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposal_operations", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("approved_by")
        batch_op.drop_column("approved_at")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_column("apply_requested_at")
        batch_op.drop_column("superseded_by")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("policy_digest")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("enqueued_at")
        batch_op.drop_column("policy")
        batch_op.drop_column("plan")
        batch_op.drop_column("roster")
        batch_op.drop_column("accept_drop")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("removal_threshold_people")
        batch_op.drop_column("removal_threshold_percent")
