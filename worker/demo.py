"""The bundled demo clinic: a dozen practitioners, a few hundred patients, every finding kind.

Files are generated from a fixed seed with dates relative to today, so the demo never ages
out of the lookback window. They are written once; later demo runs reuse them (and so show
findings as ongoing).
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from worker.clock import utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

SEED = 7

# id, name, email, active, PT Direct: user state, sharing membership, master recipient
PRACTITIONERS = [
    ("1001", "Ana Silva", "ana@demo-clinic.example", True, "confirmed", "patients", True),
    ("1002", "Ben Ode", "ben@demo-clinic.example", True, "confirmed", "patients", True),
    ("1003", "Cara Lim", "cara@demo-clinic.example", True, "confirmed", None, False),
    ("1004", "Dan Roe", "dan@demo-clinic.example", False, "confirmed", "patients", True),
    ("1005", "Eve Park", "eve@demo-clinic.example", True, "confirmed", "content", True),
    ("1006", "Fay Wu", "fay@demo-clinic.example", True, "unconfirmed", None, False),
    ("1007", "Gus Hale", "gus@demo-clinic.example", True, None, None, False),
    ("1008", "Hana Ito", "hana@demo-clinic.example", True, "confirmed", "patients", True),
    ("1009", "Hana Ito (Pilates)", "HANA@demo-clinic.example", True, None, None, False),
    ("1010", "Ivo Marsh", "ivo@demo-clinic.example", True, "confirmed", "patients", True),
    ("1011", "Jun Sato", "jun@demo-clinic.example", True, "confirmed", "patients", True),
    ("1012", "Kim Dahl", "kim@demo-clinic.example", True, "confirmed", "patients", True),
]
# Who treats together: (practitioner ids, number of shared patients)
TEAMS = [
    (("1001", "1002"), 40),
    (("1001", "1003"), 25),  # Cara is new and not sharing: duplicate risk + missing new user
    (("1002", "1005"), 12),  # Eve shares content only: duplicate risk, enable patient sharing
    (("1004", "1010"), 15),  # Dan has left but still shares patients: departed
    (("1006", "1001"), 10),  # Fay has not accepted her invitation
    (("1007", "1011"), 18),  # Gus has no Physitrack licence
    (("1008", "1009", "1012"), 20),  # Hana has two PMS records: ambiguous
    (("1010", "1011", "1012"), 60),
]
SOLO_PATIENTS = 110


# Physitrack v2 client lists: the same patient twice (Ana's and Ben's copies) and one other.
DEMO_CLIENTS = [
    {
        "practitioner_email": "ana@demo-clinic.example",
        "client_id": "pt-1",
        "external_id": "50001",
        "name": "Demo Patient One",
        "year_of_birth": 1979,
        "email": None,
    },
    {
        "practitioner_email": "ben@demo-clinic.example",
        "client_id": "pt-2",
        "external_id": "50001",
        "name": "Demo Patient One",
        "year_of_birth": 1979,
        "email": None,
    },
    {
        "practitioner_email": "ivo@demo-clinic.example",
        "client_id": "pt-3",
        "external_id": "50300",
        "name": "Demo Patient Two",
        "year_of_birth": 1990,
        "email": None,
    },
]


def write_demo_clinic(folder: Path, today: date) -> None:
    """Write practitioners.csv, patient_access.csv and ptdirect.json into `folder`."""
    rng = random.Random(SEED)
    folder.mkdir(parents=True, exist_ok=True)
    _write_practitioners(folder, today)
    rows = _access_rows(rng, today)
    with (folder / "patient_access.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["practitioner_id", "patient_id", "source", "last_seen", "status"])
        writer.writerows(rows)
    snapshot = _ptdirect_snapshot()
    (folder / "ptdirect.json").write_text(json.dumps(snapshot, indent=2) + "\n")


def _write_practitioners(folder: Path, today: date) -> None:
    with (folder / "practitioners.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "active", "updated_at"])
        for pid, name, email, active, *_ in PRACTITIONERS:
            writer.writerow(
                [pid, name, email, str(active).lower(), f"{today - timedelta(days=30)}T09:00:00Z"]
            )


def _access_rows(rng: random.Random, today: date) -> list[tuple[str, str, str, str, str]]:
    """Teams who share patients (with some cancelled visits), and patients seen by one person."""
    rows: list[tuple[str, str, str, str, str]] = []
    patient = 50_000
    for team, count in TEAMS:
        for _ in range(count):
            patient += 1
            for pid in team:
                for _visit in range(rng.randint(1, 3)):
                    seen = today - timedelta(days=rng.randint(0, 400))
                    status = "cancelled" if rng.random() < 0.07 else "active"
                    rows.append((pid, str(patient), "appointment", seen.isoformat(), status))
    for _ in range(SOLO_PATIENTS):
        patient += 1
        pid = rng.choice(PRACTITIONERS)[0]
        rows.append(
            (
                pid,
                str(patient),
                "appointment",
                (today - timedelta(days=rng.randint(0, 700))).isoformat(),
                "active",
            )
        )
    return rows


def _ptdirect_snapshot() -> dict:
    """PT Direct as the demo starts: some users invited, some sharing, a master account, clients."""
    users = [
        {
            "email": email,
            "name": name,
            "status": state,
            "practitioner_access": True,
            "pms_link": {"system": "csv", "practitioner_id": pid} if pid != "1008" else None,
        }
        for pid, name, email, _active, state, _member, _recipient in PRACTITIONERS
        if state is not None
    ]
    users += [
        {
            "email": "content@demo-clinic.example",
            "name": "Demo Clinic Content",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": None,
        },
        {
            "email": "frontdesk@demo-clinic.example",
            "name": "Front Desk",
            "status": "confirmed",
            "practitioner_access": False,
            "pms_link": None,
        },
    ]
    members = [
        {"email": email, "share_content": True, "share_patients": member == "patients"}
        for _pid, _name, email, _active, _state, member, _recipient in PRACTITIONERS
        if member is not None
    ]
    members.append({"email": "content@demo-clinic.example", "share_content": True, "share_patients": True})
    recipients = [email for _p, _n, email, _a, _s, _m, recipient in PRACTITIONERS if recipient]
    snapshot = {
        "schema": "ptsync.ptdirect/1",
        "users": users,
        "master_account": {"email": "content@demo-clinic.example", "recipients": recipients},
        "practitioner_sharing": {"members": members},
        "clients": DEMO_CLIENTS,
    }
    return snapshot


def prepare_demo_organisation(
    runtime: Runtime, slug: str, folder: Path, practitioners: int | None
) -> list[str]:
    """Make sure the demo organisation exists and reads `folder` (writing the clinic there if
    needed). Returns what was done, for the person running the demo.

    The database is per user: a demo run from another folder takes the organisation over.
    `practitioners` None is the hand-written 12-person clinic; a number generates teams.
    """
    from worker.demo_generated import write_generated_clinic
    from worker.services.org_admin import update_organisation
    from worker.services.orgs import NewOrganisation, add_organisation
    from worker.store import repositories as repo

    notes: list[str] = []
    with runtime.db.transaction() as session:
        demo_org = repo.find_org(session, slug)
        exists = demo_org is not None
        elsewhere = exists and demo_org.pms_path != str(folder.resolve())
    # Written when missing (a first demo, or its folder deleted since); a complete folder is
    # left as it is, with whatever a person edited in it to try something.
    if not (folder / "ptdirect.json").exists() or not (folder / "practitioners.csv").exists():
        if practitioners is None:
            write_demo_clinic(folder, utcnow().date())
        else:
            write_generated_clinic(folder, utcnow().date(), practitioners)
        notes.append(f"wrote the demo clinic's PMS export and PT Direct snapshot to {folder}/")
    if elsewhere:
        paths = {"pms_path": str(folder), "ptdirect_path": str(folder / "ptdirect.json")}
        update_organisation(runtime, slug, paths, test=False)
        notes.append(f"the demo clinic now reads {folder}/")
    if not exists:
        add_organisation(
            runtime,
            NewOrganisation(
                slug=slug,
                pms="csv",
                pms_path=str(folder),
                ptdirect="file",
                ptdirect_path=str(folder / "ptdirect.json"),
                policy="propose",
            ),
        )
        notes.append(f"added organisation {slug}")
    return notes
