"""An emulator of the parts of Cliniko's API that ptsync reads.

It enforces HTTP Basic auth with the API key (with or without its shard suffix) and a
User-Agent with a contact email, pages by `per_page` (at most 100) and `page` with `links.next`,
serves businesses (Cliniko's sites: `GET /businesses`, `GET /businesses/{id}/practitioners`, and a
`business` link on every appointment; `generate_group` builds a group of three), understands the
`q[]` filters ptsync sends (`archived_at:*`, `starts_at:>=`, `updated_at:>`),
limits requests per key in a sliding window (429 with `X-RateLimit-Reset`), and records every
request so tests and benchmarks can count them.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from connectors.emulators.base import JsonServer, Request, Response

RESOURCES = (
    "users",
    "practitioners",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "businesses",
)
_LINKED = {
    "business": "businesses",
    "user": "users",
    "practitioner": "practitioners",
    "patient": "patients",
    "booking": "group_appointments",
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_shard(key: str) -> str:
    """A key without its shard suffix (`...-au1`): the emulator serves every shard."""
    return key.rsplit("-", 1)[0] if "-" in key else key


class ClinikoEmulator(JsonServer):
    def __init__(
        self,
        data: dict[str, list[dict[str, Any]]],
        api_key: str,
        *,
        requests_per_window: int = 200,
        window_seconds: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        other_keys: Iterable[str] = (),
    ) -> None:
        """`other_keys`: API keys of the account's other users (Cliniko issues one per user),
        accepted like `api_key`."""
        super().__init__(host, port)
        self.data = {resource: list(data.get(resource, [])) for resource in RESOURCES}
        self.api_key = _without_shard(api_key)
        self._keys = {self.api_key, *(_without_shard(key) for key in other_keys)}
        self.requests_per_window = requests_per_window
        self.window_seconds = window_seconds
        self._recent: deque[float] = deque()
        self.rate_limited = 0
        self._cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._pages: dict[tuple[Any, ...], bytes] = {}
        self.route("GET", "/v1/users", lambda r: self._list(r, "users"))
        self.route("GET", "/v1/practitioners", lambda r: self._list(r, "practitioners", active=True))
        self.route(
            "GET", "/v1/practitioners/inactive", lambda r: self._list(r, "practitioners", active=False)
        )
        for resource in RESOURCES[2:]:
            self.route("GET", f"/v1/{resource}", lambda r, resource=resource: self._list(r, resource))
        self.route("GET", r"/v1/businesses/(?P<business>[^/]+)/practitioners", self._business_practitioners)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def authorise(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        try:
            user = base64.b64decode(header.removeprefix("Basic ")).decode().split(":", 1)[0]
        except ValueError:
            user = ""
        if not header.startswith("Basic ") or _without_shard(user) not in self._keys:
            return Response(401, {"errors": ["Unauthorized"]})
        if "@" not in request.headers.get("user-agent", ""):
            return Response(400, {"errors": ["A User-Agent with a contact email is required"]})
        now = time.time()
        while self._recent and self._recent[0] <= now - self.window_seconds:
            self._recent.popleft()
        if len(self._recent) >= self.requests_per_window:
            self.rate_limited += 1
            reset = self._recent[0] + self.window_seconds
            return Response(429, {"errors": ["Too many requests"]}, {"X-RateLimit-Reset": f"{reset:.3f}"})
        self._recent.append(now)
        return None

    def _list(self, request: Request, resource: str, active: bool | None = None) -> Response:
        try:
            per_page = min(int(request.query.get("per_page", ["50"])[0]), 100)
            page = int(request.query.get("page", ["1"])[0])
        except ValueError:
            return Response(400, {"errors": ["per_page and page must be numbers"]})
        filters = request.query.get("q[]", [])
        page_key = (resource, active, tuple(filters), per_page, page, request.path)
        cached = self._pages.get(page_key)
        if cached is not None:
            return Response(200, cached)
        rows = self._filtered(resource, active, tuple(filters))
        start = (page - 1) * per_page
        chunk = rows[start : start + per_page]
        links = {"self": self._page_url(request, page)}
        if start + per_page < len(rows):
            links["next"] = self._page_url(request, page + 1)
        body = json.dumps(
            {
                resource.split("/")[0]: [self._render(row) for row in chunk],
                "total_entries": len(rows),
                "links": links,
            }
        ).encode()
        self._pages[page_key] = body
        return Response(200, body)

    def _business_practitioners(self, request: Request) -> Response:
        """Active practitioners who work at one business (a practitioner row's `businesses`)."""
        business = request.params["business"]
        if not any(str(row["id"]) == business for row in self.data["businesses"]):
            return Response(404, {"errors": [f"business {business} not found"]})
        rows = [
            row
            for row in self.data["practitioners"]
            if row.get("active", True) and business in row.get("businesses", ())
        ]
        body = {
            "practitioners": [self._render(row) for row in rows],
            "total_entries": len(rows),
            "links": {"self": f"{self.url}{request.path}"},
        }
        return Response(200, body)

    def _filtered(self, resource: str, active: bool | None, filters: tuple[str, ...]) -> list[dict[str, Any]]:
        """Rows matching a query; cached per query (pages of one listing share it) until data changes."""
        key = (resource, active, filters)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        rows = self.data[resource]
        if active is not None:
            rows = [row for row in rows if row.get("active", True) is active]
        if "archived_at:*" not in filters:
            rows = [row for row in rows if not row.get("archived_at")]
        for expression in filters:
            field, _, condition = expression.partition(":")
            if condition.startswith(">="):
                rows = [row for row in rows if (row.get(field) or "") >= condition[2:]]
            elif condition.startswith(">"):
                rows = [row for row in rows if (row.get(field) or "") > condition[1:]]
        self._cache[key] = rows
        return rows

    def _page_url(self, request: Request, page: int) -> str:
        query = [(k, v) for k, values in request.query.items() if k != "page" for v in values]
        return f"{self.url}{request.path}?{urlencode([*query, ('page', page)])}"

    def _render(self, row: dict[str, Any]) -> dict[str, Any]:
        rendered = dict(row)
        for field, resource in _LINKED.items():
            if field in rendered and not isinstance(rendered[field], dict):
                rendered[field] = {"links": {"self": f"{self.base_url}/{resource}/{rendered[field]}"}}
        rendered["links"] = {"self": f"{self.base_url}/{row.get('_resource', 'things')}/{row['id']}"}
        rendered.pop("_resource", None)
        rendered.pop("businesses", None)  # served through /businesses/{id}/practitioners only
        return rendered

    def update_row(self, resource: str, index: int, **fields: Any) -> None:
        """Change one stored row (tests use it to serve bad or changed data)."""
        with self.lock:
            self.data[resource][index].update(fields)
            self._cache.clear()
            self._pages.clear()

    def update_appointments(self, count: int, now: datetime, seed: int = 1) -> list[str]:
        """Change `count` individual appointments (cancel them), as a clinic's day would."""
        rng = random.Random(seed)
        with self.lock:
            rows = rng.sample(self.data["individual_appointments"], count)
            for row in rows:
                row["cancelled_at"] = _iso(now)
                row["updated_at"] = _iso(now)
            self._cache.clear()
            self._pages.clear()
        return [str(row["id"]) for row in rows]


def generate_account(
    *,
    patients: int,
    practitioners: int,
    appointments: int,
    today: date,
    seed: int = 42,
    group_classes: int = 0,
    updated: datetime | None = None,
    businesses: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """A Cliniko account: practitioners in teams of about 8, patients mostly seen within a team.

    With `businesses`, a clinic group: teams spread over that many businesses (ids 1..n), each
    practitioner working at their team's and each appointment linked to its practitioner's."""
    rng = random.Random(seed)
    stamp = _iso(updated or datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    base_id = 1_000_000_000_000_000_000
    users, rows = [], []
    for index in range(practitioners):
        user_id = str(base_id + 500 + index)
        users.append(
            {
                "id": user_id,
                "email": f"practitioner{index}@clinic.example",
                "first_name": f"P{index}",
                "last_name": "Example",
                "_resource": "users",
            }
        )
        rows.append(
            {
                "id": str(base_id + 100 + index),
                "first_name": f"P{index}",
                "last_name": "Example",
                "active": index % 13 != 12,
                "user": user_id,
                "updated_at": stamp,
                "_resource": "practitioners",
            }
        )
    team_size = 8
    appointments_rows = []
    for index in range(appointments):
        patient = rng.randrange(patients)
        team = patient % max(practitioners // team_size, 1)
        practitioner = min(team * team_size + rng.randrange(team_size), practitioners - 1)
        starts = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(
            days=rng.randrange(0, 500), minutes=15 * rng.randrange(0, 32)
        )
        roll = rng.random()
        appointments_rows.append(
            {
                "id": str(base_id + 10_000_000 + index),
                "starts_at": _iso(starts),
                "practitioner": str(base_id + 100 + practitioner),
                "patient": str(base_id + 2_000_000 + patient),
                "cancelled_at": _iso(starts - timedelta(days=1)) if roll < 0.05 else None,
                "archived_at": _iso(starts) if 0.05 <= roll < 0.07 else None,
                "did_not_arrive": False,
                "updated_at": stamp,
                "_resource": "individual_appointments",
            }
        )
    groups, attendees = [], []
    for index in range(group_classes):
        starts = datetime(today.year, today.month, today.day, 18, tzinfo=UTC) - timedelta(days=7 * index)
        group_id = str(base_id + 20_000_000 + index)
        groups.append(
            {
                "id": group_id,
                "starts_at": _iso(starts),
                "practitioner": str(base_id + 100),
                "archived_at": None,
                "updated_at": stamp,
                "_resource": "group_appointments",
            }
        )
        for seat in range(4):
            attendees.append(
                {
                    "id": str(base_id + 30_000_000 + index * 10 + seat),
                    "booking": group_id,
                    "patient": str(base_id + 2_000_000 + rng.randrange(patients)),
                    "cancelled_at": None,
                    "archived_at": None,
                    "updated_at": stamp,
                    "_resource": "attendees",
                }
            )
    account = {
        "users": users,
        "practitioners": rows,
        "individual_appointments": appointments_rows,
        "group_appointments": groups,
        "attendees": attendees,
    }
    if businesses:
        _spread_over_businesses(account, businesses, team_size, stamp)
    return account


def _spread_over_businesses(
    account: dict[str, list[dict[str, Any]]], count: int, team_size: int, stamp: str
) -> None:
    site_of = {}
    for index, practitioner in enumerate(account["practitioners"]):
        site_of[practitioner["id"]] = str(index // team_size % count + 1)
        practitioner["businesses"] = [site_of[practitioner["id"]]]
    for appointment in account["individual_appointments"] + account["group_appointments"]:
        appointment["business"] = site_of[appointment["practitioner"]]
    account["businesses"] = [_business(str(n), f"Site {n}", stamp) for n in range(1, count + 1)]


def _business(business_id: str, name: str, stamp: str) -> dict[str, Any]:
    return {
        "id": business_id,
        "business_name": name,
        "archived_at": None,
        "updated_at": stamp,
        "_resource": "businesses",
    }


def generate_group(*, today: date) -> dict[str, list[dict[str, Any]]]:
    """The clinic group of `connectors.emulators.group` as a Cliniko account: sites are businesses
    (ids 1, 2, 3), practitioner ids 100-106, each appointment linked to its business."""
    from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE, SITES, visits

    stamp = _iso(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    users, practitioners = [], []
    for index, (handle, first, sites) in enumerate(PEOPLE):
        users.append(
            {
                "id": str(900 + index),
                "email": f"{handle}@{EMAIL_DOMAIN}",
                "first_name": first,
                "last_name": "Group",
                "_resource": "users",
            }
        )
        practitioners.append(
            {
                "id": str(100 + index),
                "first_name": first,
                "last_name": "Group",
                "active": True,
                "user": str(900 + index),
                "updated_at": stamp,
                "businesses": list(sites),
                "_resource": "practitioners",
            }
        )
    appointments = [
        {
            "id": str(10_000 + visit.number),
            "starts_at": _iso(visit.starts),
            "practitioner": str(100 + visit.person),
            "patient": visit.patient,
            "business": visit.site,
            "cancelled_at": _iso(visit.starts) if visit.cancelled else None,
            "archived_at": None,
            "updated_at": stamp,
            "_resource": "individual_appointments",
        }
        for visit in visits(today)
    ]
    businesses = [_business(site, name, stamp) for site, name in SITES]
    return {
        "users": users,
        "practitioners": practitioners,
        "individual_appointments": appointments,
        "group_appointments": [],
        "attendees": [],
        "businesses": businesses,
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m connectors.emulators.cliniko --help`: a sample Cliniko clinic on localhost."""
    from connectors.emulators.sample import arguments, serve, write_ptdirect

    parser = arguments("Emulate Cliniko's API with a sample clinic, for trying `--pms cliniko`.", 8091)
    parser.add_argument("--key", default="sample-cliniko-key-au1", help="the API key it accepts")
    parser.add_argument("--appointments", type=int, default=600, help="appointments (default 600)")
    args = parser.parse_args(argv)
    if args.group:
        data = generate_group(today=date.today())
        args.practitioners = len(data["practitioners"])
        args.patients = len({row["patient"] for row in data["individual_appointments"]})
        args.appointments = len(data["individual_appointments"])
    else:
        data = generate_account(
            patients=args.patients,
            practitioners=args.practitioners,
            appointments=args.appointments,
            today=date.today(),
        )
    emulator = ClinikoEmulator(data, args.key, port=args.port)
    if args.ptdirect_out:
        people = [(u["email"], f"{u['first_name']} {u['last_name']}") for u in data["users"]]
        write_ptdirect(args.ptdirect_out, people)
    serve(
        emulator,
        [
            f"Cliniko emulator on {emulator.base_url}: {args.practitioners} practitioners, "
            f"{args.patients} patients, {args.appointments} appointments; API key {args.key}",
            f"Connect: ptsync org add sample-clinic --pms cliniko --pms-url {emulator.base_url} "
            f"--pms-key {args.key} --ptdirect manual",
        ],
    )


if __name__ == "__main__":
    main()
