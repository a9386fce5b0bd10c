"""Engine, sessions and migrations.

SQLite is tuned for one writer and concurrent readers (WAL, a busy timeout, foreign keys);
PostgreSQL needs nothing special. Migrations run through Alembic in both cases.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text

from worker.store import json_codec
from worker.store.schema import MIGRATIONS, schema_head

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["MIGRATIONS", "Database", "migrate", "schema_head", "schema_revision"]
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _create_owner_only(url: str) -> None:
    """Create the SQLite file readable by its owner only, before SQLite creates it with the
    umask's mode (often world-readable). Its -wal and -shm files take the same mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process created it a moment ago
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


_JSON_CODEC = {"json_serializer": json_codec.dumps, "json_deserializer": json_codec.loads}
"""JSON columns are written with orjson and read with `json` (`worker.store.json_codec`). SQLite's
driver binds the text; PostgreSQL's takes the UTF-8 bytes as they are (`_PG_JSON_CODEC`)."""
_PG_JSON_CODEC = {**_JSON_CODEC, "json_serializer": json_codec.dumps_utf8}


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _create_owner_only(url)
        engine = create_engine(url, connect_args={"timeout": 30}, **_JSON_CODEC)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # pragma: no cover - trivial
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # Bytes only where the driver is psycopg: another (psycopg2, pg8000) would bind them as bytea.
    psycopg = make_url(url).get_driver_name() == "psycopg"
    return create_engine(url, pool_pre_ping=True, **(_PG_JSON_CODEC if psycopg else _JSON_CODEC))


def configure_orm() -> None:
    """Configure the ORM's mappers now, for a long-lived process about to serve: SQLAlchemy
    otherwise does it at the process's first ORM query (20-50 ms of a worker's first message or
    the web's first webhook). Not at every command's start: a read through the engine alone
    never loads the ORM."""
    from sqlalchemy.orm import configure_mappers

    import worker.store.models  # noqa: F401  (the mappers to configure)

    configure_mappers()


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # Alembic loads only when a migration has to run

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def schema_revision(engine: Engine) -> str | None:
    """The revision this database is at (None when it was never migrated)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None  # a new, empty database
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions: sessionmaker[Session] | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Built on first use, so a read through the engine alone never loads the ORM."""
        if self._sessions is None:
            from sqlalchemy.orm import sessionmaker

            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together or not at all."""
        with self.sessions.begin() as session:
            yield session

    def migrate(self) -> None:
        migrate(self.engine)

    def schema_is_current(self) -> bool:
        return schema_revision(self.engine) == schema_head()

    def dispose(self) -> None:
        self.engine.dispose()
