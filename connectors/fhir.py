"""The FHIR R4 connector (`--pms fhir`): any FHIR server (Halaxy has its own, `connectors.halaxy`).

Practitioners come from `Practitioner` (active flag, email from `telecom`). Who can see whom
comes from four places, each a source of access rows:
- `Appointment.participant.actor` (appointment; cancelled and entered-in-error do not count),
- `Encounter.participant.individual` with `Encounter.subject` (appointment),
- `CareTeam.participant.member` with `CareTeam.subject` (care_team),
- `Patient.generalPractitioner` (assignment).

A participant may reference a `PractitionerRole` instead of a `Practitioner` (FHIR R4 allows
both, and Halaxy always books a role): `PractitionerRole.practitioner` says whose role it is, and
the row counts for that practitioner. Roles are resolved when the access log is built, so a role
that moves to another practitioner is followed on the next run. A server that does not support
`PractitionerRole` (404 on its search) is read as having none; any other failure fails the run.

Clinic groups (`--locations`): a site is a `Location`. With `read_locations`, a pull also searches
`Location` (not incrementally: a location list is small; a server without it answers 404 and
then the sites are only those referenced); a practitioner works where their
`PractitionerRole.location` says; an appointment happened at its `Location` participant or, when
it has none, at the location of the booked role when that role has exactly one. Halaxy's sites
are its clinics, `Organization`s (`connectors.halaxy`).

Searches page through `link[relation=next]` with `_count`; after a complete run, later runs ask
only for `_lastUpdated=gt<cursor>` and merge the answers into the state stored with that run.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from connectors.base import PmsPull, Progress
from connectors.errors import ConnectorError
from connectors.http import HttpClient, HttpError
from connectors.incremental import next_cursor, previous_records
from connectors.paging import pages
from connectors.ratelimit import RateLimiter
from sharing import (
    AccessLogBuilder,
    AccessSource,
    AccessStatus,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
)

NAME = "fhir"
PAGE_SIZE = 200
STATE_VERSION = 3
"""3: roles carry their sites and appointments their location (older states are read in full)."""
RESOURCES = ("Practitioner", "PractitionerRole", "Appointment", "Encounter", "CareTeam", "Patient")
_EXCLUDED = {
    "Appointment": {"cancelled": AccessStatus.CANCELLED, "entered-in-error": AccessStatus.DELETED},
    "Encounter": {"cancelled": AccessStatus.CANCELLED, "entered-in-error": AccessStatus.DELETED},
    "CareTeam": {"inactive": AccessStatus.ARCHIVED, "entered-in-error": AccessStatus.DELETED},
}


def _parse_reference(reference: Any) -> tuple[str, str] | None:
    """`Practitioner/123`, an absolute URL or a `_history` reference -> ('Practitioner', '123')."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    parts = reference["reference"].split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] and parts[-1]:
        return parts[-2], parts[-1]
    return None


def reference_id(reference: Any, kind: str) -> str | None:
    """`Practitioner/123`, an absolute URL or a `_history` reference -> '123' (else None)."""
    parsed = _parse_reference(reference)
    return parsed[1] if parsed is not None and parsed[0] == kind else None


def _next(bundle: Any) -> str | None:
    for link in bundle.get("link", []) if isinstance(bundle, dict) else []:
        if isinstance(link, dict) and link.get("relation") == "next":
            return link.get("url")
    return None


def _day(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value).toordinal()
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().toordinal()
    except ValueError:
        return None


class FhirConnector:
    """Reads a FHIR R4 server. Subclasses (Halaxy) change the resources read, the HTTP client
    (authentication) and how an appointment's status is read, through the hooks below."""

    system = "fhir"
    name = NAME
    resources: tuple[str, ...] = RESOURCES
    page_size = PAGE_SIZE
    optional: tuple[str, ...] = ("PractitionerRole",)
    """Resource types a server may not support (404 on search): then it simply has none."""
    site_type = "Location"
    """The resource type of a site (clinic group location): Halaxy's are `Organization`s."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        user_agent: str,
        limiter: RateLimiter | None = None,
        read_locations: bool = False,
        **http: Any,
    ) -> None:
        self.read_locations = read_locations
        headers = {"Accept": "application/fhir+json", "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.limiter = limiter
        self.http = self._client(base_url, headers, limiter, http)

    def _client(
        self, base_url: str, headers: dict[str, str], limiter: RateLimiter | None, http: dict[str, Any]
    ) -> HttpClient:
        return HttpClient(self.name, base_url, headers=headers, limiter=limiter, **http)

    def pull(
        self,
        *,
        window_start: date,
        cursors: dict[str, str],
        state: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        progress: Progress | None = None,
    ) -> PmsPull:
        previous = previous_records(state, cursors, self.resources, STATE_VERSION)
        incremental = previous is not None
        records = previous or {resource: {} for resource in self.resources}
        for resource in self.resources:
            params: list[tuple[str, Any]] = [("_count", self.page_size)]
            if resource in ("Appointment", "Encounter"):
                params.append(("date", f"ge{window_start.isoformat()}"))
            if incremental:
                params.append(("_lastUpdated", f"gt{cursors[resource]}"))
            try:
                self._read(resource, params, records[resource], progress)
            except HttpError as exc:
                # A server without the resource type answers its search with 404: it has none.
                if not (resource in self.optional and exc.status == 404 and not records[resource]):
                    raise
        practitioners = self._located(records)
        locations = self._sites(records) if self.read_locations else None
        cursor = next_cursor(started_at)
        snapshot = PmsSnapshot(
            self.system, tuple(practitioners), _access_log(records, window_start), locations=locations
        )
        return PmsPull(snapshot, dict.fromkeys(self.resources, cursor), {"version": STATE_VERSION, **records})

    def _located(self, records: dict[str, dict[str, Any]]) -> list[PmsPractitioner]:
        """Practitioners, each with the sites of their roles."""
        sites: dict[str, set[str]] = {}
        for owner, _, *where in (records.get("PractitionerRole") or {}).values():
            if owner:
                sites.setdefault(owner, set()).update(where[0] if where else ())
        return [
            PmsPractitioner(pid, name, email, active, None, updated, tuple(sorted(sites.get(pid, ()))))
            for pid, (name, email, active, updated) in sorted(records["Practitioner"].items())
        ]

    def _sites(self, records: dict[str, dict[str, Any]]) -> tuple[PmsLocation, ...]:
        """Every site the server lists, plus any a role or appointment refers to."""
        found: dict[str, PmsLocation] = {}
        try:
            for entry in self._search(self.site_type, [("_count", self.page_size)]):
                if isinstance(entry.get("id"), str) and entry["id"]:
                    name = entry.get("name") or entry.get("alias") or entry["id"]
                    archived = entry.get("status") == "inactive" or entry.get("active") is False
                    found[entry["id"]] = PmsLocation(entry["id"], str(name), archived)
        except HttpError as exc:
            if exc.status != 404:
                raise
        for _, _, *where in (records.get("PractitionerRole") or {}).values():
            for site in where[0] if where else ():
                found.setdefault(site, PmsLocation(site, site))
        return tuple(found[key] for key in sorted(found))

    def directory(self, *, window_start: date) -> PmsSnapshot:
        """Practitioners and roles (with their sites) and the sites, without appointments."""
        from sharing import AccessLog

        records: dict[str, dict[str, Any]] = {"Practitioner": {}, "PractitionerRole": {}}
        for resource in records:
            try:
                self._read(resource, [("_count", self.page_size)], records[resource], None)
            except HttpError as exc:
                if not (resource in self.optional and exc.status == 404):
                    raise
        return PmsSnapshot(
            self.system, tuple(self._located(records)), AccessLog.empty(), locations=self._sites(records)
        )

    def _role_sites(self, entry: dict[str, Any]) -> list[str]:
        """Hook: the sites a PractitionerRole is at (FHIR: `location`; Halaxy: `organization`)."""
        return [site for ref in entry.get("location") or [] if (site := reference_id(ref, "Location"))]

    def _read(
        self, resource: str, params: list[tuple[str, Any]], into: dict[str, Any], progress: Progress | None
    ) -> None:
        for count, entry in enumerate(self._search(resource, params), start=1):
            identifier = entry.get("id")
            if not isinstance(identifier, str) or not identifier:
                raise ConnectorError(self.name, f"GET /{resource}: an entry has no id")
            if self._skip(resource, identifier):
                continue
            into[identifier] = self._normalise(resource, entry)
            if progress is not None and count % 1000 == 0:
                progress(resource, count)

    def _skip(self, resource: str, identifier: str) -> bool:
        """Hook: leave a row out (Halaxy's external practitioners)."""
        return False

    def _appointment_status(self, entry: dict[str, Any]) -> AccessStatus:
        """Hook: whether an Appointment counts, from its FHIR status."""
        return _EXCLUDED["Appointment"].get(entry.get("status"), AccessStatus.ACTIVE)

    def _search(self, resource: str, params: list[tuple[str, Any]]):
        for bundle in pages(self.http, resource, params, _next):
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise ConnectorError(self.name, f"GET /{resource}: expected a Bundle")
            for index, item in enumerate(bundle.get("entry") or []):
                entry = item.get("resource") if isinstance(item, dict) else None
                if not isinstance(entry, dict):
                    raise ConnectorError(self.name, f"GET /{resource}: entry {index} has no resource")
                if entry.get("resourceType") != resource:
                    continue  # _include'd or OperationOutcome entries
                yield entry

    def _normalise(self, resource: str, entry: dict[str, Any]) -> Any:
        updated = (entry.get("meta") or {}).get("lastUpdated")
        if resource == "Practitioner":
            names = entry.get("name") or [{}]
            first = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
            name = (
                first.get("text")
                or " ".join([*(first.get("given") or []), first.get("family") or ""]).strip()
            )
            emails = [
                t.get("value")
                for t in entry.get("telecom") or []
                if isinstance(t, dict) and t.get("system") == "email" and t.get("value")
            ]
            return [
                name or entry["id"],
                emails[0] if emails else None,
                entry.get("active", True) is not False,
                updated,
            ]
        if resource == "PractitionerRole":
            return [reference_id(entry.get("practitioner"), "Practitioner"), updated, self._role_sites(entry)]
        if resource == "Appointment":
            status = int(self._appointment_status(entry))
            actors = [p.get("actor") for p in entry.get("participant") or [] if isinstance(p, dict)]
            site = next((found for actor in actors if (found := reference_id(actor, self.site_type))), None)
            return [*_people(actors), _day(entry.get("start")) or _day(updated), status, {}, site]
        status = int(_EXCLUDED.get(resource, {}).get(entry.get("status"), AccessStatus.ACTIVE))
        if resource == "Encounter":
            individuals = [p.get("individual") for p in entry.get("participant") or [] if isinstance(p, dict)]
            practitioners, roles, _ = _people(individuals)
            patient = reference_id(entry.get("subject"), "Patient")
            day = _day((entry.get("period") or {}).get("start")) or _day(updated)
            return [practitioners, roles, [patient] if patient else [], day, status]
        if resource == "CareTeam":
            members = [p.get("member") for p in entry.get("participant") or [] if isinstance(p, dict)]
            practitioners, roles, _ = _people(members)
            patient = reference_id(entry.get("subject"), "Patient")
            return [practitioners, roles, [patient] if patient else [], _day(updated), status]
        practitioners, roles, _ = _people(entry.get("generalPractitioner") or [])
        return [practitioners, roles, [entry["id"]], _day(updated), int(AccessStatus.ACTIVE)]


def _people(references: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """Practitioner ids, PractitionerRole ids and Patient ids among some references."""
    found: dict[str, list[str]] = {"Practitioner": [], "PractitionerRole": [], "Patient": []}
    for reference in references:
        parsed = _parse_reference(reference)
        if parsed is not None and parsed[0] in found:
            found[parsed[0]].append(parsed[1])
    return found["Practitioner"], found["PractitionerRole"], found["Patient"]


_SOURCE = {
    "Appointment": AccessSource.APPOINTMENT,
    "Encounter": AccessSource.APPOINTMENT,
    "CareTeam": AccessSource.CARE_TEAM,
    "Patient": AccessSource.ASSIGNMENT,
}


def _access_log(records: dict[str, dict[str, Any]], window_start: date):
    builder = AccessLogBuilder()
    known = set(records["Practitioner"])
    role_owner = {role: row[0] for role, row in (records.get("PractitionerRole") or {}).items()}
    role_site = {
        role: row[2][0]
        for role, row in (records.get("PractitionerRole") or {}).items()
        if len(row) > 2 and len(row[2]) == 1
    }
    floor = window_start.toordinal()
    for resource, source in _SOURCE.items():
        for practitioners, roles, patients, day, status, *extra in (records.get(resource) or {}).values():
            if day is None:
                continue
            # Care teams and GP assignments are standing access: they count as of their last update
            # or the window start, whichever is later.
            seen = max(day, floor) if source is not AccessSource.APPOINTMENT else day
            owners = {*practitioners, *(role_owner.get(role) for role in roles)}
            per_patient = extra[0] if extra else {}  # a patient's own state, where the connector knows it
            site = extra[1] if len(extra) > 1 else None
            if site is None and resource == "Appointment":
                sites = {role_site.get(role) for role in roles} - {None}
                site = sites.pop() if len(sites) == 1 else None
            for practitioner in sorted(owner for owner in owners if owner in known):
                for patient in patients:
                    state = AccessStatus(per_patient.get(patient, status))
                    builder.add(practitioner, patient, source, date.fromordinal(seen), state, site)
    return builder.build()
