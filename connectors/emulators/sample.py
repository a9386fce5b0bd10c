"""Start an emulator from the command line with a sample clinic (`--help` on each emulator).

So a person can try a real connector (`--pms cliniko` or `--pms fhir`) without an account:
the emulator listens on localhost and prints the `ptsync org add` line that connects to it.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.emulators.base import JsonServer


def sample_fhir_clinic(practitioners: int, patients: int, today: date) -> dict[str, list[dict[str, Any]]]:
    """A FHIR clinic: practitioners in pairs, each pair seeing the same patients (one inactive)."""
    people = [
        {
            "resourceType": "Practitioner",
            "id": f"pr{i}",
            "active": i != practitioners - 1,
            "name": [{"text": f"P{i} Example"}],
            "telecom": [{"system": "email", "value": f"practitioner{i}@clinic.example"}],
            "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
        }
        for i in range(practitioners)
    ]
    appointments = []
    for n in range(patients):
        first = (n % max(practitioners // 2, 1)) * 2
        for offset, practitioner in enumerate((first, min(first + 1, practitioners - 1))):
            start = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(
                days=n % 90 + offset
            )
            appointments.append(
                {
                    "resourceType": "Appointment",
                    "id": f"a{n}-{offset}",
                    "status": "booked",
                    "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "participant": [
                        {"actor": {"reference": f"Practitioner/pr{practitioner}"}},
                        {"actor": {"reference": f"Patient/pt{n}"}},
                    ],
                    "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
                }
            )
    return {"Practitioner": people, "Appointment": appointments}


def arguments(description: str, default_port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"port on 127.0.0.1 (default {default_port})"
    )
    parser.add_argument(
        "--practitioners", type=int, default=6, help="practitioners in the sample clinic (default 6)"
    )
    parser.add_argument("--patients", type=int, default=60, help="patients in the sample clinic (default 60)")
    parser.add_argument(
        "--group",
        action="store_true",
        help="serve a clinic group instead: three sites, seven practitioners (connectors/emulators/group.py)",
    )
    parser.add_argument(
        "--ptdirect-out",
        type=Path,
        help="also write a ptsync.ptdirect/1 file of the sample clinic's PT Direct (to import or edit)",
    )
    return parser


def group_people() -> list[tuple[str, str]]:
    """(email, name) of the clinic group's practitioners, for `write_ptdirect`."""
    from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE

    return [(f"{handle}@{EMAIL_DOMAIN}", f"{first} Group") for handle, first, _ in PEOPLE]


def write_ptdirect(path: Path, emails_and_names: list[tuple[str, str]]) -> None:
    """PT Direct as many clinics have it: everyone licensed, but only the first two share patients."""
    document = {
        "schema": "ptsync.ptdirect/1",
        "users": [
            {
                "email": email,
                "name": name,
                "status": "confirmed",
                "practitioner_access": True,
                "pms_link": None,
            }
            for email, name in emails_and_names
        ],
        "master_account": None,
        "practitioner_sharing": {
            "members": [
                {"email": email, "share_content": True, "share_patients": True}
                for email, _ in emails_and_names[:2]
            ]
        },
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def linked_ptdirect(
    path: Path, system: str, practitioner_ids: list[str], members: list[int] | None = None
) -> None:
    """PT Direct with one confirmed user per PMS practitioner (`practitioner{i}@clinic.example`,
    linked by PMS id); `members`: which of them are in practitioner sharing (default none)."""
    users = [
        {
            "email": f"practitioner{i}@clinic.example",
            "name": f"P{i} Example",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": {"system": system, "practitioner_id": pid},
        }
        for i, pid in enumerate(practitioner_ids)
    ]
    sharing = [
        {"email": users[i]["email"], "share_content": True, "share_patients": True} for i in members or ()
    ]
    document = {
        "schema": "ptsync.ptdirect/1",
        "users": users,
        "master_account": None,
        "practitioner_sharing": {"members": sharing},
    }
    path.write_text(json.dumps(document))


def serve(emulator: JsonServer, lines: list[str]) -> None:
    emulator.start()
    for line in lines:
        print(line, flush=True)
    print("Ctrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()
