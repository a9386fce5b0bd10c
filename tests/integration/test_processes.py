"""The `web` and `clock` processes as an operator runs them (Procfile commands)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests

from tests.clinic_files import csv_org_add_args, full_sync_far_from_now

PTSYNC = str(Path(sys.executable).parent / "ptsync")
pytestmark = pytest.mark.slow


@pytest.fixture
def env(postgres_url, redis_url, secret_key):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    environment.update(
        {"PTSYNC_DATABASE_URL": postgres_url, "PTSYNC_BROKER_URL": redis_url, "PTSYNC_SECRET_KEY": secret_key}
    )
    return environment


@pytest.fixture
def spawn(env, tmp_path):
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        log = (tmp_path / f"{args[0]}-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [PTSYNC, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def _cli(env, *args: str) -> str:
    result = subprocess.run([PTSYNC, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _add_org(env, tmp_path, schedule: str = "0 * * * *") -> None:
    _cli(env, "migrate")
    _cli(
        env,
        *csv_org_add_args(
            tmp_path, "clinic-a", "--schedule", schedule, "--full-sync", full_sync_far_from_now()
        ),
    )


def test_two_clock_processes_start_one_scheduled_sync_per_due_time(env, tmp_path, spawn, postgres_url):
    # Given an organisation scheduled every minute, a worker, and two clock processes
    _add_org(env, tmp_path, schedule="* * * * *")
    spawn("worker", "--processes", "1", "--threads", "2")
    spawn("clock")
    spawn("clock")
    # When the clocks have ticked for a while
    deadline = time.monotonic() + 40
    runs: list[tuple] = []
    while time.monotonic() < deadline:
        with psycopg.connect(postgres_url) as connection:
            runs = connection.execute("select trigger, status from runs").fetchall()
        if runs and all(status == "succeeded" for _, status in runs):
            break
        time.sleep(0.5)
    time.sleep(6)  # more ticks from both clocks
    # Then each due minute produced exactly one run
    with psycopg.connect(postgres_url) as connection:
        ticks = connection.execute("select delivery_id from deliveries where source = 'schedule'").fetchall()
        runs = connection.execute("select trigger, status from runs").fetchall()
    assert 1 <= len(ticks) <= 2  # the test may straddle a minute boundary
    assert 1 <= len(runs) <= len(ticks)  # never two runs for one due time (two may coalesce into one)
    assert {trigger for trigger, _ in runs} == {"schedule:tick"}


def test_the_web_process_serves_the_api_and_a_webhook_starts_a_sync(env, tmp_path, spawn, postgres_url):
    _add_org(env, tmp_path)
    token = _cli(env, "org", "token", "clinic-a").strip()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    urls = dict(
        line.split("=", 1)
        for line in _cli(env, "org", "webhooks", "clinic-a", "--base-url", f"http://127.0.0.1:{port}").split()
    )
    spawn("web", "--port", str(port))
    spawn("worker", "--processes", "1", "--threads", "1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    answer = requests.post(
        urls["physitrack_url"], json={"id": "evt-1", "event": "new_client_created"}, timeout=5
    )
    assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = requests.get(
            f"http://127.0.0.1:{port}/api/v1/orgs/clinic-a/runs",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()
        if runs and runs[0]["status"] == "succeeded":
            break
        time.sleep(0.3)
    assert runs[0]["trigger"] == "physitrack:new_client_created" and runs[0]["status"] == "succeeded"
