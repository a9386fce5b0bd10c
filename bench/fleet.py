"""Benchmark: how many clinics one small box keeps current (incremental syncs per second).

2,000 organisations of realistic sizes (95% with 2 to 10 practitioners, 4.5% with 50, 0.5% with
300), each on a Cliniko emulator account of its size (150 appointments per practitioner,
40 patients per practitioner; organisations of one size read the same emulated data, each with
its own API key, cursors, state and reports: separate clinics, not a clinic group). The
emulators answer at once and have no rate limit, and ptsync's own limit is set out of reach,
so what is measured is ptsync's cost. A private PostgreSQL
and a private Redis (both started by this script, so the write-ahead log counts only ptsync's
writes and no one else's queue is touched) and `ptsync worker --processes 2 --threads 2` on
this machine.

Three rounds, each organisation once per round:
1. the first sync of every organisation (a full read), all requested at once;
2. polls after a few appointments changed in every account (every poll reconciles);
3. polls with nothing changed (each records the check and keeps the report).
Polls are requested as the clock requests them (trigger `schedule:tick`), paced at `--rate`
per second (default 30: 10,000 clinics every 5.6 minutes), so the queue wait is what a
steady fleet would see; if the box is slower than the rate, the queue grows and the figures
show it.

Prints per round: syncs per second (organisations / (last finish - first request)), p50/p95
queue wait (request -> claimed by a worker), worker CPU per sync by phase (pull: requests,
parsing and merging; reconcile; store) and in total (all worker processes), and PostgreSQL
rows (inserted + updated + deleted) and write-ahead-log bytes per sync.

Needs root (it runs PostgreSQL as the `postgres` user, like bench/chaos.py) and redis-server.
Run: .venv/bin/python bench/fleet.py [--orgs 2000] [--rate 30]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import redis
import requests
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from box_cpu import cpu_by_role, per_unit, total
from chaos import Postgres, _wait, free_port

PTSYNC = str(Path(sys.executable).parent / "ptsync")
KEY = "bench-fleet-key-au1"
APPOINTMENTS_PER_PRACTITIONER = 150
PATIENTS_PER_PRACTITIONER = 40
TARGET_SYNCS_PER_SECOND = 30.0


def sizes(count: int, seed: int = 2000) -> list[int]:
    rng = random.Random(seed)
    large = max(count // 200, 1)
    medium = max(count * 9 // 200, 1)
    return [300] * large + [50] * medium + [rng.randint(2, 10) for _ in range(count - large - medium)]


def api_key(number: int) -> str:
    """Each organisation's own Cliniko API key (Cliniko issues one per user): organisations on
    one emulated account are separate clinics to ptsync, not a clinic group sharing reads."""
    return f"fleet{number:05d}-au1"


def serve_accounts(sizes_wanted: list[int], pipe) -> None:
    """The child process: one Cliniko emulator per account size, answering each organisation of
    that size with its own key; changes appointments on request."""
    from connectors.emulators.cliniko import ClinikoEmulator, generate_account

    today = date.today()
    emulators = {}
    for size in sorted(set(sizes_wanted)):
        data = generate_account(
            patients=size * PATIENTS_PER_PRACTITIONER,
            practitioners=size,
            appointments=size * APPOINTMENTS_PER_PRACTITIONER,
            today=today,
            seed=size,
        )
        keys = [api_key(number) for number, wanted in enumerate(sizes_wanted) if wanted == size]
        emulator = ClinikoEmulator(data, KEY, requests_per_window=10**9, other_keys=keys)
        emulator.start()
        emulators[size] = emulator
    practitioners = {size: [p["id"] for p in e.data["practitioners"]] for size, e in emulators.items()}
    pipe.send({size: (e.base_url, practitioners[size]) for size, e in emulators.items()})
    while True:
        command = pipe.recv()
        if command == "stop":
            break
        for size, emulator in emulators.items():
            emulator.update_appointments(max(2, size // 10), datetime.now(UTC), seed=int(time.time()))
        pipe.send("changed")
    for emulator in emulators.values():
        emulator.stop()


def _scrape(port: int) -> dict[str, float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    figures: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'ptsync_run_phase_cpu_seconds_total\{phase="(\w+)"\} ([0-9.e+-]+)', line)
        if match:
            figures[match.group(1)] = figures.get(match.group(1), 0.0) + float(match.group(2))
    return figures


def _database_writes(url: str) -> tuple[int, int, dict[str, int]]:
    """(rows written, WAL bytes so far, rows written per table)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("select pg_stat_force_next_flush()")
        time.sleep(11)  # other backends flush their statistics within 10 s when idle
        tables = {
            name: int(rows)
            for name, rows in connection.execute(
                "select relname, n_tup_ins + n_tup_upd + n_tup_del from pg_stat_user_tables"
            )
        }
        wal = connection.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
    return sum(tables.values()), int(wal), tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=TARGET_SYNCS_PER_SECOND)
    args = parser.parse_args()
    fleet = sizes(args.orgs)

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    emulators = context.Process(target=serve_accounts, args=(fleet, theirs), daemon=True)
    emulators.start()
    accounts = ours.recv()

    work = Path(tempfile.mkdtemp(prefix="ptsync-fleet-"))
    shutil.chown(work, "postgres", "postgres")
    postgres = Postgres(work / "pg")
    postgres.start()
    database_url = postgres.url
    redis_port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    _wait(lambda: redis.Redis.from_url(redis_url).ping())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
    env.update(
        {
            "PTSYNC_DATABASE_URL": database_url,
            "PTSYNC_BROKER_URL": redis_url,
            "PTSYNC_SECRET_KEY": Fernet.generate_key().decode(),
            "PTSYNC_CLINIKO_REQUESTS_PER_MINUTE": "100000000",
            "PTSYNC_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith("PTSYNC_")})
    worker = None
    try:
        from connectors.emulators.sample import linked_ptdirect
        from worker.actors import sync_org
        from worker.runtime import get_runtime
        from worker.services.orgs import NewOrganisation, add_organisation
        from worker.services.sync import request_sync
        from worker.store.db import Database

        Database(database_url).migrate()
        runtime = get_runtime()
        for size, (_, practitioner_ids) in accounts.items():
            members = list(range(0, len(practitioner_ids), 2))
            linked_ptdirect(work / f"ptdirect-{size}.json", "cliniko", practitioner_ids, members)
        started = time.monotonic()
        slugs = []
        for number, size in enumerate(fleet):
            slug = f"org-{number:05d}"
            add_organisation(
                runtime,
                NewOrganisation(
                    slug=slug,
                    pms="cliniko",
                    pms_url=accounts[size][0],
                    pms_key=api_key(number),
                    ptdirect="file",
                    ptdirect_path=str(work / f"ptdirect-{size}.json"),
                    allow_insecure_http=True,
                ),
            )
            slugs.append(slug)
        print(f"{len(slugs)} organisations added in {time.monotonic() - started:.0f} s", flush=True)

        metrics_port = free_port()
        worker = subprocess.Popen(
            [PTSYNC, "worker", "--processes", "2", "--threads", "2", "--metrics-port", str(metrics_port)],
            env=env,
            cwd=work,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                _scrape(metrics_port)
                break
            except requests.RequestException:
                time.sleep(0.5)
        time.sleep(2)

        def round_(name: str, trigger: str, rate: float | None) -> None:
            phases_before = _scrape(metrics_port)
            roles_before = cpu_by_role(
                {"workers": worker.pid}, {"emulators": emulators.pid, "redis": redis_server.pid}
            )
            rows_before, wal_before, tables_before = _database_writes(database_url)
            begun = time.monotonic()
            run_ids = []
            for index, slug in enumerate(slugs):
                if rate:
                    time.sleep(max(begun + index / rate - time.monotonic(), 0))
                run_id, _ = request_sync(runtime, slug, trigger)
                sync_org.send(run_id)
                run_ids.append(run_id)
            with psycopg.connect(database_url, autocommit=True) as connection:
                while True:
                    left = connection.execute(
                        "select count(*) from runs where status in ('queued', 'running')"
                    ).fetchone()[0]
                    if left == 0:
                        break
                    time.sleep(0.5)
                figures = connection.execute(
                    "select min(requested_at), max(finished_at), "
                    "count(*) filter (where status = 'succeeded'), "
                    "count(*) filter (where status = 'succeeded' and report is null) "
                    "from runs where id = any(%s)",
                    (run_ids,),
                ).fetchone()
                waits = [
                    row[0]
                    for row in connection.execute(
                        "select extract(epoch from started_at - requested_at) from runs where id = any(%s)",
                        (run_ids,),
                    )
                ]
            roles_after = cpu_by_role(
                {"workers": worker.pid}, {"emulators": emulators.pid, "redis": redis_server.pid}
            )
            cpu = roles_after["workers"] - roles_before["workers"]
            box_cpu = total(roles_before, roles_after)
            phases_after = _scrape(metrics_port)
            rows_after, wal_after, tables_after = _database_writes(database_url)
            count = len(run_ids)
            seconds = (figures[1] - figures[0]).total_seconds()
            per_phase = ", ".join(
                f"{phase} {1000 * (phases_after.get(phase, 0) - phases_before.get(phase, 0)) / count:.1f}"
                for phase in ("pull", "reconcile", "store")
            )
            quantiles = statistics.quantiles([float(w) for w in waits], n=100, method="inclusive")
            by_table = sorted(
                ((rows - tables_before.get(name, 0), name) for name, rows in tables_after.items()),
                reverse=True,
            )
            tables = ", ".join(f"{name} {rows / count:.1f}" for rows, name in by_table if rows)
            load = os.getloadavg()
            print(f"-- {name}", flush=True)
            print(
                f"   {count} syncs ({figures[2]} succeeded, {figures[3]} kept the report: nothing changed) "
                f"in {seconds:.1f} s = {count / seconds:.1f} syncs/s"
                + (f" (offered {rate:.0f}/s; target >= {TARGET_SYNCS_PER_SECOND:.0f}/s)" if rate else ""),
                flush=True,
            )
            print(
                f"   queue wait p50 {quantiles[49]:.2f} s, p95 {quantiles[94]:.2f} s; worker CPU per sync "
                f"{1000 * cpu / count:.1f} ms (phases, syncing thread: {per_phase} ms)",
                flush=True,
            )
            print(
                f"   CPU per sync on the box: {per_unit(roles_before, roles_after, count)}"
                + f"; {box_cpu:.0f} s of CPU (without other) while the {seconds:.0f} s of syncs ran"
                f" ({box_cpu / seconds:.2f} of the 2 cores)",
                flush=True,
            )
            print(
                f"   PostgreSQL per sync: {(rows_after - rows_before) / count:.1f} rows written, "
                f"{(wal_after - wal_before) / count / 1024:.1f} KiB of WAL ({tables}); "
                f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
                flush=True,
            )

        print(
            f"fleet: {len(fleet)} organisations ({fleet.count(300)} x 300, {fleet.count(50)} x 50, "
            f"{sum(1 for s in fleet if s <= 10)} x 2-10 practitioners); 2 worker processes x 2 threads",
            flush=True,
        )
        round_("first sync of every organisation (full read, all requested at once)", "manual", None)
        ours.send("change")
        ours.recv()
        time.sleep(1)
        round_("polls after appointments changed in every account", "schedule:tick", args.rate)
        round_("polls with nothing changed", "schedule:tick", args.rate)
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        ours.send("stop")
        emulators.join(timeout=10)
        if "worker.runtime" in sys.modules:
            sys.modules["worker.runtime"].get_runtime().db.dispose()
        postgres.stop_immediately()
        redis_server.terminate()
        redis_server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
