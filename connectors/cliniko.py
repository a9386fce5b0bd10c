"""The Cliniko connector (`--pms cliniko`).

Reads users (for emails), active and inactive practitioners, individual appointments, group
appointments and their attendees. Archived rows are asked for (`q[]=archived_at:*`) so that
cancelled, archived and deleted appointments are known and excluded by the core, not silently
missed. Ids are opaque strings, parsed from `links.self` URLs.

Clinic groups (`--locations`): Cliniko calls a site a *business*. With `read_locations`, a pull
also reads `GET /businesses` (archived ones too, so an archived site is still known) and, per
business, `GET /businesses/{id}/practitioners` (who works there); each appointment's `business`
link says where it happened. Without it (no location scope) none of this is read.

Incremental: after a complete run, each resource is asked only for rows updated after its
cursor; the rows from earlier runs come from the connector state the worker stored with that
run (so a run always reconciles the whole window, from few requests).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.base import PmsPull, Progress
from connectors.dates import day_of, parse_day
from connectors.errors import ConnectorError
from connectors.http import HttpClient
from connectors.incremental import next_cursor, previous_records
from connectors.paging import pages
from connectors.ratelimit import RateLimiter
from connectors.records import Attendance, GroupBooking, Visit, appointment_log, revive, within_window
from sharing import (
    AccessStatus,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
)

NAME = "cliniko"
SHARD_REGIONS = ("au", "uk", "ca", "eu")
_SHARD = re.compile(r"^(?P<region>[a-z]{2})(?P<number>\d{1,2})$")
PER_PAGE = 100
STATE_VERSION = 2
"""2: appointments carry their business id (version 1 states are read again in full)."""


def base_url_for_key(api_key: str) -> str:
    """`...-au2` -> https://api.au2.cliniko.com/v1; no suffix -> au1; unknown shard -> error."""
    if "-" not in api_key:
        return "https://api.au1.cliniko.com/v1"
    suffix = api_key.rsplit("-", 1)[1].lower()
    match = _SHARD.match(suffix)
    if match is None or match["region"] not in SHARD_REGIONS:
        raise ConnectorError(
            NAME,
            f"the API key ends in an unknown shard '-{suffix}' (expected e.g. -au1, -uk2, -ca1, -eu1); "
            "pass --pms-url to set the API address yourself",
        )
    return f"https://api.{suffix}.cliniko.com/v1"


def id_from_link(value: Any, where: str) -> str:
    """The id at the end of a `{"links": {"self": ".../things/123"}}` reference."""
    try:
        url = value["links"]["self"]
    except (TypeError, KeyError):
        raise ConnectorError(NAME, f"{where}: expected a reference with links.self") from None
    if not isinstance(url, str) or not url.rstrip("/"):
        raise ConnectorError(NAME, f"{where}: links.self is not a URL")
    identifier = url.rstrip("/").rsplit("/", 1)[-1]
    if not identifier:
        raise ConnectorError(NAME, f"{where}: links.self has no id")
    return identifier


def _text_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConnectorError(NAME, f"{where}: id must be a string")
    return str(value)


def _status(row: dict[str, Any]) -> int:
    if row.get("deleted_at"):
        return int(AccessStatus.DELETED)
    if row.get("archived_at"):
        return int(AccessStatus.ARCHIVED)
    if row.get("cancelled_at"):
        return int(AccessStatus.CANCELLED)
    return int(AccessStatus.ACTIVE)


def _items(document: Any, key: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise ConnectorError(NAME, f"{where}: the response has no '{key}' list")
    items = document[key]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConnectorError(NAME, f"{where}: item {index} is not an object")
    return items


def _next(document: Any) -> str | None:
    links = document.get("links") if isinstance(document, dict) else None
    return links.get("next") if isinstance(links, dict) else None


def _link(row: dict[str, Any], field: str, where: str) -> str:
    return id_from_link(row.get(field), f"{where}.{field}")


def _business(row: dict[str, Any], where: str) -> str | None:
    return _link(row, "business", where) if row.get("business") else None


def _visit(row: dict[str, Any], where: str) -> Visit:
    day = parse_day(row.get("starts_at"), NAME, f"{where}.starts_at")
    patient = _link(row, "patient", where)
    return Visit(_link(row, "practitioner", where), patient, day, _status(row), _business(row, where))


def _group_booking(row: dict[str, Any], where: str) -> GroupBooking:
    day = parse_day(row.get("starts_at"), NAME, f"{where}.starts_at")
    return GroupBooking(_link(row, "practitioner", where), day, _status(row), _business(row, where))


def _attendance(row: dict[str, Any], where: str) -> Attendance:
    booking = row.get("booking") or row.get("group_appointment") or row.get("appointment")
    return Attendance(id_from_link(booking, f"{where}.booking"), _link(row, "patient", where), _status(row))


@dataclass(frozen=True)
class Resource:
    """One Cliniko list endpoint a pull reads, declared once: its path (also the response's key),
    how a row becomes a record, and whether it is filtered to the lookback window by `starts_at`
    (an attendee has no time of its own: it follows its group booking)."""

    path: str
    record: Callable[[dict[str, Any], str], tuple]
    kind: type[tuple]
    windowed: bool


RESOURCES = (
    Resource("individual_appointments", _visit, Visit, windowed=True),
    Resource("group_appointments", _group_booking, GroupBooking, windowed=True),
    Resource("attendees", _attendance, Attendance, windowed=False),
)
APPOINTMENT_RESOURCES = tuple(resource.path for resource in RESOURCES)


class ClinikoConnector:
    system = "cliniko"

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
        self.base_url = base_url or base_url_for_key(api_key)
        self.limiter = limiter
        self.read_locations = read_locations
        self.http = HttpClient(
            NAME,
            self.base_url,
            headers={"User-Agent": user_agent},
            auth=(api_key, ""),
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
        previous = previous_records(state, cursors, APPOINTMENT_RESOURCES, STATE_VERSION)
        incremental = previous is not None
        records = {r.path: revive((previous or {}).get(r.path) or {}, r.kind) for r in RESOURCES}
        emails = self._user_emails()
        practitioners = self._practitioners(emails)
        locations = None
        if self.read_locations:
            locations, practitioners = self._businesses(practitioners)
        window_filter = f"starts_at:>={window_start.isoformat()}T00:00:00Z"
        for resource in RESOURCES:
            filters = ["archived_at:*"]
            if resource.windowed:
                filters.append(window_filter)
            if incremental:
                filters.append(f"updated_at:>{cursors[resource.path]}")
            self._read(resource, filters, records[resource.path], progress)
            if resource.windowed:
                records[resource.path] = within_window(records[resource.path], day_of(window_start))
        cursor = next_cursor(started_at)
        snapshot = PmsSnapshot(self.system, tuple(practitioners), _access_log(records), locations=locations)
        new_state = {"version": STATE_VERSION, **records}
        return PmsPull(snapshot, {resource: cursor for resource in APPOINTMENT_RESOURCES}, new_state)

    def directory(self, *, window_start: date | None = None) -> PmsSnapshot:
        """Businesses and practitioners (with where they work), without reading appointments."""
        from sharing import AccessLog

        locations, practitioners = self._businesses(self._practitioners(self._user_emails()))
        return PmsSnapshot(self.system, tuple(practitioners), AccessLog.empty(), locations=locations)

    def _businesses(
        self, practitioners: list[PmsPractitioner]
    ) -> tuple[tuple[PmsLocation, ...], list[PmsPractitioner]]:
        """Every business (archived too), and each practitioner with the businesses they work at."""
        from dataclasses import replace

        locations = []
        works: dict[str, list[str]] = {}
        for index, row in enumerate(self._all("businesses", "businesses", ["archived_at:*"])):
            business = _text_id(row.get("id"), f"GET /businesses item {index}")
            name = row.get("business_name") or row.get("display_name") or business
            locations.append(PmsLocation(business, str(name), bool(row.get("archived_at"))))
            path = f"businesses/{business}/practitioners"
            for position, person in enumerate(self._all(path, "practitioners")):
                practitioner = _text_id(person.get("id"), f"GET /{path} item {position}")
                works.setdefault(practitioner, []).append(business)
        located = [replace(p, locations=tuple(works.get(p.id, ()))) for p in practitioners]
        return tuple(sorted(locations, key=lambda loc: loc.id)), located

    def _all(self, path: str, key: str, filters: list[str] | None = None):
        """Every item of a listing, following `links.next`; a listing read short fails.

        A practitioner missing from a short read looks gone from the PMS (a departure), so the
        items read must be as many as the last page's `total_entries` says, where it says.
        """
        params: list[tuple[str, Any]] = [("per_page", PER_PAGE)]
        params += [("q[]", item) for item in filters or []]
        read, total = 0, None
        for document in pages(self.http, path, params, _next):
            items = _items(document, key, f"GET /{path}")
            read += len(items)
            counted = document.get("total_entries")
            if isinstance(counted, int) and not isinstance(counted, bool):
                total = counted
            yield from items
        if total is not None and read != total:
            raise ConnectorError(NAME, f"GET /{path}: read {read} of the {total} entries it counts: stopping")

    def _user_emails(self) -> dict[str, str | None]:
        emails: dict[str, str | None] = {}
        for index, user in enumerate(self._all("users", "users")):
            user_id = _text_id(user.get("id"), f"users item {index}")
            email = user.get("email")
            emails[user_id] = email if isinstance(email, str) and "@" in email else None
        return emails

    def _practitioners(self, emails: dict[str, str | None]) -> list[PmsPractitioner]:
        found: dict[str, PmsPractitioner] = {}
        for path, active in (("practitioners", True), ("practitioners/inactive", False)):
            for index, row in enumerate(self._all(path, "practitioners")):
                where = f"GET /{path} item {index}"
                practitioner_id = _text_id(row.get("id"), where)
                user = row.get("user")
                email = emails.get(id_from_link(user, f"{where}.user")) if user else None
                name = " ".join(
                    str(row[part]).strip() for part in ("first_name", "last_name") if row.get(part)
                ) or str(row.get("display_name") or practitioner_id)
                is_active = bool(row.get("active", active)) and active
                found[practitioner_id] = PmsPractitioner(
                    practitioner_id, name, email, is_active, row.get("designation"), row.get("updated_at")
                )
        return [found[key] for key in sorted(found)]

    def _read(
        self, resource: Resource, filters: list[str], into: dict[str, tuple], progress: Progress | None
    ) -> None:
        for index, row in enumerate(self._all(resource.path, resource.path, filters)):
            where = f"GET /{resource.path} item {index}"
            into[_text_id(row.get("id"), where)] = resource.record(row, where)
            if progress is not None and index % 1000 == 999:
                progress(resource.path, index + 1)


def _access_log(records: dict[str, dict[str, Any]]):
    groups: dict[str, GroupBooking] = records["group_appointments"]

    def places():
        for attendance in records["attendees"].values():
            group = groups.get(attendance.booking)
            if group is None:
                continue  # the class is outside the window
            status = max(attendance.status, group.status)  # a cancelled class cancels every place
            yield Visit(group.practitioner, attendance.patient, group.day, status, group.location)

    return appointment_log(itertools.chain(records["individual_appointments"].values(), places()))
