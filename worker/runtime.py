"""The shell's shared dependencies (settings, database, secrets), built once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from worker.crypto import SecretBox, load_secret_box
from worker.errors import ConfigurationError
from worker.settings import Settings, default_database_path, get_settings
from worker.store.db import Database, schema_head, schema_revision

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    secrets: SecretBox


def build_runtime(settings: Settings) -> Runtime:
    # A malformed PTSYNC_SECRET_KEY is refused before anything is created; without one, the
    # embedded default makes its key file after the database, as its first run says.
    given = load_secret_box(settings) if settings.secret_key else None
    if not settings.database_url:
        _announce_new_default_database()
    db = Database(settings.resolved_database_url)
    if settings.is_sqlite:
        if not db.schema_is_current():
            db.migrate()  # the embedded default migrates itself; production uses the release step
    else:
        _require_current_schema(db)
    return Runtime(settings=settings, db=db, secrets=given or load_secret_box(settings))


def _announce_new_default_database() -> None:
    """The first run says where the embedded database lives (and how to choose another)."""
    path = default_database_path()
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning("created ptsync's database at %s (set PTSYNC_DATABASE_URL to keep it elsewhere)", path)


def _require_current_schema(db: Database) -> None:
    head = schema_head()  # a broken migration chain is a bug in this release, not a connection problem
    try:
        current = schema_revision(db.engine) == head
    except Exception as exc:  # connection refused, bad URL, ...
        raise ConfigurationError(f"cannot reach the database: {exc.__class__.__name__}") from exc
    if not current:
        raise ConfigurationError(
            "the database schema is not up to date: run `ptsync migrate` (the Procfile release step)"
        )


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    return build_runtime(get_settings())
