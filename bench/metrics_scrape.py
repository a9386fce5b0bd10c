"""Benchmark: how long a Prometheus scrape of `ptsync web` takes on a big deployment.

The database gauges (open findings, proposals, outbox ages, per-organisation freshness) are read
at scrape time. This fills a SQLite database with 500 organisations, each with 40 finished runs
(a 200 KB report on the latest, a failure streak on every tenth organisation) and 20 finding
records per run, then times /metrics through the real app. Target: p95 under 1 second (a scrape
every 15 s must stay cheap), with output size and series count printed beside it.

Run: .venv/bin/python bench/metrics_scrape.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import insert

from worker.clock import utcnow
from worker.crypto import load_secret_box
from worker.runtime import Runtime
from worker.settings import Settings
from worker.store.db import Database
from worker.store.models import FindingRecord, Organisation, Run
from worker.web import create_app

ORGS, RUNS, FINDINGS = 500, 40, 20
TARGET_P95_SECONDS = 1.0


def fill(database: Database) -> None:
    """Bulk inserts (the ORM one row at a time would take minutes)."""
    now = utcnow()
    big_report = {"findings": [{"message": "x" * 1000} for _ in range(200)]}
    with database.transaction() as session:
        session.execute(
            insert(Organisation),
            [
                {
                    "id": index + 1,
                    "slug": f"clinic-{index:04d}",
                    "pms_kind": "csv",
                    "ptdirect_kind": "file",
                    "pseudonym_key_encrypted": "-",
                    "created_at": now - timedelta(days=90),
                }
                for index in range(ORGS)
            ],
        )
        runs, findings = [], []
        for index in range(ORGS):
            for number in range(RUNS):
                failed = index % 10 == 0 and number >= RUNS - 3
                finished = now - timedelta(hours=RUNS - number)
                run_id = f"{index:04d}{number:04d}".ljust(32, "0")
                report = None if failed else (big_report if number >= RUNS - 4 else {"findings": []})
                runs.append(
                    {
                        "id": run_id,
                        "org_id": index + 1,
                        "trigger": "schedule",
                        "status": "failed" if failed else "succeeded",
                        "requested_at": finished,
                        "started_at": finished,
                        "finished_at": finished,
                        "attempts": 1,
                        "report": report,
                    }
                )
                findings += [
                    {
                        "run_id": run_id,
                        "org_id": index + 1,
                        "fingerprint": f"{n:040d}",
                        "kind": "missing_new_user",
                        "severity": "medium",
                        "state": "ongoing",
                        "document": {},
                    }
                    for n in range(FINDINGS)
                ]
        session.execute(insert(Run), runs)
        session.execute(insert(FindingRecord), findings)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ptsync-bench-"))
    url = f"sqlite:///{folder / 'bench.db'}"
    settings = Settings(database_url=url, secret_key=Fernet.generate_key().decode())
    database = Database(url)
    database.migrate()
    started = time.perf_counter()
    fill(database)
    elapsed = time.perf_counter() - started
    print(f"filled {ORGS} organisations x {RUNS} runs x {FINDINGS} findings in {elapsed:.1f}s")
    runtime = Runtime(settings=settings, db=database, secrets=load_secret_box(settings))
    timings = []
    with TestClient(create_app(lambda: runtime, background=False)) as client:
        body = client.get("/metrics").text
        for _ in range(20):
            started = time.perf_counter()
            assert client.get("/metrics").status_code == 200
            timings.append(time.perf_counter() - started)
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    series = sum(1 for line in body.splitlines() if line.startswith("ptsync_"))
    print(
        f"scrape p50 {statistics.median(timings) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
        f"(target < {TARGET_P95_SECONDS * 1000:.0f} ms); {len(body) / 1024:.0f} KiB, {series} ptsync series"
    )
    print("within target" if p95 < TARGET_P95_SECONDS else "OVER TARGET")
    database.dispose()


if __name__ == "__main__":
    main()
