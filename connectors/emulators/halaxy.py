"""An emulator of the parts of Halaxy's FHIR R4B API that ptsync reads.

Shaped after developers.halaxy.com (docs/authentication, reference/practitioner,
reference/practitionerrole, reference/appointment, docs/webhooks):
- `POST /main/oauth/token` with a JSON body `{grant_type: client_credentials, client_id,
  client_secret}` answers `{token_type: Bearer, expires_in: 3600, access_token}`; a token is
  accepted for `token_lifetime` seconds (the docs say 15 minutes), then answered with 401.
- `GET /main/Practitioner`, `/main/PractitionerRole`, `/main/Appointment` (searchset Bundles,
  `_count`, `link[relation=next]`, `date=ge`, `_lastUpdated=gt`), ids typed as Halaxy types them:
  strings, `PR-` for practice-group members, `EP-` for external professional contacts.
- Appointments reference a `PractitionerRole` and a `Patient`; the patient participant carries
  the `appointment-participant-status` extension (attended, booked, confirmed, cancelled, ...).
- 500 requests per minute per client in a sliding window, `x-ratelimit-limit` and
  `x-ratelimit-remaining` on every authenticated answer, 429 with `retry-after` past the limit.

Run it with a sample clinic: `python -m connectors.emulators.halaxy --port 8093` (the client id
and secret it accepts are printed; `--help` lists the options).
"""

from __future__ import annotations

import argparse
import math
import random
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.emulators.base import Request, Response, serve_until_interrupted
from connectors.emulators.fhir import FhirEmulator, outcome

SERVED = ("Practitioner", "PractitionerRole", "Appointment", "Patient", "Organization")
STATUS_EXTENSION = "https://fhir.halaxy.com/StructureDefinition/appointment-participant-status"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HalaxyEmulator(FhirEmulator):
    def __init__(
        self,
        resources: dict[str, list[dict[str, Any]]],
        *,
        client_id: str,
        client_secret: str,
        requests_per_window: int = 500,
        window_seconds: float = 60.0,
        token_lifetime: float = 15 * 60,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            resources,
            requests_per_window=requests_per_window,
            window_seconds=window_seconds,
            host=host,
            port=port,
            prefix="/main",
            served=SERVED,
        )
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.route("POST", "/main/oauth/token", self._token)

    def _token(self, request: Request) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return Response(401, {"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_lifetime
        self.tokens_issued += 1
        return Response(200, {"token_type": "Bearer", "expires_in": 3600, "access_token": token})

    def expire_tokens(self) -> None:
        """Make every issued token stale (tests of the refresh-on-401 path)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def authorise(self, request: Request) -> Response | None:
        if request.path == "/main/oauth/token":
            return None
        header = request.headers.get("authorization", "")
        expires = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if expires is None or expires < time.time():
            return Response(401, outcome("login", "the access token is missing, unknown or expired"))
        return self.admit()

    def throttled(self, wait: float) -> Response:
        return Response(
            429,
            outcome("throttled", "Too Many Requests"),
            {
                "retry-after": str(math.ceil(wait)),
                "x-ratelimit-limit": str(self.requests_per_window),
                "x-ratelimit-remaining": "0",
            },
        )

    def _route(self, request: Request) -> Response:
        response = super()._route(request)
        if request.path != "/main/oauth/token":
            remaining = max(self.requests_per_window - len(self._recent), 0)
            response.headers = {
                **response.headers,
                "x-ratelimit-limit": str(self.requests_per_window),
                "x-ratelimit-remaining": str(remaining),
            }
        return response

    def update_appointments(self, count: int, now: datetime, seed: int = 1) -> list[str]:
        """Cancel `count` appointments, as a clinic's day would (their lastUpdated moves)."""
        rng = random.Random(seed)
        with self.lock:
            rows = rng.sample(self.resources["Appointment"], count)
            for row in rows:
                row["status"] = "cancelled"
                row["meta"] = {"lastUpdated": _iso(now)}
                for participant in row["participant"]:
                    for extension in participant.get("extension", []):
                        extension["valueString"] = "cancelled"
        self.changed()
        return [row["id"] for row in rows]


def _participant_status(value: str) -> list[dict[str, Any]]:
    return [{"url": STATUS_EXTENSION, "valueString": value}]


def generate_clinic(
    *, patients: int, practitioners: int, appointments: int, today: date, seed: int = 42
) -> dict[str, list[dict[str, Any]]]:
    """A Halaxy practice group: practitioners in teams of about 8, one role per clinic location
    (every fifth practitioner works at two), two external professional contacts."""
    rng = random.Random(seed)
    stamp = _iso(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    people, roles = [], []
    for index in range(practitioners):
        practitioner_id = f"PR-{1_000_000 + index}"
        people.append(
            {
                "resourceType": "Practitioner",
                "id": practitioner_id,
                "meta": {"lastUpdated": stamp},
                "identifier": [{"value": str(400_000 + index)}],
                "active": index % 13 != 12,
                "name": [{"use": "official", "given": [f"P{index}"], "family": "Example"}],
                "telecom": [
                    {"system": "email", "value": f"practitioner{index}@clinic.example", "use": "work"}
                ],
            }
        )
        for location in range(2 if index % 5 == 0 else 1):
            roles.append(
                {
                    "resourceType": "PractitionerRole",
                    "id": f"PR-{2_000_000 + index * 10 + location}",
                    "meta": {"lastUpdated": stamp},
                    "practitioner": {
                        "reference": f"/main/Practitioner/{practitioner_id}",
                        "type": "Practitioner",
                    },
                    "organization": {
                        "reference": f"/main/Organization/CL-{500 + location}",
                        "type": "Organization",
                    },
                }
            )
    for index in range(2):
        people.append(
            {
                "resourceType": "Practitioner",
                "id": f"EP-{9_000_000 + index}",
                "meta": {"lastUpdated": stamp},
                "active": True,
                "name": [{"given": [f"External{index}"], "family": "Referrer"}],
            }
        )
        roles.append(
            {
                "resourceType": "PractitionerRole",
                "id": f"EP-{9_100_000 + index}",
                "meta": {"lastUpdated": stamp},
                "practitioner": {
                    "reference": f"/main/Practitioner/EP-{9_000_000 + index}",
                    "type": "Practitioner",
                },
            }
        )
    role_of = {}
    for role in roles:
        role_of.setdefault(role["practitioner"]["reference"].rsplit("/", 1)[-1], []).append(role["id"])
    team_size = 8
    rows = []
    for index in range(appointments):
        patient = rng.randrange(patients)
        team = patient % max(practitioners // team_size, 1)
        practitioner = min(team * team_size + rng.randrange(team_size), practitioners - 1)
        role = rng.choice(role_of[f"PR-{1_000_000 + practitioner}"])
        starts = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(
            days=rng.randrange(0, 500), minutes=15 * rng.randrange(0, 32)
        )
        roll = rng.random()
        attendance = "cancelled" if roll < 0.05 else "did not attend" if roll < 0.07 else "attended"
        rows.append(
            {
                "resourceType": "Appointment",
                "id": str(700_000_000 + index),
                "meta": {"lastUpdated": stamp},
                "status": "cancelled" if attendance == "cancelled" else "booked",
                "start": _iso(starts),
                "end": _iso(starts + timedelta(minutes=30)),
                "minutesDuration": 30,
                "participant": [
                    {
                        "type": [{"coding": [{"code": "ATND", "display": "attender"}]}],
                        "actor": {"reference": f"/main/PractitionerRole/{role}", "type": "PractitionerRole"},
                    },
                    {
                        "actor": {"reference": f"/main/Patient/{300_000_000 + patient}", "type": "Patient"},
                        "extension": _participant_status(attendance),
                    },
                ],
            }
        )
    return {"Practitioner": people, "PractitionerRole": roles, "Appointment": rows, "Patient": []}


def generate_group(today: date) -> dict[str, list[dict[str, Any]]]:
    """The clinic group of `connectors.emulators.group` in Halaxy's shapes: the practice group
    PG-1 and its clinics CL-1..3 (`Organization`s), one `PractitionerRole` per practitioner and
    clinic (`organization` names the clinic), appointments booked with a role."""
    from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE, SITES, visits

    stamp = _iso(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    organisations = [
        {"resourceType": "Organization", "id": "PG-1", "name": "Group Physio", "meta": {"lastUpdated": stamp}}
    ] + [
        {
            "resourceType": "Organization",
            "id": f"CL-{site}",
            "name": name,
            "partOf": {"reference": "/main/Organization/PG-1", "type": "Organization"},
            "meta": {"lastUpdated": stamp},
        }
        for site, name in SITES
    ]
    people, roles = [], []
    for index, (handle, first, sites) in enumerate(PEOPLE):
        people.append(
            {
                "resourceType": "Practitioner",
                "id": f"PR-{100 + index}",
                "meta": {"lastUpdated": stamp},
                "active": True,
                "name": [{"use": "official", "given": [first], "family": "Group"}],
                "telecom": [{"system": "email", "value": f"{handle}@{EMAIL_DOMAIN}", "use": "work"}],
            }
        )
        for site in sites:
            roles.append(
                {
                    "resourceType": "PractitionerRole",
                    "id": f"PR-{100 + index}-{site}",
                    "meta": {"lastUpdated": stamp},
                    "practitioner": {
                        "reference": f"/main/Practitioner/PR-{100 + index}",
                        "type": "Practitioner",
                    },
                    "organization": {"reference": f"/main/Organization/CL-{site}", "type": "Organization"},
                }
            )
    appointments = [
        {
            "resourceType": "Appointment",
            "id": str(800_000 + visit.number),
            "meta": {"lastUpdated": stamp},
            "status": "cancelled" if visit.cancelled else "booked",
            "start": _iso(visit.starts),
            "participant": [
                {
                    "actor": {
                        "reference": f"/main/PractitionerRole/PR-{100 + visit.person}-{visit.site}",
                        "type": "PractitionerRole",
                    }
                },
                {
                    "actor": {"reference": f"/main/Patient/{visit.patient}", "type": "Patient"},
                    "extension": _participant_status("cancelled" if visit.cancelled else "attended"),
                },
            ],
        }
        for visit in visits(today)
    ]
    return {
        "Practitioner": people,
        "PractitionerRole": roles,
        "Appointment": appointments,
        "Patient": [],
        "Organization": organisations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Emulate Halaxy's FHIR API (OAuth2 client credentials) with a sample clinic"
    )
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--client-id", default="emulated-client")
    parser.add_argument("--client-secret", default="emulated-secret")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--practitioners", type=int, default=16)
    parser.add_argument("--appointments", type=int, default=1500)
    parser.add_argument("--requests-per-minute", type=int, default=500)
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
            today=today,
        )
    )
    emulator = HalaxyEmulator(
        clinic,
        client_id=args.client_id,
        client_secret=args.client_secret,
        requests_per_window=args.requests_per_minute,
        port=args.port,
    )
    serve_until_interrupted(
        emulator,
        f"Halaxy emulator on {emulator.base_url} (client id {args.client_id!r}, secret "
        f"{args.client_secret!r}); try: ptsync org add clinic-h --pms halaxy --pms-url "
        f"{emulator.base_url} --pms-client-id {args.client_id} --pms-client-secret "
        f"{args.client_secret} ... (Ctrl-C to stop)",
    )


if __name__ == "__main__":
    main()
