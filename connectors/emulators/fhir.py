"""An emulator of a FHIR R4 server's search API for the resources ptsync reads.

Searchset Bundles paged with `_count` and `link[relation=next]`, the `date=ge` and
`_lastUpdated=gt` search parameters, an optional bearer token, and a request budget per window
answered with 429 and `Retry-After` (as Halaxy does). Every request is recorded.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from datetime import date
from typing import Any
from urllib.parse import urlencode

from connectors.emulators.base import JsonServer, Request, Response

RESOURCES = (
    "Practitioner",
    "PractitionerRole",
    "Appointment",
    "Encounter",
    "CareTeam",
    "Patient",
    "Location",
)
_DATE_FIELD = {"Appointment": ("start",), "Encounter": ("period", "start")}


class FhirEmulator(JsonServer):
    def __init__(
        self,
        resources: dict[str, list[dict[str, Any]]],
        *,
        token: str | None = None,
        requests_per_window: int = 10_000,
        window_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "/fhir",
        served: tuple[str, ...] = RESOURCES,
    ) -> None:
        super().__init__(host, port)
        self.prefix = prefix
        self.resources = {name: list(resources.get(name, [])) for name in served}
        self.token = token
        self.requests_per_window = requests_per_window
        self.window_seconds = window_seconds
        self._recent: deque[float] = deque()
        self.rate_limited = 0
        self._pages: dict[tuple[Any, ...], bytes] = {}
        self._rows: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for name in served:
            self.route("GET", f"{prefix}/{name}", lambda r, name=name: self._search(r, name))

    @property
    def base_url(self) -> str:
        return f"{self.url}{self.prefix}"

    def authorise(self, request: Request) -> Response | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, outcome("login", "missing or wrong bearer token"))
        return self.admit()

    def admit(self) -> Response | None:
        """Count one request in the sliding window; a 429 with `Retry-After` when it is full."""
        now = time.time()
        while self._recent and self._recent[0] <= now - self.window_seconds:
            self._recent.popleft()
        if len(self._recent) >= self.requests_per_window:
            self.rate_limited += 1
            return self.throttled(max(self._recent[0] + self.window_seconds - now, 0.001))
        self._recent.append(now)
        return None

    def throttled(self, wait: float) -> Response:
        """The 429 answer, asking the client to wait `wait` seconds (rounded up)."""
        return Response(429, outcome("throttled", "too many requests"), {"Retry-After": str(math.ceil(wait))})

    def changed(self) -> None:
        """Forget the cached pages: call after changing `resources`."""
        with self.lock:
            self._pages.clear()
            self._rows.clear()

    def _search(self, request: Request, name: str) -> Response:
        query = request.query
        page_key = (name, tuple(sorted((k, tuple(v)) for k, v in query.items())))
        cached = self._pages.get(page_key)
        if cached is not None:  # benchmarks read 60,000 rows: filter and encode each page once
            return Response(200, cached)
        response = self._search_uncached(request, name)
        if response.status == 200:
            self._pages[page_key] = json.dumps(response.body).encode()
        return response

    def _matching(self, name: str, updated: tuple[str, ...], dates: tuple[str, ...]) -> list[dict[str, Any]]:
        key = ("rows", name, updated, dates)
        cached = self._rows.get(key)
        if cached is not None:
            return cached
        rows = self.resources[name]
        for value in updated:
            if value.startswith("gt"):
                rows = [r for r in rows if (r.get("meta") or {}).get("lastUpdated", "") > value[2:]]
        for value in dates:
            if value.startswith("ge") and name in _DATE_FIELD:
                rows = [r for r in rows if _date_of(r, _DATE_FIELD[name]) >= value[2:]]
        self._rows[key] = rows
        return rows

    def _search_uncached(self, request: Request, name: str) -> Response:
        query = request.query
        try:
            count = min(int(query.get("_count", ["50"])[0]), 500)
            offset = int(query.get("_offset", ["0"])[0])
        except ValueError:
            return Response(400, outcome("invalid", "_count and _offset must be numbers"))
        rows = self._matching(name, tuple(query.get("_lastUpdated", [])), tuple(query.get("date", [])))
        page = rows[offset : offset + count]
        kept = [(k, v) for k, values in query.items() if k != "_offset" for v in values]
        links = [
            {"relation": "self", "url": f"{self.base_url}/{name}?{urlencode([*kept, ('_offset', offset)])}"}
        ]
        if offset + count < len(rows):
            links.append(
                {
                    "relation": "next",
                    "url": f"{self.base_url}/{name}?{urlencode([*kept, ('_offset', offset + count)])}",
                }
            )
        return Response(
            200,
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(rows),
                "link": links,
                "entry": [{"fullUrl": f"{self.base_url}/{name}/{r['id']}", "resource": r} for r in page],
            },
        )


def generate_group(today: date) -> dict[str, list[dict[str, Any]]]:
    """The clinic group of `connectors.emulators.group` on a FHIR server: sites are `Location`s
    (ids loc-1..3), each practitioner has one `PractitionerRole` per site (its `location`), and
    each appointment names its `Location` as a participant (FHIR R4 Appointment.participant.actor
    may be a Location), its practitioner and its patient."""
    from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE, SITES, visits

    stamp = "2026-01-01T00:00:00Z"
    locations = [
        {
            "resourceType": "Location",
            "id": f"loc-{site}",
            "status": "active",
            "name": name,
            "meta": {"lastUpdated": stamp},
        }
        for site, name in SITES
    ]
    people, roles = [], []
    for handle, first, sites in PEOPLE:
        people.append(
            {
                "resourceType": "Practitioner",
                "id": f"pr-{handle}",
                "active": True,
                "name": [{"given": [first], "family": "Group"}],
                "telecom": [{"system": "email", "value": f"{handle}@{EMAIL_DOMAIN}"}],
                "meta": {"lastUpdated": stamp},
            }
        )
        for site in sites:
            roles.append(
                {
                    "resourceType": "PractitionerRole",
                    "id": f"role-{handle}-{site}",
                    "practitioner": {"reference": f"Practitioner/pr-{handle}"},
                    "location": [{"reference": f"Location/loc-{site}"}],
                    "meta": {"lastUpdated": stamp},
                }
            )
    appointments = [
        {
            "resourceType": "Appointment",
            "id": f"appt-{visit.number}",
            "status": "cancelled" if visit.cancelled else "booked",
            "start": visit.starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "participant": [
                {"actor": {"reference": f"Practitioner/pr-{PEOPLE[visit.person][0]}"}},
                {"actor": {"reference": f"Patient/pt{visit.patient}"}},
                {"actor": {"reference": f"Location/loc-{visit.site}"}},
            ],
            "meta": {"lastUpdated": stamp},
        }
        for visit in visits(today)
    ]
    return {
        "Practitioner": people,
        "PractitionerRole": roles,
        "Appointment": appointments,
        "Location": locations,
    }


def _date_of(resource: dict[str, Any], path: tuple[str, ...]) -> str:
    value: Any = resource
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m connectors.emulators.fhir --help`: a sample FHIR R4 clinic on localhost."""
    from datetime import date

    from connectors.emulators.sample import (
        arguments,
        group_people,
        sample_fhir_clinic,
        serve,
        write_ptdirect,
    )

    parser = arguments("Emulate a FHIR R4 server with a sample clinic, for trying `--pms fhir`.", 8092)
    parser.add_argument("--token", default=None, help="a bearer token to require (default: none)")
    args = parser.parse_args(argv)
    if args.group:
        data = generate_group(date.today())
        people = group_people()
        args.practitioners, args.patients = len(people), len(data["Appointment"]) // 2
    else:
        data = sample_fhir_clinic(args.practitioners, args.patients, date.today())
        people = [(p["telecom"][0]["value"], p["name"][0]["text"]) for p in data["Practitioner"]]
    emulator = FhirEmulator(data, token=args.token, port=args.port)
    if args.ptdirect_out:
        write_ptdirect(args.ptdirect_out, people)
    key = f" --pms-key {args.token}" if args.token else ""
    serve(
        emulator,
        [
            f"FHIR emulator on {emulator.base_url}: "
            f"{args.practitioners} practitioners, {args.patients} patients",
            f"Connect: ptsync org add sample-clinic --pms fhir --pms-url {emulator.base_url}{key} "
            "--ptdirect manual",
        ],
    )


if __name__ == "__main__":
    main()
