"""Benchmark: how efficiently ptsync pulls a Cliniko account, and how well it keeps the limit.

An emulated Cliniko account (5,000 patients, 40 practitioners, 60,000 appointments) with its
rate limit scaled from 200 per minute to 200 per second. Two organisations use the same API
key (two businesses of one account) and are synced at the same time by two dramatiq worker
processes on Redis, so the limit must hold across processes. Then 50 appointments change and
one organisation syncs again.

Prints: requests made versus the minimum needed (one request per started page of 100 rows per
resource, and one for an empty resource), 429s received, the achieved request rate versus the
limit, and the requests of the incremental run.

Needs Redis on 127.0.0.1:6379 (it uses database 12). Run: .venv/bin/python bench/pull_efficiency.py
"""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import redis
from cryptography.fernet import Fernet

from connectors.emulators.cliniko import ClinikoEmulator, generate_account

PATIENTS, PRACTITIONERS, APPOINTMENTS = 5_000, 40, 60_000
LIMIT_PER_SECOND = 200
CLIENT_BUDGET_PER_MINUTE = LIMIT_PER_SECOND * 60 * 0.975  # headroom for network jitter
KEY = "benchmark-cliniko-key-au1"
REDIS_URL = "redis://127.0.0.1:6379/12"
PTSYNC = str(Path(sys.executable).parent / "ptsync")
RESOURCES = (
    "users",
    "practitioners",
    "practitioners/inactive",
    "individual_appointments",
    "group_appointments",
    "attendees",
)


def _minimum_requests(data: dict, window_start: date) -> int:
    window = f"{window_start.isoformat()}T00:00:00Z"
    counts = {
        "users": len(data["users"]),
        "practitioners": sum(1 for p in data["practitioners"] if p["active"]),
        "practitioners/inactive": sum(1 for p in data["practitioners"] if not p["active"]),
        "individual_appointments": sum(
            1 for a in data["individual_appointments"] if a["starts_at"] >= window
        ),
        "group_appointments": len(data["group_appointments"]),
        "attendees": len(data["attendees"]),
    }
    return sum(max(1, math.ceil(count / 100)) for count in counts.values())


def _wait_for_runs(database: Path, expected: int, timeout: float = 600) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            rows = connection.execute("select status, error from runs").fetchall()
        if len(rows) >= expected and all(status in ("succeeded", "failed") for status, _ in rows):
            return rows
        time.sleep(0.2)
    raise SystemExit("runs did not finish in time")


def main() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    today = datetime.now(UTC).date()
    data = generate_account(
        patients=PATIENTS, practitioners=PRACTITIONERS, appointments=APPOINTMENTS, today=today, seed=7
    )
    gc.freeze()  # the emulator's 60,000 rows are permanent: keep the collector from rescanning them
    work = Path(tempfile.mkdtemp(prefix="ptsync-bench-"))
    users = [
        {
            "email": f"practitioner{i}@clinic.example",
            "name": f"P{i}",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": "cliniko", "practitioner_id": p["id"]},
        }
        for i, p in enumerate(data["practitioners"])
    ]
    for org in ("bench-a", "bench-b"):
        (work / f"{org}.json").write_text(
            json.dumps(
                {
                    "schema": "ptsync.ptdirect/1",
                    "users": users,
                    "master_account": None,
                    "practitioner_sharing": {"members": []},
                }
            )
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(
        {
            "PTSYNC_DATABASE_URL": f"sqlite:///{work / 'ptsync.db'}",
            "PTSYNC_BROKER_URL": REDIS_URL,
            "PTSYNC_SECRET_KEY": Fernet.generate_key().decode(),
            "PTSYNC_CLINIKO_REQUESTS_PER_MINUTE": str(CLIENT_BUDGET_PER_MINUTE),
        }
    )

    def ptsync(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([PTSYNC, *args], env=env, capture_output=True, text=True, cwd=work)
        if result.returncode != 0:
            raise SystemExit(f"ptsync {' '.join(args)} failed: {result.stderr}")
        return result

    with ClinikoEmulator(data, KEY, requests_per_window=LIMIT_PER_SECOND, window_seconds=1.0) as emulator:
        ptsync("migrate")
        for org in ("bench-a", "bench-b"):
            ptsync(
                "org",
                "add",
                org,
                "--pms",
                "cliniko",
                "--pms-url",
                emulator.base_url,
                "--pms-key",
                KEY,
                "--ptdirect",
                "file",
                "--ptdirect-path",
                str(work / f"{org}.json"),
                "--policy",
                "observe",
            )
        worker = subprocess.Popen(
            [PTSYNC, "worker", "--processes", "2", "--threads", "1"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            time.sleep(2)  # let both worker processes boot
            starting = [
                subprocess.Popen(
                    [PTSYNC, "sync", org],
                    env=env,
                    cwd=work,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for org in ("bench-a", "bench-b")
            ]
            for process in starting:
                process.wait(timeout=60)
            statuses = _wait_for_runs(work / "ptsync.db", 2)
            full_log = list(emulator.log)
            full_429 = emulator.rate_limited
            changed_at = datetime.now(UTC)
            emulator.update_appointments(50, changed_at)
            before = len(emulator.log)
            ptsync("sync", "bench-a")
            _wait_for_runs(work / "ptsync.db", 3)
            incremental = emulator.log[before:]
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)

    minimum = 2 * _minimum_requests(data, today - timedelta(days=540))
    made = len(full_log)
    seconds = full_log[-1].received_at - full_log[0].received_at
    rate = (made - 1) / seconds if seconds > 0 else float("inf")
    busiest = max(
        sum(1 for r in full_log if start.received_at <= r.received_at < start.received_at + 1.0)
        for start in full_log
    )
    print(
        f"account: {PATIENTS:,} patients, {PRACTITIONERS} practitioners, {APPOINTMENTS:,} appointments; "
        f"limit {LIMIT_PER_SECOND}/s per key (Cliniko's 200/min scaled); 2 orgs on one key, 2 workers"
    )
    print(f"runs: {', '.join(status for status, _ in statuses)}")
    print(
        f"full syncs: {made:,} requests, minimum {minimum:,} -> ratio {made / minimum:.3f} (target <= 1.02)"
    )
    print(f"429 responses: {full_429} (target 0)")
    print(
        f"achieved rate: {rate:.1f} req/s over {seconds:.2f} s = {rate / LIMIT_PER_SECOND:.1%} of the limit "
        f"(target >= 90%); busiest 1-second window {busiest} requests"
    )
    if os.environ.get("BENCH_TIMELINE"):
        origin = full_log[0].received_at
        buckets: dict[int, int] = {}
        for request in full_log:
            slot = int((request.received_at - origin) * 2)
            buckets[slot] = buckets.get(slot, 0) + 1
        print("requests per half second:", [buckets.get(i, 0) for i in range(max(buckets) + 1)])
        for client in sorted({r.client for r in full_log}):
            mine = [r for r in full_log if r.client == client]
            slots: dict[int, int] = {}
            for request in mine:
                slot = int((request.received_at - origin) * 2)
                slots[slot] = slots.get(slot, 0) + 1
            print(f"  {client}: {[slots.get(i, 0) for i in range(max(buckets) + 1)]}")
    print(
        f"incremental sync after 50 changed appointments: {len(incremental)} requests (target <= 10): "
        + ", ".join(sorted({r.path.removeprefix("/v1/") for r in incremental}))
    )


if __name__ == "__main__":
    main()
