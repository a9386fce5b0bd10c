"""/metrics after a real sync against the Cliniko emulator; /healthz; /readyz against a dead database."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import free_port, sync_and_settle
from worker.crypto import load_secret_box
from worker.runtime import Runtime
from worker.settings import Settings
from worker.store.db import Database
from worker.web import create_app


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_scraped_after_a_sync_show_the_run_and_the_pms_requests(
    runtime, cliniko_clinic, worker_thread
):
    with TestClient(create_app(background=False)) as client:
        # Given the metrics before the sync
        before = _samples(client.get("/metrics").text)
        # When a Cliniko clinic is synced through the actors
        sync_and_settle(worker_thread, "clinic-c")
        # Then the scrape shows the run, its phases and the requests to Cliniko
        after = _samples(client.get("/metrics").text)
    run = ("ptsync_runs_total", {"status": "succeeded", "trigger": "manual"})
    assert _value(after, run[0], **run[1]) == _value(before, run[0], **run[1]) + 1
    ok = {"connector": "cliniko", "outcome": "ok"}
    assert (
        _value(after, "ptsync_connector_requests_total", **ok)
        - _value(before, "ptsync_connector_requests_total", **ok)
        >= 3
    )
    for phase in ("pull", "reconcile", "store"):
        assert _value(after, "ptsync_run_phase_seconds_count", phase=phase) > _value(
            before, "ptsync_run_phase_seconds_count", phase=phase
        )
    assert _value(after, "ptsync_rate_limiter_wait_seconds_count", connector="cliniko") > 0
    # and the database gauges: the organisation is fresh, its findings and waiting proposal counted
    assert _value(after, "ptsync_database_up") == 1
    assert 0 <= _value(after, "ptsync_org_seconds_since_last_success", org="clinic-c") < 60
    assert _value(after, "ptsync_org_consecutive_failures", org="clinic-c") == 0
    assert (
        _value(after, "ptsync_org_schedule_interval_seconds", org="clinic-c") == 120
    )  # the default poll: every 2 minutes
    assert sum(v for (name, _), v in after.items() if name == "ptsync_open_findings") > 0
    assert _value(after, "ptsync_proposals_awaiting_approval") == 1
    # and no label carries a patient, a request path or a run id (bounded cardinality)
    labels = {key for (name, pairs) in after if name.startswith("ptsync_") for key, _ in pairs}
    assert labels <= {"status", "trigger", "phase", "connector", "outcome", "kind", "severity", "org", "le"}


def test_healthz_answers_while_the_process_lives(runtime):
    with TestClient(create_app(background=False)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}


class TcpProxy:
    """Forwards a local port to PostgreSQL; stopping it makes the database unreachable."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
            self._listener.close()
            self._listener = None
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self._sockets.clear()


@pytest.mark.postgres
def test_readyz_fails_while_the_database_is_unreachable_and_recovers(postgres_url, secret_key):
    # Given ptsync web on PostgreSQL reached through a port we can cut
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy((host, int(port)))
    proxy.start()
    url = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    settings = Settings(database_url=url, secret_key=secret_key)
    database = Database(url)
    database.migrate()
    runtime = Runtime(settings=settings, db=database, secrets=load_secret_box(settings))
    try:
        with TestClient(create_app(lambda: runtime, background=False)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok", "schema": "ok", "broker": "ok"}
            # When the database becomes unreachable
            proxy.stop()
            down = client.get("/readyz")
            # Then /readyz fails and says why, while /healthz still answers
            assert down.status_code == 503
            assert down.json()["checks"]["database"].startswith("unreachable")
            assert client.get("/healthz").status_code == 200
            assert client.get("/metrics").status_code == 200
            assert "ptsync_database_up 0.0" in client.get("/metrics").text
            # And when it is back, /readyz recovers
            proxy.start()
            assert client.get("/readyz").status_code == 200
    finally:
        proxy.stop()
        database.dispose()


def test_the_grafana_dashboard_uses_only_metrics_ptsync_exports(runtime):
    from pathlib import Path

    from worker.web.ops import exposition

    # Given the metric families ptsync exports (process and database) and dramatiq's queue metrics
    exported = {
        family.name for family in text_string_to_metric_families(exposition(lambda: runtime).decode())
    }
    exported |= {"dramatiq_messages", "dramatiq_message_errors", "dramatiq_message_retries"}
    exported |= {"dramatiq_messages_inprogress", "dramatiq_message_duration_milliseconds"}
    # When the dashboard's queries are read
    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text()
    )
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for q in queries
        for name in re.findall(r"\b(?:ptsync|dramatiq)_\w+", q)
    }
    # Then every metric it uses exists
    assert used and used <= exported, used - exported


def test_readyz_names_an_outdated_schema_and_an_unreachable_broker(sqlite_url, secret_key):
    from alembic import command

    from worker.health import readiness
    from worker.store.db import alembic_config

    # Given a database left at an older migration and a broker URL nothing answers on
    database = Database(sqlite_url)
    command.upgrade(alembic_config(database.engine), "0004")
    settings = Settings(
        database_url=sqlite_url, secret_key=secret_key, broker_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    runtime = Runtime(settings=settings, db=database, secrets=load_secret_box(settings))
    # When readiness is checked
    ready, checks = readiness(runtime)
    database.dispose()
    # Then it is not ready, and says which checks failed and what to do
    assert not ready
    assert checks["database"] == "ok"
    assert checks["schema"].startswith("outdated") and "ptsync migrate" in checks["schema"]
    assert checks["broker"].startswith("unreachable")
