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
from worker.store import repositories as repo
from worker.store.models import Proposal, ProposalOperation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyOutcome:
    proposal_id: str
    status: str
    applied: int = 0
    resync_org: str | None = None


WAITING_FOR_PERSON = "waiting_for_person"
COULD_NOT_DO = "could_not_do"
SETTLED = ("applied", COULD_NOT_DO)


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
                f"approve the organisation's latest proposal instead "
                f"(ptsync proposals {proposal.organisation.slug})"
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
        if proposal.organisation.ptdirect_kind == "manual":
            return _wait_for_person(proposal, automatic_only)
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


def _wait_for_person(proposal: Proposal, automatic_only: bool) -> ApplyOutcome:
    """`--ptdirect manual`: nothing can change PT Direct but a person; the steps wait for one."""
    if automatic_only or proposal.status not in ("approved", "applying"):
        return ApplyOutcome(proposal.id, proposal.status)
    proposal.status = "approved"
    for row in proposal.operations:
        if row.status not in ("applied", COULD_NOT_DO):
            row.status = "manual"
    return ApplyOutcome(proposal.id, WAITING_FOR_PERSON)


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
        return ApplyOutcome(proposal_id, proposal.status, applied)


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


@dataclass(frozen=True)
class ChecklistStep:
    """One operation as a step in the PT Direct console; numbered like `ptsync proposals`."""

    position: int
    text: str
    status: str
    note: str | None

    @property
    def number(self) -> int:
        return self.position + 1

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


def checklist_steps(runtime: Runtime, proposal_id: str) -> tuple[Proposal, list[ChecklistStep]]:
    """Every operation of the proposal as a step, with what was done (or could not be) so far."""
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        session.expunge(proposal.organisation)
        planned = parse_snapshot(proposal.planned_state, f"proposal {proposal_id}")
        names = {user.email.lower(): user.name for user in planned.users}
        steps = [
            ChecklistStep(
                row.position,
                checklist([Operation.from_dict(row.document)], names)[0].split(". ", 1)[1],
                row.status,
                row.error,
            )
            for row in proposal.operations
        ]
        return proposal, steps


OPEN_FOR_STEPS = ("proposed", "approved", "reopened", "failed")


def record_steps(
    runtime: Runtime,
    proposal_id: str,
    actor: str,
    *,
    done: set[int],
    could_not: dict[int, str] | None = None,
) -> Proposal:
    """Record which steps (operation positions) a person did in PT Direct, and which they could not.

    With `--ptdirect manual` the steps done become a new recorded PT Direct state, so the next
    sync plans from it. When every step is settled the proposal is `applied_by_hand`; the next
    sync verifies it (or reopens it).
    """
    could_not = dict(could_not or {})
    if done & could_not.keys():
        raise InvalidInput("a step cannot be both done and not done")
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        org = proposal.organisation
        if proposal.status not in OPEN_FOR_STEPS:
            raise InvalidInput(
                f"proposal {proposal_id} is {proposal.status}; only open proposals can be marked"
            )
        rows = {row.position: row for row in proposal.operations}
        for position in sorted(done | could_not.keys()):
            if position not in rows:
                raise InvalidInput(f"proposal {proposal_id} has no step {position + 1}")
            if rows[position].status in SETTLED:
                raise InvalidInput(f"step {position + 1} of proposal {proposal_id} is already recorded")
        newly_done = [Operation.from_dict(rows[p].document) for p in sorted(done)]
        if org.ptdirect_kind == "manual" and newly_done:
            from worker.services.ptdirect_state import latest_in, record_in

            current = latest_in(session, org.id, org.slug)
            base = current.snapshot if current is not None else parse_snapshot(proposal.planned_state, "plan")
            record_in(
                session,
                org.id,
                org.slug,
                apply_operations(base, newly_done),
                actor,
                "checklist",
                note=f"proposal {proposal_id}: steps {', '.join(str(p + 1) for p in sorted(done))}",
            )
        for position in sorted(done):
            rows[position].status = "applied"
            rows[position].applied_at = now
            rows[position].error = None
        for position, reason in could_not.items():
            rows[position].status = COULD_NOT_DO
            rows[position].error = (reason.strip() or "the admin could not do this step")[:500]
        proposal.decided_by = proposal.decided_by or actor
        proposal.decided_at = proposal.decided_at or now
        if all(row.status in SETTLED for row in proposal.operations):
            proposal.status = "applied_by_hand"
            proposal.applied_at = now
            proposal.verified_at = None
            skipped = [row for row in proposal.operations if row.status == COULD_NOT_DO]
            proposal.error = (
                "not done: " + "; ".join(f"step {row.position + 1} ({row.error})" for row in skipped)
                if skipped
                else None
            )
        else:
            proposal.status = "approved"
        repo.audit(
            session,
            proposal.org_id,
            actor,
            "proposal_steps_recorded",
            now,
            proposal_id=proposal_id,
            done=sorted(p + 1 for p in done),
            could_not={str(p + 1): reason for p, reason in could_not.items()},
        )
        return proposal


def mark_applied_by_hand(
    runtime: Runtime, proposal_id: str, actor: str, could_not: dict[int, str] | None = None
) -> Proposal:
    """Record that a person followed the whole checklist (but the `could_not` steps)."""
    _, steps = checklist_steps(runtime, proposal_id)
    could_not = dict(could_not or {})
    done = {step.position for step in steps if not step.settled} - could_not.keys()
    return record_steps(runtime, proposal_id, actor, done=done, could_not=could_not)


def after_approval(kind: str, proposal_id: str, path: str | None) -> str | None:
    """What a person must know after approving, by PT Direct source (None: nothing to add)."""
    if kind == "manual":
        return (
            f"PT Direct has not been changed: do the steps of `ptsync checklist {proposal_id}` (or the "
            f"checklist page) in PT Direct, then record them with `ptsync mark-applied {proposal_id}`."
        )
    if kind == "file":
        return (
            f"the changes were written to the snapshot file {path}; PT Direct itself was not touched "
            f"(make the same changes there, `ptsync checklist {proposal_id}`, unless a tool keeps the file "
            "in step with PT Direct)."
        )
    return None


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
