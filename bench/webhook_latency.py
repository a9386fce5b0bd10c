"""Benchmark: signed webhooks in, updated reports out.

The web app (`ptsync web`), a real Redis broker, PostgreSQL and two worker processes on this
machine; 100 organisations (small CSV clinics); 1,000 Standard-Webhooks-signed deliveries
spread over 10 seconds. Prints accepted per second, every webhook's time from accepted to the
report of the run that covers it (p50 / p95 / p99), runs executed, and the most runs any one
organisation had running at once (must be 1: coalescing and one sync per organisation).

With `--changes`, each webhook follows a change to its organisation's PMS export (a new
appointment row, the file replaced atomically), so every run that covers it has new data to
reconcile and a new report to write; without it the export never changes, and runs after the
first find nothing changed (they keep the report, as a webhook run may: services/poll.py).

Needs PostgreSQL and Redis on 127.0.0.1 (Redis database 13, or $BENCH_REDIS_URL; a scratch
PostgreSQL database).
Run: .venv/bin/python bench/webhook_latency.py [--changes]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
import requests
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook

ORGS = 100
WEBHOOKS = 1_000
SECONDS = 10.0
MIN_INTERVAL = int(os.environ.get("BENCH_WEBHOOK_MIN_INTERVAL", "60"))
"""Each organisation's minimum interval between webhook-triggered runs (`--webhook-min-interval`)."""
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PTSYNC = str(Path(sys.executable).parent / "ptsync")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from box_cpu import cpu_by_role, per_unit, total  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _change(export: Path, number: int) -> None:
    """A new appointment in the organisation's export: the file replaced atomically (a run reading
    it sees the old file or the new one, never half of one)."""
    access = export / "patient_access.csv"
    rows = access.read_text()
    row = f"101,bench-{number},appointment,{datetime.now(UTC).date().isoformat()}\n"
    staged = access.with_suffix(f".{number}.tmp")
    staged.write_text(rows + row)
    os.replace(staged, access)


def main() -> None:
    from tests.clinic_files import write_clinic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", action="store_true", help="change the PMS data before each webhook")
    args = parser.parse_args()
    exports: dict[str, Path] = {}

    redis.Redis.from_url(REDIS_URL).flushdb()
    database = f"ptsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    work = Path(tempfile.mkdtemp(prefix="ptsync-webhooks-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(
        {
            "PTSYNC_DATABASE_URL": database_url,
            "PTSYNC_BROKER_URL": REDIS_URL,
            "PTSYNC_SECRET_KEY": Fernet.generate_key().decode(),
        }
    )

    processes: list[subprocess.Popen] = []
    try:
        # Organisations are created in this process through the same services the CLI uses
        # (200 CLI start-ups would take minutes); the measured path is all separate processes.
        os.environ.update({k: v for k, v in env.items() if k.startswith("PTSYNC_")})
        from worker.runtime import get_runtime
        from worker.services.credentials import rotate_webhook_credentials
        from worker.services.orgs import NewOrganisation, add_organisation
        from worker.store.db import Database

        Database(database_url).migrate()
        runtime = get_runtime()
        secrets: dict[str, str] = {}
        for number in range(ORGS):
            slug = f"org-{number:03d}"
            pms, ptdirect = write_clinic(work / slug)
            exports[slug] = pms
            add_organisation(
                runtime,
                NewOrganisation(
                    slug=slug,
                    pms="csv",
                    pms_path=str(pms),
                    ptdirect="file",
                    ptdirect_path=str(ptdirect),
                    webhook_min_interval=MIN_INTERVAL,
                ),
            )
            secrets[slug] = rotate_webhook_credentials(runtime, slug).signing_secret
        runtime.db.dispose()
        port = _free_port()
        for command in (["web", "--port", str(port)], ["worker", "--processes", "2", "--threads", "2"]):
            processes.append(
                subprocess.Popen(
                    [PTSYNC, *command],
                    env=env,
                    cwd=work,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/openapi.json", timeout=1).ok:
                    break
            except requests.RequestException:  # refused, or slow to answer while starting
                time.sleep(0.2)
        time.sleep(2)  # let the workers boot

        # The senders run on this box too, so they should cost it little: one kept-alive
        # http.client connection per sending thread (requests cost about three times the CPU).
        connections = threading.local()

        def post(path: str, body: str, headers: dict[str, str]) -> int:
            if getattr(connections, "http", None) is None:
                connections.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connections.http.request("POST", path, body=body, headers=headers)
                response = connections.http.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                connections.http.close()
                connections.http = None
                raise

        def deliver(number: int) -> tuple[int, float, float]:
            slug = f"org-{number % ORGS:03d}"
            body = json.dumps({"type": "appointment.updated", "n": number})
            message_id = f"msg_{number}"
            # One timestamp for the signature and its header (two clock reads could straddle a second).
            signed_at = datetime.fromtimestamp(int(time.time()), UTC)
            signature = Webhook(secrets[slug]).sign(message_id, signed_at, body)
            headers = {
                "webhook-id": message_id,
                "webhook-timestamp": str(int(signed_at.timestamp())),
                "webhook-signature": signature,
                "Content-Type": "application/json",
            }
            target = start + number * SECONDS / WEBHOOKS
            time.sleep(max(target - time.monotonic(), 0))
            if args.changes:
                with locks[slug]:
                    _change(exports[slug], number)
            sent = time.monotonic()
            status = post(f"/webhooks/generic/{slug}", body, headers)
            return status, sent, time.monotonic()

        web, worker = processes
        roles = (
            {"web": web.pid, "workers": worker.pid},
            {"redis": redis.Redis.from_url(REDIS_URL).info()["process_id"]},
        )
        cpu_before = cpu_by_role(*roles)
        locks = {slug: threading.Lock() for slug in exports}
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(deliver, range(WEBHOOKS)))
        sending = max(done for _, _, done in answers) - start
        accepted = sum(1 for status, _, _ in answers if status == 200)

        deadline = time.monotonic() + 300
        with psycopg.connect(database_url) as connection:
            while time.monotonic() < deadline:
                open_runs = connection.execute(
                    "select count(*) from runs where status in ('queued', 'running')"
                ).fetchone()[0]
                pending = connection.execute(
                    "select count(*) from deliveries where status = 'pending'"
                ).fetchone()[0]
                if open_runs == 0 and pending == 0:
                    break
                time.sleep(0.3)
            cpu_after, all_done = cpu_by_role(*roles), time.monotonic()
            latencies = [
                row[0]
                for row in connection.execute(
                    "select extract(epoch from (r.finished_at - d.received_at)) from deliveries d "
                    "join runs r on r.id = d.run_id where d.source = 'generic' and r.status = 'succeeded'"
                )
            ]
            runs = connection.execute(
                "select count(*), count(*) filter (where status = 'succeeded'), "
                "count(*) filter (where status = 'succeeded' and report is null) from runs"
            ).fetchone()
            phases = connection.execute(
                "select extract(epoch from (r.requested_at - d.received_at)), "
                "extract(epoch from (r.started_at - r.requested_at)), "
                "extract(epoch from (r.finished_at - r.started_at)) from deliveries d "
                "join runs r on r.id = d.run_id where d.source = 'generic' and r.status = 'succeeded'"
            ).fetchall()
            intervals = connection.execute(
                "select org_id, started_at, finished_at from runs where started_at is not null "
                "order by org_id, started_at"
            ).fetchall()
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    most_at_once = 1
    for org_id, started, finished in intervals:
        overlapping = sum(
            1
            for other_org, other_start, other_end in intervals
            if other_org == org_id and other_start < finished and other_end > started
        )
        most_at_once = max(most_at_once, overlapping)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    print(
        f"{WEBHOOKS} signed webhooks for {ORGS} organisations over {SECONDS:.0f} s; web + Redis + "
        "PostgreSQL + 2 worker processes (2 threads each) on this machine; "
        + ("each after a change to its clinic's data" if args.changes else "the clinics' data unchanged")
    )
    print(f"accepted: {accepted}/{WEBHOOKS} ({accepted / sending:.1f} per second over {sending:.2f} s)")
    print(
        f"accepted -> updated report: p50 {quantiles[49]:.2f} s, p95 {quantiles[94]:.2f} s, "
        f"p99 {quantiles[98]:.2f} s over {len(latencies)} webhooks "
        + (
            "(target p95 < 1 s without a minimum interval)"
            if MIN_INTERVAL == 0
            else f"(target p95 < {MIN_INTERVAL} s minimum interval + 2 s)"
        )
        + f"; load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}"
    )
    phase_names = ("accepted -> run requested", "run requested -> started", "run started -> finished")
    for index, name in enumerate(phase_names):
        values = sorted(float(row[index]) for row in phases)
        if len(values) >= 2:
            cut = statistics.quantiles(values, n=100)
            print(f"  {name}: p50 {cut[49]:.2f} s, p95 {cut[94]:.2f} s, max {values[-1]:.2f} s")
    busy = total(cpu_before, cpu_after)
    print(
        f"CPU per webhook on the box: {per_unit(cpu_before, cpu_after, WEBHOOKS)}; {busy:.0f} s of CPU "
        f"(without other) in the {all_done - start:.0f} s from the first webhook to the last report"
    )
    print(
        f"runs executed: {runs[0]} ({runs[1]} succeeded, {runs[2]} of them found nothing changed and "
        f"kept the report) for {WEBHOOKS} webhooks "
        f"(target at most {ORGS * (1 + int(SECONDS) // max(MIN_INTERVAL, 1) + 1)}); "
        f"most runs of one organisation running at once: {most_at_once} (expected 1)"
    )


if __name__ == "__main__":
    main()
