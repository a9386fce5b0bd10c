"""The re-driver: the database, not Redis, is the source of truth for every pending piece of work.

Messages can be lost: a Redis restart without persistence, a worker whose delayed-message thread
died (see docs/dramatiq-delayed-messages.md), a send that failed after its row was committed.
Every few seconds the clock leader looks for work the database says is pending and nobody is
doing, and sends its message again:

- a queued run whose message went out more than `after` ago and nobody claimed it;
- a running run whose lease lapsed (its worker died: the claim takes the run over);
- an open proposal with operations cleared to apply and no live apply lease (an approval whose
  apply message was lost, an automatic apply that never arrived, an applier that died);
- a closed proposal still holding a lapsed lease or operations marked `applying`: the lease is
  cleared and those operations are closed (the newer plan re-checks PT Direct).

Re-sends are idempotent: run claims and apply leases make a duplicate message harmless, so a
lost message costs latency, never correctness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from worker.lifecycle import OPEN_PROPOSALS, OperationStatus, RunStatus
from worker.runtime import Runtime
from worker.store.models import Organisation, Proposal, ProposalOperation, Run

log = logging.getLogger(__name__)

APPLICABLE = ("proposed", "approved", "applying")
"""Proposal states an apply message can act on (failed and reopened ones wait for a new plan)."""

SendRun = Callable[[str], None]
SendApply = Callable[[str, bool], None]
"""(proposal id, automatic_only)"""


@dataclass
class Redriven:
    runs: list[str] = field(default_factory=list)
    applies: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    failed_sends: int = 0


def redrive(
    runtime: Runtime, send_run: SendRun, send_apply: SendApply, now: datetime, *, after: timedelta
) -> Redriven:
    """One pass. `after`: how long a message may go unanswered before it is sent again."""
    done = Redriven()
    with runtime.db.transaction() as session:
        runs = _stranded_runs(session, now, after)
        applies = _stranded_applies(session, now, after)
        done.released = _release_closed(session, now)
    for run_id in runs:
        if _send(lambda run_id=run_id: send_run(run_id), done):
            _stamp(runtime, update(Run).where(Run.id == run_id).values(enqueued_at=now))
            done.runs.append(run_id)
    for proposal_id, automatic_only in applies:
        if _send(lambda p=proposal_id, a=automatic_only: send_apply(p, a), done):
            _stamp(runtime, update(Proposal).where(Proposal.id == proposal_id).values(apply_requested_at=now))
            done.applies.append(proposal_id)
    if done.runs or done.applies or done.released:
        log.info(
            "re-driver: %d run(s) and %d apply(ies) sent again, %d lease(s) released",
            len(done.runs),
            len(done.applies),
            len(done.released),
        )
    return done


def _send(send: Callable[[], None], done: Redriven) -> bool:
    try:
        send()
    except Exception as exc:  # the broker is down: the rows stay pending, the next pass tries again
        done.failed_sends += 1
        log.warning("re-driver: could not send (%s); trying again on the next pass", exc.__class__.__name__)
        return False
    return True


def _stamp(runtime: Runtime, statement) -> None:
    with runtime.db.transaction() as session:
        session.execute(statement.execution_options(synchronize_session=False))


def _stranded_runs(session: Session, now: datetime, after: timedelta) -> list[str]:
    last_sent = func.coalesce(Run.enqueued_at, Run.requested_at)
    queued = select(Run.id).where(Run.status == RunStatus.QUEUED.value, last_sent < now - after)
    lapsed = select(Run.id).where(
        Run.status == RunStatus.RUNNING.value,
        Run.lease_expires_at < now,
        or_(Run.enqueued_at.is_(None), Run.enqueued_at < now - after),
    )
    return list(session.scalars(queued.union(lapsed)))


def _stranded_applies(session: Session, now: datetime, after: timedelta) -> list[tuple[str, bool]]:
    """Open proposals with work cleared to apply, nobody applying them, and no recent message."""
    last_sent = func.coalesce(Proposal.apply_requested_at, Proposal.decided_at, Proposal.created_at)
    candidates = session.scalars(
        select(Proposal).where(
            Proposal.status.in_(APPLICABLE),
            Proposal.org_id.in_(select(Organisation.id).where(Organisation.ptdirect_kind != "manual")),
            or_(Proposal.apply_token.is_(None), Proposal.apply_lease_expires_at < now),
            last_sent < now - after,
        )
    )
    found = []
    for proposal in candidates:
        actionable = [
            row
            for row in proposal.operations
            if row.status in (OperationStatus.PENDING.value, OperationStatus.APPLYING.value)
            and (not row.requires_approval or row.approved_at is not None)
        ]
        if actionable:
            found.append((proposal.id, proposal.status not in ("approved", "applying")))
    return found


def _release_closed(session: Session, now: datetime) -> list[str]:
    """Closed proposals never send again: clear their lapsed leases and in-flight marks."""
    closed = list(
        session.scalars(
            select(Proposal.id).where(
                Proposal.status.not_in([state.value for state in OPEN_PROPOSALS]),
                Proposal.apply_token.is_not(None),
                Proposal.apply_lease_expires_at < now,
            )
        )
    )
    if not closed:
        return []
    session.execute(
        update(ProposalOperation)
        .where(
            ProposalOperation.proposal_id.in_(closed),
            ProposalOperation.status == OperationStatus.APPLYING.value,
        )
        .values(
            status=OperationStatus.CLOSED.value,
            note="interrupted when its applier stopped; the next sync re-checks PT Direct",
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Proposal)
        .where(Proposal.id.in_(closed), Proposal.apply_lease_expires_at < now)
        .values(apply_token=None, apply_lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return closed
