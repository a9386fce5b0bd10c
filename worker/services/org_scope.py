"""Clinic groups in the shell: an organisation's scope (`--locations`, `--include-people`,
`--exclude-people`), checked against the PMS at `org add` / `org update`, and `org locations`.

The scoping itself is pure (`sharing.scope`); this module reads the PMS and stores settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from connectors.base import PmsPull
from connectors.errors import ConnectorError
from sharing import PmsSnapshot
from sharing.scope import Scope, ScopeError, apply_scope, describe_locations, location_counts
from worker.clock import utcnow
from worker.errors import InvalidInput
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import Organisation

SCOPE_FIELDS = ("locations", "include_people", "exclude_people")


def split(value: str | None) -> list[str]:
    """A comma-separated option as its entries (blank entries dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def scope_from(locations: str | None, include: str | None, exclude: str | None) -> Scope:
    try:
        return Scope.of(split(locations), split(include), split(exclude))
    except ScopeError as exc:
        raise InvalidInput(f"--include-people/--exclude-people: {exc}") from None


def scope_of(org: Organisation) -> Scope:
    """The organisation's stored scope (the whole PMS account when none is set)."""
    return scope_from(org.locations, org.include_people, org.exclude_people)


def window_start(org: Organisation) -> date:
    return utcnow().date() - timedelta(days=org.lookback_days or 540)


def directory(org: Organisation, secrets: Any) -> PmsSnapshot:
    """The PMS's locations and practitioners (with where they work), as cheaply as the connector
    can: its `directory()` where it has one (no appointments read), else a full read."""
    from worker.connections import pms_connector

    connector = pms_connector(org, secrets)
    read = getattr(connector, "directory", None)
    if read is not None:
        return read(window_start=window_start(org))
    return connector.pull(window_start=window_start(org), cursors={}, state=None).snapshot


def check_scope(runtime: Runtime, org: Organisation) -> str | None:
    """Raise InvalidInput when the scope names an unknown location or matches nobody; returns a
    one-line summary of what it matches (None without a scope)."""
    scope = scope_of(org)
    if scope.everything:
        return None
    try:
        snapshot = directory(org, runtime.secrets)
    except ConnectorError as exc:
        raise InvalidInput(f"cannot check the scope against the PMS: {exc} (skip with --no-test)") from None
    try:
        scoped = apply_scope(snapshot, scope, window_start(org))
    except ScopeError as exc:
        raise InvalidInput(f"--{exc.option}: {exc}; nothing stored") from None
    active = [p for p in scoped.practitioners if p.active]
    if not active:
        where = describe_locations(snapshot.locations)
        raise InvalidInput(f"the scope matches no active practitioner, nothing stored; {where}")
    everyone = sum(p.active for p in snapshot.practitioners)
    return f"{len(active)} of the PMS's {everyone} active practitioners are in this organisation"


def scoped(org: Organisation, pulled: PmsPull, since: date) -> PmsPull:
    """The organisation's part of a PMS read; a location the read does not have fails the run
    (one line naming it and the locations there are), never an empty, removal-proposing picture."""
    scope = scope_of(org)
    try:
        return replace(pulled, snapshot=apply_scope(pulled.snapshot, scope, since))
    except ScopeError as exc:
        raise InvalidInput(
            f"the scope of {org.slug} cannot be applied: {exc}; fix it with `ptsync org update {org.slug} "
            + (
                "--include ...`"
                if exc.option == "include"
                else "--locations ...` (`ptsync org locations` lists them)"
            )
        ) from None


def previous_scope_view(
    org: Organisation, previous_report: dict[str, Any] | None, account: PmsSnapshot | None, since: date
) -> PmsSnapshot | None:
    """The account as the organisation's previous scope saw it, when the scope changed since its
    last report (else None): what vanished only because of the change is not "resolved"."""
    if previous_report is None or account is None:
        return None
    before = Scope.from_dict(previous_report.get("scope"))
    if before == scope_of(org):
        return None
    try:
        return apply_scope(account, before, since)
    except ScopeError:
        return None  # a location of the old scope is gone: nothing to compare with


def scope_document(org: Organisation, snapshot: PmsSnapshot | None = None) -> dict[str, Any] | None:
    """The scope as the report gives it (null for the whole PMS account); with the run's scoped
    read, also the locations' names and how many of the account's practitioners were outside."""
    scope = scope_of(org)
    if scope.everything:
        return None
    document: dict[str, Any] = scope.as_dict()
    if snapshot is not None:
        names = {location.id: location.name for location in snapshot.locations or ()}
        document["location_names"] = {location: names.get(location, location) for location in scope.locations}
        document["practitioners_outside"] = len(snapshot.outside)
    return document


@dataclass(frozen=True)
class LocationRow:
    id: str
    name: str
    practitioners: int
    in_scope: bool
    archived: bool


def list_locations(runtime: Runtime, slug: str) -> list[LocationRow]:
    """`ptsync org locations SLUG`: every location of the PMS with its active practitioners."""
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        session.expunge(org)
    snapshot = directory(org, runtime.secrets)
    if snapshot.locations is None:
        how = (
            "its mapping has no `location` column (see docs/export-mappings.md); or scope"
            if org.pms_kind == "export"
            else "scope"
        )
        raise InvalidInput(
            f"the {org.pms_kind} connector cannot tell locations apart: {how} {slug} by people instead "
            "(--include-people / --exclude-people)"
        )
    chosen = set(scope_of(org).locations)
    return [
        LocationRow(
            c.location.id, c.location.name, c.practitioners, c.location.id in chosen, c.location.archived
        )
        for c in location_counts(snapshot, window_start(org))
    ]
