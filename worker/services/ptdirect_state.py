"""PT Direct state kept by ptsync itself (`--ptdirect manual`), versioned.

Physitrack publishes no admin API for users, sharing or the master account, so for most
clinics a person records what PT Direct's screens show (the `/orgs/SLUG/ptdirect` page,
`ptsync ptdirect import`), and records each change they make there (`mark-applied`, the
checklist page). Every version keeps who, when, from where and what changed; a sync plans
from the newest. Nothing here pretends PT Direct changed by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.errors import ConnectorError
from connectors.ptdirect_file import parse_snapshot, snapshot_document
from sharing import Operation, PtDirectSnapshot
from sharing.state_changes import describe_changes
from worker.clock import utcnow
from worker.errors import InvalidInput, PtsyncError
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import PtDirectState

NAME = "ptdirect manual"


@dataclass(frozen=True)
class StateVersion:
    version: int
    recorded_at: datetime
    recorded_by: str
    source: str
    note: str | None
    changes: list[str]
    snapshot: PtDirectSnapshot


def _latest_row(session: Session, org_id: int) -> PtDirectState | None:
    return session.scalar(
        select(PtDirectState)
        .where(PtDirectState.org_id == org_id)
        .order_by(PtDirectState.version.desc())
        .limit(1)
    )


def _version(row: PtDirectState, slug: str) -> StateVersion:
    return StateVersion(
        version=row.version,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
        source=row.source,
        note=row.note,
        changes=list(row.changes.get("changes", [])),
        snapshot=parse_snapshot(row.document, f"{slug} PT Direct state version {row.version}"),
    )


def latest_in(session: Session, org_id: int, slug: str) -> StateVersion | None:
    row = _latest_row(session, org_id)
    return _version(row, slug) if row is not None else None


def latest(runtime: Runtime, slug: str) -> StateVersion | None:
    """The newest recorded version, or None when nothing was recorded yet."""
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        return latest_in(session, org.id, slug)


def history(runtime: Runtime, slug: str, limit: int = 20) -> list[StateVersion]:
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        rows = session.scalars(
            select(PtDirectState)
            .where(PtDirectState.org_id == org.id)
            .order_by(PtDirectState.version.desc())
            .limit(limit)
        )
        return [_version(row, slug) for row in rows]


def record_in(
    session: Session,
    org_id: int,
    slug: str,
    snapshot: PtDirectSnapshot,
    actor: str,
    source: str,
    note: str | None = None,
) -> StateVersion | None:
    """Store `snapshot` as the next version; None (nothing stored) when nothing changed."""
    snapshot = replace(snapshot, clients=None)  # client lists come from the Physitrack API
    previous = latest_in(session, org_id, slug)
    changes = describe_changes(previous.snapshot if previous else None, snapshot)
    if previous is not None and not changes:
        return None
    now = utcnow()
    number = (
        session.scalar(select(func.max(PtDirectState.version)).where(PtDirectState.org_id == org_id)) or 0
    ) + 1
    row = PtDirectState(
        org_id=org_id,
        version=number,
        recorded_at=now,
        recorded_by=actor[:128],
        source=source,
        note=note,
        document=snapshot_document(snapshot),
        changes={"changes": changes},
    )
    try:
        with session.begin_nested():  # two people saving at once: one wins, the other is told
            session.add(row)
            session.flush()
    except IntegrityError:
        raise InvalidInput(
            f"someone else recorded {slug}'s PT Direct state at the same moment: reload and try again"
        ) from None
    repo.audit(session, org_id, actor, "ptdirect_state_recorded", now, version=number, source=source)
    return _version(row, slug)


def record(
    runtime: Runtime, slug: str, document: Any, actor: str, source: str, where: str, note: str | None = None
) -> StateVersion | None:
    """Validate a `ptsync.ptdirect/1` document (errors name `where` and the JSON path) and store it."""
    snapshot = parse_snapshot(document, where)
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        return record_in(session, org.id, slug, snapshot, actor, source, note)


class ManualPtDirectAdapter:
    """Reads the newest recorded state; never writes PT Direct (a person does, then records it)."""

    def __init__(self, runtime: Runtime, org_id: int, slug: str) -> None:
        self.runtime = runtime
        self.org_id = org_id
        self.slug = slug

    def read(self) -> PtDirectSnapshot:
        with self.runtime.db.transaction() as session:
            current = latest_in(session, self.org_id, self.slug)
        if current is None:
            raise ConnectorError(
                NAME,
                f"no PT Direct state is recorded for {self.slug} yet: record what PT Direct shows at "
                f"/orgs/{self.slug}/ptdirect or with `ptsync ptdirect import {self.slug} FILE`",
            )
        return current.snapshot

    def apply(self, operation: Operation, *, idempotency_key: str) -> None:
        raise ConnectorError(
            NAME, "PT Direct is changed by a person: follow the checklist, then mark the steps applied"
        )


@dataclass(frozen=True)
class PmsPerson:
    id: str
    name: str
    email: str | None
    active: bool


def pms_practitioners(runtime: Runtime, slug: str) -> tuple[list[PmsPerson], str | None]:
    """The PMS practitioners (from the newest run that read them, else read now) and a problem, if any.

    Used to pre-fill PT Direct's screens, so an admin ticks what PT Direct shows rather than
    typing every email.
    """
    from worker.connections import pms_connector
    from worker.store.models import Run

    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        rows = session.scalars(
            select(Run.counts)
            .where(Run.org_id == org.id, Run.status == repo.SUCCEEDED, Run.report.is_not(None))
            .order_by(Run.finished_at.desc())
            .limit(5)
        )
        for counts in rows:
            if counts and counts.get("pms_practitioners") is not None:
                return [PmsPerson(*row) for row in counts["pms_practitioners"]], None
        session.expunge(org)
    try:
        pulled = pms_connector(org, runtime.secrets).pull(
            window_start=utcnow().date(), cursors={}, state=None, started_at=utcnow()
        )
    except PtsyncError as exc:
        return [], f"could not read the PMS practitioners: {exc}"
    return [PmsPerson(p.id, p.name, p.email, p.active) for p in pulled.snapshot.practitioners], None


def template(runtime: Runtime, slug: str) -> dict[str, Any]:
    """A starting `ptsync.ptdirect/1` document: the recorded state, else the PMS practitioners as users."""
    current = latest(runtime, slug)
    if current is not None:
        return snapshot_document(current.snapshot)
    people, _ = pms_practitioners(runtime, slug)
    return {
        "schema": "ptsync.ptdirect/1",
        "users": [
            {
                "email": p.email,
                "name": p.name,
                "status": "confirmed",
                "practitioner_access": True,
                "pms_link": None,
            }
            for p in people
            if p.email and p.active
        ],
        "master_account": None,
        "practitioner_sharing": {"members": []},
    }
