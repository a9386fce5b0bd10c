"""Clinic groups: an organisation's locations and people, and shared PMS reads

Revision ID: 0011
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0011"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locations", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("include_people", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("exclude_people", sa.Text(), nullable=True))
    op.create_table(
        "shared_pulls",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("started_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_start", sa.String(length=10), nullable=False),
        sa.Column("expires_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("shared_pulls")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("exclude_people")
        batch_op.drop_column("include_people")
        batch_op.drop_column("locations")
