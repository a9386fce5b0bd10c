"""The Semble connector (`--pms semble`): clinicians and bookings over Semble's GraphQL API.

Built on Semble's public documentation, read 2026-11-25:
- docs.semble.io (API reference root): one endpoint `https://open.semble.io/graphql`, every
  request a POST with the `x-token` header; a `signIn` mutation returns a token valid 12 hours.
- docs.semble.io/docs/authentication: API tokens generated in Semble (Settings), scoped by the
  role they are given, sent as `x-token`. ptsync stores such a token (`--pms-key`), never a
  password: it does not call `signIn`, whose 12-hour tokens would need the account password.
- docs.semble.io/docs/API/queries/users and the release notes of 2026-04-30 (User.deleted,
  `options.includeDeleted`) and 2026-05-27 (`filters.isClinician`, replacing
  `options.cliniciansOnly`): `users(pagination, options, filters): UserData`.
- docs.semble.io/docs/API/objects/booking: `Booking {id: ID!, deleted, doctor: User, start,
  patient: Patient, patientId: ID, bookingJourney, updatedAt, ...}`; ids are GraphQL `ID`s
  (strings in JSON).
- docs.semble.io/docs/API/inputs/query-options and /inputs/date-range: the `bookings` query takes
  `dateRange: DateRange {start, end}` and `options: QueryOptions {includeDeleted, createdAt,
  updatedAt: DateRange}`; this is the modification-time filter incremental runs use. DateRange
  "makes no assumptions or adjustments to the times in the supplied dates", so ptsync sends full
  UTC timestamps.
- docs.semble.io/docs/how-to/paginate and /objects/page-info: `pagination: {page, pageSize}`
  (pages from 1), answers `{data: [...], pageInfo: {page, pageSize, hasMore}}`.
- Errors: the GraphQL `errors` array (`message`, `extensions.code`, e.g. UNAUTHENTICATED), also
  inside HTTP 200 answers. No error-code list is published.
- Rate limit: "240 requests per minute" (help.semble.io/api-access, as quoted by the
  api-evangelist/semble catalogue of 2026-07-24; not found on docs.semble.io). No rate-limit
  headers or Retry-After are documented; a 429 is honoured with the shared HTTP layer's rules.
- Not found in the docs: the maximum `pageSize` (ptsync asks for 100) and whether deleting a
  booking moves its `updatedAt`. Because of the latter, an incremental run re-reads the whole
  window once its last full read is a day old, so a cancellation is never missed for long.

Clinic groups (`--locations`): docs.semble.io/docs/API/objects/practice-location and
/booking-location (read 2026-11-26): a `PracticeLocation {id, name, groupName}` is a member of the
`Practice` object (`name` is the room, `groupName` the site it belongs to), and `Booking.location`
is a `BookingLocation {id, name, groupName}`. With `read_locations`, a pull asks each booking's
`location { id }` and reads `practice { locations { id name groupName } }` (the root field's name,
`practice`, is assumed). A location id is a PracticeLocation id: list every room of a site.
Semble documents no clinician-location link, so a clinician belongs to a location by a booking
there within the lookback window.

Semble cancels a booking by deleting it: deleted bookings are read (`includeDeleted`) and passed
as AccessStatus.DELETED so the core excludes them on purpose. A booking marked as did-not-attend
(`bookingJourney.dna`) still counts: the patient is that clinician's patient in Semble.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from connectors.base import PmsPull, Progress
from connectors.dates import day_of, iso_timestamp, parse_day
from connectors.errors import ConnectorError, TransientConnectorError
from connectors.http import HttpClient, HttpError
from connectors.incremental import next_cursor, previous_records
from connectors.ratelimit import RateLimiter
from connectors.records import Visit, appointment_log, revive, within_window
from sharing import (
    AccessStatus,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
)

NAME = "semble"
DEFAULT_URL = "https://open.semble.io/graphql"
PAGE_SIZE = 100
MAX_PAGES = 100_000
STATE_VERSION = 2
"""2: bookings carry their location id (older states are read again in full)."""
FULL_READ_EVERY = timedelta(hours=24)
FUTURE_DAYS = 366
"""Bookings up to a year ahead count: a patient booked with two clinicians is shared already."""
_TOKEN_HINT = " (check the API token: Semble Settings, API access)"
_RETRYABLE_CODES = {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}

USERS_QUERY = """
query Clinicians($pagination: Pagination, $filters: UsersQueryFilters, $options: UsersQueryOptions) {
  users(pagination: $pagination, filters: $filters, options: $options) {
    data { id firstName lastName email deleted }
    pageInfo { page pageSize hasMore }
  }
}
"""

BOOKINGS_QUERY = """
query Bookings($pagination: Pagination, $dateRange: DateRange, $options: QueryOptions) {
  bookings(pagination: $pagination, dateRange: $dateRange, options: $options) {
    data { id deleted start updatedAt patientId doctor { id } }
    pageInfo { page pageSize hasMore }
  }
}
"""

LOCATED_BOOKINGS_QUERY = BOOKINGS_QUERY.replace("doctor { id } }", "doctor { id } location { id } }")

LOCATIONS_QUERY = """
query Locations {
  practice { locations { id name groupName } }
}
"""


def _text_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise ConnectorError(NAME, f"{where}: expected an ID")
    return str(value)


class SembleConnector:
    system = "semble"

    def __init__(
        self,
        token: str,
        *,
        url: str | None = None,
        user_agent: str,
        limiter: RateLimiter | None = None,
        read_locations: bool = False,
        **http: Any,
    ) -> None:
        self.url = url or DEFAULT_URL
        self.read_locations = read_locations
        self._token = token
        self.http = HttpClient(
            NAME,
            self.url,
            headers={"x-token": token, "User-Agent": user_agent, "Content-Type": "application/json"},
            limiter=limiter,
            **http,
        )

    def pull(
        self,
        *,
        window_start: date,
        cursors: dict[str, str],
        state: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        progress: Progress | None = None,
    ) -> PmsPull:
        started = started_at or datetime.now(UTC)
        previous = previous_records(state, cursors, ("bookings",), STATE_VERSION)
        if previous is not None and _full_read_is_stale(state, started):
            previous = None
        if previous is not None and self.read_locations and not (state or {}).get("located"):
            previous = None  # rows read without their location: read the window again, with it
        bookings = revive(previous["bookings"], Visit) if previous is not None else {}
        full_at = (
            state.get("full_at")
            if previous is not None and state
            else iso_timestamp(started, milliseconds=True)
        )
        practitioners = self._clinicians()
        locations = self._locations() if self.read_locations else None
        since = cursors["bookings"] if previous is not None else None
        variables = _booking_variables(window_start, started, since)
        query = LOCATED_BOOKINGS_QUERY if self.read_locations else BOOKINGS_QUERY
        for index, row in enumerate(self._all("bookings", query, **variables)):
            where = f"bookings item {index}"
            booking_id = _text_id(row.get("id"), f"{where}.id")
            doctor, patient = row.get("doctor"), row.get("patientId")
            if not isinstance(doctor, dict) or patient is None:
                # No clinician (a room or resource) or no patient (a blocked slot): nobody's access.
                bookings.pop(booking_id, None)
                continue
            bookings[booking_id] = Visit(
                _text_id(doctor.get("id"), f"{where}.doctor.id"),
                _text_id(patient, f"{where}.patientId"),
                parse_day(row.get("start"), NAME, f"{where}.start"),
                int(AccessStatus.DELETED if row.get("deleted") else AccessStatus.ACTIVE),
                _location_id(row.get("location")),
            )
            if progress is not None and index % 1000 == 999:
                progress("bookings", index + 1)
        bookings = within_window(bookings, day_of(window_start))
        snapshot = PmsSnapshot(self.system, tuple(practitioners), _access_log(bookings), locations=locations)
        new_state = {"version": STATE_VERSION, "full_at": full_at, "bookings": bookings}
        if self.read_locations:
            new_state["located"] = True
        return PmsPull(snapshot, {"bookings": next_cursor(started_at)}, new_state)

    def _locations(self) -> tuple[PmsLocation, ...]:
        data = self.query(LOCATIONS_QUERY, {}, "practice")
        practice = data.get("practice")
        rows = practice.get("locations") if isinstance(practice, dict) else None
        if not isinstance(rows, list):
            raise ConnectorError(NAME, f"POST {self._path} practice: no practice.locations list")
        found = {}
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ConnectorError(NAME, f"POST {self._path} practice: location {index} is not an object")
            location = _text_id(row.get("id"), f"practice.locations item {index}.id")
            name = " / ".join(str(row[part]) for part in ("groupName", "name") if row.get(part)) or location
            found[location] = PmsLocation(location, name)
        return tuple(found[key] for key in sorted(found))

    def _clinicians(self) -> list[PmsPractitioner]:
        found: dict[str, PmsPractitioner] = {}
        rows = self._all(
            "users", USERS_QUERY, filters={"isClinician": True}, options={"includeDeleted": True}
        )
        for index, row in enumerate(rows):
            user_id = _text_id(row.get("id"), f"users item {index}.id")
            email = row.get("email")
            name = (
                " ".join(str(row[part]).strip() for part in ("firstName", "lastName") if row.get(part))
                or user_id
            )
            found[user_id] = PmsPractitioner(
                user_id,
                name,
                email if isinstance(email, str) and "@" in email else None,
                not row.get("deleted"),
                "clinician",
            )
        return [found[key] for key in sorted(found)]

    def _all(self, field: str, query: str, **variables: Any) -> Iterator[dict[str, Any]]:
        """Every row of a paged query: pages from 1 until `pageInfo.hasMore` is false.

        Each answer must be the page asked for (`pageInfo.page`): a read that misses a page of
        clinicians makes them look gone from the PMS (a departure), so it fails instead.
        """
        for page in range(1, MAX_PAGES + 1):
            data = self.query(
                query, {**variables, "pagination": {"page": page, "pageSize": PAGE_SIZE}}, field
            )
            payload = data.get(field) if isinstance(data, dict) else None
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise ConnectorError(
                    NAME, f"POST {self._path} {field}: the answer has no '{field}.data' list"
                )
            rows = payload["data"]
            for index, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise ConnectorError(
                        NAME, f"POST {self._path} {field} page {page}: item {index} is not an object"
                    )
            yield from rows
            info = payload.get("pageInfo")
            if not isinstance(info, dict) or not isinstance(info.get("hasMore"), bool):
                raise ConnectorError(NAME, f"POST {self._path} {field}: the answer has no pageInfo.hasMore")
            answered = info.get("page")
            if isinstance(answered, int) and not isinstance(answered, bool) and answered != page:
                # another page's rows (a cursor moved back): the rows of the page asked for are lost
                raise ConnectorError(
                    NAME, f"POST {self._path} {field}: asked for page {page}, got page {answered}: stopping"
                )
            if not info["hasMore"]:
                return
            if not rows:
                raise ConnectorError(
                    NAME, f"POST {self._path} {field} page {page}: empty page with hasMore true: stopping"
                )
        raise ConnectorError(NAME, f"{field}: more than {MAX_PAGES} pages: stopping")

    @property
    def _path(self) -> str:
        return urlsplit(self.url).path or "/"

    def query(self, query: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
        """POST one GraphQL operation; `errors` in the answer (even with HTTP 200) fail the pull."""
        try:
            response = self.http.request("POST", self.url, json={"query": query, "variables": variables})
        except HttpError as exc:
            if exc.status in (401, 403):
                raise ConnectorError(NAME, f"{exc.reason}{_TOKEN_HINT}") from None
            raise
        document = self.http.decode(response)
        if not isinstance(document, dict):
            raise ConnectorError(NAME, f"POST {self._path} {field}: the answer is not a GraphQL document")
        errors = document.get("errors")
        if errors:
            raise self._graphql_error(field, errors)
        data = document.get("data")
        if not isinstance(data, dict):
            raise ConnectorError(NAME, f"POST {self._path} {field}: the answer has no 'data'")
        return data

    def _graphql_error(self, field: str, errors: Any) -> ConnectorError:
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        message = str(first.get("message") or "unknown error")[:200].replace(self._token, "[token]")
        extensions = first.get("extensions")
        code = str(extensions.get("code")) if isinstance(extensions, dict) and extensions.get("code") else ""
        reason = f"POST {self._path} {field}: GraphQL error {code + ': ' if code else ''}{message}"
        if code == "UNAUTHENTICATED":
            reason += _TOKEN_HINT
        elif code == "FORBIDDEN":
            reason += " (the token's role must allow reading users and bookings)"
        error_class = TransientConnectorError if code in _RETRYABLE_CODES else ConnectorError
        return error_class(NAME, reason)


def _booking_variables(window_start: date, started: datetime, since: str | None) -> dict[str, Any]:
    """The window (up to a year ahead), deleted bookings included, and `updatedAt` when incremental."""
    options: dict[str, Any] = {"includeDeleted": True}
    if since is not None:
        start = since if "." in since else since.replace("Z", ".000Z")
        options["updatedAt"] = {
            "start": start,
            "end": iso_timestamp(started + timedelta(days=1), milliseconds=True),
        }
    end = (started + timedelta(days=FUTURE_DAYS)).date().isoformat()
    return {
        "dateRange": {"start": f"{window_start.isoformat()}T00:00:00.000Z", "end": f"{end}T23:59:59.999Z"},
        "options": options,
    }


def _full_read_is_stale(state: dict[str, Any] | None, now: datetime) -> bool:
    try:
        full_at = datetime.fromisoformat(str((state or {}).get("full_at")).replace("Z", "+00:00"))
    except ValueError:
        return True
    return now - full_at >= FULL_READ_EVERY


def _location_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("id"), str | int) and str(value["id"]):
        return str(value["id"])
    return None


def _access_log(bookings: dict[str, Visit]):
    return appointment_log(bookings.values())
