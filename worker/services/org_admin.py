"""An organisation's life after `org add`: show, update, pause, resume, test and remove.

`update` takes any setting of `org add` by the field names of `NewOrganisation` (one
definition for both commands): the stored settings become a `NewOrganisation`, the changes are
laid over it, and the result is validated exactly as `org add` validates a new one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, delete, or_, select

from worker.clock import iso, utcnow
from worker.connections import missing_api_path_hint, pms_connector, ptdirect_adapter
from worker.errors import InvalidInput, PtsyncError
from worker.runtime import Runtime
from worker.services import pms_account
from worker.services.orgs import SECRET_SETTINGS, NewOrganisation, validate
from worker.services.schedule import next_due
from worker.store import repositories as repo
from worker.store.models import Base, Organisation, PmsState, SyncCursor

# NewOrganisation field -> Organisation column, where the names differ. A field `x_key` is
# stored encrypted in `x_key_encrypted`; every other field is stored in the column of its name.
COLUMN_OF = {
    "pms": "pms_kind",
    "ptdirect": "ptdirect_kind",
    "policy": "mode",
    # Settings being added on main (issue 9, issue 16b) whose columns are named differently:
    "removal_threshold": "removal_threshold_percent",
    "pms_staff": "pms_staff_path",
}
OPTION_OF = {column: field for field, column in COLUMN_OF.items()}
PATH_FIELDS = ("pms_path", "ptdirect_path", "pms_staff")
PMS_FIELDS = (
    "pms",
    "pms_url",
    "pms_key",
    "pms_path",
    "pms_format",
    "pms_staff",
    "pms_client_id",
    "pms_client_secret",
    "pms_token_url",
)
HIDDEN_COLUMNS = ("id", "slug", "created_at", "paused_at", "paused_by")


def _column(field: str) -> str:
    return COLUMN_OF.get(field, field)


def settings_of(org: Organisation, runtime: Runtime) -> NewOrganisation:
    """The stored settings as the `NewOrganisation` that would create them (secrets decrypted)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(NewOrganisation):
        if hasattr(Organisation, f"{field.name}_encrypted"):
            token = getattr(org, f"{field.name}_encrypted")
            values[field.name] = runtime.secrets.decrypt(token).decode() if token else None
        elif hasattr(Organisation, _column(field.name)):
            values[field.name] = getattr(org, _column(field.name))
    if org.pms_kind == "halaxy" and values.get("pms_key"):
        # Halaxy keeps its OAuth client (id, secret, token URL) as one encrypted JSON value.
        client = json.loads(values.pop("pms_key"))
        values.update(
            pms_key=None,
            pms_client_id=client.get("client_id"),
            pms_client_secret=client.get("client_secret"),
            pms_token_url=client.get("token_url"),
        )
    return NewOrganisation(**values)


HALAXY_FIELDS = ("pms", "pms_key", "pms_client_id", "pms_client_secret", "pms_token_url")


def _store_pms_secret(org: Organisation, new: NewOrganisation, runtime: Runtime) -> None:
    """What `org add` stores as the PMS secret: the key, or Halaxy's OAuth client as JSON."""
    from worker.services.orgs import _pms_secret

    secret = _pms_secret(new)
    org.pms_key_encrypted = runtime.secrets.encrypt(secret) if secret else None


def _store(org: Organisation, field: str, value: Any, runtime: Runtime) -> None:
    if field == "pms_format":
        from worker.services.orgs import _stored_format

        org.pms_format = _stored_format(value)
    elif field in ("pms_client_id", "pms_client_secret", "pms_token_url"):
        return  # not columns: part of the PMS secret (`_store_pms_secret`)
    elif hasattr(Organisation, f"{field}_encrypted"):
        setattr(org, f"{field}_encrypted", runtime.secrets.encrypt(value.encode()) if value else None)
    elif field in PATH_FIELDS:
        setattr(org, field, str(Path(value).resolve()) if value else None)
    else:
        setattr(org, _column(field), value)


def transient_org(new: NewOrganisation, runtime: Runtime, org_id: int | None = None) -> Organisation:
    """An unsaved Organisation with these settings, to test its connections before storing."""
    org = Organisation(id=org_id, slug=new.slug)
    for field in dataclasses.fields(NewOrganisation):
        if field.name != "slug":
            _store(org, field.name, getattr(new, field.name), runtime)
    _store_pms_secret(org, new, runtime)
    return org


@dataclass(frozen=True)
class ConnectionCheck:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'}  {self.name}: {self.detail}"


PROBES = {"cliniko": ("practitioners", [("per_page", 1)]), "fhir": ("Practitioner", [("_count", 1)])}


def _label(what: str, kind: str, where: str | None) -> str:
    return f"{what} ({kind}, {where})" if where else f"{what} ({kind})"


def check_connections(runtime: Runtime, org: Organisation) -> list[ConnectionCheck]:
    """Reach every connection once, cheaply, and say which fails and why (never a secret)."""
    checks = []
    name = _label("PMS", org.pms_kind, org.pms_url or org.pms_path)
    try:
        connector = pms_connector(org, runtime.secrets)
        probe = PROBES.get(org.pms_kind)
        if probe is not None and hasattr(connector, "http"):
            connector.http.get_json(probe[0], params=probe[1])
            detail = "reached, the key is accepted"
        else:
            pulled = connector.pull(window_start=date.today(), cursors={}, state=None, started_at=utcnow())
            detail = f"read, {len(pulled.snapshot.practitioners)} practitioners"
        checks.append(ConnectionCheck(name, True, detail))
    except PtsyncError as exc:
        checks.append(ConnectionCheck(name, False, f"{exc}{missing_api_path_hint(org, exc)}"))
    checks.append(_check_ptdirect(runtime, org))
    return checks


def _check_ptdirect(runtime: Runtime, org: Organisation) -> ConnectionCheck:
    name = _label("PT Direct", org.ptdirect_kind, org.ptdirect_path or org.ptdirect_url)
    if org.ptdirect_kind == "manual":
        from worker.services.ptdirect_state import latest_in

        with runtime.db.transaction() as session:
            current = latest_in(session, org.id, org.slug) if org.id is not None else None
        if current is None:
            return ConnectionCheck(
                name,
                True,
                f"kept in ptsync; nothing recorded yet: record what PT Direct shows at "
                f"/orgs/{org.slug}/ptdirect or with `ptsync ptdirect import {org.slug} FILE`",
            )
        return ConnectionCheck(
            name, True, f"kept in ptsync, version {current.version} recorded {iso(current.recorded_at)}"
        )
    try:
        snapshot = ptdirect_adapter(org, runtime.secrets).read()
    except PtsyncError as exc:
        return ConnectionCheck(name, False, f"{exc}{missing_api_path_hint(org, exc)}")
    where = " (a file: ptsync writes approved changes there, never to PT Direct itself)"
    return ConnectionCheck(
        name, True, f"read, {len(snapshot.users)} users" + (where if org.ptdirect_kind == "file" else "")
    )


def failed_checks_error(checks: list[ConnectionCheck]) -> InvalidInput:
    failed = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
    return InvalidInput(f"connection test failed, nothing stored: {failed} (skip the test with --no-test)")


def check_organisation(runtime: Runtime, slug: str) -> list[ConnectionCheck]:
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        session.expunge(org)
    return check_connections(runtime, org)


def update_organisation(
    runtime: Runtime, slug: str, changes: dict[str, Any], actor: str = "cli", *, test: bool = True
) -> tuple[list[str], list[ConnectionCheck]]:
    """Change any `org add` setting; validated and (unless `test` is off) tested before storing.

    Returns the names of the settings that changed and the connection checks. Changing the PMS
    connection forgets the incremental cursors, so the next run reads the whole window again.
    """
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(NewOrganisation)} - {"slug"})
    if unknown:
        raise InvalidInput(f"unknown setting(s): {', '.join(unknown)}")
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        org_id = org.id
        current = settings_of(org, runtime)
    wanted = dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None})
    changed = [
        f.name
        for f in dataclasses.fields(NewOrganisation)
        if getattr(wanted, f.name) != getattr(current, f.name)
    ]
    if not changed:
        return [], []
    validate(wanted, given=[name for name, value in changes.items() if value is not None])
    checks = check_connections(runtime, transient_org(wanted, runtime, org_id)) if test else []
    if any(not check.ok for check in checks):
        raise failed_checks_error(checks)
    if test and set(changed) & {*PMS_FIELDS, "locations", "include_people", "exclude_people"}:
        checks += _scope_check(runtime, transient_org(wanted, runtime, org_id))
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        for field in changed:
            _store(org, field, getattr(wanted, field), runtime)
        if set(changed) & set(HALAXY_FIELDS):
            _store_pms_secret(org, wanted, runtime)
        if set(changed) & set(PMS_FIELDS):
            pms_account.fingerprint(org, runtime.secrets)
        if set(changed) & {*PMS_FIELDS, "locations"}:  # locations: rows are read with their site
            session.execute(delete(SyncCursor).where(SyncCursor.org_id == org.id))
            session.execute(delete(PmsState).where(PmsState.org_id == org.id))
        secret = [f for f in changed if f in SECRET_SETTINGS or hasattr(Organisation, f"{f}_encrypted")]
        repo.audit(
            session,
            org.id,
            actor,
            "organisation_updated",
            now,
            changed={f: ("(secret changed)" if f in secret else getattr(wanted, f)) for f in changed},
        )
    return changed, checks


def set_paused(runtime: Runtime, slug: str, paused: bool, actor: str = "cli") -> bool:
    """Pause or resume; returns False when it already was so."""
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        if (org.paused_at is not None) == paused:
            return False
        org.paused_at = now if paused else None
        org.paused_by = actor[:128] if paused else None
        repo.audit(session, org.id, actor, "organisation_paused" if paused else "organisation_resumed", now)
        return True


def _organisation_column(table: Table) -> Column | None:
    """The column by which a table's rows belong to an organisation (a foreign key to it)."""
    for fk in table.foreign_keys:
        if fk.column.table.name == Organisation.__tablename__:
            return fk.parent
    return None


def remove_organisation(runtime: Runtime, slug: str, actor: str = "cli") -> dict[str, int]:
    """Delete the organisation and every row that belongs to it, in every table; returns counts.

    Generic over the schema: a table with a foreign key to `organisations`, and a table whose rows
    hang off such a table by a foreign key, is emptied of the organisation's rows before the
    organisation itself, so tables added later are covered without a change here. One audit
    entry (not linked to any organisation) records the removal: who, when, which slug.
    """
    deleted: dict[str, int] = {}
    now = utcnow()
    with runtime.db.transaction() as session:
        org_id = repo.get_org(session, slug).id
        tables = [t for t in Base.metadata.sorted_tables if t.name != Organisation.__tablename__]
        owner = {t.name: _organisation_column(t) for t in tables}
        for table in reversed(tables):
            column = owner[table.name]
            if column is not None:
                condition = column == org_id
            else:
                conditions = [
                    fk.parent.in_(select(fk.column).where(owner[fk.column.table.name] == org_id))
                    for fk in table.foreign_keys
                    if owner.get(fk.column.table.name) is not None
                ]
                if not conditions:
                    continue
                condition = or_(*conditions)
            result = session.execute(delete(table).where(condition))
            if result.rowcount:
                deleted[table.name] = result.rowcount
        session.execute(delete(Organisation).where(Organisation.id == org_id))
        repo.audit(session, None, actor, "organisation_removed", now, slug=slug, rows=deleted)
    return deleted


def describe(runtime: Runtime, slug: str) -> dict[str, Any]:
    """Everything about an organisation but its secrets: `org show` and `org show --format json`."""
    now = utcnow()
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        settings = {}
        for column in Organisation.__table__.columns:
            name = column.name
            if name in HIDDEN_COLUMNS or name.endswith(("_hash",)):
                continue
            if name.endswith("_encrypted"):
                if name != "pseudonym_key_encrypted":
                    settings[name.removesuffix("_encrypted")] = "set" if getattr(org, name) else "not set"
                continue
            settings[OPTION_OF.get(name, name)] = getattr(org, name)
        last = repo.latest_run(session, org.id)
        due = next_due(org.schedule, now)
        return {
            "org": org.slug,
            "created_at": iso(org.created_at),
            "paused": org.paused_at is not None,
            "paused_at": iso(org.paused_at) if org.paused_at else None,
            "paused_by": org.paused_by,
            "settings": settings,
            "schedule": {
                "cron": org.schedule,
                "timezone": "UTC",  # cron schedules are read in UTC; dates use settings.timezone
                "next_due": None if org.paused_at or due is None else iso(due),
                "full_sync": org.full_sync,
                "full_sync_next_due": None if org.paused_at else iso(next_due(org.full_sync, now)),
            },
            "last_run": None
            if last is None
            else {
                "id": last.id,
                "trigger": last.trigger,
                "status": last.status,
                "requested_at": iso(last.requested_at),
                "finished_at": iso(last.finished_at) if last.finished_at else None,
                "error": last.error,
            },
            "notifications": _channels(runtime, slug),
        }


def _channels(runtime: Runtime, slug: str) -> list[dict[str, Any]]:
    """Each notification channel (redacted) and its health: a failing one is shown here too."""
    from worker.services.notifications import notification_status

    return [
        {
            "id": row.id,
            "channel": row.display,
            "events": list(row.events),
            "state": row.state,
            "consecutive_failures": row.consecutive_failures,
            "last_error": row.last_error,
            "last_success_at": iso(row.last_success_at) if row.last_success_at else None,
        }
        for row in notification_status(runtime, slug)
    ]


def add_tested(runtime: Runtime, new: NewOrganisation, actor: str = "cli", *, test: bool = True):
    """`org add`: validate, test every connection (unless `test` is off), then store."""
    from worker.services.orgs import add_organisation

    validate(new)
    checks = check_connections(runtime, transient_org(new, runtime)) if test else []
    if any(not check.ok for check in checks):
        raise failed_checks_error(checks)
    if test:
        checks += _scope_check(runtime, transient_org(new, runtime))
    return add_organisation(runtime, new, actor), checks


def _scope_check(runtime: Runtime, org: Organisation) -> list[ConnectionCheck]:
    """Clinic groups: a scope that names an unknown location or matches nobody is refused."""
    from worker.services.org_scope import check_scope

    summary = check_scope(runtime, org)
    return [ConnectionCheck("scope", True, summary)] if summary else []
