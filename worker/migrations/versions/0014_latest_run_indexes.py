"""Indexes that find an organisation's latest report, latest trusted roster and latest
finished runs directly

Every poll and webhook run asks for the first two (the latest report's digest, the baseline
roster); the clock's notification watch asks for the last 50 finished runs of each watched
organisation every minute. Without these, PostgreSQL read all of the organisation's runs to find
them: with polls every 2 minutes and 180 days of retention that is over 100,000 runs, about 9 ms
of database CPU per query, growing with every poll.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Only a succeeded run stores a report or a roster. The conditions hold no value a query passes
# as a parameter (a status is one), so the planner can use the index whatever the parameters.
_REPORTS = "report IS NOT NULL"
_ROSTERS = "roster IS NOT NULL"


def upgrade() -> None:
    # Built CONCURRENTLY on PostgreSQL (outside the migration's transaction, which that needs):
    # a long-lived installation has millions of runs, and a plain CREATE INDEX would hold off
    # every worker's writes to them while it builds. SQLite builds them as usual.
    with op.get_context().autocommit_block():
        op.create_index(
            "runs_by_org_and_finish", "runs", ["org_id", "finished_at"], postgresql_concurrently=True
        )
        for name, condition in (("runs_with_report", _REPORTS), ("runs_with_roster", _ROSTERS)):
            op.create_index(
                name,
                "runs",
                ["org_id", "finished_at", "id"],
                postgresql_where=sa.text(condition),
                sqlite_where=sa.text(condition),
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    op.drop_index("runs_with_roster", table_name="runs")
    op.drop_index("runs_with_report", table_name="runs")
    op.drop_index("runs_by_org_and_finish", table_name="runs")
