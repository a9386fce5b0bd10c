"""Benchmark: chaos. Everything that can die, dies, while clinics keep sending work.

40 organisations (CSV PMS folders, one PT Direct admin-bridge emulator each; half `apply-safe`,
half `propose` with a departed practitioner to remove); `ptsync web`, 3 `ptsync worker`
processes and 2 `ptsync clock` processes on a PostgreSQL and a Redis of the benchmark's own
(started here on free ports, so killing them disturbs nothing else on the machine). For
`--seconds` (default 240) about 20 requests a second arrive: signed webhooks, API sync requests
and approvals. Meanwhile a worker is SIGKILLed every 15 s (and restarted, as a supervisor
would), each clock is killed once (one of them is the leader), the web process is killed once,
Redis is SIGKILLed and restarted from its append-only file, and PostgreSQL is stopped with
`-m immediate` and restarted.

Then it waits for the system to settle, asks every organisation for one last sync, and checks:
every accepted webhook and sync request covered by a successful run that started after it;
all runs final and no proposal left applying or holding a lease; no message left in Redis; no
PT Direct change made twice, nor sent after its proposal was superseded; every approved
operation applied or closed with a reason; no two runs of one organisation overlapping in
time; every organisation's report equal to a clean reconciliation of what the PMS and PT Direct
hold now. Prints each check with its figures. Not a test: it takes minutes and all the CPU.

Run: .venv/bin/python bench/chaos.py [--seconds 240]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import redis
import requests
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORGS = 40
RATE = 20.0
PTSYNC = str(Path(sys.executable).parent / "ptsync")
PG_BIN = next(Path("/usr/lib/postgresql").glob("*/bin"), Path("/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Redis:
    """A private Redis with an append-only file, so a SIGKILL loses nothing it acknowledged."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: redis.Redis(port=self.port).ping())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


class Postgres:
    """A private PostgreSQL cluster, owned by the postgres user, on a free port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True)
        shutil.chown(folder, "postgres", "postgres")
        self._as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "--auth=trust"]
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, command: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-o",
                options,
                "-l",
                str(self.folder / "log"),
                "-w",
                "start",
            ]
        )

    def stop_immediately(self) -> None:
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"]
        )


class Process:
    """One ptsync process, restarted like a supervisor would after it is killed."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env, self.logs = name, args, env, logs
        self.process: subprocess.Popen | None = None
        self.kills = 0
        self.restarts = 0
        self.stopped = False
        self.down = False  # killed on purpose; the fault injector starts it again

    def start(self) -> None:
        self.down = False
        log = open(self.logs / f"{self.name}.log", "a")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(
            [PTSYNC, *self.args], env=self.env, stdout=log, stderr=log, start_new_session=True
        )

    def kill(self) -> None:
        self.down = True
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def supervise(self) -> bool:
        """Start it again if it exited on its own (as a Procfile platform or systemd would)."""
        if self.process is not None and self.process.poll() is not None and not (self.stopped or self.down):
            self.restarts += 1
            self.start()
            return True
        return False

    def stop(self) -> None:
        self.stopped = True
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _wait(ready, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("a service did not come up in time")


def write_org(folder: Path, departed: bool) -> tuple[Path, dict]:
    """Ana and Ben share patients; Cara co-treats but is not in sharing; Dan may have left."""
    pms = folder / "pms"
    pms.mkdir(parents=True)
    today = date.today()
    people = [("101", "ana", True), ("102", "ben", True), ("103", "cara", True)]
    if departed:
        people.append(("104", "dan", False))
    (pms / "practitioners.csv").write_text(
        "id,name,email,active,updated_at\n"
        + "".join(
            f"{pid},{name.title()},{name}@clinic.example,{str(active).lower()},\n"
            for pid, name, active in people
        )
    )
    rows = ["practitioner_id,patient_id,source,last_seen"]
    for patient in range(1, 7):
        day = (today - timedelta(days=patient)).isoformat()
        rows += [f"101,p{patient},appointment,{day}", f"102,p{patient},appointment,{day}"]
        if patient > 3:
            rows.append(f"103,p{patient},care_team,{day}")
        if departed and patient < 3:
            rows.append(f"104,p{patient},appointment,{day}")
    (pms / "patient_access.csv").write_text("\n".join(rows) + "\n")
    members = [
        {"email": f"{n}@clinic.example", "share_content": True, "share_patients": True}
        for n in ("ana", "ben")
    ]
    if departed:
        members.append({"email": "dan@clinic.example", "share_content": True, "share_patients": True})
    state = {
        "users": [
            {
                "email": f"{name}@clinic.example",
                "name": name.title(),
                "status": "confirmed",
                "practitioner_access": True,
                "pms_link": {"system": "csv", "practitioner_id": pid},
            }
            for pid, name, _ in people
        ],
        "master_account": None,
        "practitioner_sharing": {"members": members},
    }
    return pms, state


class Load:
    """About RATE requests a second: signed webhooks, API sync requests and approvals."""

    def __init__(self, base: str, orgs: dict[str, dict], seed: int) -> None:
        self.base, self.orgs = base, orgs
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
        self.accepted_webhooks: list[tuple[str, str]] = []
        self.accepted_syncs = 0
        self.approvals: list[str] = []
        self.refused: Counter[str] = Counter()
        self.lock = threading.Lock()

    def one(self, number: int) -> None:
        slug = self.random.choice(list(self.orgs))
        org = self.orgs[slug]
        roll = self.random.random()
        try:
            if roll < 0.6:
                self._webhook(slug, org, number)
            elif roll < 0.85:
                self._sync(slug, org)
            else:
                self._approve(slug, org)
        except requests.RequestException:
            with self.lock:
                self.refused["unreachable"] += 1

    def _webhook(self, slug: str, org: dict, number: int) -> None:
        body = json.dumps({"type": "appointment.updated", "n": number})
        message_id = f"msg_{number}"
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": Webhook(org["secret"]).sign(message_id, datetime.now(UTC), body),
            "Content-Type": "application/json",
        }
        answer = self.session.post(
            f"{self.base}/webhooks/generic/{slug}", data=body, headers=headers, timeout=10
        )
        with self.lock:
            if answer.status_code == 200:
                self.accepted_webhooks.append((slug, message_id))
            else:
                self.refused[f"webhook {answer.status_code}"] += 1

    def _sync(self, slug: str, org: dict) -> None:
        answer = self.session.post(f"{self.base}/api/v1/orgs/{slug}/syncs", headers=org["auth"], timeout=10)
        with self.lock:
            if answer.status_code == 202:
                self.accepted_syncs += 1
            else:
                self.refused[f"sync {answer.status_code}"] += 1

    def _approve(self, slug: str, org: dict) -> None:
        listed = self.session.get(
            f"{self.base}/api/v1/orgs/{slug}/proposals", headers=org["auth"], timeout=10
        )
        if listed.status_code != 200:
            return
        open_ones = [p for p in listed.json() if p["status"] in ("proposed", "approved")]
        if not open_ones:
            return
        proposal = open_ones[0]
        answer = self.session.post(
            f"{self.base}/api/v1/orgs/{slug}/proposals/{proposal['id']}/approve",
            headers=org["auth"],
            json={"transferred": self.random.random() < 0.5},
            timeout=10,
        )
        with self.lock:
            if answer.status_code in (200, 202):
                self.approvals.append(proposal["id"])
            else:
                self.refused[f"approve {answer.status_code}"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="how long the load and the faults last")
    parser.add_argument("--seed", type=int, default=20261125)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ptsync-chaos-"))
    os.chmod(work, 0o755)
    Chaos(work, options.seconds, options.seed).run()


class Chaos:
    def __init__(self, work: Path, seconds: float, seed: int) -> None:
        self.work, self.seconds, self.seed = work, seconds, seed
        self.random = random.Random(seed)
        self.faults: Counter[str] = Counter()
        self.redis = Redis(work / "redis")
        self.postgres = Postgres(work / "postgres")
        self.bridges: dict[str, object] = {}
        self.orgs: dict[str, dict] = {}

    def run(self) -> None:
        self.redis.start()
        self.postgres.start()
        (self.work / "logs").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
        env.update(
            {
                "PTSYNC_DATABASE_URL": self.postgres.url,
                "PTSYNC_BROKER_URL": self.redis.url,
                "PTSYNC_SECRET_KEY": Fernet.generate_key().decode(),
                "PTSYNC_RUN_LEASE_SECONDS": "6",
                "PTSYNC_REDRIVE_AFTER_SECONDS": "10",
                "PTSYNC_REDIS_HEARTBEAT_TIMEOUT_MS": "5000",
                "PTSYNC_LOG_LEVEL": "WARNING",
            }
        )
        os.environ.update({k: v for k, v in env.items() if k.startswith("PTSYNC_")})
        try:
            self._create_orgs()
            port = free_port()
            logs = self.work / "logs"
            web = Process("web", ["web", "--port", str(port)], env, logs)
            workers = [
                Process(f"worker-{n}", ["worker", "--processes", "1", "--threads", "2"], env, logs)
                for n in range(3)
            ]
            clocks = [Process(f"clock-{n}", ["clock"], env, logs) for n in range(2)]
            everyone = [web, *workers, *clocks]
            for process in everyone:
                process.start()
            base = f"http://127.0.0.1:{port}"
            _wait(lambda: requests.get(f"{base}/openapi.json", timeout=1).ok, 60)
            supervisor = threading.Thread(target=self._supervise, args=(everyone,), daemon=True)
            supervisor.start()
            load = Load(base, self.orgs, self.seed)
            started = time.monotonic()
            faults = threading.Thread(target=self._faults, args=(started, web, workers, clocks), daemon=True)
            faults.start()
            self._drive(load, started)
            faults.join()
            self._settle()
            for slug, org in self.orgs.items():  # one last sync each, through the API
                _retrying(
                    lambda slug=slug, org=org: requests.post(
                        f"{base}/api/v1/orgs/{slug}/syncs", headers=org["auth"], timeout=10
                    )
                )
            self._settle()
            time.sleep(3)
            self._report(load, started, everyone)
        finally:
            for process in locals().get("everyone", []):
                process.stop()
            for bridge in self.bridges.values():
                bridge.stop()
            self.redis.kill()
            with contextlib.suppress(subprocess.CalledProcessError):
                self.postgres.stop_immediately()

    def _create_orgs(self) -> None:
        from connectors.emulators.ptdirect_bridge import PtDirectBridgeEmulator
        from worker.runtime import get_runtime
        from worker.services.credentials import create_admin_token, rotate_webhook_credentials
        from worker.services.orgs import NewOrganisation, add_organisation
        from worker.store.db import Database

        Database(self.postgres.url).migrate()
        runtime = get_runtime()
        for number in range(ORGS):
            slug = f"org-{number:02d}"
            departed = number % 2 == 1
            pms, state = write_org(self.work / "clinics" / slug, departed)
            bridge = PtDirectBridgeEmulator(state, f"key-{number}").start()
            self.bridges[slug] = bridge
            add_organisation(
                runtime,
                NewOrganisation(
                    slug=slug,
                    pms="csv",
                    pms_path=str(pms),
                    ptdirect="api",
                    ptdirect_url=f"{bridge.url}/v1",
                    ptdirect_key=f"key-{number}",
                    policy="propose" if departed else "apply-safe",
                ),
            )
            secret = rotate_webhook_credentials(runtime, slug).signing_secret
            token = create_admin_token(runtime, slug, "chaos")
            self.orgs[slug] = {"secret": secret, "auth": {"Authorization": f"Bearer {token}"}}
        runtime.db.dispose()

    def _supervise(self, everyone: list[Process]) -> None:
        while not all(process.stopped for process in everyone):
            for process in everyone:
                if process.supervise():
                    self.faults[f"{process.name} restarted after exiting"] += 1
            time.sleep(1)

    def _drive(self, load: Load, started: float) -> None:
        total = int(self.seconds * RATE)
        with ThreadPoolExecutor(max_workers=12) as pool:
            for number in range(total):
                time.sleep(max(started + number / RATE - time.monotonic(), 0))
                pool.submit(load.one, number)

    def _faults(self, started: float, web: Process, workers: list[Process], clocks: list[Process]) -> None:
        scale = self.seconds / 240.0
        events = [(0.25, "clock-0"), (0.375, "clock-1"), (0.45, "web"), (0.55, "redis"), (0.7, "postgres")]
        events += [(t / 240.0, "worker") for t in range(15, 240, 15)]
        for at, what in sorted(events):
            time.sleep(max(started + at * 240.0 * scale - time.monotonic(), 0))
            if what == "worker":
                victim = self.random.choice(workers)
                victim.kill()
                victim.start()
            elif what.startswith("clock"):
                clock = clocks[int(what[-1])]
                clock.kill()
                time.sleep(2)
                clock.start()
            elif what == "web":
                web.kill()
                time.sleep(2)
                web.start()
            elif what == "redis":
                self.redis.kill()
                time.sleep(5)
                self.redis.start()
            elif what == "postgres":
                self.postgres.stop_immediately()
                time.sleep(5)
                self.postgres.start()
            self.faults[what] += 1

    def _settle(self, seconds: float = 300.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.postgres.url) as connection:
                    busy = connection.execute(
                        "select (select count(*) from runs where status in ('queued', 'running'))"
                        " + (select count(*) from deliveries where status = 'pending')"
                        " + (select count(*) from proposals where status = 'applying' or apply_token is not null)"
                        " + (select count(*) from proposal_operations o join proposals p on p.id = o.proposal_id"
                        "    where p.status in ('proposed', 'approved') and o.status in ('pending', 'applying')"
                        "    and (not o.requires_approval or o.approved_at is not null))"
                    ).fetchone()[0]
                if busy == 0:
                    return
            except psycopg.OperationalError:
                pass
            time.sleep(1)

    def _report(self, load: Load, started: float, everyone: list[Process]) -> None:
        with psycopg.connect(self.postgres.url) as db:
            checks = [
                _covered(db, load),
                _final(db),
                _redis_empty(self.redis),
                _changes_once(db, self.bridges),
                _approved_settled(db),
                _no_overlap(db),
                _reports_match(self.orgs),
            ]
            runs = dict(db.execute("select status, count(*) from runs group by status").fetchall())
            proposals = dict(db.execute("select status, count(*) from proposals group by status").fetchall())
            failures = Counter(
                (error or "")[:60]
                for (error,) in db.execute("select error from runs where status = 'failed'").fetchall()
            )
        changes = sum(sum(bridge.changes.values()) for bridge in self.bridges.values())
        print(
            f"chaos: {ORGS} organisations, {self.seconds:.0f} s of load at ~{RATE:.0f} requests/s; "
            f"web + 3 workers + 2 clocks on a private PostgreSQL and Redis (seed {self.seed})"
        )
        print(
            f"requests: {len(load.accepted_webhooks)} webhooks and {load.accepted_syncs} sync requests accepted, "
            f"{len(load.approvals)} approvals; refused or unreachable: {dict(load.refused)}"
        )
        print(f"faults: {dict(self.faults)} (processes killed: {sum(p.kills for p in everyone)})")
        print(f"runs: {runs}; proposals: {proposals}; PT Direct changes made: {changes}")
        print(
            f"why runs failed (a run covered by a later one, or retries spent during an outage): {dict(failures)}"
        )
        failed = 0
        for name, ok, detail in checks:
            failed += not ok
            print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
        print(
            f"{len(checks) - failed} of {len(checks)} checks passed (target: all); logs in {self.work / 'logs'}"
        )


def _retrying(call, attempts: int = 20) -> None:
    for _ in range(attempts):
        try:
            if call().status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)


def _covered(db, load: Load) -> tuple[str, bool, str]:
    rows = db.execute(
        "select o.slug, d.source, d.delivery_id, d.received_at from deliveries d join organisations o on o.id = d.org_id"
        " where d.source in ('generic', 'api')"
    ).fetchall()
    recorded = {(slug, delivery_id) for slug, source, delivery_id, _ in rows if source == "generic"}
    lost = [key for key in load.accepted_webhooks if key not in recorded]
    uncovered = db.execute(
        "select count(*) from deliveries d where d.source in ('generic', 'api') and not exists ("
        " select 1 from runs r where r.org_id = d.org_id and r.status = 'succeeded' and r.started_at >= d.received_at)"
    ).fetchone()[0]
    ok = not lost and uncovered == 0
    return (
        "accepted webhooks and sync requests covered by a successful run",
        ok,
        f"{len(load.accepted_webhooks)} webhooks + {load.accepted_syncs} sync requests accepted, "
        f"{len(lost)} not in the inbox, {uncovered} of {len(rows)} deliveries without a later successful run",
    )


def _final(db) -> tuple[str, bool, str]:
    open_runs = db.execute("select count(*) from runs where status in ('queued', 'running')").fetchone()[0]
    held = db.execute(
        "select count(*) from proposals where status = 'applying' or apply_token is not null"
    ).fetchone()[0]
    in_flight = db.execute("select count(*) from proposal_operations where status = 'applying'").fetchone()[0]
    ok = open_runs == held == in_flight == 0
    return (
        "runs and proposals final",
        ok,
        f"{open_runs} runs open, {held} proposals applying or holding a lease, {in_flight} operations applying",
    )


def _redis_empty(server: Redis, seconds: float = 90.0) -> tuple[str, bool, str]:
    """Empty within `seconds` (a dead worker's unacked messages are requeued by broker
    maintenance after its heartbeat times out, then run): stranded means still there after."""
    started = time.monotonic()
    while True:
        left = _redis_left(server)
        if not left or time.monotonic() - started > seconds:
            break
        time.sleep(2)
    waited = time.monotonic() - started
    return (
        "no message stranded in Redis",
        not left,
        f"left: {left or 'none'} (after waiting {waited:.0f} s)",
    )


def _redis_left(server: Redis) -> dict[str, int]:
    client = redis.Redis(port=server.port)
    left = {}
    for key in client.scan_iter("ptsync:*"):
        name = key.decode()
        kind = client.type(key).decode()
        if kind == "list" and client.llen(key):
            left[name] = client.llen(key)
        elif kind == "hash" and name.endswith(".msgs") and client.hlen(key):
            left[name] = client.hlen(key)
        elif kind == "zset" and "__acks__" in name and client.zcard(key):
            left[name] = client.zcard(key)
        elif kind == "set" and "__acks__" in name and client.scard(key):
            left[name] = client.scard(key)
    return left


def _changes_once(db, bridges: dict) -> tuple[str, bool, str]:
    twice = {slug: [k for k, n in bridge.changes.items() if n > 1] for slug, bridge in bridges.items()}
    twice = {slug: keys for slug, keys in twice.items() if keys}
    superseded = {
        row[0]: row[1].timestamp()
        for row in db.execute(
            "select detail->>'proposal_id', min(at) from audit_log where action = 'proposal_superseded' group by 1"
        ).fetchall()
    }
    late = 0
    writes = 0
    for bridge in bridges.values():
        for request in bridge.log:
            if request.method not in ("PUT", "DELETE"):
                continue
            writes += 1
            proposal_id = (request.headers.get("idempotency-key") or ":").split(":")[0]
            if proposal_id in superseded and request.received_at > superseded[proposal_id] + 0.5:
                late += 1
    return (
        "no PT Direct change made twice or after its proposal was superseded",
        not twice and late == 0,
        f"{writes} write requests; changes made twice: {twice or 'none'}; sent after superseded: {late}",
    )


def _approved_settled(db) -> tuple[str, bool, str]:
    rows = db.execute(
        "select o.status, o.note from proposal_operations o where o.approved_at is not null"
    ).fetchall()
    unsettled = [
        (status, note)
        for status, note in rows
        if not (status in ("applied", "manual") or (status in ("closed", "waiting") and note))
    ]
    by_status = Counter(status for status, _ in rows)
    return (
        "every approved operation applied or closed with a reason",
        not unsettled,
        f"{len(rows)} approved operations: {dict(by_status)}; unsettled: {len(unsettled)}",
    )


def _no_overlap(db) -> tuple[str, bool, str]:
    rows = db.execute(
        "select org_id, started_at, finished_at from runs where started_at is not null and finished_at is not null"
        " and status = 'succeeded' order by org_id, started_at"
    ).fetchall()
    overlaps = sum(
        1
        for (org, _, end), (next_org, next_start, _) in itertools.pairwise(rows)
        if org == next_org and next_start < end
    )
    return (
        "no two runs of one organisation overlapping",
        overlaps == 0,
        f"{len(rows)} runs, {overlaps} overlaps",
    )


def _reports_match(orgs: dict) -> tuple[str, bool, str]:
    from sharing import reconcile
    from worker.connections import pms_connector, ptdirect_adapter
    from worker.runtime import get_runtime
    from worker.services.settle import policy_of
    from worker.store import repositories as repo

    runtime = get_runtime()
    runtime.db.dispose()
    different = []
    for slug in orgs:
        with runtime.db.transaction() as session:
            org = repo.get_org(session, slug)
            session.expunge(org)
            report = repo.latest_report_run(session, org.id).report
        pms = pms_connector(org, runtime.secrets).pull(
            window_start=date.today() - timedelta(days=540), cursors={}
        )
        clean = reconcile(
            pms.snapshot,
            ptdirect_adapter(org, runtime.secrets).read(),
            policy_of(org),
            as_of=date.today(),
            pseudonym_key=runtime.secrets.decrypt(org.pseudonym_key_encrypted),
        )
        same_findings = {f["fingerprint"] for f in report["findings"]} == {
            f.fingerprint for f in clean.findings
        }
        stored_ops = {(op["op"], op["email"]) for op in (report["proposal"] or {}).get("operations", [])}
        if not same_findings or stored_ops != {(op.op.value, op.email) for op in clean.operations}:
            different.append(slug)
    return (
        "reports equal to a clean reconciliation",
        not different,
        f"{len(orgs) - len(different)} of {len(orgs)} equal; different: {different or 'none'}",
    )


if __name__ == "__main__":
    main()
