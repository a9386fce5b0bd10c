"""Each organisation's PMS account fingerprint, indexed: shared reads find their siblings by it

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by each organisation's next run (the hash needs its decrypted key, which a
    # migration does not hold); until then the run that needs it computes it.
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pms_account", sa.String(length=64), nullable=True))
        batch_op.create_index("organisations_by_pms_account", ["pms_kind", "pms_account"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index("organisations_by_pms_account")
        batch_op.drop_column("pms_account")
