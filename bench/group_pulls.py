"""Benchmark: a clinic group's sync round, with the PMS read shared and without.

An emulated Cliniko account of 5,000 patients, 40 practitioners and 60,000 appointments spread
over three businesses (teams of 8 to a business); one organisation per business, each scoped to
it (`--locations`), on the same key. A sync round as the clock makes one: the three runs are
requested together, then run one after the other in this process (as the in-process broker
does). Measured twice: with shared reads (ptsync's behaviour) and with every organisation
reading the account itself (`PTSYNC_SHARED_PMS_READS=false`), each first with a full
read and then, after 50 appointments change, an incremental one.

Prints, per round: requests to the emulator and wall time, shared vs separate, beside targets:
a shared round makes as many requests as one organisation's read (so 1/3 of separate reads),
and a full round takes at most half the separate round's time (an incremental round has no time
target: its few requests cost less here than the shared read's encrypted copy, see the output).
Also each organisation's practitioners, to show each kept only its site.

Run: .venv/bin/python bench/group_pulls.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.emulators.cliniko import ClinikoEmulator, generate_account

PATIENTS, PRACTITIONERS, APPOINTMENTS, SITES = 5_000, 40, 60_000, 3
KEY = "bench-group-key-au1"


def _runtime(folder: Path, shared: bool):
    os.environ.update(
        PTSYNC_SHARED_PMS_READS="true" if shared else "false",
        PTSYNC_DATABASE_URL=f"sqlite:///{folder / 'bench.sqlite'}",
        PTSYNC_SECRET_KEY=Fernet.generate_key().decode(),
        PTSYNC_CLINIKO_REQUESTS_PER_MINUTE="600000",
        PTSYNC_CONTACT_EMAIL="bench@clinic.example",
    )
    os.environ.pop("PTSYNC_BROKER_URL", None)
    from worker import runtime as runtime_module
    from worker import settings as settings_module

    settings_module.get_settings.cache_clear()
    runtime_module.get_runtime.cache_clear()
    return runtime_module.get_runtime()


def _organisations(runtime, emulator, folder: Path, prefix: str) -> list[str]:
    from worker.services.orgs import NewOrganisation, add_organisation

    empty = {"schema": "ptsync.ptdirect/1", "users": [], "master_account": None}
    slugs = []
    for site in range(1, SITES + 1):
        slug = f"{prefix}-site-{site}"
        snapshot = folder / f"{slug}.json"
        snapshot.write_text(json.dumps({**empty, "practitioner_sharing": {"members": []}}))
        add_organisation(
            runtime,
            NewOrganisation(
                slug=slug,
                pms="cliniko",
                pms_url=emulator.base_url,
                pms_key=KEY,
                ptdirect="file",
                ptdirect_path=str(snapshot),
                locations=str(site),
            ),
        )
        slugs.append(slug)
    return slugs


def _round(runtime, emulator, slugs: list[str]) -> tuple[int, float, list[int]]:
    from worker.services.sync import request_sync, run_sync
    from worker.store.models import Run

    before = len(emulator.log)
    started = time.perf_counter()
    run_ids = [request_sync(runtime, slug, "schedule")[0] for slug in slugs]
    for run_id in run_ids:
        assert run_sync(runtime, run_id).status == "succeeded"
    seconds = time.perf_counter() - started
    with runtime.db.transaction() as session:
        people = [session.get(Run, run_id).counts["practitioners"] for run_id in run_ids]
    return len(emulator.log) - before, seconds, people


def _measure(shared: bool) -> list[tuple[str, int, float, list[int]]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runtime = _runtime(folder, shared)
        data = generate_account(
            patients=PATIENTS,
            practitioners=PRACTITIONERS,
            appointments=APPOINTMENTS,
            today=date.today(),
            businesses=SITES,
        )
        with ClinikoEmulator(data, KEY, requests_per_window=10**9) as emulator:
            slugs = _organisations(runtime, emulator, folder, "shared" if shared else "separate")
            full = _round(runtime, emulator, slugs)
            emulator.update_appointments(50, datetime.now(UTC))
            incremental = _round(runtime, emulator, slugs)
        runtime.db.dispose()
    return [("full", *full), ("incremental", *incremental)]


def main() -> None:
    shared = _measure(True)
    separate = _measure(False)
    print(
        f"Clinic group: {PATIENTS} patients, {PRACTITIONERS} practitioners, {APPOINTMENTS} appointments, "
        f"{SITES} businesses, one organisation per business on one Cliniko key"
    )
    for first, second in zip(shared, separate, strict=True):
        kind, s_requests, s_seconds, people = first
        _, p_requests, p_seconds, _ = second
        print(f"{kind} round:")
        print(
            f"  requests: shared {s_requests}, separate {p_requests} "
            f"(target: shared = one organisation's read = separate / {SITES}: "
            f"{'met' if s_requests * SITES == p_requests else 'MISSED'})"
        )
        if kind == "full":
            verdict = "met" if s_seconds <= p_seconds / 2 else "MISSED"
            target = f"target: shared <= half of separate: {verdict}"
        else:
            saved = (p_requests - s_requests) * 60 / 190
            target = (
                "no time target: this emulator answers in milliseconds, while the shared read's "
                f"encrypted copy costs a fixed time; against Cliniko the {p_requests - s_requests} "
                f"requests saved are {saved:.1f} s of the key's 190/min budget"
            )
        print(f"  wall time: shared {s_seconds:.2f} s, separate {p_seconds:.2f} s ({target})")
        print(f"  practitioners per organisation: {people} (each its own site's, of {PRACTITIONERS})")


if __name__ == "__main__":
    main()
