"""Benchmark: how long `ptsync --help` and `ptsync org list` take, start to exit.

A person runs these at a terminal, so process start-up is what they feel: Python, the imports,
the settings, the schema check and the query. This fills an embedded (SQLite) database with 40
organisations, each with 20 finished runs, then runs each command 15 times as a fresh process
(the first run of each is a warm-up and not counted). Target: the median well under 0.5 s
(`TARGET_SECONDS`), p95 printed beside it, with the machine's load average (the numbers move
with it).

Run: .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
ORGS, RUNS, REPEATS = 40, 20, 15
TARGET_SECONDS = 0.5


def fill(data_home: Path, secret: str) -> None:
    """A migrated embedded database with ORGS organisations and their run history."""
    os.environ["XDG_DATA_HOME"] = str(data_home)
    os.environ["PTSYNC_SECRET_KEY"] = secret
    from worker.clock import utcnow
    from worker.runtime import build_runtime
    from worker.settings import Settings
    from worker.store.models import Organisation, Run

    logging.getLogger("worker.runtime").setLevel(logging.ERROR)  # "created ptsync's database at ..."
    runtime = build_runtime(Settings())
    now = utcnow()
    with runtime.db.transaction() as session:
        session.execute(
            insert(Organisation),
            [
                {
                    "id": index + 1,
                    "slug": f"clinic-{index:03d}",
                    "pms_kind": "csv",
                    "ptdirect_kind": "file",
                    "pseudonym_key_encrypted": "-",
                    "created_at": now - timedelta(days=30),
                }
                for index in range(ORGS)
            ],
        )
        session.execute(
            insert(Run),
            [
                {
                    "id": f"{index:04d}{number:04d}".ljust(32, "0"),
                    "org_id": index + 1,
                    "trigger": "schedule",
                    "status": "succeeded",
                    "requested_at": now - timedelta(hours=RUNS - number),
                    "finished_at": now - timedelta(hours=RUNS - number) + timedelta(seconds=3),
                    "attempts": 1,
                    "counts": {"findings": {"duplicate_patient_risk": 2}},
                }
                for index in range(ORGS)
                for number in range(RUNS)
            ],
        )
    runtime.db.dispose()


def time_command(args: list[str], environment: dict[str, str]) -> list[float]:
    ptsync = [sys.executable, "-m", "worker.cli", *args]
    seconds = []
    for attempt in range(REPEATS + 1):
        started = time.perf_counter()
        result = subprocess.run(ptsync, cwd=ROOT, env=environment, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {result.stderr.strip()}")
        if attempt:  # the first is a warm-up (cold file cache, .pyc files)
            seconds.append(elapsed)
    return seconds


def main() -> None:
    secret = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory(prefix="ptsync-cli-bench-") as folder:
        fill(Path(folder), secret)
        environment = {**os.environ, "XDG_DATA_HOME": folder, "PTSYNC_SECRET_KEY": secret}
        environment.pop("PTSYNC_DATABASE_URL", None)
        environment.pop("PTSYNC_BROKER_URL", None)
        load = os.getloadavg()[0]
        print(f"{ORGS} organisations, {RUNS} runs each; {REPEATS} runs per command; load {load:.2f}")
        print(f"{'command':<18} {'median':>8} {'p95':>8} {'target (median)':>16}")
        for args in (["--help"], ["org", "list"]):
            seconds = sorted(time_command(args, environment))
            median = statistics.median(seconds)
            p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
            verdict = "ok" if median < TARGET_SECONDS else "MISSED"
            target = f"< {TARGET_SECONDS} s"
            print(f"{' '.join(args):<18} {median:>7.3f}s {p95:>7.3f}s {target:>16} {verdict}")


if __name__ == "__main__":
    main()
