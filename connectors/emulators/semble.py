"""An emulator of the parts of Semble's GraphQL API that ptsync reads.

A real GraphQL server (graphql-core executes the queries against a schema written from the
types documented on docs.semble.io, so unknown fields or arguments fail as they would there):
`users(pagination, filters: {isClinician}, options: {includeDeleted})` and
`bookings(pagination, dateRange, options: {includeDeleted, updatedAt})`, each answering
`{data, pageInfo: {page, pageSize, hasMore}}`. Ids are GraphQL `ID`s: 24-hex strings, as Semble's
own ids look. Answers use the `data`/`errors` envelope; a missing or wrong `x-token` is HTTP 401
with `errors[0].extensions.code = UNAUTHENTICATED` ("Missing token." as Semble answers it).

Requests per window are limited (Semble publishes 240 a minute). Semble documents no rate-limit
headers; the emulator answers 429 with a `Retry-After` so clients' exact waits can be tested.

Start a sample clinic (needs the `test` dependency group, for graphql-core):

    python -m connectors.emulators.semble --token demo-token --port 8095

then `ptsync org add clinic --pms semble --pms-key demo-token --pms-url http://127.0.0.1:8095/graphql ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

from graphql import FieldNode, OperationDefinitionNode, build_schema, graphql_sync, parse, validate
from graphql.error import GraphQLError
from graphql.execution.values import get_argument_values, get_variable_values

from connectors.emulators.base import JsonServer, Request, Response

SCHEMA = build_schema(
    """
    scalar Date
    scalar DateTime

    input Pagination { page: Int pageSize: Int }
    input DateRange { start: Date end: Date }
    input QueryOptions { includeDeleted: Boolean createdAt: DateRange updatedAt: DateRange }
    input MetadataFilter { key: String! value: String }
    input UsersQueryFilters { isClinician: Boolean metadata: MetadataFilter }
    input UsersQueryOptions {
      search: String includeDeleted: Boolean cliniciansOnly: Boolean
      createdAt: DateRange updatedAt: DateRange
    }

    type PageInfo { page: Int pageSize: Int hasMore: Boolean }
    type User { id: ID! firstName: String lastName: String email: String deleted: Boolean }
    type Patient { id: ID! firstName: String lastName: String email: String }
    type Journey { arrived: DateTime consultation: DateTime departed: DateTime dna: DateTime }
    type BookingLocation { id: ID! header: String name: String groupName: String }
    type PracticeLocation { id: ID! name: String! groupName: String! }
    type Practice { id: ID name: String locations: [PracticeLocation] }
    type Booking {
      id: ID! deleted: Boolean cancellationReason: String doctorName: String doctor: User
      start: DateTime end: DateTime patient: Patient patientId: ID bookingJourney: Journey
      createdAt: DateTime updatedAt: DateTime comments: String reference: String billed: Boolean
      location: BookingLocation
    }
    type UserData { data: [User] pageInfo: PageInfo }
    type BookingData { data: [Booking] pageInfo: PageInfo }

    type Query {
      users(pagination: Pagination options: UsersQueryOptions filters: UsersQueryFilters): UserData
      bookings(pagination: Pagination dateRange: DateRange options: QueryOptions): BookingData
      practice: Practice
    }
    """
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _object_id(prefix: int, index: int) -> str:
    return f"{prefix:08x}{index:016x}"


def _unauthenticated() -> Response:
    return Response(
        401, {"errors": [{"message": "Missing token.", "extensions": {"code": "UNAUTHENTICATED"}}]}
    )


class SembleEmulator(JsonServer):
    def __init__(
        self,
        data: dict[str, list[dict[str, Any]]],
        token: str,
        *,
        requests_per_window: int = 240,
        window_seconds: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.data = {
            "users": list(data.get("users", [])),
            "bookings": list(data.get("bookings", [])),
            "locations": list(data.get("locations", [])),
        }
        self.token = token
        self.requests_per_window = requests_per_window
        self.window_seconds = window_seconds
        self._recent: deque[float] = deque()
        self.rate_limited = 0
        self.retry_afters: list[str] = []
        self._filtered: dict[str, list[dict[str, Any]]] = {}
        self._answers: dict[str, bytes] = {}
        self.route("POST", "/graphql", self._graphql)

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def authorise(self, request: Request) -> Response | None:
        if request.headers.get("x-token") != self.token:
            return _unauthenticated()
        now = time.time()
        with self.lock:
            while self._recent and self._recent[0] <= now - self.window_seconds:
                self._recent.popleft()
            if len(self._recent) >= self.requests_per_window:
                self.rate_limited += 1
                wait = f"{max(self._recent[0] + self.window_seconds - now, 0.001):.3f}"
                self.retry_afters.append(wait)
                return Response(
                    429,
                    {
                        "errors": [
                            {"message": "Too many requests", "extensions": {"code": "TOO_MANY_REQUESTS"}}
                        ]
                    },
                    {"Retry-After": wait},
                )
            self._recent.append(now)
        return None

    def _graphql(self, request: Request) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        query = body.get("query")
        if not isinstance(query, str):
            return Response(
                400,
                {
                    "errors": [
                        {"message": "Must provide query string.", "extensions": {"code": "BAD_REQUEST"}}
                    ]
                },
            )
        key = json.dumps([query, body.get("variables")], sort_keys=True)
        cached = self._answers.get(key)  # the same page asked again (benchmarks ask each page twice)
        if cached is not None:
            return Response(200, cached)
        document = self._execute(query, body.get("variables") or {})
        encoded = json.dumps(document).encode()
        self._answers[key] = encoded
        return Response(200, encoded)

    def _execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """graphql-core validates every query; plain ones (no fragments, aliases or directives) are
        then answered by projecting the rows onto the selection, ~50 times faster than executing."""
        operation, errors = _prepared(query)
        if errors:
            return {"data": None, "errors": [_error(message) for message in errors]}
        if operation is None:
            result = graphql_sync(SCHEMA, query, root_value=self, variable_values=variables)
            answer: dict[str, Any] = {"data": result.data}
            if result.errors:
                answer["errors"] = [_error(error.message) for error in result.errors]
            return answer
        coerced = get_variable_values(SCHEMA, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return {"data": None, "errors": [_error(error.message) for error in coerced]}
        data: dict[str, Any] = {}
        for node in operation.selection_set.selections:
            name = node.name.value
            arguments = get_argument_values(SCHEMA.query_type.fields[name], node, coerced)
            data[name] = _project(getattr(self, name)(None, **arguments), node)
        return {"data": data}

    # Root resolvers (graphql-core calls attributes of the root value with info and the arguments).
    def users(
        self,
        _info: Any,
        pagination: dict | None = None,
        options: dict | None = None,
        filters: dict | None = None,
    ):
        options, filters = options or {}, filters or {}
        key = json.dumps(["users", options, filters], sort_keys=True)
        rows = self._filtered.get(key)
        if rows is None:
            rows = [
                user
                for user in self.data["users"]
                if (options.get("includeDeleted") or not user.get("deleted"))
                and (
                    filters.get("isClinician") is None
                    or bool(user.get("isClinician")) == filters["isClinician"]
                )
            ]
            self._filtered[key] = rows
        return _page(rows, pagination)

    def bookings(
        self,
        _info: Any,
        pagination: dict | None = None,
        dateRange: dict | None = None,
        options: dict | None = None,
    ):
        options, date_range = options or {}, dateRange or {}
        key = json.dumps(["bookings", date_range, options], sort_keys=True)
        rows = self._filtered.get(key)
        if rows is None:
            updated = options.get("updatedAt") or {}
            rows = [
                booking
                for booking in self.data["bookings"]
                if (options.get("includeDeleted") or not booking.get("deleted"))
                and _within(booking["start"], date_range)
                and _within(booking["updatedAt"], updated)
            ]
            self._filtered[key] = rows
        page = _page(rows, pagination)
        users = {user["id"]: user for user in self.data["users"]}
        page["data"] = [_render_booking(booking, users) for booking in page["data"]]
        return page

    def practice(self, _info: Any) -> dict[str, Any]:
        """The practice and its locations (docs.semble.io: PracticeLocation, a member of Practice;
        the root field's name `practice` is assumed)."""
        return {"id": _object_id(0x10C, 0), "name": "Sample practice", "locations": self.data["locations"]}

    def change_bookings(self, count: int, now: datetime, seed: int = 1) -> list[str]:
        """Delete (cancel) `count` bookings, as a clinic's day would; their updatedAt moves."""
        rng = random.Random(seed)
        with self.lock:
            rows = rng.sample([b for b in self.data["bookings"] if not b.get("deleted")], count)
            for row in rows:
                row["deleted"] = True
                row["updatedAt"] = _iso(now)
            self._filtered.clear()
            self._answers.clear()
        return [row["id"] for row in rows]

    def update_booking(self, index: int, **fields: Any) -> None:
        with self.lock:
            self.data["bookings"][index].update(fields)
            self._filtered.clear()
            self._answers.clear()


def _error(message: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}


_PREPARED: dict[str, tuple[OperationDefinitionNode | None, list[str]]] = {}


def _prepared(query: str) -> tuple[OperationDefinitionNode | None, list[str]]:
    """The validated operation when it is plain enough to project, or None; or validation errors."""
    cached = _PREPARED.get(query)
    if cached is not None:
        return cached
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [exc.message]
    errors = [error.message for error in validate(SCHEMA, document)]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    plain = (
        not errors
        and len(document.definitions) == 1
        and len(operations) == 1
        and operations[0].operation.value == "query"
        and _plain(operations[0].selection_set)
    )
    _PREPARED[query] = (operations[0] if plain else None, errors)
    return _PREPARED[query]


def _plain(selection_set: Any) -> bool:
    """Only fields: no aliases, directives or fragments (those go through graphql-core's executor)."""
    return all(
        isinstance(node, FieldNode)
        and node.alias is None
        and not node.directives
        and (node.selection_set is None or _plain(node.selection_set))
        for node in selection_set.selections
    )


def _project(value: Any, node: FieldNode) -> Any:
    if value is None or node.selection_set is None:
        return value
    if isinstance(value, list):
        return [_project(item, node) for item in value]
    return {
        child.name.value: _project(value.get(child.name.value), child)
        for child in node.selection_set.selections
    }


def _within(value: str, date_range: dict[str, Any]) -> bool:
    start, end = date_range.get("start"), date_range.get("end")
    return (not start or value >= start) and (not end or value <= end)


def _page(rows: list[dict[str, Any]], pagination: dict | None) -> dict[str, Any]:
    pagination = pagination or {}
    page = max(int(pagination.get("page") or 1), 1)
    size = max(int(pagination.get("pageSize") or 20), 1)
    start = (page - 1) * size
    return {
        "data": rows[start : start + size],
        "pageInfo": {"page": page, "pageSize": size, "hasMore": start + size < len(rows)},
    }


def _render_booking(booking: dict[str, Any], users: dict[str, dict[str, Any]]) -> dict[str, Any]:
    doctor = users.get(booking.get("doctor") or "")
    return {
        **booking,
        "doctor": doctor,
        "doctorName": " ".join(
            filter(None, ((doctor or {}).get("firstName"), (doctor or {}).get("lastName")))
        )
        or None,
        "patient": {"id": booking["patientId"]} if booking.get("patientId") else None,
    }


def generate_practice(
    *, patients: int, clinicians: int, bookings: int, today: date, seed: int = 42
) -> dict[str, list[dict[str, Any]]]:
    """A Semble practice: clinicians in teams of about 8 who share most of their patients."""
    rng = random.Random(seed)
    stamp = _iso(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    users = [
        {
            "id": _object_id(0x62E2B7CF, index),
            "firstName": f"C{index}",
            "lastName": "Example",
            "email": f"clinician{index}@clinic.example",
            "deleted": index % 13 == 12,
            "isClinician": True,
        }
        for index in range(clinicians)
    ]
    users.append(
        {
            "id": _object_id(0x62E2B7CF, 9999),
            "firstName": "Front",
            "lastName": "Desk",
            "email": "reception@clinic.example",
            "deleted": False,
            "isClinician": False,
        }
    )
    team_size = 8
    rows = []
    for index in range(bookings):
        patient = rng.randrange(patients)
        team = patient % max(clinicians // team_size, 1)
        clinician = min(team * team_size + rng.randrange(team_size), clinicians - 1)
        start = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(
            days=rng.randrange(0, 500), minutes=15 * rng.randrange(0, 32)
        )
        roll = rng.random()
        rows.append(
            {
                "id": _object_id(0x63000000, index),
                "deleted": roll < 0.05,
                "cancellationReason": "Patient cancelled" if roll < 0.05 else None,
                "doctor": users[clinician]["id"],
                "start": _iso(start),
                "end": _iso(start + timedelta(minutes=45)),
                "patientId": _object_id(0x64000000, patient),
                "bookingJourney": {"dna": _iso(start) if 0.05 <= roll < 0.07 else None},
                "createdAt": stamp,
                "updatedAt": stamp,
            }
        )
    return {"users": users, "bookings": rows}


def generate_group(today: date) -> dict[str, list[dict[str, Any]]]:
    """The clinic group of `connectors.emulators.group` as one Semble practice: one
    PracticeLocation per site (its `groupName` the site's name), clinicians, and bookings whose
    `location` is the site's PracticeLocation."""
    from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE, SITES, visits

    stamp = _iso(datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=1))
    locations = {
        site: {"id": _object_id(0x10C, int(site)), "name": f"Room {site}", "groupName": name}
        for site, name in SITES
    }
    users = [
        {
            "id": _object_id(0x62E2B7CF, index),
            "firstName": first,
            "lastName": "Group",
            "email": f"{handle}@{EMAIL_DOMAIN}",
            "deleted": False,
            "isClinician": True,
        }
        for index, (handle, first, _) in enumerate(PEOPLE)
    ]
    bookings = [
        {
            "id": _object_id(0x63000000, visit.number),
            "deleted": visit.cancelled,
            "doctor": users[visit.person]["id"],
            "start": _iso(visit.starts),
            "end": _iso(visit.starts + timedelta(minutes=45)),
            "patientId": _object_id(0x64000000, int(visit.patient)),
            "bookingJourney": {"dna": None},
            "location": {"id": locations[visit.site]["id"], "name": locations[visit.site]["name"]},
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        for visit in visits(today)
    ]
    return {"users": users, "bookings": bookings, "locations": list(locations.values())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.emulators.semble",
        description="Emulate Semble's GraphQL API (users and bookings) with a generated sample practice.",
    )
    parser.add_argument("--token", required=True, help="the API token clients must send as x-token")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--clinicians", type=int, default=16)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--bookings", type=int, default=1500)
    parser.add_argument(
        "--per-minute", type=int, default=240, help="requests allowed per minute (Semble: 240)"
    )
    parser.add_argument("--group", action="store_true", help="serve the three-site clinic group instead")
    args = parser.parse_args(argv)
    if args.group:
        data = generate_group(date.today())
    else:
        data = generate_practice(
            patients=args.patients, clinicians=args.clinicians, bookings=args.bookings, today=date.today()
        )
    server = SembleEmulator(
        data, args.token, requests_per_window=args.per_minute, host=args.host, port=args.port
    )
    served = "the clinic group" if args.group else f"{args.clinicians} clinicians, {args.bookings} bookings"
    print(f"Semble emulator on {server.graphql_url}: {served}")
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()


if __name__ == "__main__":
    main()
