"""The Nookal connector (`--pms nookal`): Nookal's REST API v2.

Built on these documents (read 2026-11-25). Nookal's own reference (api.nookal.com/dev and
api.nookal.com/developers) was NOT in the search index, so this follows what others recorded of it:
- api-evangelist/nookal OpenAPI files (created 2026-07-12, revised to 2026-09): base
  `https://api.nookal.com/production/v2`, the key as the `api_key` query parameter on GET
  requests, `getPractitioners` (`include_inactive_practitioners`, `last_modified`),
  `getAppointments` (`date_from`, `date_to`, `practitioner_id`, `patient_id`, `location_id`,
  `appt_status`, `page`, `page_length` up to 100, `last_modified`: "only records modified after
  this timestamp"), `getClassParticipants` (`appt_id`), and the envelope
  `{status: success|failure, data, details: {totalItems, currentItems, currentPage, nextPage,
  pageLength, errorMessage, errorCode, alerts}}` ("confirmed live" for verify/getLocations).
- theo-agilelab/nookal-api (an Elixir client): results under `data.results.<name>`; field
  names `ID`, `FirstName`, `LastName`, `Email` (practitioners) and `ID`, `patientID`,
  `practitionerID`, `appointmentDate`, `cancelled`, `cancellationDate`, `lastModified`
  (appointments); paging numbers under `settings` in a captured answer (read there too).
- api-evangelist/nookal plans file (2026-07-12): API access only on the Professional and
  Enterprise plans. No rate limit is published anywhere we found: ptsync keeps to its own
  courtesy limit (`PTSYNC_NOOKAL_REQUESTS_PER_MINUTE`) and honours a 429's `Retry-After`.

Assumed where nothing was found (and built so a wrong guess fails loudly, not silently): a class
session is a `getAppointments` row with a non-zero `classID`, whose attendees come from
`getClassParticipants?appt_id=ID` under `data.results.participants` (`patientID`, `cancelled`);
an appointment's free-text `status` may say "Cancelled" or "DNA"; adding someone to a class
updates the class's `lastModified` (an incremental run re-reads only changed classes).

Clinic groups (`--locations`): with `read_locations`, a pull also reads `getLocations` (rows
under `data.results.locations`, `ID` and `Name`; named "confirmed live" in the OpenAPI files
above, its fields assumed like the other listings'); an appointment's `locationID` says where it
happened, and a practitioner's `locations` (a list of location ids, where Nookal gives one) where
they work. A Nookal key only sees the locations it was generated for (see the README).

States: a cancelled appointment or class booking never counts (a cancelled class cancels every
booking in it). A did-not-arrive (DNA) appointment counts: the booking shows the practitioner
treats that patient, and counting it can only add a finding or hold back a removal, never take
access away (Cliniko's and the FHIR connectors' no-shows count the same way).

The key travels in the query string, so it must stay out of every log line, error and stored URL:
requests are built from the base URL plus parameters (never a URL with the key), errors name
the path only, a failure message is scrubbed of the key, and urllib3's debug log of request
lines is redacted (`api_key=[redacted]`).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from connectors.base import PmsPull, Progress
from connectors.dates import day_of, parse_day
from connectors.errors import ConnectorError
from connectors.http import HttpClient
from connectors.incremental import next_cursor, previous_records
from connectors.ratelimit import RateLimiter
from connectors.records import Visit, appointment_log, revive, within_window
from sharing import (
    AccessLog,
    AccessStatus,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
)

NAME = "nookal"
DEFAULT_BASE_URL = "https://api.nookal.com/production/v2"
PAGE_LENGTH = 100
MAX_PAGES = 100_000
STATE_VERSION = 2
"""2: appointments carry their location id (older states are read again in full)."""
RESOURCES = ("appointments", "participants")
FUTURE_DAYS = 3650
"""`date_to` of the appointment search: booked appointments years ahead still count."""
_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s\"']+")
_TRUE = {"1", "true", "yes", "y"}


class _RedactApiKey(logging.Filter):
    """Rewrites urllib3's request-line debug records so no `api_key=` value is ever logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg, record.args = _KEY_IN_TEXT.sub(r"\1[redacted]", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactApiKey())


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, int | str) and str(value).strip().lower() in _TRUE)


def _text_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ConnectorError(NAME, f"{where}: expected an id")
    return str(value).strip()


def _status(row: dict[str, Any]) -> int:
    if _truthy(row.get("cancelled")) or "cancel" in str(row.get("status") or "").lower():
        return int(AccessStatus.CANCELLED)
    return int(AccessStatus.ACTIVE)  # booked, arrived, DNA: see the module docstring


def nookal_cursor(started_at: datetime | None) -> str:
    """Nookal's timestamp format, `YYYY-MM-DD HH:MM:SS`, in UTC.

    Nookal stamps rows in the clinic's local time. Its clinics (AU, NZ, UK) are at or ahead of
    UTC, so a UTC cursor can only re-read some recent rows, never skip one.
    """
    return next_cursor(started_at).replace("T", " ").removesuffix("Z")


class Booking(NamedTuple):
    """One Nookal appointment as a pull keeps it (a class's attendees are read separately)."""

    practitioner: str
    patient: str  # "" for a class
    day: int
    status: int
    is_class: bool
    location: str | None


class NookalConnector:
    system = "nookal"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        user_agent: str,
        limiter: RateLimiter | None = None,
        read_locations: bool = False,
        **http: Any,
    ) -> None:
        self._key = api_key
        self.limiter = limiter
        self.read_locations = read_locations
        self.http = HttpClient(
            NAME, base_url or DEFAULT_BASE_URL, headers={"User-Agent": user_agent}, limiter=limiter, **http
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
        previous = previous_records(state, cursors, RESOURCES, STATE_VERSION)
        records = previous or {resource: {} for resource in RESOURCES}
        records["appointments"] = revive(records["appointments"], Booking)
        practitioners = self._practitioners()
        locations = self._locations() if self.read_locations else None
        today = (started_at or datetime.now()).date()
        params: dict[str, Any] = {
            "date_from": window_start.isoformat(),
            "date_to": (today + timedelta(days=FUTURE_DAYS)).isoformat(),
        }
        if previous is not None:
            params["last_modified"] = cursors["appointments"]
        changed_classes = []
        for index, row in enumerate(self._all("getAppointments", "appointments", params)):
            where = f"GET /getAppointments item {index}"
            row_id = _text_id(row.get("ID"), f"{where}.ID")
            is_class = str(row.get("classID") or "0").strip() not in ("", "0")
            patient = "" if is_class else _text_id(row.get("patientID"), f"{where}.patientID")
            records["appointments"][row_id] = Booking(
                _text_id(row.get("practitionerID"), f"{where}.practitionerID"),
                patient,
                parse_day(row.get("appointmentDate"), NAME, f"{where}.appointmentDate"),
                _status(row),
                is_class,
                _location(row.get("locationID")),
            )
            if is_class:
                changed_classes.append(row_id)
            if progress is not None and index % 1000 == 999:
                progress("appointments", index + 1)
        for class_id in changed_classes:
            records["participants"][class_id] = self._participants(class_id)
        records["appointments"] = within_window(records["appointments"], day_of(window_start))
        records["participants"] = {
            k: v for k, v in records["participants"].items() if k in records["appointments"]
        }
        cursor = nookal_cursor(started_at)
        snapshot = PmsSnapshot(self.system, tuple(practitioners), _access_log(records), locations=locations)
        return PmsPull(snapshot, dict.fromkeys(RESOURCES, cursor), {"version": STATE_VERSION, **records})

    def directory(self, *, window_start: date) -> PmsSnapshot:
        """Locations and practitioners (with their `locations`), without reading appointments."""
        practitioners = self._practitioners()
        return PmsSnapshot(self.system, tuple(practitioners), AccessLog.empty(), locations=self._locations())

    def _locations(self) -> tuple[PmsLocation, ...]:
        found = {}
        for index, row in enumerate(self._all("getLocations", "locations", {})):
            location = _text_id(row.get("ID"), f"GET /getLocations item {index}.ID")
            found[location] = PmsLocation(location, str(row.get("Name") or location))
        return tuple(found[key] for key in sorted(found))

    def _practitioners(self) -> list[PmsPractitioner]:
        active = {
            _text_id(row.get("ID"), f"GET /getPractitioners item {index}.ID")
            for index, row in enumerate(self._all("getPractitioners", "practitioners", {}))
        }
        found: dict[str, PmsPractitioner] = {}
        everyone = self._all("getPractitioners", "practitioners", {"include_inactive_practitioners": "true"})
        for index, row in enumerate(everyone):
            practitioner_id = _text_id(row.get("ID"), f"GET /getPractitioners item {index}.ID")
            name = (
                " ".join(str(row[part]).strip() for part in ("FirstName", "LastName") if row.get(part))
                or practitioner_id
            )
            email = row.get("Email")
            found[practitioner_id] = PmsPractitioner(
                practitioner_id,
                name,
                email.strip() if isinstance(email, str) and "@" in email else None,
                practitioner_id in active,
                row.get("Speciality") or None,
                row.get("lastModified") or None,
                tuple(sorted({where for value in row.get("locations") or () if (where := _location(value))})),
            )
        missing = active - set(found)
        if missing:
            raise ConnectorError(
                NAME,
                f"GET /getPractitioners: {len(missing)} active practitioner(s) missing from the full list",
            )
        return [found[key] for key in sorted(found)]

    def _participants(self, class_id: str) -> list[tuple[str, int]]:
        rows = self._all("getClassParticipants", "participants", {"appt_id": class_id})
        return [
            (
                _text_id(row.get("patientID"), f"GET /getClassParticipants item {index}.patientID"),
                _status(row),
            )
            for index, row in enumerate(rows)
        ]

    def _all(self, endpoint: str, key: str, params: dict[str, Any]):
        """Every row of a paged listing, page by page (`page`, `page_length`, `nextPage`).

        A listing read short must fail, never end: a practitioner missing from the active
        listing reads as inactive (a departure), and a missing appointment page loses the shared
        patients that hold a removal back. So each answer must be the page asked for
        (`currentPage`, where given), the next page the one after it, and the rows read in all
        as many as the last page's `totalItems` says (where given).
        """
        page: int | None = 1
        read = 0
        while page is not None:
            if page > MAX_PAGES:
                raise ConnectorError(NAME, f"GET /{endpoint}: more than {MAX_PAGES} pages: stopping")
            query = {**params, "page": page, "page_length": PAGE_LENGTH, "api_key": self._key}
            try:
                document = self.http.get_json(endpoint, params=query)
            except ConnectorError as exc:  # a server may echo the request line in its error body
                exc.reason = self._scrub(exc.reason)
                exc.args = (self._scrub(str(exc)),)
                raise
            rows = self._rows(document, endpoint, key)
            _check_page(document, endpoint, page)
            read += len(rows)
            yield from rows
            following = _next_page(document, endpoint)
            if following is not None and following <= page:
                raise ConnectorError(NAME, f"GET /{endpoint}: the server repeated page {following}: stopping")
            if following is not None and following != page + 1:
                raise ConnectorError(
                    NAME, f"GET /{endpoint}: page {page} skips to page {following}: stopping"
                )
            if following is None:
                _check_total(document, endpoint, read)
            page = following

    def _rows(self, document: Any, endpoint: str, key: str) -> list[dict[str, Any]]:
        where = f"GET /{endpoint}"
        if not isinstance(document, dict) or document.get("status") not in ("success", "failure"):
            raise ConnectorError(NAME, f"{where}: the answer is not a Nookal envelope")
        if document["status"] == "failure":
            details = document.get("details") if isinstance(document.get("details"), dict) else {}
            reason = " ".join(
                str(part)
                for part in (
                    details.get("errorCode"),
                    details.get("errorMessage"),
                    *(details.get("alerts") or []),
                )
                if part
            )
            raise ConnectorError(NAME, f"{where} failed: {self._scrub(reason) or 'no reason given'}")
        results = (
            (document.get("data") or {}).get("results") if isinstance(document.get("data"), dict) else None
        )
        rows = results.get(key, []) if isinstance(results, dict) else None
        if not isinstance(rows, list):
            raise ConnectorError(NAME, f"{where}: the answer has no data.results.{key} list")
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ConnectorError(NAME, f"{where}: item {index} is not an object")
        return rows

    def _scrub(self, text: str) -> str:
        text = _KEY_IN_TEXT.sub(r"\1[redacted]", text)
        return text.replace(self._key, "[redacted]") if self._key else text


def _location(value: Any) -> str | None:
    """A location id as text ('0' and empty mean none)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if text not in ("", "0") else None


def _paging(document: dict[str, Any], name: str) -> Any:
    """A paging number from `details` (or `settings`, where a captured answer had them)."""
    for holder in (document.get("details"), document.get("settings")):
        if isinstance(holder, dict) and name in holder:
            return holder[name]
    return None


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _check_page(document: dict[str, Any], endpoint: str, asked: int) -> None:
    """The answer is the page asked for, where it says which it is."""
    current = _number(_paging(document, "currentPage"))
    if current is not None and current != asked:
        raise ConnectorError(NAME, f"GET /{endpoint}: asked for page {asked}, got page {current}: stopping")


def _check_total(document: dict[str, Any], endpoint: str, read: int) -> None:
    """Every row the listing counts was read, where it counts them (`totalItems`)."""
    total = _number(_paging(document, "totalItems"))
    if total is not None and total != read:
        raise ConnectorError(
            NAME, f"GET /{endpoint}: read {read} rows of the {total} the listing counts: stopping"
        )


def _next_page(document: dict[str, Any], endpoint: str) -> int | None:
    value = _paging(document, "nextPage")
    if value in (None, "", 0, "0", False):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConnectorError(NAME, f"GET /{endpoint}: nextPage is not a number") from None


def _access_log(records: dict[str, dict[str, Any]]):
    def visits():
        participants = records["participants"]
        for row_id, (practitioner, patient, day, status, is_class, where) in records["appointments"].items():
            if not is_class:
                yield Visit(practitioner, patient, day, status, where)
                continue
            for attendee, booking_status in participants.get(row_id, []):
                # a cancelled class cancels every booking
                yield Visit(practitioner, attendee, day, max(status, booking_status), where)

    return appointment_log(visits())
