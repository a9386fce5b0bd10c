"""Benchmark: how efficiently ptsync pulls each API-backed PMS, and how well it keeps the limit.

One scenario per connector (a small registry, `SCENARIOS`). Each: an emulated account of 5,000
patients, 40 practitioners and 60,000 appointments; two organisations on the same credential
(two businesses of one account) synced at the same time by two dramatiq worker processes on
Redis, so the limit must hold across processes; then 50 appointments change and one
organisation syncs again.

Limits are scaled so a run takes seconds, and so the emulator (not this machine's CPU) is what
the limit is measured against; each scenario says how:
- Cliniko: 200 requests/min per key -> 200 per second (x60).
- Halaxy: 500 requests/min per API client, not scaled (its pages hold up to 500 FHIR
  resources: at a faster scale this benchmark would measure the machine's JSON parsing).
- Nookal: no published limit; ptsync's own 120/min default -> 50 per second (x25).
The client budget is the same share of the scaled limit as of the real one (Cliniko 97.5%,
Halaxy 95%, Nookal 97.5%).

Prints, per scenario: requests made versus the minimum the API allows for the data (every page
full at the largest documented page size, one request for an empty listing, and whatever the
API requires beside pages: Halaxy's token, Nookal's two practitioner lists and one participants
request per class), 429s received, the achieved request rate versus the limit, and the requests
of the incremental run. Targets beside each figure.

Needs Redis on 127.0.0.1:6379 (database from PTSYNC_TEST_REDIS_URL, else 12; it is flushed).
Run: .venv/bin/python bench/pull_efficiency.py [cliniko|halaxy|nookal ...]   (default: all)
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from connectors.emulators.cliniko import ClinikoEmulator, generate_account
from connectors.emulators.halaxy import HalaxyEmulator
from connectors.emulators.halaxy import generate_clinic as halaxy_clinic
from connectors.emulators.nookal import NookalEmulator
from connectors.emulators.nookal import generate_clinic as nookal_clinic

PATIENTS, PRACTITIONERS, APPOINTMENTS = 5_000, 40, 60_000
REDIS_URL = os.environ.get("PTSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
PTSYNC = str(Path(sys.executable).parent / "ptsync")
LOOKBACK_DAYS = 540


@dataclass(frozen=True)
class Scenario:
    """One connector's benchmark: its emulated account, its options and its arithmetic."""

    name: str
    limit_per_second: float
    scaling: str
    client_env: dict[str, str]
    start: Callable[[date], tuple[Any, list[str], int]]
    """today -> (running emulator, PMS practitioner ids, minimum requests for one full sync)"""
    org_args: Callable[[Any], list[str]]
    path_of: Callable[[str], str]


def _pages(count: int, size: int) -> int:
    return max(1, math.ceil(count / size))


def _cliniko(today: date) -> tuple[Any, list[str], int]:
    data = generate_account(
        patients=PATIENTS, practitioners=PRACTITIONERS, appointments=APPOINTMENTS, today=today, seed=7
    )
    window = f"{(today - timedelta(days=LOOKBACK_DAYS)).isoformat()}T00:00:00Z"
    counts = [
        len(data["users"]),
        sum(1 for p in data["practitioners"] if p["active"]),
        sum(1 for p in data["practitioners"] if not p["active"]),
        sum(1 for a in data["individual_appointments"] if a["starts_at"] >= window),
        len(data["group_appointments"]),
        len(data["attendees"]),
    ]
    emulator = ClinikoEmulator(data, CLINIKO_KEY, requests_per_window=200, window_seconds=1.0)
    return emulator, [p["id"] for p in data["practitioners"]], sum(_pages(c, 100) for c in counts)


def _halaxy(today: date) -> tuple[Any, list[str], int]:
    data = halaxy_clinic(
        patients=PATIENTS, practitioners=PRACTITIONERS, appointments=APPOINTMENTS, today=today
    )
    window = (today - timedelta(days=LOOKBACK_DAYS)).isoformat()
    counts = [
        len(data["Practitioner"]),
        len(data["PractitionerRole"]),
        sum(1 for a in data["Appointment"] if a["start"] >= window),
    ]
    emulator = HalaxyEmulator(
        data,
        client_id="bench-client",
        client_secret=HALAXY_SECRET,
        requests_per_window=500,
        window_seconds=10.0,
    )
    ids = [p["id"] for p in data["Practitioner"] if p["id"].startswith("PR-")]
    return emulator, ids, 1 + sum(_pages(c, 500) for c in counts)  # 1: the token


def _nookal(today: date) -> tuple[Any, list[str], int]:
    data = nookal_clinic(
        patients=PATIENTS, practitioners=PRACTITIONERS, appointments=APPOINTMENTS, classes=10, today=today
    )
    window = (today - timedelta(days=LOOKBACK_DAYS)).isoformat()
    in_window = [a for a in data["appointments"] if a["appointmentDate"] >= window]
    classes = sum(1 for a in in_window if a["classID"] != "0")
    emulator = NookalEmulator(data, NOOKAL_KEY, requests_per_window=50, window_seconds=1.0)
    # active list, full list (both one page), appointment pages, one participants list per class
    minimum = 2 + _pages(len(in_window), 100) + classes
    return emulator, [p["ID"] for p in data["practitioners"]], minimum


CLINIKO_KEY = "benchmark-cliniko-key-au1"
HALAXY_SECRET = "benchmark-halaxy-secret"
NOOKAL_KEY = "benchmark-nookal-key"

SCENARIOS = {
    "cliniko": Scenario(
        "cliniko",
        200,
        "Cliniko's 200/min scaled x60",
        {"PTSYNC_CLINIKO_REQUESTS_PER_MINUTE": str(200 * 60 * 0.975)},
        _cliniko,
        lambda e: ["--pms", "cliniko", "--pms-url", e.base_url, "--pms-key", CLINIKO_KEY],
        lambda path: path.removeprefix("/v1/"),
    ),
    "halaxy": Scenario(
        "halaxy",
        500 / 60,
        "Halaxy's 500/min, not scaled",
        {"PTSYNC_HALAXY_REQUESTS_PER_MINUTE": str(500 * 0.95)},
        _halaxy,
        lambda e: [
            "--pms",
            "halaxy",
            "--pms-url",
            e.base_url,
            "--pms-client-id",
            "bench-client",
            "--pms-client-secret",
            HALAXY_SECRET,
        ],
        lambda path: path.removeprefix("/main/"),
    ),
    "nookal": Scenario(
        "nookal",
        50,
        "no published limit; ptsync's 120/min scaled x25",
        {"PTSYNC_NOOKAL_REQUESTS_PER_MINUTE": str(50 * 60 * 0.975)},
        _nookal,
        lambda e: ["--pms", "nookal", "--pms-url", e.base_url, "--pms-key", NOOKAL_KEY],
        lambda path: path.removeprefix("/production/v2/"),
    ),
}


def _wait_for_runs(database: Path, expected: int, timeout: float = 600) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            rows = connection.execute("select status, error from runs").fetchall()
        if len(rows) >= expected and all(status in ("succeeded", "failed") for status, _ in rows):
            return rows
        time.sleep(0.2)
    raise SystemExit("runs did not finish in time")


def _ptdirect_snapshot(system: str, practitioner_ids: list[str]) -> str:
    users = [
        {
            "email": f"practitioner{i}@clinic.example",
            "name": f"P{i}",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": system, "practitioner_id": pid},
        }
        for i, pid in enumerate(practitioner_ids)
    ]
    return json.dumps(
        {
            "schema": "ptsync.ptdirect/1",
            "users": users,
            "master_account": None,
            "practitioner_sharing": {"members": []},
        }
    )


def run(scenario: Scenario) -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()
    today = datetime.now(UTC).date()
    emulator, practitioner_ids, minimum_one = scenario.start(today)
    gc.freeze()  # the emulator's 60,000 rows are permanent: keep the collector from rescanning them
    work = Path(tempfile.mkdtemp(prefix=f"ptsync-bench-{scenario.name}-"))
    for org in ("bench-a", "bench-b"):
        (work / f"{org}.json").write_text(_ptdirect_snapshot(scenario.name, practitioner_ids))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(
        {
            "PTSYNC_DATABASE_URL": f"sqlite:///{work / 'ptsync.db'}",
            "PTSYNC_BROKER_URL": REDIS_URL,
            "PTSYNC_SECRET_KEY": Fernet.generate_key().decode(),
            # Both organisations read the account, so the limit is tested across processes
            # (a clinic group's shared read is measured by bench/group_pulls.py).
            "PTSYNC_SHARED_PMS_READS": "false",
            **scenario.client_env,
        }
    )

    def ptsync(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([PTSYNC, *args], env=env, capture_output=True, text=True, cwd=work)
        if result.returncode != 0:
            raise SystemExit(f"ptsync {' '.join(args)} failed: {result.stderr}")
        return result

    with emulator:
        ptsync("migrate")
        for org in ("bench-a", "bench-b"):
            ptsync(
                "org",
                "add",
                org,
                *scenario.org_args(emulator),
                "--ptdirect",
                "file",
                "--ptdirect-path",
                str(work / f"{org}.json"),
                "--policy",
                "observe",
                "--no-test",  # `org add` would probe the API: not part of the sync measured
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
            emulator.update_appointments(50, datetime.now(UTC))
            before = len(emulator.log)
            ptsync("sync", "bench-a")
            _wait_for_runs(work / "ptsync.db", 3)
            incremental = emulator.log[before:]
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    gc.unfreeze()
    _print(scenario, statuses, full_log, full_429, 2 * minimum_one, incremental)


def _print(scenario: Scenario, statuses, full_log, full_429: int, minimum: int, incremental) -> None:
    made = len(full_log)
    seconds = full_log[-1].received_at - full_log[0].received_at
    rate = (made - 1) / seconds if seconds > 0 else float("inf")
    busiest = max(
        sum(1 for r in full_log if start.received_at <= r.received_at < start.received_at + 1.0)
        for start in full_log
    )
    limit = scenario.limit_per_second
    print(f"== {scenario.name}")
    print(
        f"account: {PATIENTS:,} patients, {PRACTITIONERS} practitioners, {APPOINTMENTS:,} appointments; "
        f"limit {limit:.3g}/s per credential ({scenario.scaling}); 2 orgs on one credential, 2 workers"
    )
    print(f"runs: {', '.join(status for status, _ in statuses)}")
    print(
        f"full syncs: {made:,} requests, minimum {minimum:,} -> ratio {made / minimum:.3f} (target <= 1.02)"
    )
    print(f"429 responses: {full_429} (target 0)")
    print(
        f"achieved rate: {rate:.1f} req/s over {seconds:.2f} s = {rate / limit:.1%} of the limit "
        f"(target >= 90%); busiest 1-second window {busiest} requests"
    )
    if os.environ.get("BENCH_TIMELINE"):
        origin = full_log[0].received_at
        buckets: dict[int, int] = {}
        for request in full_log:
            slot = int((request.received_at - origin) * 2)
            buckets[slot] = buckets.get(slot, 0) + 1
        print("requests per half second:", [buckets.get(i, 0) for i in range(max(buckets) + 1)])
    print(
        f"incremental sync after 50 changed appointments: {len(incremental)} requests (target <= 10): "
        + ", ".join(sorted({scenario.path_of(r.path) for r in incremental}))
    )


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}")
    for name in names:
        run(SCENARIOS[name])


if __name__ == "__main__":
    main()
