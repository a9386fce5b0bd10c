"""A `ptsync worker` process builds its runtime and configures the ORM as it boots, not in its
first message (worker/worker_ops.py `RuntimeAtBoot`); a database it cannot reach yet does not
stop it from booting."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from worker import runtime as runtime_module
from worker import settings as settings_module
from worker import worker_ops
from worker.store.db import Database


@pytest.fixture
def fresh_runtime(monkeypatch, secret_key: str) -> Iterator[None]:
    """No runtime built yet in this process, and none left behind."""
    monkeypatch.setenv("PTSYNC_SECRET_KEY", secret_key)
    settings_module.get_settings.cache_clear()
    runtime_module.get_runtime.cache_clear()
    yield
    if runtime_module.get_runtime.cache_info().currsize:
        runtime_module.get_runtime().db.dispose()
    settings_module.get_settings.cache_clear()
    runtime_module.get_runtime.cache_clear()


def _boot(monkeypatch, database_url: str) -> None:
    monkeypatch.setenv("PTSYNC_DATABASE_URL", database_url)
    broker = StubBroker()
    broker.add_middleware(worker_ops.RuntimeAtBoot())
    broker.emit_after("process_boot")


def test_given_a_reachable_database_when_a_worker_process_boots_then_its_runtime_is_built(
    fresh_runtime, monkeypatch, database_url: str
) -> None:
    # Given: a migrated database (SQLite and PostgreSQL)
    database = Database(database_url)
    database.migrate()
    database.dispose()
    # When
    _boot(monkeypatch, database_url)
    # Then: the first message finds the runtime built
    assert runtime_module.get_runtime.cache_info().currsize == 1
    assert runtime_module.get_runtime().db.url == database_url


def test_given_an_unreachable_database_when_a_worker_process_boots_then_it_boots_and_says_so_in_one_line(
    fresh_runtime, monkeypatch, caplog
) -> None:
    # Given: a database that refuses connections (not up yet, say), with a password in its URL
    url = "postgresql://ptsync:hunter2@127.0.0.1:1/ptsync"
    # When: the process boots
    with caplog.at_level(logging.WARNING, logger="worker.worker_ops"):
        _boot(monkeypatch, url)
    # Then: no runtime is kept (the first message builds it again), and one warning says why,
    # naming neither the URL nor its password
    assert runtime_module.get_runtime.cache_info().currsize == 0
    [warning] = [record for record in caplog.records if record.name == "worker.worker_ops"]
    assert "first message tries again" in warning.getMessage()
    assert "hunter2" not in warning.getMessage() and "127.0.0.1" not in warning.getMessage()


def test_given_the_orm_unconfigured_when_configure_orm_runs_then_every_mapper_is_configured() -> None:
    # Given: a fresh interpreter that imported the models (mappers are configured at first use)
    script = (
        "from sqlalchemy import inspect\n"
        "from worker.store.models import Organisation, Run\n"
        "from worker.store.db import configure_orm\n"
        "assert not inspect(Run).configured\n"
        "configure_orm()\n"  # When
        "assert inspect(Run).configured and inspect(Organisation).configured\n"  # Then
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_given_a_worker_process_when_it_boots_then_the_runtime_is_built_before_imports_are_set_aside(
    monkeypatch,
) -> None:
    # Given: a `ptsync worker` process without a metrics port, its middleware installed (the
    # two boot hooks record their order instead of building or freezing anything)
    monkeypatch.setenv("PTSYNC_WORKER_PROCESS", "1")
    monkeypatch.setenv("PTSYNC_WORKER_METRICS_PORT", "0")
    monkeypatch.setattr("worker.logs.configure", lambda level: None)
    booted: list[str] = []
    monkeypatch.setattr(
        worker_ops.RuntimeAtBoot, "after_process_boot", lambda self, b: booted.append("runtime")
    )
    monkeypatch.setattr(worker_ops.ImportsAside, "after_process_boot", lambda self, b: booted.append("aside"))
    broker: dramatiq.Broker = StubBroker()
    worker_ops.install(broker)
    # When: the process boots (dramatiq runs `after_*` hooks last-added first)
    broker.emit_after("process_boot")
    # Then: what the runtime imports and builds at boot is frozen with the rest
    assert booted == ["runtime", "aside"]


def test_given_an_embedded_database_behind_its_schema_when_ptsync_worker_starts_then_it_is_migrated_once_before_the_processes_boot(
    fresh_runtime, monkeypatch, tmp_path
) -> None:
    # Given: a new embedded SQLite database (or one a release's new migration is ahead of): each
    # of `ptsync worker`'s processes would migrate it at boot, all at once, and a loser of that
    # race can leave a half-made table behind (`_alembic_tmp_organisations`) that breaks the
    # next migration
    from typer.testing import CliRunner

    from worker import cli

    url = f"sqlite:///{tmp_path / 'ptsync.db'}"
    monkeypatch.setenv("PTSYNC_DATABASE_URL", url)
    monkeypatch.setenv("PTSYNC_BROKER_URL", "redis://127.0.0.1:6379/15")
    monkeypatch.setattr("worker.worker_ops.prepare_worker_environment", lambda port: [])
    current_at_start: list[bool] = []

    def execv(path, argv):
        database = Database(url)
        current_at_start.append(database.schema_is_current())
        database.dispose()

    monkeypatch.setattr(cli.os, "execv", execv)
    # When
    result = CliRunner().invoke(cli.app, ["worker"])
    # Then: the one `ptsync worker` process migrated it before it started the others
    assert result.exit_code == 0, result.output
    assert current_at_start == [True]
