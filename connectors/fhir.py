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
`PractitionerRole` (404 on its search) is read as having none, unless the appointments read name
roles: then the 404 was a passing fault, and the read is incomplete (no removals, nothing stored;
the next run reads again). Any other failure fails the run.

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

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from connectors.base import PmsPull, Progress
from connectors.dates import day_of, day_to_date, optional_day
from connectors.errors import ConnectorError
from connectors.http import HttpClient, HttpError
from connectors.incremental import next_cursor, previous_records
from connectors.paging import pages
from connectors.ratelimit import RateLimiter
from connectors.records import revive
from sharing import (
    AccessLogBuilder,
    AccessSource,
    AccessStatus,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
)

log = logging.getLogger(__name__)

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


class StaffRow(NamedTuple):
    """A `Practitioner`."""

    name: str
    email: str | None
    active: bool
    updated: str | None


class RoleRow(NamedTuple):
    """A `PractitionerRole`: whose role it is, and the sites it is at."""

    owner: str | None
    updated: str | None
    sites: list[str] | tuple[str, ...] = ()


class Involvement(NamedTuple):
    """Who is involved with which patients, from when: an Appointment, Encounter, CareTeam or a
    Patient's generalPractitioner. `per_patient` holds a patient's own state where the server
    says it (Halaxy attendance); `site` the Location (or clinic) it happened at."""

    practitioners: list[str]
    roles: list[str]
    patients: list[str]
    day: int | None
    status: int
    per_patient: dict[str, int] | None = None
    site: str | None = None


@dataclass(frozen=True)
class FhirResource:
    """One resource type a pull reads, declared once: the hook that turns an entry into its
    record, the record type, whether its search is limited to the lookback window (`date=ge`),
    and what kind of access its records are (None: they say who, not who sees whom)."""

    type: str
    row: str
    kind: type[tuple]
    dated: bool = False
    source: AccessSource | None = None


FHIR_RESOURCES = {
    resource.type: resource
    for resource in (
        FhirResource("Practitioner", "_practitioner_row", StaffRow),
        FhirResource("PractitionerRole", "_role_row", RoleRow),
        FhirResource("Appointment", "_appointment_row", Involvement, True, AccessSource.APPOINTMENT),
        FhirResource("Encounter", "_encounter_row", Involvement, True, AccessSource.APPOINTMENT),
        FhirResource("CareTeam", "_care_team_row", Involvement, source=AccessSource.CARE_TEAM),
        FhirResource("Patient", "_patient_row", Involvement, source=AccessSource.ASSIGNMENT),
    )
}


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
        self.short_reads: list[str] = []
        """This pull's searches that read another count of matches than their `total`."""
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
        self.short_reads = []
        previous = previous_records(state, cursors, self.resources, STATE_VERSION)
        incremental = previous is not None
        records = {r: revive((previous or {}).get(r) or {}, FHIR_RESOURCES[r].kind) for r in self.resources}
        unsupported: list[str] = []  # optional resource types the server answered 404 for
        for resource in self.resources:
            params: list[tuple[str, Any]] = [("_count", self.page_size)]
            if FHIR_RESOURCES[resource].dated:
                params.append(("date", f"ge{window_start.isoformat()}"))
            if incremental:
                params.append(("_lastUpdated", f"gt{cursors[resource]}"))
            try:
                self._read(resource, params, records[resource], progress)
            except HttpError as exc:
                # A server without the resource type answers its search with 404: it has none.
                if not (resource in self.optional and exc.status == 404 and not records[resource]):
                    raise
                unsupported.append(resource)
        if "PractitionerRole" in unsupported and _names_roles(records):
            # Appointments that book a role show the server has roles: this 404 was a passing
            # fault, and read as "no roles" it would take every practitioner's sites and bookings.
            self.short_reads.append("GET /PractitionerRole: answered 404 while appointments name roles")
            log.warning("%s: %s; the read is incomplete (no removals)", self.name, self.short_reads[-1])
        practitioners = self._located(records)
        locations = self._sites(records) if self.read_locations else None
        cursor = next_cursor(started_at)
        snapshot = PmsSnapshot(
            self.system,
            tuple(practitioners),
            _access_log(records, window_start),
            complete=not self.short_reads,
            locations=locations,
        )
        return PmsPull(snapshot, dict.fromkeys(self.resources, cursor), {"version": STATE_VERSION, **records})

    def _located(self, records: dict[str, dict[str, Any]]) -> list[PmsPractitioner]:
        """Practitioners, each with the sites of their roles."""
        sites: dict[str, set[str]] = {}
        for role in (records.get("PractitionerRole") or {}).values():
            if role.owner:
                sites.setdefault(role.owner, set()).update(role.sites)
        return [
            PmsPractitioner(
                pid, row.name, row.email, row.active, None, row.updated, tuple(sorted(sites.get(pid, ())))
            )
            for pid, row in sorted(records["Practitioner"].items())
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
        for role in (records.get("PractitionerRole") or {}).values():
            for site in role.sites:
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
            into[identifier] = getattr(self, FHIR_RESOURCES[resource].row)(
                entry, (entry.get("meta") or {}).get("lastUpdated")
            )
            if progress is not None and count % 1000 == 0:
                progress(resource, count)

    def _skip(self, resource: str, identifier: str) -> bool:
        """Hook: leave a row out (Halaxy's external practitioners)."""
        return False

    def _appointment_status(self, entry: dict[str, Any]) -> AccessStatus:
        """Hook: whether an Appointment counts, from its FHIR status."""
        return _EXCLUDED["Appointment"].get(entry.get("status"), AccessStatus.ACTIVE)

    def _search(self, resource: str, params: list[tuple[str, Any]]):
        """Every match of a search, page by page, or a `ConnectorError`: never a short read.

        A read that lost entries makes the practitioners in them look gone from the PMS (a
        departure), so a search fails when the server says its answer is not whole (an
        OperationOutcome entry of severity error or fatal), and the pull is marked incomplete (no
        removals, nothing stored, the next run reads again) when the matches read are fewer or
        more than the last page's `total` (where it gives one; `total` counts matches, not
        `_include`d entries). Not a failure: FHIR allows a server to give an estimated total,
        and a sync that could never succeed would help nobody.
        """
        matched = 0
        total: int | None = None
        for bundle in pages(self.http, resource, params, _next):
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise ConnectorError(self.name, f"GET /{resource}: expected a Bundle")
            if isinstance(bundle.get("total"), int) and not isinstance(bundle["total"], bool):
                total = bundle["total"]
            for index, item in enumerate(bundle.get("entry") or []):
                entry = item.get("resource") if isinstance(item, dict) else None
                if not isinstance(entry, dict):
                    raise ConnectorError(self.name, f"GET /{resource}: entry {index} has no resource")
                kind = entry.get("resourceType")
                if kind == "OperationOutcome":
                    _refuse_failed_outcome(self.name, resource, entry)
                    continue
                if kind != resource:
                    continue  # _include'd entries
                if (item.get("search") or {}).get("mode") != "include":
                    matched += 1
                yield entry
        if total is not None and matched != total:
            self.short_reads.append(
                f"GET /{resource}: read {matched} entries of the {total} the search counts"
            )
            log.warning("%s: %s; the read is incomplete (no removals)", self.name, self.short_reads[-1])

    # How each resource's entry becomes its record (FHIR_RESOURCES names these hooks).
    def _practitioner_row(self, entry: dict[str, Any], updated: str | None) -> StaffRow:
        names = entry.get("name") or [{}]
        first = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
        name = first.get("text") or " ".join([*(first.get("given") or []), first.get("family") or ""]).strip()
        emails = [
            t.get("value")
            for t in entry.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "email" and t.get("value")
        ]
        return StaffRow(
            name or entry["id"],
            emails[0] if emails else None,
            entry.get("active", True) is not False,
            updated,
        )

    def _role_row(self, entry: dict[str, Any], updated: str | None) -> RoleRow:
        return RoleRow(
            reference_id(entry.get("practitioner"), "Practitioner"), updated, self._role_sites(entry)
        )

    def _appointment_row(self, entry: dict[str, Any], updated: str | None) -> Involvement:
        status = int(self._appointment_status(entry))
        actors = [p.get("actor") for p in entry.get("participant") or [] if isinstance(p, dict)]
        site = next((found for actor in actors if (found := reference_id(actor, self.site_type))), None)
        practitioners, roles, patients = _people(actors)
        day = optional_day(entry.get("start")) or optional_day(updated)
        return Involvement(practitioners, roles, patients, day, status, {}, site)

    def _encounter_row(self, entry: dict[str, Any], updated: str | None) -> Involvement:
        individuals = [p.get("individual") for p in entry.get("participant") or [] if isinstance(p, dict)]
        day = optional_day((entry.get("period") or {}).get("start")) or optional_day(updated)
        return self._with_subject(entry, individuals, day, "Encounter")

    def _care_team_row(self, entry: dict[str, Any], updated: str | None) -> Involvement:
        members = [p.get("member") for p in entry.get("participant") or [] if isinstance(p, dict)]
        return self._with_subject(entry, members, optional_day(updated), "CareTeam")

    def _patient_row(self, entry: dict[str, Any], updated: str | None) -> Involvement:
        practitioners, roles, _ = _people(entry.get("generalPractitioner") or [])
        return Involvement(
            practitioners, roles, [entry["id"]], optional_day(updated), int(AccessStatus.ACTIVE)
        )

    @staticmethod
    def _with_subject(
        entry: dict[str, Any], references: list[Any], day: int | None, resource: str
    ) -> Involvement:
        practitioners, roles, _ = _people(references)
        patient = reference_id(entry.get("subject"), "Patient")
        status = int(_EXCLUDED[resource].get(entry.get("status"), AccessStatus.ACTIVE))
        return Involvement(practitioners, roles, [patient] if patient else [], day, status)


_ISSUE_CODE = re.compile(r"[a-z][a-z-]{0,39}")
"""An OperationOutcome issue's code as FHIR spells them (`too-costly`): anything else is not echoed."""


def _refuse_failed_outcome(connector: str, resource: str, outcome: dict[str, Any]) -> None:
    """An OperationOutcome in a searchset that reports an error or a fatal issue means the
    answer is not whole: fail the read. Warnings and information are only notes."""
    issues = outcome.get("issue") if isinstance(outcome.get("issue"), list) else []
    for issue in issues:
        if isinstance(issue, dict) and issue.get("severity") in ("error", "fatal"):
            code = issue.get("code")
            code = code if isinstance(code, str) and _ISSUE_CODE.fullmatch(code) else "unknown"
            raise ConnectorError(
                connector,
                f"GET /{resource}: the server reports an {issue['severity']} ({code}): stopping",
            )


def _names_roles(records: dict[str, dict[str, Any]]) -> bool:
    """Whether any appointment, encounter, care team or patient read refers to a PractitionerRole."""
    return any(
        isinstance(row, Involvement) and row.roles
        for resource, rows in records.items()
        if resource not in ("Practitioner", "PractitionerRole")
        for row in rows.values()
    )


def _people(references: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """Practitioner ids, PractitionerRole ids and Patient ids among some references."""
    found: dict[str, list[str]] = {"Practitioner": [], "PractitionerRole": [], "Patient": []}
    for reference in references:
        parsed = _parse_reference(reference)
        if parsed is not None and parsed[0] in found:
            found[parsed[0]].append(parsed[1])
    return found["Practitioner"], found["PractitionerRole"], found["Patient"]


def _access_log(records: dict[str, dict[str, Any]], window_start: date):
    builder = AccessLogBuilder()
    known = set(records["Practitioner"])
    roles_read = records.get("PractitionerRole") or {}
    role_owner = {role: row.owner for role, row in roles_read.items()}
    role_site = {role: row.sites[0] for role, row in roles_read.items() if len(row.sites) == 1}
    floor = day_of(window_start)
    for resource, declared in FHIR_RESOURCES.items():
        if declared.source is None:
            continue
        for row in (records.get(resource) or {}).values():
            if row.day is None:
                continue
            # Care teams and GP assignments are standing access: they count as of their last update
            # or the window start, whichever is later.
            seen = max(row.day, floor) if declared.source is not AccessSource.APPOINTMENT else row.day
            owners = {*row.practitioners, *(role_owner.get(role) for role in row.roles)}
            site = row.site
            if site is None and resource == "Appointment":
                sites = {role_site.get(role) for role in row.roles} - {None}
                site = sites.pop() if len(sites) == 1 else None
            for practitioner in sorted(owner for owner in owners if owner in known):
                for patient in row.patients:
                    state = AccessStatus((row.per_patient or {}).get(patient, row.status))
                    builder.add(practitioner, patient, declared.source, day_to_date(seen), state, site)
    return builder.build()
