"""An emulator of the parts of Nookal's REST API v2 that ptsync reads.

Shaped after the documents `connectors/nookal.py` names: `GET /production/v2/<method>` with the
key as the `api_key` query parameter; every answer the envelope `{status, data: {results:
{...}}, details}`; a missing or wrong key is a `failure` envelope (errorCode `L000_1` "Missing
variable: api_key", as probed live by others; `L000_2` for a wrong key, our guess); listings
paged by `page` and `page_length` (at most 100) with `details.currentPage/nextPage/totalItems`;
`getAppointments` filters `date_from`, `date_to`, `last_modified` (rows modified after it,
`YYYY-MM-DD HH:MM:SS`); ids are strings of digits. Nookal publishes no rate limit: this one
allows `requests_per_window` per window and answers 429 with `Retry-After` beyond it.

Run it with a sample clinic: `python -m connectors.emulators.nookal --port 8094` (the key it
accepts is printed; `--help` lists the options).
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.emulators.base import JsonServer, Request, Response, serve_until_interrupted

PREFIX = "/production/v2"
MAX_PAGE_LENGTH = 100


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def failure(code: str, message: str, *alerts: str) -> dict[str, Any]:
    return {
        "status": "failure",
        "data": {},
        "details": {"errorCode": code, "errorMessage": message, "alerts": list(alerts)},
    }


class NookalEmulator(JsonServer):
    def __init__(
        self,
        clinic: dict[str, Any],
        api_key: str,
        *,
        requests_per_window: int = 10_000,
        window_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.clinic = clinic
        self.api_key = api_key
        self.requests_per_window = requests_per_window
        self.window_seconds = window_seconds
        self._recent: deque[float] = deque()
        self.rate_limited = 0
        self._rows: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self.route("GET", f"{PREFIX}/verify", lambda r: self._answer(r, "verify", [{"verified": True}]))
        self.route("GET", f"{PREFIX}/getPractitioners", self._practitioners)
        self.route("GET", f"{PREFIX}/getAppointments", self._appointments)
        self.route("GET", f"{PREFIX}/getClassParticipants", self._participants)
        self.route(
            "GET",
            f"{PREFIX}/getLocations",
            lambda r: self._answer(r, "getLocations", self.clinic.get("locations", []), "locations"),
        )

    @property
    def base_url(self) -> str:
        return f"{self.url}{PREFIX}"

    def authorise(self, request: Request) -> Response | None:
        key = request.query.get("api_key", [""])[0]
        if not key:
            return Response(200, failure("L000_1", "Missing variable", "Missing variable: api_key"))
        if key != self.api_key:
            return Response(200, failure("L000_2", "Invalid API key", "The API key is not valid"))
        now = time.time()
        while self._recent and self._recent[0] <= now - self.window_seconds:
            self._recent.popleft()
        if len(self._recent) >= self.requests_per_window:
            self.rate_limited += 1
            wait = max(self._recent[0] + self.window_seconds - now, 0.001)
            return Response(429, failure("L429", "Too many requests"), {"Retry-After": str(math.ceil(wait))})
        self._recent.append(now)
        return None

    def _answer(self, request: Request, name: str, rows: list[dict[str, Any]], key: str = "") -> Response:
        try:
            page = int(request.query.get("page", ["1"])[0])
            length = min(int(request.query.get("page_length", ["100"])[0]), MAX_PAGE_LENGTH)
        except ValueError:
            return Response(200, failure("L001", "Invalid variable", "page and page_length must be numbers"))
        chunk = rows[(page - 1) * length : page * length]
        more = page * length < len(rows)
        return Response(
            200,
            {
                "status": "success",
                "data": {"api_call": name, "results": {key or name: chunk}},
                "details": {
                    "totalItems": len(rows),
                    "currentItems": len(chunk),
                    "currentPage": page,
                    "nextPage": page + 1 if more else None,
                    "pageLength": length,
                },
            },
        )

    def _practitioners(self, request: Request) -> Response:
        everyone = request.query.get("include_inactive_practitioners", [""])[0].lower() in ("1", "true")
        rows = [
            {k: v for k, v in row.items() if not k.startswith("_")}
            for row in self.clinic["practitioners"]
            if everyone or row["_active"]
        ]
        return self._answer(request, "getPractitioners", rows, "practitioners")

    def _appointments(self, request: Request) -> Response:
        query = request.query
        key = tuple(query.get(name, [""])[0] for name in ("date_from", "date_to", "last_modified"))
        rows = self._rows.get(key)
        if rows is None:  # benchmarks page through 60,000 rows: filter once per query, not per page
            date_from, date_to, modified = key
            rows = [
                r
                for r in self.clinic["appointments"]
                if (not date_from or r["appointmentDate"] >= date_from)
                and (not date_to or r["appointmentDate"] <= date_to)
                and (not modified or r["lastModified"] > modified)
            ]
            self._rows[key] = rows
        return self._answer(request, "getAppointments", rows, "appointments")

    def _participants(self, request: Request) -> Response:
        class_id = request.query.get("appt_id", [""])[0]
        if not class_id:
            return Response(200, failure("L000_1", "Missing variable", "Missing variable: appt_id"))
        rows = self.clinic["participants"].get(class_id, [])
        return self._answer(request, "getClassParticipants", rows, "participants")

    def update_appointments(self, count: int, now: datetime, seed: int = 1) -> list[str]:
        """Cancel `count` individual appointments, as a clinic's day would."""
        rng = random.Random(seed)
        with self.lock:
            individual = [r for r in self.clinic["appointments"] if r["classID"] == "0"]
            rows = rng.sample(individual, count)
            for row in rows:
                row["cancelled"] = "1"
                row["status"] = "Cancelled"
                row["cancellationDate"] = _stamp(now)
                row["lastModified"] = _stamp(now)
            self._rows.clear()
        return [row["ID"] for row in rows]


def generate_clinic(
    *,
    patients: int,
    practitioners: int,
    appointments: int,
    today: date,
    classes: int = 0,
    seed: int = 42,
) -> dict[str, Any]:
    """A Nookal clinic: practitioners in teams of about 8, weekly classes of four."""
    rng = random.Random(seed)
    stamp = _stamp(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    people = [
        {
            "ID": str(index + 1),
            "Title": "",
            "FirstName": f"P{index}",
            "LastName": "Example",
            "Email": f"practitioner{index}@clinic.example",
            "Speciality": "Physiotherapist",
            "locations": [1],
            "_active": index % 13 != 12,
        }
        for index in range(practitioners)
    ]
    rows = []
    team_size = 8
    for index in range(appointments):
        patient = rng.randrange(patients)
        team = patient % max(practitioners // team_size, 1)
        practitioner = min(team * team_size + rng.randrange(team_size), practitioners - 1)
        day = today - timedelta(days=rng.randrange(0, 500))
        roll = rng.random()
        rows.append(
            {
                "ID": str(50_000 + index),
                "patientID": str(10_000 + patient),
                "practitionerID": str(practitioner + 1),
                "locationID": "1",
                "appointmentDate": day.isoformat(),
                "appointmentStartTime": f"{9 + rng.randrange(8):02d}:00:00",
                "appointmentType": "Standard consultation",
                "classID": "0",
                "status": "Cancelled" if roll < 0.05 else "DNA" if roll < 0.07 else "Booked",
                "cancelled": "1" if roll < 0.05 else "0",
                "dateCreated": stamp,
                "lastModified": stamp,
            }
        )
    participants: dict[str, list[dict[str, Any]]] = {}
    for index in range(classes):
        class_id = str(90_000 + index)
        rows.append(
            {
                "ID": class_id,
                "patientID": "0",
                "practitionerID": "1",
                "locationID": "1",
                "appointmentDate": (today - timedelta(days=7 * index)).isoformat(),
                "appointmentStartTime": "18:00:00",
                "appointmentType": "Pilates class",
                "classID": "7",
                "status": "Booked",
                "cancelled": "0",
                "dateCreated": stamp,
                "lastModified": stamp,
            }
        )
        participants[class_id] = [
            {
                "ID": str(95_000 + index * 10 + seat),
                "patientID": str(10_000 + rng.randrange(patients)),
                "cancelled": "0",
            }
            for seat in range(4)
        ]
    locations = [{"ID": "1", "Name": "Main clinic"}]  # where every practitioner and appointment is
    return {
        "practitioners": people,
        "appointments": rows,
        "participants": participants,
        "locations": locations,
    }


def generate_group(today: date) -> dict[str, Any]:
    """The clinic group of `connectors.emulators.group` on one Nookal key: `getLocations` lists
    locations 1, 2 and 3, practitioners (ids 1-7) list their `locations`, and every appointment
    carries its `locationID`."""
    from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE, SITES, visits

    stamp = _stamp(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    people = [
        {
            "ID": str(index + 1),
            "FirstName": first,
            "LastName": "Group",
            "Email": f"{handle}@{EMAIL_DOMAIN}",
            "Speciality": "Physiotherapist",
            "locations": [int(site) for site in sites],
            "_active": True,
        }
        for index, (handle, first, sites) in enumerate(PEOPLE)
    ]
    rows = [
        {
            "ID": str(60_000 + visit.number),
            "patientID": visit.patient,
            "practitionerID": str(visit.person + 1),
            "locationID": visit.site,
            "appointmentDate": visit.starts.date().isoformat(),
            "appointmentStartTime": "09:00:00",
            "classID": "0",
            "status": "Cancelled" if visit.cancelled else "Booked",
            "cancelled": "1" if visit.cancelled else "0",
            "dateCreated": stamp,
            "lastModified": stamp,
        }
        for visit in visits(today)
    ]
    locations = [{"ID": site, "Name": name} for site, name in SITES]
    return {"practitioners": people, "appointments": rows, "participants": {}, "locations": locations}


def main() -> None:
    parser = argparse.ArgumentParser(description="Emulate Nookal's REST API v2 with a sample clinic")
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument("--key", default="emulated-nookal-key")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--practitioners", type=int, default=16)
    parser.add_argument("--appointments", type=int, default=1500)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--requests-per-minute", type=int, default=120)
    parser.add_argument("--group", action="store_true", help="serve the three-site clinic group instead")
    args = parser.parse_args()
    today = datetime.now(UTC).date()
    clinic = (
        generate_group(today)
        if args.group
        else generate_clinic(
            patients=args.patients,
            practitioners=args.practitioners,
            appointments=args.appointments,
            classes=args.classes,
            today=today,
        )
    )
    emulator = NookalEmulator(
        clinic, args.key, requests_per_window=args.requests_per_minute, window_seconds=60.0, port=args.port
    )
    serve_until_interrupted(
        emulator,
        f"Nookal emulator on {emulator.base_url} (key {args.key!r}); try: ptsync org add clinic-n "
        f"--pms nookal --pms-url {emulator.base_url} --pms-key {args.key} ... (Ctrl-C to stop)",
    )


if __name__ == "__main__":
    main()
