"""Rows written straight into a migrated PostgreSQL database, for tests that need a store in a
precise state without going through the services."""

from __future__ import annotations

import psycopg


def insert_organisation(
    connection: psycopg.Connection, org_id: int, slug: str, webhook_min_interval: int = 60
) -> None:
    """A CSV-and-file organisation with the defaults `org add` would store."""
    connection.execute(
        "INSERT INTO organisations (id, slug, pms_kind, ptdirect_kind, pseudonym_key_encrypted, mode,"
        " sharing_scope, master_recipients, schedule, lookback_days, created_at,"
        " removal_threshold_percent, removal_threshold_people, timezone, webhook_min_interval_seconds,"
        " full_sync) VALUES (%s, %s, 'csv', 'file', 'x', 'observe', 'org', 'all', '*/2 * * * *', 540,"
        " now(), 30, 2, 'UTC', %s, '30 2 * * *')",
        (org_id, slug, webhook_min_interval),
    )
