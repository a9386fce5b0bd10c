"""Real dramatiq worker processes on the real Redis and PostgreSQL, driven through the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.clinic_files import csv_org_add_args

PTSYNC = str(Path(sys.executable).parent / "ptsync")
pytestmark = pytest.mark.slow


@pytest.fixture
def service_env(postgres_url, redis_url, secret_key):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(
        {
            "PTSYNC_DATABASE_URL": postgres_url,
            "PTSYNC_BROKER_URL": redis_url,
            "PTSYNC_SECRET_KEY": secret_key,
            "PTSYNC_RUN_LEASE_SECONDS": "3",
            "PTSYNC_REDIS_HEARTBEAT_TIMEOUT_MS": "2000",
            "PTSYNC_REDIS_MAINTENANCE_CHANCE": "1000000",
            "COLUMNS": "200",
        }
    )
    return env


def ptsync(env, *args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([PTSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


class WorkerProcess:
    """`ptsync worker` in its own process group, so it and its children can be killed together."""

    def __init__(self, env, log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [PTSYNC, "worker", "--processes", "1", "--threads", "2"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig=signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def workers(service_env, tmp_path):
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(service_env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.kill(signal.SIGTERM)


def _query(url: str, sql: str, *params):
    with psycopg.connect(url) as connection:
        return connection.execute(sql, params).fetchall()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _setup_org(env, tmp_path) -> Path:
    """Migrates, adds clinic-a, and returns its PMS folder."""
    assert ptsync(env, "migrate").returncode == 0
    added = ptsync(env, *csv_org_add_args(tmp_path))
    assert added.returncode == 0, added.stderr
    return tmp_path / "pms"


def test_a_real_worker_process_syncs_an_organisation_end_to_end(service_env, workers, tmp_path, postgres_url):
    # Given a migrated PostgreSQL, an organisation, and a dramatiq worker on Redis
    _setup_org(service_env, tmp_path)
    workers()
    # When the CLI asks for a sync and waits
    synced = ptsync(service_env, "sync", "clinic-a", "--wait", "--timeout", "60")
    # Then the run succeeded and its report is readable from any process
    assert synced.returncode == 0, synced.stderr + (tmp_path / "worker-0.log").read_text()
    report = json.loads(ptsync(service_env, "report", "clinic-a", "--format", "json").stdout)
    assert report["summary"]["findings"] == {"duplicate_patient_risk": 1, "missing_new_user": 1}
    [(status, attempts)] = _query(postgres_url, "select status, attempts from runs")
    assert (status, attempts) == ("succeeded", 1)


def test_a_worker_killed_mid_sync_leaves_no_run_stuck_and_the_run_completes_once(
    service_env, workers, tmp_path, postgres_url
):
    # Given an organisation whose access export is a named pipe, so a pull blocks mid-sync
    pms = _setup_org(service_env, tmp_path)
    access = pms / "patient_access.csv"
    content = access.read_text()
    access.unlink()
    os.mkfifo(access)
    first = workers()
    queued = ptsync(service_env, "sync", "clinic-a")
    assert queued.returncode == 0, queued.stderr
    _wait_for(
        lambda: _query(postgres_url, "select 1 from runs where status = 'running'"), 30, "a running run"
    )

    # When the worker is killed with SIGKILL in the middle of the pull, and another starts
    first.kill(signal.SIGKILL)
    started = time.monotonic()
    workers()

    def feed_the_pipe() -> None:
        with open(access, "w") as pipe:  # blocks until the new worker opens the export
            pipe.write(content)

    feeder = threading.Thread(target=feed_the_pipe, daemon=True)
    feeder.start()

    # Then the message is redelivered within seconds and the run completes exactly once
    _wait_for(lambda: _query(postgres_url, "select 1 from runs where status = 'succeeded'"), 60, "success")
    recovered_in = time.monotonic() - started
    runs = _query(postgres_url, "select status, attempts from runs")
    assert runs == [("succeeded", 2)]
    assert _query(postgres_url, "select count(*) from audit_log where action = 'sync_succeeded'") == [(1,)]
    assert _query(postgres_url, "select count(*) from proposals") == [(1,)]
    assert recovered_in < 30
