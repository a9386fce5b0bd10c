"""Engine, sessions and migrations.

SQLite is tuned for one writer and concurrent readers (WAL, a busy timeout, foreign keys);
PostgreSQL needs nothing special. Migrations run through Alembic in both cases.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import DisconnectionError

from worker.errors import ConfigurationError
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process created it a moment ago
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:  # a folder that cannot be made or written: the operator's to fix
        # mkdir's "File exists" for a folder that is a file would only puzzle.
        why = f"{exc.filename} is a file, not a folder" if isinstance(exc, FileExistsError) else exc.strerror
        raise ConfigurationError(f"cannot create the SQLite database {path}: {why}") from None


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
    # Last in, first out: under light load the connection used a moment ago is reused (no check
    # needed), and the others idle; first in, first out rotated through all of them.
    engine = create_engine(url, pool_use_lifo=True, **(_PG_JSON_CODEC if psycopg else _JSON_CODEC))
    _check_connections_at_checkout(engine)
    return engine


TRUSTED_IDLE_SECONDS = 30.0
"""A pooled connection back in the pool for less than this, whose socket has nothing to read,
is used without a round trip to check it (`_check_connections_at_checkout`)."""


def _check_connections_at_checkout(engine: Engine) -> None:
    """Replace a pooled PostgreSQL connection the server or a proxy ended before a transaction
    sees it, at the cost of a round trip only where one can tell something.

    SQLAlchemy's `pool_pre_ping` sends a statement at every checkout: some 0.2 ms of CPU between
    the process and PostgreSQL, three to five times per webhook. A server that ends a connection
    (a terminated backend, a restart, a proxy closing it) sends an error and closes its end, so
    the client's socket becomes readable: an idle connection has nothing else to read. So: a
    connection used within `TRUSTED_IDLE_SECONDS` whose socket has nothing to read is used as
    is; a readable socket, a closed or broken connection, a longer idle time (where a peer that
    vanished without a word is more likely) or a driver without a socket to look at gets the
    round trip (the dialect's own ping). A failed check raises `DisconnectionError`, on which the
    pool replaces the connection with a new one.
    """

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_connection, record) -> None:
        record.info["pooled_at"] = _clock()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["pooled_at"] = _clock()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        pooled_at = record.info.get("pooled_at")
        recent = pooled_at is not None and _clock() - pooled_at < TRUSTED_IDLE_SECONDS
        if recent and _quiet(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's own error: the connection is gone
            raise DisconnectionError("the pooled connection failed its check") from exc
        if not alive:
            raise DisconnectionError("the pooled connection failed its check")


def _clock() -> float:
    """Seconds that also count while the machine was suspended (Linux's boot clock): after a
    laptop or a virtual machine slept, a connection idle for hours must not look a moment old."""
    return time.clock_gettime(_BOOT_CLOCK)


_BOOT_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _quiet(dbapi_connection) -> bool:
    """True when the connection is open and its socket has nothing to read (no error message,
    no end of stream): what an idle PostgreSQL connection that is still served looks like."""
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        return False
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None or not hasattr(select, "poll"):
        return False
    try:
        poller = select.poll()
        poller.register(fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


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


@contextmanager
def short_statements(transaction: Session | Connection, timeout_ms: int) -> Iterator[None]:
    """Statements in this transaction give up after `timeout_ms` instead of waiting for a
    locked or slow database: the webhook inbox (a sender would time out first and retry anyway)
    and lease renewals (one renewal waiting must not hold the others).

    PostgreSQL: SET LOCAL (ends with the transaction), as set_config(..., true). SQLite: the
    connection's busy timeout, restored afterwards on the driver connection even when the
    statement failed.
    """
    connection = transaction if isinstance(transaction, Connection) else transaction.connection()
    if connection.dialect.name == "postgresql":
        milliseconds = str(int(timeout_ms))
        connection.exec_driver_sql(  # SET LOCAL twice, in one round trip
            "SELECT set_config('statement_timeout', %(ms)s, true), set_config('lock_timeout', %(ms)s, true)",
            {"ms": milliseconds},
        )
        yield
        return
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.dbapi_connection
    driver.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


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
