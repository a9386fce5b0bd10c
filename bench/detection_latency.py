"""Benchmark: how long after a change in a webhook-less PMS its finding is in the report.

One clinic on the Cliniko emulator with realistic latency (every request answered after 50 ms)
and Cliniko's documented limit (200 requests a minute per key, not scaled); `ptsync clock` on
the single-machine default (SQLite, embedded queue) with the organisation's default schedules:
the incremental poll every 2 minutes and the nightly full sync. After the first full sync, this
script inserts, at random moments over `--minutes` of real time (no fast clock: the poll's cron,
Cliniko's limit window and ptsync's rate limiter all run on the real clock), either

- a co-treatment: a patient of one team is booked with a practitioner of another team who is in
  PT Direct but not in practitioner sharing (the finding: a duplicate-patient risk naming both);
- a new practitioner: a user and practitioner added to Cliniko, booked with a colleague's
  patient (the finding: a new practitioner missing from PT Direct),

and measures each insert -> the first moment the latest report holds its finding (checked every
0.5 s). Also prints the PMS requests made after the first sync against the key's budget over
the same time, and how many polls rebuilt the report versus found nothing changed.

Run: .venv/bin/python bench/detection_latency.py [--minutes 30] [--events N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.emulators.base import Request, Response
from connectors.emulators.cliniko import ClinikoEmulator, generate_account
from connectors.emulators.sample import linked_ptdirect

PTSYNC = str(Path(sys.executable).parent / "ptsync")
KEY = "bench-detection-key-au1"
LATENCY_SECONDS = 0.05
LIMIT_PER_MINUTE = 200
PRACTITIONERS = 24
PATIENTS = 3_000
APPOINTMENTS = 12_000
SHARING_MEMBERS = 12
"""Practitioners 0-11 share patients in PT Direct; 12-23 are users outside practitioner sharing."""
TARGET_P95_SECONDS = 300
TARGET_BUDGET_SHARE = 0.05


class SlowCliniko(ClinikoEmulator):
    """The Cliniko emulator, answering every request after a realistic network delay."""

    accepted = 0

    def authorise(self, request: Request) -> Response | None:
        time.sleep(LATENCY_SECONDS)
        refused = super().authorise(request)
        if refused is None:
            with self.lock:
                self.accepted += 1
        return refused

    def insert(self, resource: str, row: dict) -> None:
        with self.lock:
            self.data[resource].append(row)
            self._cache.clear()
            self._pages.clear()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Event:
    def __init__(self, kind: str, inserted: float, check) -> None:
        self.kind = kind
        self.inserted = inserted
        self.check = check
        self.seen: float | None = None


def _shares_with(findings: list[dict], pms_id: str, other_email: str) -> bool:
    for finding in findings:
        people = finding.get("practitioners") or []
        if not people or people[0].get("pms_id") != pms_id:
            continue
        pairs = (finding.get("evidence") or {}).get("pairs") or []
        if any(other_email in pair.get("emails", []) for pair in pairs):
            return True
    return False


def _names(findings: list[dict], pms_id: str) -> bool:
    return any(
        any(person.get("pms_id") == pms_id for person in finding.get("practitioners") or [])
        for finding in findings
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--events", type=int, default=None, help="default: one per minute")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    events_wanted = args.events or max(int(args.minutes), 2)
    rng = random.Random(args.seed)

    today = date.today()
    data = generate_account(
        patients=PATIENTS, practitioners=PRACTITIONERS, appointments=APPOINTMENTS, today=today
    )
    for row in data["practitioners"]:
        row["active"] = True
    work = Path(tempfile.mkdtemp(prefix="ptsync-detection-"))
    practitioner_ids = [p["id"] for p in data["practitioners"]]
    linked_ptdirect(work / "ptdirect.json", "cliniko", practitioner_ids, list(range(SHARING_MEMBERS)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    database_url = f"sqlite:///{work / 'ptsync.db'}"
    env.update({"PTSYNC_DATABASE_URL": database_url, "PTSYNC_SECRET_KEY": Fernet.generate_key().decode()})

    def ptsync(*command: str) -> None:
        subprocess.run([PTSYNC, *command], env=env, cwd=work, check=True, capture_output=True, text=True)

    emulator = SlowCliniko(data, KEY, requests_per_window=LIMIT_PER_MINUTE, window_seconds=60.0)
    clock = None
    with emulator:
        ptsync("migrate")
        ptsync(
            "org", "add", "clinic-d", "--pms", "cliniko", "--pms-url", emulator.base_url,
            "--pms-key", KEY, "--ptdirect", "file", "--ptdirect-path", str(work / "ptdirect.json"),
            "--no-test",
        )  # fmt: skip
        first_started = time.monotonic()
        ptsync("sync", "clinic-d", "--wait")
        first_sync = time.monotonic() - first_started
        engine = create_engine(database_url)

        def latest_findings() -> list[dict]:
            import json

            with engine.connect() as connection:
                row = connection.execute(
                    text(
                        "select report from runs where status = 'succeeded' and report is not null "
                        "order by finished_at desc, id desc limit 1"
                    )
                ).fetchone()
            report = row[0] if row else None
            if isinstance(report, str):
                report = json.loads(report)
            return (report or {}).get("findings", [])

        clock = subprocess.Popen(
            [PTSYNC, "clock"], env=env, cwd=work, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2)
        requests_before = emulator.accepted
        started = time.monotonic()
        seconds = args.minutes * 60
        # Events at random moments, leaving the last poll interval for the last one to be seen.
        moments = sorted(rng.uniform(0, max(seconds - 150, 1)) for _ in range(events_wanted))
        events: list[Event] = []
        members = [p["id"] for p in data["practitioners"][:SHARING_MEMBERS]]
        outsiders = list(range(SHARING_MEMBERS, PRACTITIONERS))
        base_id = 9_000_000_000_000_000_000

        def run_events() -> None:
            for number, moment in enumerate(moments):
                time.sleep(max(started + moment - time.monotonic(), 0))
                now = datetime.now(UTC)
                patient = str(1_000_000_000_000_000_000 + 2_000_000 + rng.randrange(PATIENTS))
                colleague = rng.randrange(8)  # team 0: nobody outside sharing is in it
                if number % 2 == 0 and outsiders:
                    # A co-treatment across teams: an outsider books a member's patient.
                    outsider = outsiders.pop(rng.randrange(len(outsiders)))
                    practitioner_id = data["practitioners"][outsider]["id"]
                    colleague_email = f"practitioner{colleague}@clinic.example"
                    kind = "co-treatment"

                    def check(findings, pid=practitioner_id, other=colleague_email):
                        return _shares_with(findings, pid, other)
                else:
                    practitioner_id = str(base_id + number)
                    user_id = str(base_id + 10_000 + number)
                    emulator.insert(
                        "users",
                        {
                            "id": user_id,
                            "email": f"new{number}@clinic.example",
                            "first_name": f"New{number}",
                            "last_name": "Starter",
                            "updated_at": _iso(now),
                            "_resource": "users",
                        },
                    )
                    emulator.insert(
                        "practitioners",
                        {
                            "id": practitioner_id,
                            "first_name": f"New{number}",
                            "last_name": "Starter",
                            "active": True,
                            "user": user_id,
                            "updated_at": _iso(now),
                            "_resource": "practitioners",
                        },
                    )
                    kind = "new practitioner"

                    def check(findings, pid=practitioner_id):
                        return _names(findings, pid)

                # The colleague's patient: book them with the colleague too (today), then with
                # the practitioner, so the pair shares a patient whatever the generated history.
                for who, offset in ((members[colleague], 0), (practitioner_id, 1)):
                    emulator.insert(
                        "individual_appointments",
                        {
                            "id": str(base_id + 100_000 + number * 2 + offset),
                            "starts_at": _iso(now),
                            "practitioner": who,
                            "patient": patient,
                            "cancelled_at": None,
                            "archived_at": None,
                            "did_not_arrive": False,
                            "updated_at": _iso(now),
                            "_resource": "individual_appointments",
                        },
                    )
                events.append(Event(kind, time.monotonic(), check))

        inserter = threading.Thread(target=run_events, daemon=True)
        inserter.start()
        while time.monotonic() - started < seconds or (
            inserter.is_alive() or any(e.seen is None for e in events)
        ):
            if time.monotonic() - started > seconds + 600:
                break  # findings not seen 10 minutes after the end count as missing
            findings = latest_findings()
            now = time.monotonic()
            for event in list(events):
                if event.seen is None and event.check(findings):
                    event.seen = now
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        requests = emulator.accepted - requests_before
        rate_limited = emulator.rate_limited
        with engine.connect() as connection:
            runs = connection.execute(
                text(
                    "select count(*), sum(case when report is null then 1 else 0 end), "
                    "sum(case when full_pull then 1 else 0 end) from runs where status = 'succeeded'"
                )
            ).fetchone()
        os.killpg(clock.pid, signal.SIGTERM)
        clock.wait(timeout=30)

    latencies = [e.seen - e.inserted for e in events if e.seen is not None]
    missing = [e.kind for e in events if e.seen is None]
    quantiles = [float("nan")] * 99
    if len(latencies) >= 2:
        quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    budget = LIMIT_PER_MINUTE * elapsed / 60
    load = os.getloadavg()
    print(
        f"one Cliniko clinic ({PRACTITIONERS} practitioners, {PATIENTS:,} patients, {APPOINTMENTS:,} "
        f"appointments), {LATENCY_SECONDS * 1000:.0f} ms per request, limit {LIMIT_PER_MINUTE}/min; "
        f"ptsync clock (SQLite, embedded queue), default schedules (poll */2, full sync nightly)"
    )
    print(f"first (full) sync: {first_sync:.1f} s; measured over {elapsed / 60:.1f} minutes of real time")
    print(
        f"insert -> finding in the report: p50 {quantiles[49]:.0f} s, p95 {quantiles[94]:.0f} s, "
        f"max {max(latencies, default=float('nan')):.0f} s over {len(latencies)} events "
        f"({sum(1 for e in events if e.kind == 'co-treatment')} co-treatments, "
        f"{sum(1 for e in events if e.kind == 'new practitioner')} new practitioners; "
        f"{len(missing)} never seen) (target p95 < {TARGET_P95_SECONDS} s)"
    )
    print(
        f"PMS requests after the first sync: {requests} = {requests / budget:.1%} of the key's budget "
        f"({budget:.0f} requests in {elapsed / 60:.1f} min) (target < {TARGET_BUDGET_SHARE:.0%}); "
        f"429 responses: {rate_limited}"
    )
    print(
        f"runs: {runs[0]} succeeded, {runs[1] or 0} polls found nothing changed (no report written), "
        f"{runs[2] or 0} full pulls; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
