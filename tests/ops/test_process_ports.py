"""The metrics ports of real `ptsync worker` (on Redis) and `ptsync clock` processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dramatiq
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import SLUG, free_port
from worker.services.sync import request_sync

PTSYNC = str(Path(sys.executable).parent / "ptsync")
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def process(args, env, log: Path):
    with log.open("ab") as handle:
        proc = subprocess.Popen(
            [PTSYNC, *args], env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update({k: v for k, v in os.environ.items() if k in ("PTSYNC_DATABASE_URL", "PTSYNC_SECRET_KEY")})
    env.update(extra)
    return env


def _wait_for(url: str, predicate, timeout: float = 60.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            last = requests.get(url, timeout=5)
            if predicate(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"{url} never satisfied the check; last answer: {last and last.text[:2000]}")


def _value(text: str, name: str, **labels) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_the_worker_port_serves_queue_and_sync_metrics_health_and_readiness(
    runtime, clinic, redis_url, tmp_path
):
    # Given `ptsync worker` on Redis with a metrics port
    port = free_port()
    env = _env(PTSYNC_BROKER_URL=redis_url, PTSYNC_LOG_FORMAT="json")
    with process(
        ["worker", "--processes", "1", "--threads", "1", "--metrics-port", str(port)], env, tmp_path / "w.log"
    ):
        base = f"http://127.0.0.1:{port}"
        assert _wait_for(f"{base}/healthz", lambda r: r.status_code == 200).json() == {"status": "ok"}
        ready = _wait_for(f"{base}/readyz", lambda r: r.status_code == 200).json()
        assert ready["checks"] == {"database": "ok", "schema": "ok", "broker": "ok"}
        # When a sync message goes through Redis
        from dramatiq.brokers.redis import RedisBroker

        run_id, _ = request_sync(runtime, SLUG, "manual")
        broker = RedisBroker(url=redis_url, namespace="ptsync")
        broker.enqueue(
            dramatiq.Message(
                queue_name="default", actor_name="ptsync.sync_org", args=(run_id,), kwargs={}, options={}
            )
        )
        # Then the port shows dramatiq's queue metrics and ptsync's run and phase metrics
        scrape = _wait_for(
            f"{base}/metrics",
            lambda r: (_value(r.text, "ptsync_runs_total", status="succeeded", trigger="manual") or 0) >= 1,
        ).text
        assert (_value(scrape, "dramatiq_messages_total", actor_name="ptsync.sync_org") or 0) >= 1
        assert (_value(scrape, "ptsync_run_phase_seconds_count", phase="reconcile") or 0) >= 1
    # and the worker's log lines were JSON with the run's context
    lines = [line for line in (tmp_path / "w.log").read_text().splitlines() if line.startswith("{")]
    assert any(f'"run_id": "{run_id}"' in line and '"org": "clinic-a"' in line for line in lines)


def test_the_clock_port_serves_health_readiness_and_database_gauges(runtime, clinic, tmp_path):
    # Given `ptsync clock` (embedded broker) with a metrics port
    port = free_port()
    with process(["clock", "--metrics-port", str(port)], _env(), tmp_path / "c.log"):
        base = f"http://127.0.0.1:{port}"
        # Then it is alive and ready, and exports the gauges read from the database
        assert _wait_for(f"{base}/healthz", lambda r: r.status_code == 200).status_code == 200
        assert _wait_for(f"{base}/readyz", lambda r: r.status_code == 200).json()["status"] == "ready"
        scrape = _wait_for(f"{base}/metrics", lambda r: "ptsync_database_up" in r.text).text
        assert _value(scrape, "ptsync_database_up") == 1
        assert (
            _value(scrape, "ptsync_org_schedule_interval_seconds", org=SLUG) == 120
        )  # the default poll: every 2 minutes
