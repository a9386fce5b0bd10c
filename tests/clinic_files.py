"""Writes small clinics in the CSV folder and PT Direct state formats (see docs/)."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

TODAY = date.today()


def write_clinic(folder: Path, *, cara_in_sharing: bool = False) -> tuple[Path, Path]:
    """Ana and Ben share patients; Cara treats Ana's patients but is not in sharing."""
    pms = folder / "pms"
    pms.mkdir(parents=True, exist_ok=True)
    (pms / "practitioners.csv").write_text(
        "id,name,email,active,updated_at\n"
        "101,Ana Silva,ana@clinic.example,true,2026-01-01T00:00:00Z\n"
        "102,Ben Ode,ben@clinic.example,true,\n"
        "103,Cara Lim,cara@clinic.example,true,\n"
    )
    rows = []
    for patient in range(1, 6):
        rows.append(("101", f"p{patient}", "appointment", (TODAY - timedelta(days=patient)).isoformat()))
        rows.append(("102", f"p{patient}", "appointment", (TODAY - timedelta(days=patient)).isoformat()))
    for patient in range(6, 9):
        rows.append(("101", f"p{patient}", "appointment", (TODAY - timedelta(days=3)).isoformat()))
        rows.append(("103", f"p{patient}", "care_team", (TODAY - timedelta(days=3)).isoformat()))
    with (pms / "patient_access.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["practitioner_id", "patient_id", "source", "last_seen"])
        writer.writerows(rows)
    ptdirect = folder / "ptdirect.json"
    members = [
        {"email": "ana@clinic.example", "share_content": True, "share_patients": True},
        {"email": "ben@clinic.example", "share_content": True, "share_patients": True},
    ]
    if cara_in_sharing:
        members.append({"email": "cara@clinic.example", "share_content": True, "share_patients": True})
    ptdirect.write_text(
        json.dumps(
            {
                "schema": "ptsync.ptdirect/1",
                "users": [
                    {
                        "email": f"{name}@clinic.example",
                        "name": name.title(),
                        "status": "confirmed",
                        "practitioner_access": True,
                        "pms_link": {"system": "csv", "practitioner_id": pid},
                    }
                    for pid, name in (("101", "ana"), ("102", "ben"), ("103", "cara"))
                ],
                "master_account": None,
                "practitioner_sharing": {"members": members},
            }
        )
    )
    return pms, ptdirect


def csv_org_add_args(folder: Path, slug: str = "clinic-a", *extra: str) -> list[str]:
    """Writes the clinic and returns `ptsync org add` arguments for it (CSV PMS, PT Direct file)."""
    pms, ptdirect = write_clinic(folder)
    return [
        "org",
        "add",
        slug,
        "--pms",
        "csv",
        "--pms-path",
        str(pms),
        "--ptdirect",
        "file",
        "--ptdirect-path",
        str(ptdirect),
        *extra,
    ]


def add_departed_member(pms: Path, ptdirect: Path, *, active: bool = False) -> None:
    """Dan (104) shares patients in PT Direct; the PMS says whether he is still active."""
    with (pms / "practitioners.csv").open("a") as handle:
        handle.write(f"104,Dan Roe,dan@clinic.example,{'true' if active else 'false'},\n")
    document = json.loads(ptdirect.read_text())
    document["users"].append(
        {
            "email": "dan@clinic.example",
            "name": "Dan Roe",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": "csv", "practitioner_id": "104"},
        }
    )
    document["practitioner_sharing"]["members"].append(
        {"email": "dan@clinic.example", "share_content": True, "share_patients": True}
    )
    ptdirect.write_text(json.dumps(document))


def full_sync_far_from_now() -> str:
    """A `--full-sync` schedule twelve hours from now: a test about the poll's ticks does not
    depend on the hour it runs at (the default full sync, 02:30 UTC, would add a delivery)."""
    from datetime import UTC, datetime

    return f"0 {(datetime.now(UTC).hour + 12) % 24} * * *"
