"""Queries and state transitions, each a small function on a session.

Run transitions are conditional UPDATEs (compare-and-set on status and lease token), so they
are atomic on SQLite and PostgreSQL alike and a stale worker can never overwrite a newer one.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, and_, bindparam, exists, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from sharing.context import Baseline
from worker.clock import new_id
from worker.crypto import SecretBox
from worker.errors import NotFound, Retryable
from worker.lifecycle import (
    OPEN_PROPOSALS,
    OPERATION_MOVES,
    PROPOSAL_MOVES,
    IllegalTransition,
    OperationStatus,
    ProposalStatus,
    sources,
)
from worker.store import state_codec
from worker.store.models import (
    AuditEntry,
    FindingRecord,
    Organisation,
    PhysitrackKey,
    PmsState,
    Proposal,
    ProposalOperation,
    Run,
    SyncCursor,
)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
OPEN_PROPOSAL_STATES = ("proposed", "approved", "reopened")


def find_org(session: Session, slug: str) -> Organisation | None:
    return session.scalar(_ORG_BY_SLUG, {"slug": slug})


_ORG_BY_SLUG = select(Organisation).where(Organisation.slug == bindparam("slug"))


def get_org(session: Session, slug: str) -> Organisation:
    org = find_org(session, slug)
    if org is None:
        raise NotFound(f"unknown organisation {slug!r} (add it with: ptsync org add {slug} ...)")
    return org


def get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"unknown run {run_id!r}")
    return run


def get_proposal(session: Session, proposal_id: str) -> Proposal:
    proposal = session.get(Proposal, proposal_id)
    if proposal is None:
        raise NotFound(f"unknown proposal {proposal_id!r} (list them with: ptsync proposals SLUG)")
    return proposal


def audit(session: Session, org_id: int | None, actor: str, action: str, at: datetime, **detail: Any) -> None:
    session.add(AuditEntry(org_id=org_id, at=at, actor=actor, action=action, detail=detail))


def audit_now(session: Session, org_id: int, actor: str, action: str, at: datetime, **detail: Any) -> None:
    """`audit`'s entry inserted at once by a Core statement, not flushed with the session: for
    paths that run no ORM flush otherwise (a webhook's relay), where the flush cost more."""
    values = {"org_id": org_id, "at": at, "actor": actor, "action": action, "detail": detail}
    session.connection().execute(_INSERT_AUDIT, values)


class OrgRef(Protocol):
    """An organisation as queuing a run needs it: its id. An `Organisation` is one; the relay
    passes what it read with the delivery instead of loading the whole row."""

    @property
    def id(self) -> int: ...


@dataclass(frozen=True)
class Needs:
    """What a request needs of the run that serves it, beyond a run that starts after it."""

    full_pull: bool = False
    """Re-read everything (the full sync)."""
    report: bool = False
    """Reconcile and write a report even if nothing changed (a person asked, or a re-plan)."""


LOOK: Any = object()
"""`queue_run(queued=LOOK)`: the caller has not read the organisation's queued run; look it up."""


def queue_run(
    session: Session,
    org: OrgRef,
    trigger: str,
    now: datetime,
    needs: Needs = Needs(),
    *,
    queued: Run | None = LOOK,
) -> tuple[Run, bool]:
    """The org's queued run, joined, or a new one. Returns (run, created).

    Joining is one UPDATE of the run *while it is still queued*: it records the newest request
    (`read_after`: the run's reads, a shared PMS read included, must start after it) and what
    that request needs (`needs`). A run a worker claimed in the meantime started before this
    request, so a new run is queued instead. A partial unique index allows one queued run per
    organisation: when two triggers race, the loser's insert does nothing and it joins the
    winner's run.

    `queued`: the organisation's queued run as the caller read it in this transaction (None: it
    found none), not read again. Deciding from it comes to the same as from a fresh read: a
    run claimed since is not joined (the UPDATE checks), one queued since makes the insert do
    nothing and is then read and joined.
    """
    existing = queued_run(session, org.id) if queued is LOOK else queued
    if existing is not None and _join(session, existing, now, needs):
        return existing, False
    for _attempt in range(_QUEUE_ATTEMPTS):
        values = _new_run(org.id, trigger, now, needs)
        if _insert_queued(session, values):
            return _persistent_run(session, values), True
        # Lost the race: another request queued the run (committed now, or PostgreSQL waited
        # for its transaction to end). Join it, unless a worker has claimed it already.
        existing = queued_run(session, org.id)
        if existing is not None and _join(session, existing, now, needs):
            return existing, False
    raise Retryable(f"could not queue a run for organisation {org.id}: its queued runs kept being claimed")


_QUEUE_ATTEMPTS = 3
"""Inserts tried when each found a queued run that a worker claimed before it could be joined
(each such run started before this request, so a new one must be queued); twice in a row is
already unlikely."""


def _new_run(org_id: int, trigger: str, now: datetime, needs: Needs) -> dict[str, Any]:
    return {
        "id": new_id(),
        "org_id": org_id,
        "trigger": trigger,
        "status": QUEUED,
        "requested_at": now,
        "attempts": 0,
        "accept_drop": False,
        "full_pull": needs.full_pull,
        "report_required": needs.report,
    }


def _insert_queued(session: Session, values: dict[str, Any]) -> bool:
    """Insert a queued run unless the organisation has one (the partial unique index
    `one_queued_run_per_org`): a Core INSERT ... ON CONFLICT DO NOTHING, no savepoint and no
    ORM flush. SQLite has this form from 3.24 (partial-index target included), PostgreSQL
    from 9.5. True when inserted."""
    connection = session.connection()
    dialect = connection.dialect.name
    statement = _INSERT_QUEUED_RUN.get(dialect)
    if statement is None:  # postgresql or sqlite: the two databases ptsync runs on
        insert_into = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert
        # preserve_rowcount: SQLAlchemy keeps an INSERT's row count only when asked to
        statement = _INSERT_QUEUED_RUN[dialect] = (
            insert_into(Run.__table__)
            .on_conflict_do_nothing(index_elements=[Run.org_id], index_where=text("status = 'queued'"))
            .execution_options(preserve_rowcount=True)
        )
    return connection.execute(statement, values).rowcount == 1


def _persistent_run(session: Session, values: dict[str, Any]) -> Run:
    """The run just inserted, as the session's persistent object without reading it back:
    every column is set (what the insert stored; the rest NULL), so nothing lazy-loads, and a
    change to it (`accept_drop`, say) is flushed as an UPDATE like any loaded run's."""
    run = Run(**{**dict.fromkeys(_RUN_COLUMNS), **values})
    make_transient_to_detached(run)
    session.add(run)
    return run


def _join(session: Session, run: Run, now: datetime, needs: Needs) -> bool:
    """Join `run` if it is still queued (False: a worker has claimed it)."""
    joined = session.connection().execute(
        _JOIN[needs.full_pull, needs.report], {"run_id": run.id, "now": now}
    )
    return joined.rowcount == 1


def request_run(
    session: Session,
    org: OrgRef,
    trigger: str,
    actor: str,
    now: datetime,
    needs: Needs = Needs(),
    *,
    audited: bool = True,
    queued: Run | None = LOOK,
    **detail: Any,
) -> tuple[Run, bool]:
    """`queue_run`, with an audit entry when a new run was queued (not when joining one, nor
    when the caller says the request is not worth one: the clock's incremental polls)."""
    run, created = queue_run(session, org, trigger, now, needs, queued=queued)
    if created and audited:
        audit_now(session, org.id, actor, "sync_requested", now, run_id=run.id, **detail)
    return run, created


# The statements every run and every webhook executes are built once, with bound parameters:
# building one anew cost about as much CPU as executing it.
_QUEUED_RUN = select(Run).where(Run.org_id == bindparam("org_id"), Run.status == QUEUED)
_INSERT_QUEUED_RUN: dict[str, Any] = {}
"""Per dialect name, built on first use (importing a dialect's module costs every command's start)."""
_RUN_COLUMNS = tuple(column.key for column in Run.__table__.columns)
# Core statements on the tables, run on the session's connection: the same transaction without
# the ORM's per-statement and bulk-statement work (nothing in the session is synchronised with them).
_RUNS = Run.__table__
_JOIN = {
    (full_pull, report): update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _RUNS.c.status == QUEUED)
    .values(
        read_after=bindparam("now"),
        **({"full_pull": True} if full_pull else {}),
        **({"report_required": True} if report else {}),
    )
    for full_pull in (False, True)
    for report in (False, True)
}
"""Joining a queued run, by what the request needs (`Needs.full_pull`, `Needs.report`)."""
_INSERT_AUDIT = insert(AuditEntry.__table__)
_CLAIM = (
    update(_RUNS)
    .where(
        _RUNS.c.id == bindparam("run_id"),
        or_(
            _RUNS.c.status == QUEUED,
            and_(_RUNS.c.status == RUNNING, _RUNS.c.lease_expires_at < bindparam("now")),
        ),
    )
    .values(
        status=RUNNING,
        lease_token=bindparam("token"),
        lease_expires_at=bindparam("expires"),
        attempts=_RUNS.c.attempts + 1,
        started_at=bindparam("now"),
    )
)
_LEASE_HELD = and_(
    _RUNS.c.id == bindparam("run_id"), _RUNS.c.lease_token == bindparam("token"), _RUNS.c.status == RUNNING
)
_KEY_ROWS = PhysitrackKey.__table__.c
_PHYSITRACK_KEYS = select(_KEY_ROWS.practitioner_email, _KEY_ROWS.key_encrypted).where(
    _KEY_ROWS.org_id == bindparam("org_id")
)
_PMS_STATE_DATA = select(PmsState.__table__.c.data).where(PmsState.__table__.c.org_id == bindparam("org_id"))


def queued_run(session: Session, org_id: int) -> Run | None:
    return session.scalar(_QUEUED_RUN, {"org_id": org_id})


@dataclass(frozen=True)
class Claim:
    run_id: str
    org_id: int
    token: str


def claim_run(
    session: Session, run_id: str, now: datetime, lease: timedelta, *, savepoint: bool = True
) -> Claim | None:
    """`claim_and_read_run` for callers that need only the claim."""
    claimed = claim_and_read_run(session, run_id, now, lease, savepoint=savepoint)
    return None if claimed is None else claimed[0]


@dataclass(frozen=True)
class ClaimedRun:
    """A run as the worker that claimed it reads it, after the claim (see `claim_and_read_run`)."""

    id: str
    org_id: int
    trigger: str
    full_pull: bool
    report_required: bool
    accept_drop: bool
    requested_at: datetime
    read_after: datetime | None
    organisation: Organisation
    """Detached (as if loaded and expunged): the run reads it, and never writes through it."""


def claim_and_read_run(
    session: Session, run_id: str, now: datetime, lease: timedelta, *, savepoint: bool = True
) -> tuple[Claim, ClaimedRun] | None:
    """Take a queued run, or a running one whose worker stopped renewing its lease.

    Another running run of the organisation makes the claim break the one-running-run index:
    inside a savepoint (on SQLite, where the failing statement alone is backed out, without
    one), that is a None and the transaction goes on. `savepoint=False` saves the
    savepoint's two round trips (most claims meet no other run) and lets the IntegrityError out:
    the transaction is lost, and the caller starts again with a savepoint.

    The claimed run (and its organisation) is read *after* the claim, and returned: a
    request that joined the queued run a moment before (`_join`: a person's sync needing a new
    report, the nightly full sync, a newer `read_after`) is in that row, and nothing changes it
    once it is running. A copy read before the claim could miss it, and the run would not serve
    what it was joined for.

    Read by one Core statement (the run's few columns a worker uses, and its organisation's
    row, joined), the organisation made a detached `Organisation` from it: the ORM's load of
    the whole run and its organisation cost a tenth of a run that finds nothing changed.
    """
    token = new_id()
    values = {"run_id": run_id, "now": now, "token": token, "expires": now + lease}
    # SQLite backs out only the failing statement and the transaction goes on, so it needs no
    # savepoint; one would be worse: pysqlite begins no transaction before it, so the savepoint
    # opens it and its RELEASE commits the claim before the run's reads.
    nested = savepoint and session.get_bind().dialect.name != "sqlite"
    try:
        with session.begin_nested() if nested else contextlib.nullcontext():
            result = session.connection().execute(_CLAIM, values)
    except IntegrityError:
        if not savepoint:
            raise  # the transaction is lost: the caller starts again
        return None  # another run of this organisation is running
    if result.rowcount != 1:
        return None
    row = session.connection().execute(_CLAIMED_RUN, {"run_id": run_id}).one()
    organisation = Organisation(**dict(zip(_ORG_COLUMNS, row[_RUN_PART:], strict=True)))
    make_transient_to_detached(organisation)
    run = ClaimedRun(*row[:_RUN_PART], organisation)
    return Claim(run_id, run.org_id, token), run


_ORGS = Organisation.__table__
_ORG_COLUMNS = tuple(column.key for column in _ORGS.columns)
_CLAIMED_RUN = (
    select(
        _RUNS.c.id,
        _RUNS.c.org_id,
        _RUNS.c.trigger,
        _RUNS.c.full_pull,
        _RUNS.c.report_required,
        _RUNS.c.accept_drop,
        _RUNS.c.requested_at,
        _RUNS.c.read_after,
        *_ORGS.columns,
    )
    .join(_ORGS, _ORGS.c.id == _RUNS.c.org_id)
    .where(_RUNS.c.id == bindparam("run_id"))
)
_RUN_PART = 8
"""The run's columns in `_CLAIMED_RUN`, before its organisation's."""


def running_run(session: Session, org_id: int, other_than: str) -> Run | None:
    return session.scalar(
        select(Run).where(Run.org_id == org_id, Run.status == RUNNING, Run.id != other_than)
    )


def renew_lease(
    session: Session, claim: Claim, now: datetime, lease: timedelta, progress: dict[str, Any] | None
) -> bool:
    values: dict[str, Any] = {"lease_expires_at": now + lease}
    if progress is not None:
        values["counts"] = progress
    result = session.execute(
        update(Run)
        .where(Run.id == claim.run_id, Run.lease_token == claim.token, Run.status == RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish_run(session: Session, claim: Claim, status: str, now: datetime, **values: Any) -> bool:
    """Close a run we hold the lease on. False when the lease was lost (nothing changes)."""
    result = session.connection().execute(
        update(_RUNS)
        .where(_LEASE_HELD)
        .values(status=status, finished_at=now, lease_token=None, lease_expires_at=None, **values),
        {"run_id": claim.run_id, "token": claim.token},
    )
    return result.rowcount == 1


def release_for_retry(session: Session, claim: Claim, now: datetime, error: str) -> None:
    """Give the lease back at once so the retried message (or a newer run) can proceed."""
    session.execute(
        update(Run)
        .where(Run.id == claim.run_id, Run.lease_token == claim.token, Run.status == RUNNING)
        .values(lease_expires_at=now, error=error)
        .execution_options(synchronize_session=False)
    )


def fail_unfinished_run(
    session: Session, run_id: str, now: datetime, error: str, *, lapsed_only: bool = False
) -> bool:
    """Close a queued or running run. `lapsed_only`: only a running run whose lease ended before
    `now` (its worker vanished). What was read lapsed may have been claimed again or renewed
    before this UPDATE: the condition is checked again on the row itself (PostgreSQL re-reads
    a row another transaction changed), so a live claim is never closed."""
    unfinished = (
        and_(Run.status == RUNNING, Run.lease_expires_at < now)
        if lapsed_only
        else Run.status.in_((QUEUED, RUNNING))
    )
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, unfinished)
        .values(status=FAILED, finished_at=now, lease_token=None, lease_expires_at=None, error=error)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def latest_run(session: Session, org_id: int) -> Run | None:
    return session.scalar(
        select(Run).where(Run.org_id == org_id).order_by(Run.requested_at.desc(), Run.id.desc()).limit(1)
    )


def latest_report_query(*columns: Any) -> Select[Any]:
    """The organisation's latest report: its newest succeeded run with one (`org_id` bound when
    executed). Each reader selects only the columns it needs, so a megabyte report is read only
    where it is shown; the partial index `runs_with_report` (migration 0014) answers it."""
    return (
        select(*columns)
        .where(
            _RUNS.c.org_id == bindparam("org_id"), _RUNS.c.status == SUCCEEDED, _RUNS.c.report.is_not(None)
        )
        .order_by(_RUNS.c.finished_at.desc(), _RUNS.c.id.desc())
        .limit(1)
    )


_LATEST_REPORT_RUN = latest_report_query(Run)


def latest_report_run(session: Session, org_id: int) -> Run | None:
    return session.scalar(_LATEST_REPORT_RUN, {"org_id": org_id})


def runs_of(session: Session, org_id: int, limit: int = 20) -> list[Run]:
    return list(
        session.scalars(
            select(Run).where(Run.org_id == org_id).order_by(Run.requested_at.desc()).limit(limit)
        )
    )


def proposals_of(session: Session, org_id: int, limit: int = 20) -> list[Proposal]:
    return list(
        session.scalars(
            select(Proposal)
            .where(Proposal.org_id == org_id)
            .order_by(Proposal.created_at.desc(), Proposal.id.desc())
            .limit(limit)
        )
    )


def supersede_open_proposals(session: Session, org_id: int, by: str) -> list[str]:
    stale = list(
        session.scalars(
            select(Proposal).where(
                Proposal.org_id == org_id,
                Proposal.status.in_(OPEN_PROPOSAL_STATES),
                Proposal.id != by,
            )
        )
    )
    for proposal in stale:
        proposal.status = "superseded"
        proposal.error = f"superseded by proposal {by}"
    return [proposal.id for proposal in stale]


def store_cursors(session: Session, org_id: int, cursors: dict[str, str], now: datetime) -> None:
    for resource, cursor in cursors.items():
        row = session.get(SyncCursor, (org_id, resource))
        if row is None:
            session.add(SyncCursor(org_id=org_id, resource=resource, cursor=cursor, updated_at=now))
        else:
            row.cursor = cursor
            row.updated_at = now


def claim_apply(
    session: Session, proposal_id: str, now: datetime, lease: timedelta, allowed: tuple[str, ...]
) -> str | None:
    """Take the right to apply a proposal (one applier at a time; a lapsed one is replaced)."""
    token = new_id()
    result = session.execute(
        update(Proposal)
        .where(
            Proposal.id == proposal_id,
            Proposal.status.in_(allowed),
            or_(Proposal.apply_token.is_(None), Proposal.apply_lease_expires_at < now),
        )
        .values(apply_token=token, apply_lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return token if result.rowcount == 1 else None


def holds_apply(session: Session, proposal_id: str, token: str, now: datetime, lease: timedelta) -> bool:
    """Renew the apply lease; False if another applier took it over or the proposal was closed.

    A superseded or rejected proposal sends nothing more, even to an applier that still holds
    what it thinks is a live lease.
    """
    result = session.execute(
        update(Proposal)
        .where(
            Proposal.id == proposal_id,
            Proposal.apply_token == token,
            Proposal.status.in_([state.value for state in OPEN_PROPOSALS]),
        )
        .values(apply_lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_apply(session: Session, proposal_id: str, token: str) -> None:
    session.execute(
        update(Proposal)
        .where(Proposal.id == proposal_id, Proposal.apply_token == token)
        .values(apply_token=None, apply_lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def physitrack_keys_of(session: Session, org_id: int) -> dict[str, str]:
    """Practitioner email -> encrypted Physitrack v2 key."""
    return dict(session.connection().execute(_PHYSITRACK_KEYS, {"org_id": org_id}).all())


_PROPOSAL_ROWS = Proposal.__table__.c
_UNVERIFIED_APPLIED = and_(  # on the table's columns: the ORM select and the Core EXISTS share it
    _PROPOSAL_ROWS.org_id == bindparam("org_id"),
    _PROPOSAL_ROWS.status.in_(("applied", "applied_by_hand")),
    _PROPOSAL_ROWS.verified_at.is_(None),
    _PROPOSAL_ROWS.applied_at <= bindparam("before"),
)
_UNVERIFIED_APPLIED_PROPOSALS = select(Proposal).where(_UNVERIFIED_APPLIED)
_ANY_UNVERIFIED_APPLIED = select(exists().where(_UNVERIFIED_APPLIED))
"""Asked by every poll and webhook run: built once (building it cost as much as running it)."""


def unverified_applied_proposals(session: Session, org_id: int, before: datetime) -> list[Proposal]:
    return list(session.scalars(_UNVERIFIED_APPLIED_PROPOSALS, {"org_id": org_id, "before": before}))


def any_unverified_applied_proposal(session: Session, org_id: int, before: datetime) -> bool:
    """Whether `unverified_applied_proposals` would find one, without loading any."""
    return bool(session.connection().scalar(_ANY_UNVERIFIED_APPLIED, {"org_id": org_id, "before": before}))


def pms_state_of(session: Session, org_id: int, box: SecretBox | None = None) -> dict[str, Any] | None:
    """The stored state, decrypted with `box` (raw PMS patient ids never rest in clear text)."""
    data = session.connection().scalar(_PMS_STATE_DATA, {"org_id": org_id})
    return decode_pms_state(data, box)


def decode_pms_state(data: bytes | None, box: SecretBox | None) -> dict[str, Any] | None:
    """The stored state's bytes (`PmsState.data`) decoded and decrypted with `box`."""
    return None if data is None else state_codec.decode(bytes(data), box)


def store_pms_state(
    session: Session, org_id: int, state: dict[str, Any], now: datetime, box: SecretBox
) -> None:
    """Store the connector's state encrypted with `box` (the runtime's secrets): the state holds
    the PMS's own patient ids, which nothing else in the store keeps in clear text."""
    data = state_codec.encode(state, box)
    row = session.get(PmsState, org_id)
    if row is None:
        session.add(PmsState(org_id=org_id, data=data, updated_at=now))
    else:
        row.data = data
        row.updated_at = now


def baseline_from(roster: list[str] | None, accept_drop: bool) -> Baseline | None:
    """The baseline of a run, from the roster of the latest trusted complete run before it
    (None: there is none) and whether the run accepts a drop."""
    if roster is None:
        return Baseline(frozenset(), accept_drop) if accept_drop else None
    return Baseline(frozenset(roster), accept_drop)


@dataclass(frozen=True)
class RunOutcome:
    """What a successful run stores, all in its final transaction."""

    finished_at: datetime
    report: dict[str, Any]
    counts: dict[str, Any]
    complete: bool
    roster: list[str] | None
    plan: list[list[str]] | None
    policy: dict[str, Any]
    cursors: dict[str, str] | None
    pms_state: dict[str, Any] | None


def save_run_outcome(session: Session, claim: Claim, outcome: RunOutcome, box: SecretBox) -> bool:
    """Close the run as succeeded with its report, findings, cursors and state. False: lease lost.

    Cursors and connector state are stored only for a complete run, in this same transaction, so
    an incremental cursor never points past rows the stored state does not hold.
    """
    if not finish_run(
        session,
        claim,
        SUCCEEDED,
        outcome.finished_at,
        report=outcome.report,
        counts=outcome.counts,
        complete=outcome.complete,
        error=None,
        roster=outcome.roster,
        plan=outcome.plan,
        policy=outcome.policy,
    ):
        return False
    findings = [
        {
            "run_id": claim.run_id,
            "org_id": claim.org_id,
            "fingerprint": finding["fingerprint"],
            "kind": finding["kind"],
            "severity": finding["severity"],
            "state": finding["state"],
            "document": finding,
        }
        for finding in outcome.report["findings"]
    ]
    if findings:  # one multi-row INSERT, not an ORM object (and its unit of work) per finding
        session.execute(insert(FindingRecord), findings)
    if outcome.cursors is not None:
        store_cursors(session, claim.org_id, outcome.cursors, outcome.finished_at)
    if outcome.pms_state is not None:
        store_pms_state(session, claim.org_id, outcome.pms_state, outcome.finished_at, box)
    audit(
        session,
        claim.org_id,
        "worker",
        "sync_succeeded",
        outcome.finished_at,
        run_id=claim.run_id,
        findings=len(outcome.report["findings"]),
        complete=outcome.complete,
    )
    return True


def latest_complete_run(session: Session, org_id: int) -> Run | None:
    """The newest run whose plan counts: complete and trusted (its `plan` is stored)."""
    return session.scalar(
        select(Run)
        .where(Run.org_id == org_id, Run.status == SUCCEEDED, Run.complete.is_(True), Run.plan.is_not(None))
        .order_by(Run.finished_at.desc(), Run.id.desc())
        .limit(1)
    )


def transition_proposal(
    session: Session,
    proposal_id: str,
    target: ProposalStatus,
    now: datetime,
    *,
    expected: tuple[ProposalStatus, ...] | None = None,
    token: str | None = None,
    unowned: bool = False,
    **values: Any,
) -> bool:
    """Compare-and-set a proposal's status: only from the states the lifecycle allows.

    `token`: only while this applier holds the apply lease. `unowned`: only when no applier holds
    a live lease (a sync never supersedes a proposal that is being applied). False: someone else
    moved first, nothing changed.
    """
    allowed = sources(PROPOSAL_MOVES, target)
    if expected is not None:
        if any(state.value not in allowed for state in expected):
            raise IllegalTransition(f"{[s.value for s in expected]} -> {target.value} is not allowed")
        allowed = tuple(state.value for state in expected)
    query = update(Proposal).where(Proposal.id == proposal_id, Proposal.status.in_(allowed))
    if token is not None:
        query = query.where(Proposal.apply_token == token)
    if unowned:
        query = query.where(or_(Proposal.apply_token.is_(None), Proposal.apply_lease_expires_at < now))
    result = session.execute(
        query.values(status=target.value, **values).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def transition_operation(session: Session, row_id: int, target: OperationStatus, **values: Any) -> bool:
    """Compare-and-set an operation's status from the states the lifecycle allows."""
    result = session.execute(
        update(ProposalOperation)
        .where(ProposalOperation.id == row_id, ProposalOperation.status.in_(sources(OPERATION_MOVES, target)))
        .values(status=target.value, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
