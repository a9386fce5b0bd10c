"""The FHIR R4 connector (`--pms fhir`): any FHIR server, Halaxy included.

Practitioners come from `Practitioner` (active flag, email from `telecom`). Who can see whom
comes from four places, each a source of access rows:
- `Appointment.participant.actor` (appointment; cancelled and entered-in-error do not count),
- `Encounter.participant.individual` with `Encounter.subject` (appointment),
- `CareTeam.participant.member` with `CareTeam.subject` (care_team),
- `Patient.generalPractitioner` (assignment).

Searches page through `link[relation=next]` with `_count`; after a complete run, later runs ask
only for `_lastUpdated=gt<cursor>` and merge the answers into the state stored with that run.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from connectors.base import PmsPull, Progress
from connectors.errors import ConnectorError
from connectors.http import HttpClient
from connectors.incremental import next_cursor, previous_records
from connectors.paging import pages
from connectors.ratelimit import RateLimiter
from sharing import AccessLogBuilder, AccessSource, AccessStatus, PmsPractitioner, PmsSnapshot

NAME = "fhir"
PAGE_SIZE = 200
STATE_VERSION = 1
RESOURCES = ("Practitioner", "Appointment", "Encounter", "CareTeam", "Patient")
_EXCLUDED = {
    "Appointment": {"cancelled": AccessStatus.CANCELLED, "entered-in-error": AccessStatus.DELETED},
    "Encounter": {"cancelled": AccessStatus.CANCELLED, "entered-in-error": AccessStatus.DELETED},
    "CareTeam": {"inactive": AccessStatus.ARCHIVED, "entered-in-error": AccessStatus.DELETED},
}


def reference_id(reference: Any, kind: str) -> str | None:
    """`Practitioner/123`, an absolute URL or a `_history` reference -> '123' (else None)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    parts = reference["reference"].split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == kind and parts[-1]:
        return parts[-1]
    return None


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
    system = "fhir"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        user_agent: str,
        limiter: RateLimiter | None = None,
        **http: Any,
    ) -> None:
        headers = {"Accept": "application/fhir+json", "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.limiter = limiter
        self.http = HttpClient(
            NAME,
            base_url,
            headers=headers,
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
        previous = previous_records(state, cursors, RESOURCES, STATE_VERSION)
        incremental = previous is not None
        records = previous or {resource: {} for resource in RESOURCES}
        for resource in RESOURCES:
            params: list[tuple[str, Any]] = [("_count", PAGE_SIZE)]
            if resource in ("Appointment", "Encounter"):
                params.append(("date", f"ge{window_start.isoformat()}"))
            if incremental:
                params.append(("_lastUpdated", f"gt{cursors[resource]}"))
            for count, entry in enumerate(self._search(resource, params), start=1):
                identifier = entry.get("id")
                if not isinstance(identifier, str) or not identifier:
                    raise ConnectorError(NAME, f"GET /{resource}: an entry has no id")
                records[resource][identifier] = self._normalise(resource, entry)
                if progress is not None and count % 1000 == 0:
                    progress(resource, count)
        practitioners = [
            PmsPractitioner(pid, name, email, active, None, updated)
            for pid, (name, email, active, updated) in sorted(records["Practitioner"].items())
        ]
        cursor = next_cursor(started_at)
        snapshot = PmsSnapshot(self.system, tuple(practitioners), _access_log(records, window_start))
        return PmsPull(snapshot, dict.fromkeys(RESOURCES, cursor), {"version": STATE_VERSION, **records})

    def _search(self, resource: str, params: list[tuple[str, Any]]):
        for bundle in pages(self.http, resource, params, _next):
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise ConnectorError(NAME, f"GET /{resource}: expected a Bundle")
            for index, item in enumerate(bundle.get("entry") or []):
                entry = item.get("resource") if isinstance(item, dict) else None
                if not isinstance(entry, dict):
                    raise ConnectorError(NAME, f"GET /{resource}: entry {index} has no resource")
                if entry.get("resourceType") != resource:
                    continue  # _include'd or OperationOutcome entries
                yield entry

    @staticmethod
    def _normalise(resource: str, entry: dict[str, Any]) -> Any:
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
        status = int(_EXCLUDED.get(resource, {}).get(entry.get("status"), AccessStatus.ACTIVE))
        if resource == "Appointment":
            actors = [p.get("actor") for p in entry.get("participant") or [] if isinstance(p, dict)]
            practitioners = [i for i in (reference_id(a, "Practitioner") for a in actors) if i]
            patients = [i for i in (reference_id(a, "Patient") for a in actors) if i]
            return [practitioners, patients, _day(entry.get("start")) or _day(updated), status]
        if resource == "Encounter":
            individuals = [p.get("individual") for p in entry.get("participant") or [] if isinstance(p, dict)]
            practitioners = [i for i in (reference_id(a, "Practitioner") for a in individuals) if i]
            patient = reference_id(entry.get("subject"), "Patient")
            day = _day((entry.get("period") or {}).get("start")) or _day(updated)
            return [practitioners, [patient] if patient else [], day, status]
        if resource == "CareTeam":
            members = [p.get("member") for p in entry.get("participant") or [] if isinstance(p, dict)]
            practitioners = [i for i in (reference_id(m, "Practitioner") for m in members) if i]
            patient = reference_id(entry.get("subject"), "Patient")
            return [practitioners, [patient] if patient else [], _day(updated), status]
        general = [reference_id(g, "Practitioner") for g in entry.get("generalPractitioner") or []]
        return [[i for i in general if i], [entry["id"]], _day(updated), int(AccessStatus.ACTIVE)]


_SOURCE = {
    "Appointment": AccessSource.APPOINTMENT,
    "Encounter": AccessSource.APPOINTMENT,
    "CareTeam": AccessSource.CARE_TEAM,
    "Patient": AccessSource.ASSIGNMENT,
}


def _access_log(records: dict[str, dict[str, Any]], window_start: date):
    builder = AccessLogBuilder()
    known = set(records["Practitioner"])
    floor = window_start.toordinal()
    for resource, source in _SOURCE.items():
        for practitioners, patients, day, status in records[resource].values():
            if day is None:
                continue
            # Care teams and GP assignments are standing access: they count as of their last update
            # or the window start, whichever is later.
            seen = max(day, floor) if source is not AccessSource.APPOINTMENT else day
            for practitioner in practitioners:
                if practitioner not in known:
                    continue
                for patient in patients:
                    builder.add(practitioner, patient, source, date.fromordinal(seen), AccessStatus(status))
    return builder.build()
