"""An emulator of a FHIR R4 server's search API for the resources ptsync reads.

Searchset Bundles paged with `_count` and `link[relation=next]`, the `date=ge` and
`_lastUpdated=gt` search parameters, an optional bearer token, and a request budget per window
answered with 429 and `Retry-After` (as Halaxy does). Every request is recorded.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode

from connectors.emulators.base import JsonServer, Request, Response

RESOURCES = ("Practitioner", "Appointment", "Encounter", "CareTeam", "Patient")
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
    ) -> None:
        super().__init__(host, port)
        self.resources = {name: list(resources.get(name, [])) for name in RESOURCES}
        self.token = token
        self.requests_per_window = requests_per_window
        self.window_seconds = window_seconds
        self._recent: deque[float] = deque()
        self.rate_limited = 0
        for name in RESOURCES:
            self.route("GET", f"/fhir/{name}", lambda r, name=name: self._search(r, name))

    @property
    def base_url(self) -> str:
        return f"{self.url}/fhir"

    def authorise(self, request: Request) -> Response | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, _outcome("login", "missing or wrong bearer token"))
        now = time.time()
        while self._recent and self._recent[0] <= now - self.window_seconds:
            self._recent.popleft()
        if len(self._recent) >= self.requests_per_window:
            self.rate_limited += 1
            wait = max(self._recent[0] + self.window_seconds - now, 0.001)
            return Response(
                429, _outcome("throttled", "too many requests"), {"Retry-After": str(math.ceil(wait))}
            )
        self._recent.append(now)
        return None

    def _search(self, request: Request, name: str) -> Response:
        query = request.query
        try:
            count = min(int(query.get("_count", ["50"])[0]), 500)
            offset = int(query.get("_offset", ["0"])[0])
        except ValueError:
            return Response(400, _outcome("invalid", "_count and _offset must be numbers"))
        rows = self.resources[name]
        for value in query.get("_lastUpdated", []):
            if value.startswith("gt"):
                rows = [r for r in rows if (r.get("meta") or {}).get("lastUpdated", "") > value[2:]]
        for value in query.get("date", []):
            if value.startswith("ge") and name in _DATE_FIELD:
                rows = [r for r in rows if _date_of(r, _DATE_FIELD[name]) >= value[2:]]
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


def _date_of(resource: dict[str, Any], path: tuple[str, ...]) -> str:
    value: Any = resource
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m connectors.emulators.fhir --help`: a sample FHIR R4 clinic on localhost."""
    from datetime import date

    from connectors.emulators.sample import arguments, sample_fhir_clinic, serve, write_ptdirect

    parser = arguments("Emulate a FHIR R4 server with a sample clinic, for trying `--pms fhir`.", 8092)
    parser.add_argument("--token", default=None, help="a bearer token to require (default: none)")
    args = parser.parse_args(argv)
    data = sample_fhir_clinic(args.practitioners, args.patients, date.today())
    emulator = FhirEmulator(data, token=args.token, port=args.port)
    if args.ptdirect_out:
        people = [(p["telecom"][0]["value"], p["name"][0]["text"]) for p in data["Practitioner"]]
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
