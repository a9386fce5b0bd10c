"""Short incremental polls and a less frequent full sync per organisation

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"  # was "0006"; re-chained after main added 0011 (clinic groups)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("full_sync", sa.String(length=64), nullable=False, server_default="30 2 * * *")
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("full_pull", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("full_pull")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("full_sync")
