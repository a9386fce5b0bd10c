"""The appointment-export connector's mapping (preset or file) and optional staff list

Revision ID: 0010
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pms_format", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("pms_staff_path", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("pms_staff_path")
        batch_op.drop_column("pms_format")
