"""Approving, rejecting and applying proposals.

Applying is exactly-once in effect: every operation is marked `applying` before it is sent and
`applied` after; a redelivered apply re-reads PT Direct, accepts only the states this proposal
itself could have produced (anything else means someone changed PT Direct: the plan is
superseded and a new sync is requested), and skips changes already in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.errors import ConnectorError
from connectors.ptdirect_file import parse_snapshot
from sharing import Operation, OpKind, PtDirectSnapshot, apply_operations, state_digest
from sharing.apply import apply_operation, is_in_effect
from sharing.checklist import checklist
from worker.clock import utcnow
from worker.connections import ptdirect_adapter
from worker.errors import InvalidInput
from worker.runtime import Runtime
from worker.services import notify_delivery, notify_events
from worker.store import repositories as repo
from worker.store.models import Proposal, ProposalOperation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyOutcome:
    proposal_id: str
    status: str
    applied: int = 0
    resync_org: str | None = None


class RetryableApplyError(Exception):
    pass


def approve(runtime: Runtime, proposal_id: str, actor: str, *, transferred: bool = False) -> Proposal:
    """Approve a proposal (idempotent). `transferred` confirms the transfer-first steps are done."""
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if proposal.status in ("superseded", "rejected", "reopened"):
            raise InvalidInput(
                f"proposal {proposal_id} is {proposal.status} and cannot be approved; "
                "approve the organisation's latest proposal instead (ptsync proposals SLUG)"
            )
        if proposal.status == "proposed":
            proposal.status = "approved"
            proposal.decided_at = now
            proposal.decided_by = actor
            repo.audit(session, proposal.org_id, actor, "proposal_approved", now, proposal_id=proposal_id)
        if transferred:
            for operation in proposal.operations:
                if operation.op == OpKind.TRANSFER_PATIENTS.value and operation.status != "applied":
                    operation.status = "applied"
                    operation.applied_at = now
                    repo.audit(
                        session,
                        proposal.org_id,
                        actor,
                        "transfer_confirmed",
                        now,
                        proposal_id=proposal_id,
                        email=operation.email,
                    )
                if operation.status == "waiting":
                    operation.status = "pending"
            if proposal.status in ("applied", "failed"):
                proposal.status = "approved"
        return proposal


def reject(runtime: Runtime, proposal_id: str, actor: str) -> Proposal:
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if proposal.status in ("applied", "applying"):
            raise InvalidInput(f"proposal {proposal_id} is {proposal.status} and cannot be rejected")
        if proposal.status != "rejected":
            proposal.status = "rejected"
            proposal.decided_at = now
            proposal.decided_by = actor
            repo.audit(session, proposal.org_id, actor, "proposal_rejected", now, proposal_id=proposal_id)
        return proposal


class ApplyBusy(Exception):
    """Another applier holds this proposal; try again after `delay_seconds`."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(f"proposal busy; retry in {delay_seconds:.1f}s")
        self.delay_seconds = delay_seconds


class _LeaseLost(Exception):
    pass


def apply(runtime: Runtime, proposal_id: str, *, automatic_only: bool = False) -> ApplyOutcome:
    """Apply an approved proposal, or (automatic_only) just its operations that need no approval."""
    lease = timedelta(seconds=runtime.settings.run_lease_seconds * 2)
    allowed = ("proposed", "approved", "applying") if automatic_only else ("approved", "applying")
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        token = repo.claim_apply(session, proposal_id, utcnow(), lease, allowed)
        if token is None:
            session.refresh(proposal)
            if proposal.status in allowed and proposal.apply_lease_expires_at is not None:
                remaining = (proposal.apply_lease_expires_at - utcnow()).total_seconds()
                raise ApplyBusy(max(remaining, 0.5))
            return ApplyOutcome(proposal_id, proposal.status)
    try:
        return _apply_claimed(runtime, proposal_id, token, lease, automatic_only)
    except _LeaseLost:
        log.warning("proposal %s: another applier took over", proposal_id)
        return ApplyOutcome(proposal_id, "lease_lost")
    finally:
        with runtime.db.transaction() as session:
            repo.release_apply(session, proposal_id, token)


def _apply_claimed(
    runtime: Runtime, proposal_id: str, token: str, lease: timedelta, automatic_only: bool
) -> ApplyOutcome:
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if not automatic_only:
            proposal.status = "applying"
        org = proposal.organisation
        session.expunge(org)
        planned = parse_snapshot(proposal.planned_state, f"proposal {proposal_id}")
        operations = [
            (row.id, row.position, row.status, row.requires_approval, Operation.from_dict(row.document))
            for row in proposal.operations
        ]

    adapter = ptdirect_adapter(org, runtime.secrets)
    try:
        current = adapter.read()
    except ConnectorError as exc:
        if exc.retryable:
            raise RetryableApplyError(str(exc)) from exc
        return _fail_proposal(runtime, proposal_id, str(exc))

    done = [op for _, _, status, _, op in operations if status == "applied" and not op.op.advisory]
    expected = apply_operations(planned, done)
    in_flight = [op for _, _, status, _, op in operations if status == "applying"]
    acceptable = {state_digest(expected)} | {state_digest(apply_operation(expected, op)) for op in in_flight}
    if state_digest(current) not in acceptable:
        return _supersede(runtime, proposal_id, org.slug)

    transfers_pending = {
        op.email.lower()
        for _, _, status, _, op in operations
        if op.op is OpKind.TRANSFER_PATIENTS and status != "applied"
    }
    step = _Step(runtime, proposal_id, token, lease)
    applied = 0
    for row_id, position, status, requires_approval, op in operations:
        if status in ("applied", "manual") or (automatic_only and requires_approval):
            continue
        if op.op.advisory:
            step.mark(row_id, "manual")
            continue
        if op.op is OpKind.REMOVE_SHARING_MEMBER and op.email.lower() in transfers_pending:
            step.mark(row_id, "waiting")
            continue
        if is_in_effect(current, op):
            step.mark(row_id, "applied", op=op)
            continue
        step.mark(row_id, "applying")
        try:
            adapter.apply(op, idempotency_key=f"{proposal_id}:{position}")
        except ConnectorError as exc:
            if exc.retryable:
                raise RetryableApplyError(str(exc)) from exc
            step.mark(row_id, "failed", error=str(exc))
            return _fail_proposal(runtime, proposal_id, str(exc))
        current = apply_operation(current, op)
        step.mark(row_id, "applied", op=op)
        applied += 1
    return _settle(runtime, proposal_id, applied, automatic_only)


class _Step:
    """Records each operation's progress, only while this applier still holds the lease."""

    def __init__(self, runtime: Runtime, proposal_id: str, token: str, lease: timedelta) -> None:
        self.runtime = runtime
        self.proposal_id = proposal_id
        self.token = token
        self.lease = lease

    def mark(
        self, row_id: int, status: str, *, error: str | None = None, op: Operation | None = None
    ) -> None:
        now = utcnow()
        with self.runtime.db.transaction() as session:
            if not repo.holds_apply(session, self.proposal_id, self.token, now, self.lease):
                raise _LeaseLost()
            row = session.get(ProposalOperation, row_id)
            if row is None or row.status == status:
                return
            row.status = status
            row.error = error
            if status == "applied":
                row.applied_at = now
                proposal = session.get(Proposal, row.proposal_id)
                repo.audit(
                    session,
                    proposal.org_id if proposal else None,
                    "worker",
                    "operation_applied",
                    now,
                    proposal_id=self.proposal_id,
                    op=op.op.value if op else row.op,
                    email=row.email,
                )


def _settle(runtime: Runtime, proposal_id: str, applied: int, automatic_only: bool) -> ApplyOutcome:
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        machine_ops = [row for row in proposal.operations if row.status not in ("manual",)]
        all_done = all(row.status == "applied" for row in machine_ops)
        if all_done:
            proposal.status = "applied"
            proposal.applied_at = now
            repo.audit(session, proposal.org_id, "worker", "proposal_applied", now, proposal_id=proposal_id)
        elif not automatic_only:
            proposal.status = "approved"  # some steps wait for a person (transfer first)
        notices = notify_events.record_apply_waits(session, proposal)
        outcome = ApplyOutcome(proposal_id, proposal.status, applied)
    notify_delivery.dispatch(notices)
    return outcome


def _supersede(runtime: Runtime, proposal_id: str, slug: str) -> ApplyOutcome:
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        proposal.status = "superseded"
        proposal.error = "PT Direct changed since this proposal was planned; a new sync re-plans it"
        repo.audit(session, proposal.org_id, "worker", "proposal_superseded", now, proposal_id=proposal_id)
    log.info("proposal %s superseded: PT Direct changed since planning", proposal_id)
    return ApplyOutcome(proposal_id, "superseded", resync_org=slug)


def _fail_proposal(runtime: Runtime, proposal_id: str, reason: str) -> ApplyOutcome:
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        proposal.status = "failed"
        proposal.error = reason
        repo.audit(
            session, proposal.org_id, "worker", "proposal_failed", now, proposal_id=proposal_id, error=reason
        )
        notices = notify_events.record_apply_event(session, proposal, "failed", reason)
    notify_delivery.dispatch(notices)
    return ApplyOutcome(proposal_id, "failed")


def checklist_of(runtime: Runtime, proposal_id: str) -> tuple[Proposal, list[str]]:
    """The proposal's steps for a person in the PT Direct console, with names from its plan."""
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        planned = parse_snapshot(proposal.planned_state, f"proposal {proposal_id}")
        names = {user.email.lower(): user.name for user in planned.users}
        pending = [
            Operation.from_dict(row.document) for row in proposal.operations if row.status != "applied"
        ]
        return proposal, checklist(pending, names)


def mark_applied_by_hand(runtime: Runtime, proposal_id: str, actor: str) -> Proposal:
    """Record that a person followed the checklist; the next sync confirms or reopens it."""
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if proposal.status not in ("proposed", "approved", "reopened", "failed"):
            raise InvalidInput(
                f"proposal {proposal_id} is {proposal.status}; only open proposals can be marked"
            )
        proposal.status = "applied_by_hand"
        proposal.decided_by = proposal.decided_by or actor
        proposal.decided_at = proposal.decided_at or now
        proposal.applied_at = now
        proposal.verified_at = None
        for row in proposal.operations:
            if row.status != "applied":
                row.status = "applied"
                row.applied_at = now
        repo.audit(session, proposal.org_id, actor, "proposal_applied_by_hand", now, proposal_id=proposal_id)
        return proposal


def verify_applied(session, org_id: int, state: PtDirectSnapshot, read_at: datetime) -> None:
    """After a complete read, check that proposals applied before it really took effect."""
    now = utcnow()
    for proposal in repo.unverified_applied_proposals(session, org_id, before=read_at):
        operations = [
            Operation.from_dict(row.document) for row in proposal.operations if row.status == "applied"
        ]
        missing = [op for op in operations if not op.op.advisory and not is_in_effect(state, op)]
        proposal.verified_at = now
        if missing:
            proposal.status = "reopened"
            proposal.error = "not in effect in PT Direct: " + ", ".join(
                f"{op.op.value} {op.email}" for op in missing
            )
            repo.audit(
                session,
                org_id,
                "worker",
                "proposal_reopened",
                now,
                proposal_id=proposal.id,
                missing=[op.as_dict() for op in missing],
            )
        else:
            proposal.status = "applied"
            repo.audit(session, org_id, "worker", "proposal_verified", now, proposal_id=proposal.id)
