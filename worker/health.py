"""Liveness and readiness, shared by `ptsync web` and the worker/clock metrics ports.

Ready means: the database answers, its schema is at the newest migration, and the broker
(Redis, when configured) answers a PING. Each check is bounded to a couple of seconds.
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from worker.runtime import Runtime
from worker.store.db import alembic_config

CHECK_TIMEOUT_SECONDS = 2


def readiness(runtime: Runtime) -> tuple[bool, dict[str, str]]:
    """(ready, {check: "ok" or the reason}). Reasons name the failure class, never a URL."""
    checks: dict[str, str] = {}
    try:
        with runtime.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
        checks["database"] = "ok"
        head = ScriptDirectory.from_config(alembic_config(runtime.db.engine)).get_current_head()
        checks["schema"] = "ok" if current == head else f"outdated ({current} != {head}): run ptsync migrate"
    except Exception as exc:
        checks["database"] = f"unreachable ({exc.__class__.__name__})"
        checks["schema"] = "unknown"
    checks["broker"] = _broker(runtime.settings.broker_url)
    return all(value == "ok" for value in checks.values()), checks


def _broker(url: str) -> str:
    if not url:
        return "ok"  # the in-process broker lives in this process
    try:
        import redis

        client = redis.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    except Exception as exc:
        return f"unreachable ({exc.__class__.__name__})"
