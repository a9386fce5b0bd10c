"""The "latest run" lookups of every poll and of the clock's watch use an index, however many runs
an organisation has (migration 0014), on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from tests.pg_rows import insert_organisation
from worker.clock import utcnow
from worker.store import run_memory
from worker.store.db import Database

RUNS = 3_000


@pytest.fixture
def busy_org(postgres_url: str) -> str:
    """An organisation with 3,000 runs, one in 50 with a report and a roster (a poll's run that
    found nothing changed stores neither), analysed so the planner knows."""
    Database(postgres_url).migrate()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        insert_organisation(connection, 1, "busy")
        connection.execute(
            "INSERT INTO runs (id, org_id, trigger, status, requested_at, started_at, finished_at, attempts,"
            " accept_drop, full_pull, report_required, report, roster, counts)"
            " SELECT 'r' || g, 1, 'schedule:tick', 'succeeded', now() - g * interval '2 minutes',"
            " now() - g * interval '2 minutes', now() - g * interval '2 minutes', 1, false, false, false,"
            " CASE WHEN g % 50 = 0 THEN '{\"findings\": []}'::json END,"
            " CASE WHEN g % 50 = 0 THEN '[\"p1\"]'::json END, '{}'::json"
            f" FROM generate_series(1, {RUNS}) g"
        )
        connection.execute("ANALYZE runs")
    return postgres_url


def _plan(url: str, statement) -> str:
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with psycopg.connect(url) as connection:
        return "\n".join(row[0] for row in connection.execute("EXPLAIN " + sql))


@pytest.mark.parametrize("with_report, shared", [(False, False), (True, False), (False, True)])
def test_given_an_organisation_with_thousands_of_runs_when_a_run_reads_its_memory_then_indexes_find_its_latest_report_and_baseline(
    busy_org: str, with_report: bool, shared: bool
) -> None:
    # When: a run reads what earlier runs left (its latest report's run and its baseline among them)
    statement = run_memory._STATEMENTS[with_report, shared]
    plan = _plan(busy_org, statement.params(org_id=1, run_id="r0", key="k", pms_kind="csv", now=utcnow()))
    # Then: each by its partial index, and the runs table is never scanned
    assert "runs_with_report" in plan and "runs_with_roster" in plan, plan
    assert "Seq Scan on runs" not in plan, plan


def test_given_an_organisation_with_thousands_of_runs_when_the_clock_watches_it_then_an_index_finds_its_latest_runs(
    busy_org: str,
) -> None:
    from worker.services import notify_watch

    # When
    plan = _plan(busy_org, notify_watch._LATEST_FINISHED.params(org_id=1))
    # Then
    assert "runs_by_org_and_finish" in plan and "Seq Scan" not in plan, plan
