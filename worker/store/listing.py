"""The organisation list read straight through the database driver, without SQLAlchemy.

`ptsync org list` is the command people type most, and starting SQLAlchemy costs more than the
whole query (about 0.2 s of a 0.5 s start). This module asks the driver itself (the standard
library's sqlite3, or psycopg) one read-only question, in SQL both databases share, and checks
first that the schema is the one this release reads. It never writes: when the database is
missing or its schema is not current it answers None, and the caller takes the normal path (which
creates and migrates the embedded database, or says to run `ptsync migrate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class OrganisationRow:
    """One line of `org list`: the organisation's connections, policy, state and last run."""

    slug: str
    pms_kind: str
    ptdirect_kind: str
    mode: str
    schedule: str
    paused_at: datetime | None
    last_status: str | None
    last_at: datetime | None


NEWEST_RUN_PER_ORGANISATION = """
SELECT o.slug, o.pms_kind, o.ptdirect_kind, o.mode, o.schedule, o.paused_at, last.status, last.at
FROM organisations o
LEFT JOIN (
    SELECT org_id, status, COALESCE(finished_at, requested_at) AS at,
           ROW_NUMBER() OVER (PARTITION BY org_id ORDER BY requested_at DESC, id DESC) AS newest
    FROM runs
) last ON last.org_id = o.id AND last.newest = 1
ORDER BY o.slug
"""
"""One row per organisation with its newest run (latest `requested_at`, then highest id), like
`ptsync runs` and the organisation page put first."""


def organisation_rows(database_url: str, schema_head: str) -> list[OrganisationRow] | None:
    """Every organisation with its newest run; None when this path cannot answer (see above)."""
    connect = _connector(database_url)
    if connect is None:
        return None
    try:
        connection = connect()
    except Exception:  # cannot open it here (read-only WAL, server down): the store says why
        return None
    if connection is None:
        return None
    try:
        cursor = connection.cursor()
        if not _schema_is(cursor, schema_head):
            return None
        cursor.execute(NEWEST_RUN_PER_ORGANISATION)
        return [as_row(row) for row in cursor.fetchall()]
    except Exception:
        return None
    finally:
        connection.close()


def as_row(row: Any) -> OrganisationRow:
    """A result row of NEWEST_RUN_PER_ORGANISATION, times as aware UTC datetimes."""
    return OrganisationRow(*row[:5], _utc(row[5]), row[6], _utc(row[7]))


def _connector(url: str) -> Callable[[], Any] | None:
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        return lambda: _sqlite(rest)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return lambda: _postgres(f"postgresql://{rest}")
    return None


def _sqlite(rest: str):
    """`sqlite:///relative.db` or `sqlite:////absolute/path.db`, opened read-only."""
    import sqlite3
    from pathlib import Path

    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    if not path or path == ":memory:" or not Path(path).is_file():
        return None
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def _postgres(conninfo: str):
    import psycopg

    return psycopg.connect(conninfo, connect_timeout=10)


def _schema_is(cursor: Any, head: str) -> bool:
    try:
        cursor.execute("SELECT version_num FROM alembic_version")
    except Exception:  # no alembic_version table: never migrated
        return False
    row = cursor.fetchone()
    return row is not None and row[0] == head


def _utc(value: Any) -> datetime | None:
    """SQLite keeps `YYYY-MM-DD HH:MM:SS.ffffff` (UTC, no zone); psycopg gives aware datetimes."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
