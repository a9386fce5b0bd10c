"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 06:39:50.086930
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("pms_kind", sa.String(length=16), nullable=False),
        sa.Column("pms_url", sa.Text(), nullable=True),
        sa.Column("pms_path", sa.Text(), nullable=True),
        sa.Column("pms_key_encrypted", sa.Text(), nullable=True),
        sa.Column("ptdirect_kind", sa.String(length=16), nullable=False),
        sa.Column("ptdirect_url", sa.Text(), nullable=True),
        sa.Column("ptdirect_path", sa.Text(), nullable=True),
        sa.Column("ptdirect_key_encrypted", sa.Text(), nullable=True),
        sa.Column("pseudonym_key_encrypted", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("sharing_scope", sa.String(length=16), nullable=False),
        sa.Column("master_recipients", sa.String(length=16), nullable=False),
        sa.Column("schedule", sa.String(length=64), nullable=False),
        sa.Column("lookback_days", sa.Integer(), nullable=False),
        sa.Column("created_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("audit_by_org", ["org_id", "at"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "one_queued_run_per_org",
            ["org_id"],
            unique=True,
            sqlite_where=sa.text("status = 'queued'"),
            postgresql_where=sa.text("status = 'queued'"),
        )
        batch_op.create_index(
            "one_running_run_per_org",
            ["org_id"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.create_index("runs_by_org_and_time", ["org_id", "requested_at"], unique=False)

    op.create_table(
        "sync_cursors",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", "resource"),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("findings_by_org", ["org_id", "fingerprint"], unique=False)
        batch_op.create_index("findings_by_run", ["run_id"], unique=False)

    op.create_table(
        "proposals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("state_digest", sa.String(length=64), nullable=False),
        sa.Column("planned_state", sa.JSON(), nullable=False),
        sa.Column("created_at", worker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("applied_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("apply_token", sa.String(length=32), nullable=True),
        sa.Column("apply_lease_expires_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index("proposals_by_org", ["org_id", "created_at"], unique=False)

    op.create_table(
        "proposal_operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("applied_at", worker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["proposal_id"], ["proposals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("proposal_operations")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index("proposals_by_org")

    op.drop_table("proposals")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("findings_by_run")
        batch_op.drop_index("findings_by_org")

    op.drop_table("findings")
    op.drop_table("sync_cursors")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("runs_by_org_and_time")
        batch_op.drop_index(
            "one_running_run_per_org",
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.drop_index(
            "one_queued_run_per_org",
            sqlite_where=sa.text("status = 'queued'"),
            postgresql_where=sa.text("status = 'queued'"),
        )

    op.drop_table("runs")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("audit_by_org")

    op.drop_table("audit_log")
    op.drop_table("organisations")
