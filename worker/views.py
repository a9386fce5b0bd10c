"""The read model: what the CLI, the API and the pages show about organisations, runs and proposals.

Each view is a frozen record built here, once, from the store; the CLI, the API and the pages
get these (or a service's own small records), not ORM rows. The three front ends only format
these records (a table, JSON, HTML), so a field added here appears everywhere at once and a
listing cannot disagree between them.

`organisations()` shares its SQL with worker/store/listing.py, which `ptsync org list` runs
through the database driver alone: it is the command people run most, and starting SQLAlchemy
costs more than the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text
from sqlalchemy.orm import defer

from worker.clock import iso
from worker.errors import NotFound
from worker.lifecycle import OPEN_PROPOSALS, UNFINISHED_RUNS, OperationStatus, failed_attempt
from worker.store import repositories as repo
from worker.store.listing import NEWEST_RUN_PER_ORGANISATION, OrganisationRow, as_row
from worker.store.models import Proposal, Run

if TYPE_CHECKING:
    from worker.runtime import Runtime


@dataclass(frozen=True, slots=True)
class RunView:
    id: str
    trigger: str
    status: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None
    counts: dict[str, Any] | None
    """The run's counts without the stored sharing picture (large, and shown on its own); None
    where they were not read (`runs(..., counts=False)`)."""

    @property
    def active(self) -> bool:
        return self.status in UNFINISHED_RUNS

    @property
    def retrying(self) -> str | None:
        """Why the last attempt failed, while the run is being tried again (else None)."""
        return failed_attempt(self)

    @property
    def findings(self) -> int | None:
        return None if self.counts is None else sum((self.counts.get("findings") or {}).values())

    @property
    def last_moment(self) -> datetime:
        return self.finished_at or self.started_at or self.requested_at

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger": self.trigger,
            "status": self.status,
            "requested_at": iso(self.requested_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "attempts": self.attempts,
            "findings": self.findings,
            "error": self.error,
            "retrying": self.retrying is not None,
            "counts": self.counts,
        }


@dataclass(frozen=True, slots=True)
class OperationView:
    position: int
    op: str
    email: str
    requires_approval: bool
    status: str
    approved: bool = False
    """Approved already: here, or carried over from the proposal this one replaced."""

    @property
    def label(self) -> str:
        return self.op.replace("_", " ")

    @property
    def awaiting_approval(self) -> bool:
        return self.requires_approval and not self.approved


@dataclass(frozen=True, slots=True)
class ProposalView:
    id: str
    run_id: str
    status: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    error: str | None
    operations: tuple[OperationView, ...]

    @property
    def open(self) -> bool:
        return self.status in OPEN_PROPOSALS

    @property
    def needing_approval(self) -> int:
        """Operations that still wait for someone's approval (carried-over approvals count as given)."""
        return sum(1 for op in self.operations if op.awaiting_approval)

    @property
    def waiting(self) -> bool:
        return any(op.status == OperationStatus.WAITING for op in self.operations)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "status": self.status,
            "created_at": iso(self.created_at),
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
            "error": self.error,
            "operations": [
                {
                    "position": op.position,
                    "op": op.op,
                    "email": op.email,
                    "requires_approval": op.requires_approval,
                    "approved": op.approved,
                    "status": op.status,
                }
                for op in self.operations
            ],
        }


def run_view(run: Run) -> RunView:
    counts = dict(run.counts or {}) if "counts" not in sa_inspect(run).unloaded else None
    if counts is not None:
        counts.pop("picture", None)
    return RunView(
        id=run.id,
        trigger=run.trigger,
        status=run.status,
        requested_at=run.requested_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        attempts=run.attempts or 0,
        error=run.error,
        counts=counts,
    )


def proposal_view(proposal: Proposal) -> ProposalView:
    return ProposalView(
        id=proposal.id,
        run_id=proposal.run_id,
        status=proposal.status,
        created_at=proposal.created_at,
        decided_by=proposal.decided_by,
        decided_at=proposal.decided_at,
        error=proposal.error,
        operations=tuple(
            OperationView(
                op.position, op.op, op.email, op.requires_approval, op.status, op.approved_at is not None
            )
            for op in proposal.operations
        ),
    )


def org_id_of(runtime: Runtime, slug: str) -> int:
    """The organisation's id, or NotFound naming the slug."""
    with runtime.db.transaction() as session:
        return repo.get_org(session, slug).id


def runs(runtime: Runtime, org_id: int, limit: int = 20, *, counts: bool = True) -> list[RunView]:
    """An organisation's runs, newest first. `counts=False` leaves out the counts (which hold
    the sharing picture: large for a big clinic) where only status and times are shown."""
    heavy = [Run.report, Run.plan, Run.roster] + ([] if counts else [Run.counts])
    with runtime.db.transaction() as session:
        rows = session.scalars(
            select(Run)
            .options(*(defer(attribute, raiseload=True) for attribute in heavy))
            .where(Run.org_id == org_id)
            .order_by(Run.requested_at.desc(), Run.id.desc())
            .limit(limit)
        )
        return [run_view(row) for row in rows]


def run(runtime: Runtime, org_id: int, run_id: str) -> RunView:
    """One run of this organisation; NotFound for another organisation's run (never confirm it exists)."""
    with runtime.db.transaction() as session:
        row = session.get(Run, run_id)
        if row is None or row.org_id != org_id:
            raise NotFound(f"no run {run_id}")
        return run_view(row)


def proposals(runtime: Runtime, org_id: int, limit: int = 20) -> list[ProposalView]:
    """An organisation's proposals, newest first, each with its operations."""
    with runtime.db.transaction() as session:
        return [proposal_view(row) for row in repo.proposals_of(session, org_id, limit)]


def proposal(runtime: Runtime, proposal_id: str, org_id: int | None = None) -> ProposalView:
    """One proposal; with `org_id`, NotFound unless it belongs to that organisation."""
    with runtime.db.transaction() as session:
        row = session.get(Proposal, proposal_id)
        if row is None or (org_id is not None and row.org_id != org_id):
            raise NotFound(f"no proposal {proposal_id}")
        return proposal_view(row)


def organisations(runtime: Runtime) -> list[OrganisationRow]:
    """Every organisation by slug, with its newest run's status and time: one query, the same
    SQL `ptsync org list` sends through the driver alone (worker/store/listing.py)."""
    with runtime.db.engine.connect() as connection:
        return [as_row(row) for row in connection.execute(text(NEWEST_RUN_PER_ORGANISATION))]
