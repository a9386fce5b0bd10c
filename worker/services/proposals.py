"""Approving, rejecting and applying proposals.

Applying is exactly-once in effect: every operation is marked `applying` before it is sent and
`applied` after; a redelivered apply re-reads PT Direct, accepts only the states this proposal
itself could have produced (anything else means someone changed PT Direct: the plan is
superseded and a new sync is requested), and skips changes already in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connectors.base import PtDirectAdapter
from connectors.errors import ConnectorError
from connectors.ptdirect_file import parse_snapshot
from sharing import Operation, OpKind, PtDirectSnapshot, apply_operations, state_digest
from sharing.apply import apply_operation, is_in_effect, still_called_for
from sharing.checklist import checklist
from sharing.identity import normalise_email
from sharing.operations import operation_key
from worker import views
from worker.clock import utcnow
from worker.connections import ptdirect_adapter
from worker.errors import Conflict, InvalidInput, PtsyncError, Retryable
from worker.lifecycle import IllegalTransition, OperationStatus
from worker.lifecycle import ProposalStatus as P
from worker.runtime import Runtime
from worker.services import notify_delivery, notify_events
from worker.services.org_scope import scope_of
from worker.services.settle import policy_digest, policy_of
from worker.store import repositories as repo
from worker.store.models import Organisation, Proposal, ProposalOperation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyOutcome:
    proposal_id: str
    status: str
    applied: int = 0
    resync_org: str | None = None
    skipped: int = 0
    """Operations not sent because the current plan no longer calls for them (closed)."""


WAITING_FOR_PERSON = "waiting_for_person"
COULD_NOT_DO = "could_not_do"
SETTLED = ("applied", COULD_NOT_DO)


class RetryableApplyError(Retryable):
    """A PT Direct write failed transiently; the apply job tries again (each step is idempotent)."""


def approve(runtime: Runtime, proposal_id: str, actor: str, *, transferred: bool = False) -> Proposal:
    """Approve a proposal (idempotent). `transferred` confirms the transfer-first steps are done."""
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if proposal.status in ("superseded", "rejected", "reopened"):
            successor = (
                f" (its current form is proposal {proposal.superseded_by})" if proposal.superseded_by else ""
            )
            if proposal.status == "rejected":
                why = f"{proposal.decided_by or 'someone'} rejected it" + (
                    f" ({proposal.error})" if proposal.error else ""
                )
            else:
                why = proposal.error or "a newer sync replaced it"
            raise InvalidInput(
                f"proposal {proposal_id} is {proposal.status}{successor} and cannot be approved: {why}"
            )
        if proposal.status == "proposed" and repo.transition_proposal(
            session, proposal_id, P.APPROVED, now, expected=(P.PROPOSED,), decided_at=now, decided_by=actor
        ):
            repo.audit(session, proposal.org_id, actor, "proposal_approved", now, proposal_id=proposal_id)
        for row in proposal.operations:
            if row.requires_approval and row.approved_at is None and row.status not in ("applied", "closed"):
                row.approved_at, row.approved_by = now, actor
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
            if proposal.status == "failed":
                repo.transition_proposal(session, proposal_id, P.APPROVED, now, expected=(P.FAILED,))
        session.flush()  # before the refresh: expiring cascades to the operations' pending changes
        session.refresh(proposal)
        return proposal


@dataclass(frozen=True)
class Approval:
    proposal_id: str
    status: str
    queued: bool
    """The apply message reached the queue. If not, the clock's re-driver sends it shortly."""


def approve_and_apply(
    runtime: Runtime,
    proposal_id: str,
    actor: str,
    send_apply: Callable[[str], None],
    *,
    transferred: bool = False,
) -> Approval:
    """The one "approve, then apply" flow the CLI, the API and the pages share.

    The approval is committed first; the apply message may then fail to reach the broker (Redis
    down): the approval still stands, and the re-driver sends the apply once the queue is back.
    """
    proposal = approve(runtime, proposal_id, actor, transferred=transferred)
    try:
        send_apply(proposal_id)
    except Exception as exc:
        log.warning(
            "proposal %s approved; the apply waits for the queue (%s)", proposal_id, exc.__class__.__name__
        )
        return Approval(proposal_id, proposal.status, queued=False)
    with runtime.db.transaction() as session:
        repo.get_proposal(session, proposal_id).apply_requested_at = utcnow()
    return Approval(proposal_id, proposal.status, queued=True)


def reject(runtime: Runtime, proposal_id: str, actor: str) -> Proposal:
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if proposal.status == "rejected":
            return proposal
        if not repo.transition_proposal(
            session, proposal_id, P.REJECTED, now, unowned=True, decided_at=now, decided_by=actor
        ):
            raise InvalidInput(f"proposal {proposal_id} is {proposal.status} and cannot be rejected")
        repo.audit(session, proposal.org_id, actor, "proposal_rejected", now, proposal_id=proposal_id)
        session.flush()  # before the refresh: expiring cascades to the operations' pending changes
        session.refresh(proposal)
        return proposal


class ApplyBusy(Conflict):
    """Another applier holds this proposal; try again after `delay_seconds`."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(f"proposal busy; retry in {delay_seconds:.1f}s", delay_seconds)


class _LeaseLost(Exception):
    pass


def apply(runtime: Runtime, proposal_id: str, *, automatic_only: bool = False) -> ApplyOutcome:
    """Apply an approved proposal, or (automatic_only) just its operations that need no approval."""
    lease = timedelta(seconds=runtime.settings.run_lease_seconds * 2)
    allowed = ("proposed", "approved", "applying") if automatic_only else ("approved", "applying")
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        if proposal.organisation.ptdirect_kind == "manual":
            return _wait_for_person(session, proposal, automatic_only)
        token = repo.claim_apply(session, proposal_id, utcnow(), lease, allowed)
        if token is None:
            session.refresh(proposal)
            if proposal.status in allowed and proposal.apply_lease_expires_at is not None:
                remaining = (proposal.apply_lease_expires_at - utcnow()).total_seconds()
                raise ApplyBusy(max(remaining, 0.5))
            return ApplyOutcome(proposal_id, proposal.status)
    try:
        return _apply_claimed(runtime, proposal_id, token, lease, automatic_only)
    except _ApplyFailed as failed:
        try:
            return _fail_proposal(runtime, proposal_id, token, str(failed))
        except _LeaseLost:
            return ApplyOutcome(proposal_id, "lease_lost")
    except _LeaseLost:
        log.warning("proposal %s: another applier took over", proposal_id)
        return ApplyOutcome(proposal_id, "lease_lost")
    finally:
        with runtime.db.transaction() as session:
            repo.release_apply(session, proposal_id, token)


@dataclass(frozen=True)
class _Row:
    """One operation of the proposal being applied, as read when the apply started."""

    id: int
    position: int
    status: str
    cleared: bool
    """Needs no approval, or was approved (here or in an earlier form of the proposal)."""
    approved_at: datetime | None
    operation: Operation


@dataclass(frozen=True)
class _Plan:
    """What the proposal was planned from, and what the current plan says about it."""

    org: Organisation
    planned: PtDirectSnapshot
    rows: list[_Row]
    confirmed_at: datetime | None
    policy_changed: bool
    current_plan: frozenset[tuple[str, str]] | None
    """(op, email) of the newest complete run's plan, when a run newer than this proposal exists."""


def _load(runtime: Runtime, proposal_id: str, token: str, automatic_only: bool) -> _Plan:
    with runtime.db.transaction() as session:
        if not automatic_only:
            repo.transition_proposal(
                session, proposal_id, P.APPLYING, utcnow(), expected=(P.APPROVED, P.APPLYING), token=token
            )
        proposal = repo.get_proposal(session, proposal_id)
        org = proposal.organisation
        session.expunge(org)
        rows = [
            _Row(
                row.id,
                row.position,
                row.status,
                not row.requires_approval or row.approved_at is not None,
                row.approved_at,
                Operation.from_dict(row.document),
            )
            for row in proposal.operations
        ]
        current_plan = _current_plan(session, org.id, proposal.confirmed_at)
        policy_changed = proposal.policy_digest is not None and proposal.policy_digest != policy_digest(
            policy_of(org), scope_of(org)
        )
        return _Plan(
            org,
            parse_snapshot(proposal.planned_state, f"proposal {proposal_id}"),
            rows,
            proposal.confirmed_at,
            policy_changed,
            current_plan,
        )


def _wait_for_person(session: Session, proposal: Proposal, automatic_only: bool) -> ApplyOutcome:
    """`--ptdirect manual`: nothing can change PT Direct but a person; the steps wait for one.

    The person following the checklist is the applier here, so a step gets the checks the API
    apply makes before it sends anything:
    - a proposal planned under another policy or scope is superseded (a new sync re-plans);
    - a step the newest complete sync no longer calls for is closed, never handed over;
    - a removal becomes a step only once a complete sync after its approval still calls for it.
      Until then it waits, and the apply asks for that sync (`resync_org`).

    After a sync (`automatic_only`), the approved steps move on, those approved here and those
    whose approval a replacing proposal carried over; nothing asks for another sync (no loop).
    """
    if proposal.status not in ("approved", "applying"):
        return ApplyOutcome(proposal.id, proposal.status)
    org = proposal.organisation
    if proposal.policy_digest is not None and proposal.policy_digest != policy_digest(
        policy_of(org), scope_of(org)
    ):
        reason = "the organisation's policy or scope changed since this was planned; a new sync re-plans it"
        return _supersede_in(session, proposal, reason)
    handed = [
        row
        for row in proposal.operations
        if row.status in ("pending", "waiting", "failed")
        and (not automatic_only or row.approved_at is not None)
    ]
    if not handed:
        return ApplyOutcome(proposal.id, proposal.status)
    # Hand over only while the proposal is still open as read: a sync that superseded or closed
    # it meanwhile wins (compare-and-set on its status; on PostgreSQL it also holds the row).
    if not repo.transition_proposal(
        session, proposal.id, P.APPROVED, utcnow(), expected=(P.APPROVED, P.APPLYING), unowned=True
    ):
        session.refresh(proposal)
        return ApplyOutcome(proposal.id, proposal.status)
    session.refresh(proposal)
    handed = [row for row in proposal.operations if row.id in {r.id for r in handed}]
    current_plan = _current_plan(session, org.id, proposal.confirmed_at)
    resync = False
    for row in handed:
        operation = Operation.from_dict(row.document)
        if current_plan is not None and not still_called_for([operation], current_plan):
            row.status, row.note = "closed", "no longer called for by the latest sync: never handed over"
        elif _destructive(operation) and not _confirmed_after(proposal.confirmed_at, row.approved_at):
            row.status, row.note = "waiting", WAITING_FOR_SYNC
            resync = resync or not automatic_only
        else:
            row.status, row.note = "manual", None
    return ApplyOutcome(proposal.id, WAITING_FOR_PERSON, resync_org=org.slug if resync else None)


def _current_plan(
    session: Session, org_id: int, confirmed_at: datetime | None
) -> frozenset[tuple[str, str]] | None:
    """(op, email) of the newest complete run's plan, when that run is newer than the proposal's
    last confirmation (else None: the proposal is the newest plan)."""
    latest = repo.latest_complete_run(session, org_id)
    if latest is None or (confirmed_at is not None and latest.finished_at <= confirmed_at):
        return None
    return frozenset(operation_key(op, email) for op, email in latest.plan or ())


def _supersede_in(session: Session, proposal: Proposal, reason: str) -> ApplyOutcome:
    """Supersede an unclaimed proposal (manual mode has no applier lease) in this transaction."""
    now = utcnow()
    if not repo.transition_proposal(
        session, proposal.id, P.SUPERSEDED, now, expected=(P.APPROVED, P.APPLYING), unowned=True, error=reason
    ):
        return ApplyOutcome(proposal.id, proposal.status)
    for row in proposal.operations:
        if row.status not in ("applied", "closed", COULD_NOT_DO):
            row.status, row.note = "closed", "not handed over: " + reason.split(";")[0]
    repo.audit(
        session, proposal.org_id, "worker", "proposal_superseded", now, proposal_id=proposal.id, reason=reason
    )
    log.info("proposal %s superseded: %s", proposal.id, reason)
    return ApplyOutcome(proposal.id, "superseded", resync_org=proposal.organisation.slug)


def _apply_claimed(
    runtime: Runtime, proposal_id: str, token: str, lease: timedelta, automatic_only: bool
) -> ApplyOutcome:
    plan = _load(runtime, proposal_id, token, automatic_only)
    if plan.policy_changed:
        reason = "the organisation's policy or scope changed since this was planned; a new sync re-plans it"
        return _supersede(runtime, proposal_id, token, plan.org.slug, reason)
    try:
        adapter = ptdirect_adapter(plan.org, runtime.secrets)  # a ConfigurationError fails it, recorded
        current = adapter.read()
    except PtsyncError as exc:
        if isinstance(exc, Retryable):
            raise RetryableApplyError(str(exc)) from exc
        return _fail_proposal(runtime, proposal_id, token, str(exc))
    if not _state_is_ours(plan, current):
        reason = "PT Direct changed since this proposal was planned; a new sync re-plans it"
        return _supersede(runtime, proposal_id, token, plan.org.slug, reason)
    step = _Step(runtime, proposal_id, token, lease)
    applied, skipped, resync = _send(plan, current, adapter, step, proposal_id, automatic_only)
    outcome = _settle(runtime, proposal_id, token, applied, automatic_only, skipped)
    return replace(outcome, resync_org=plan.org.slug if resync else None)


def _state_is_ours(plan: _Plan, current: PtDirectSnapshot) -> bool:
    """Only states this proposal itself could have produced: anything else is someone else's change."""
    done = [r.operation for r in plan.rows if r.status == "applied" and not r.operation.op.advisory]
    expected = apply_operations(plan.planned, done)
    in_flight = [r.operation for r in plan.rows if r.status == "applying"]
    acceptable = {state_digest(expected)} | {state_digest(apply_operation(expected, op)) for op in in_flight}
    return state_digest(current) in acceptable


def _send(
    plan: _Plan,
    current: PtDirectSnapshot,
    adapter: PtDirectAdapter,
    step: _Step,
    proposal_id: str,
    automatic_only: bool,
) -> tuple[int, int, bool]:
    """Send each cleared operation the current plan still calls for. Returns (applied, skipped, resync)."""
    transfers_pending = {
        normalise_email(r.operation.email)
        for r in plan.rows
        if r.operation.op is OpKind.TRANSFER_PATIENTS and r.status != "applied"
    }
    applied = skipped = 0
    resync = False
    for row in plan.rows:
        op = row.operation
        if row.status in ("applied", "manual", "closed") or (automatic_only and not row.cleared):
            continue
        if plan.current_plan is not None and not still_called_for([op], plan.current_plan):
            step.mark(row.id, "closed", note="no longer called for by the latest sync: never sent")
            skipped += 1
            continue
        if op.op.advisory:
            step.mark(row.id, "manual")
            continue
        if op.op is OpKind.REMOVE_SHARING_MEMBER and normalise_email(op.email) in transfers_pending:
            step.mark(row.id, "waiting", note="waiting until their patients are transferred")
            continue
        if _destructive(op) and not _confirmed_after(plan.confirmed_at, row.approved_at):
            step.mark(row.id, "waiting", note=WAITING_FOR_SYNC)
            resync = True
            continue
        if is_in_effect(current, op):
            step.mark(row.id, "applied", op=op)
            continue
        step.mark(row.id, "applying")
        try:
            adapter.apply(op, idempotency_key=f"{proposal_id}:{row.position}")
        except ConnectorError as exc:
            if exc.retryable:
                raise RetryableApplyError(str(exc)) from exc
            step.mark(row.id, "failed", error=str(exc))
            raise _ApplyFailed(str(exc)) from exc
        current = apply_operation(current, op)
        step.mark(row.id, "applied", op=op)
        applied += 1
    return applied, skipped, resync


def _destructive(op: Operation) -> bool:
    return op.op.removal or op.op is OpKind.SET_MASTER_ACCOUNT


WAITING_FOR_SYNC = "waiting for a sync to confirm it is still called for"


def _confirmed_after(confirmed_at: datetime | None, approved_at: datetime | None) -> bool:
    """A removal goes out (or, by hand, becomes a step) only if a complete run planned it again
    after it was approved (`confirmed_at`, the proposal's, after the operation's `approved_at`).

    Approval says "yes, remove them"; the confirming run says "and they are still gone". Both are
    needed, so an approval given against an old picture can never remove someone who came back.
    """
    return confirmed_at is not None and approved_at is not None and confirmed_at > approved_at


class _ApplyFailed(Exception):
    pass


class _Step:
    """Records each operation's progress, only while this applier still holds the lease."""

    def __init__(self, runtime: Runtime, proposal_id: str, token: str, lease: timedelta) -> None:
        self.runtime = runtime
        self.proposal_id = proposal_id
        self.token = token
        self.lease = lease

    def mark(
        self,
        row_id: int,
        status: str,
        *,
        error: str | None = None,
        op: Operation | None = None,
        note: str | None = None,
    ) -> None:
        now = utcnow()
        with self.runtime.db.transaction() as session:
            if not repo.holds_apply(session, self.proposal_id, self.token, now, self.lease):
                raise _LeaseLost()
            row = session.get(ProposalOperation, row_id)
            if row is None or (row.status == status and row.note == note):
                return
            values = {"error": error, "note": note}
            if status == "applied":
                values["applied_at"] = now
            if not repo.transition_operation(session, row_id, OperationStatus(status), **values):
                raise IllegalTransition(f"operation {row_id}: {row.status} -> {status}")
            if status == "applied":
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


def _settle(
    runtime: Runtime, proposal_id: str, token: str, applied: int, automatic_only: bool, skipped: int = 0
) -> ApplyOutcome:
    """The proposal's status after an apply pass, set only while this applier holds the lease."""
    now = utcnow()
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        org_id = proposal.org_id
        machine_ops = [row for row in proposal.operations if row.status not in ("manual", "closed")]
        if not machine_ops and skipped:
            target, values, action = (
                P.SUPERSEDED,
                {"error": "the latest sync no longer calls for any of its changes: nothing was sent"},
                "proposal_superseded",
            )
        elif all(row.status == "applied" for row in machine_ops):
            target, values, action = P.APPLIED, {"applied_at": now}, "proposal_applied"
        elif not automatic_only:
            target, values, action = P.APPROVED, {}, None  # steps wait for a person or a confirming sync
        else:
            return ApplyOutcome(proposal_id, proposal.status, applied, skipped=skipped)
        if not repo.transition_proposal(session, proposal_id, target, now, token=token, **values):
            raise _LeaseLost()
        if action:
            repo.audit(session, org_id, "worker", action, now, proposal_id=proposal_id)
        session.refresh(proposal)
        notices = notify_events.record_apply_waits(session, proposal)
        outcome = ApplyOutcome(proposal_id, target.value, applied, skipped=skipped)
    notify_delivery.dispatch(notices)
    return outcome


def _supersede(runtime: Runtime, proposal_id: str, token: str, slug: str, reason: str) -> ApplyOutcome:
    now = utcnow()
    with runtime.db.transaction() as session:
        if not repo.transition_proposal(session, proposal_id, P.SUPERSEDED, now, token=token, error=reason):
            raise _LeaseLost()
        proposal = repo.get_proposal(session, proposal_id)
        for row in proposal.operations:
            if row.status not in ("applied", "closed"):
                row.status, row.note = "closed", "not sent: " + reason.split(";")[0]
        repo.audit(
            session,
            proposal.org_id,
            "worker",
            "proposal_superseded",
            now,
            proposal_id=proposal_id,
            reason=reason,
        )
    log.info("proposal %s superseded: %s", proposal_id, reason)
    return ApplyOutcome(proposal_id, "superseded", resync_org=slug)


def _fail_proposal(runtime: Runtime, proposal_id: str, token: str, reason: str) -> ApplyOutcome:
    now = utcnow()
    with runtime.db.transaction() as session:
        if not repo.transition_proposal(session, proposal_id, P.FAILED, now, token=token, error=reason):
            raise _LeaseLost()
        proposal = repo.get_proposal(session, proposal_id)
        session.refresh(proposal)
        repo.audit(
            session, proposal.org_id, "worker", "proposal_failed", now, proposal_id=proposal_id, error=reason
        )
        notices = notify_events.record_apply_event(session, proposal, "failed", reason)
    notify_delivery.dispatch(notices)
    return ApplyOutcome(proposal_id, "failed")


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


@dataclass(frozen=True)
class Checklist:
    """A proposal as steps for a person, and where its organisation keeps PT Direct's state."""

    status: str
    error: str | None
    ptdirect_kind: str
    ptdirect_path: str | None
    steps: list[ChecklistStep]


def checklist_steps(runtime: Runtime, proposal_id: str) -> Checklist:
    """Every operation of the proposal as a step, with what was done (or could not be) so far."""
    with runtime.db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        org = proposal.organisation
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
        return Checklist(proposal.status, proposal.error, org.ptdirect_kind, org.ptdirect_path, steps)


OPEN_FOR_STEPS = ("proposed", "approved", "reopened", "failed")


@dataclass(frozen=True)
class StepsRecorded:
    """What recording checklist steps left behind: the proposal as it now reads, and where PT
    Direct's state lives (manual: the steps became a new recorded state)."""

    proposal: views.ProposalView
    ptdirect_kind: str

    @property
    def status(self) -> str:
        return self.proposal.status


def record_steps(
    runtime: Runtime,
    proposal_id: str,
    actor: str,
    *,
    done: set[int],
    could_not: dict[int, str] | None = None,
) -> StepsRecorded:
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
        rows = _steps_to_record(proposal, done | could_not.keys())
        if proposal.organisation.ptdirect_kind == "manual" and done:
            _record_manual_state(session, proposal, sorted(done), actor)
        for position in sorted(done):
            rows[position].status = "applied"
            rows[position].applied_at = now
            rows[position].error = None
        for position, reason in could_not.items():
            rows[position].status = COULD_NOT_DO
            rows[position].error = (reason.strip() or "the admin could not do this step")[:500]
        _settle_by_hand(proposal, actor, now)
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
        return StepsRecorded(views.proposal_view(proposal), proposal.organisation.ptdirect_kind)


def _steps_to_record(proposal: Proposal, positions: set[int]) -> dict[int, ProposalOperation]:
    """The proposal's steps by position, once every position given is an open, unsettled step."""
    if proposal.status not in OPEN_FOR_STEPS:
        if proposal.superseded_by:  # steps done from an old checklist belong to its current form
            successor = proposal.superseded_by
            raise InvalidInput(
                f"proposal {proposal.id} is {proposal.status}: its current form is proposal {successor}; "
                f"record the steps there (`ptsync checklist {successor}`, then "
                f"`ptsync mark-applied {successor}`)"
            )
        raise InvalidInput(f"proposal {proposal.id} is {proposal.status}; only open proposals can be marked")
    rows = {row.position: row for row in proposal.operations}
    for position in sorted(positions):
        if position not in rows:
            raise InvalidInput(f"proposal {proposal.id} has no step {position + 1}")
        if rows[position].status in SETTLED:
            raise InvalidInput(f"step {position + 1} of proposal {proposal.id} is already recorded")
    return rows


def _record_manual_state(session: Session, proposal: Proposal, done: list[int], actor: str) -> None:
    """`--ptdirect manual`: the steps done become a new recorded PT Direct state version."""
    from worker.services.ptdirect_state import latest_in, record_in

    org = proposal.organisation
    rows = {row.position: row for row in proposal.operations}
    current = latest_in(session, org.id, org.slug)
    base = current.snapshot if current is not None else parse_snapshot(proposal.planned_state, "plan")
    record_in(
        session,
        org.id,
        org.slug,
        apply_operations(base, [Operation.from_dict(rows[p].document) for p in done]),
        actor,
        "checklist",
        note=f"proposal {proposal.id}: steps {', '.join(str(p + 1) for p in done)}",
    )


def _settle_by_hand(proposal: Proposal, actor: str, now: datetime) -> None:
    """`applied_by_hand` once every step is settled (naming those not done), else `approved`."""
    proposal.decided_by = proposal.decided_by or actor
    proposal.decided_at = proposal.decided_at or now
    if not all(row.status in SETTLED for row in proposal.operations):
        proposal.status = "approved"
        return
    proposal.status = "applied_by_hand"
    proposal.applied_at = now
    proposal.verified_at = None
    skipped = [row for row in proposal.operations if row.status == COULD_NOT_DO]
    proposal.error = (
        "not done: " + "; ".join(f"step {row.position + 1} ({row.error})" for row in skipped)
        if skipped
        else None
    )


def mark_applied_by_hand(
    runtime: Runtime, proposal_id: str, actor: str, could_not: dict[int, str] | None = None
) -> StepsRecorded:
    """Record that a person followed the whole checklist (but the `could_not` steps)."""
    steps = checklist_steps(runtime, proposal_id).steps
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
