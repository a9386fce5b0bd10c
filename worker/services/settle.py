"""Settling proposals: every complete run leaves exactly one current plan behind.

A proposal is a plan made from one picture of the clinic. Once a newer complete run has looked
again, the old picture no longer counts: what the new plan still calls for carries over (with
the admin's approval, so nobody re-approves the same change after every hourly sync) and the
rest is closed with a reason. So approving an old proposal can never apply a removal that the
PMS no longer supports (a practitioner back from leave), nor one planned under an old policy.

Proposals being applied right now (a live apply lease) are left to their applier; the next
complete run settles them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from sharing import MasterRecipients, Mode, Operation, OpKind, Policy, SharingScope
from sharing.scope import Scope
from worker.clock import new_id
from worker.lifecycle import OPEN_PROPOSALS, ProposalStatus
from worker.store import repositories as repo
from worker.store.models import Organisation, Proposal, ProposalOperation

OPEN_STATES = tuple(sorted(state.value for state in OPEN_PROPOSALS))


def policy_of(org: Organisation) -> Policy:
    return Policy(
        mode=Mode(org.mode),
        sharing_scope=SharingScope(org.sharing_scope),
        master_recipients=MasterRecipients(org.master_recipients),
        schedule=org.schedule,
        lookback_days=org.lookback_days,
        removal_threshold_percent=org.removal_threshold_percent,
        removal_threshold_people=org.removal_threshold_people,
    )


def policy_document(policy: Policy) -> dict[str, Any]:
    """The parts of a policy that change what a plan contains (not the schedule)."""
    return {
        "mode": policy.mode.value,
        "sharing_scope": policy.sharing_scope.value,
        "master_recipients": policy.master_recipients.value,
        "lookback_days": policy.lookback_days,
        "removal_threshold_percent": policy.removal_threshold_percent,
        "removal_threshold_people": policy.removal_threshold_people,
    }


def policy_digest(policy: Policy, scope: Scope | None = None) -> str:
    """What a proposal was planned under: the policy and the organisation's scope (a clinic
    group's locations and people decide who is in the plan as much as the policy does). An
    apply under another digest supersedes the proposal instead of sending it.

    Without a scope the digest is the policy's alone, as it was before scopes counted."""
    document: dict[str, Any] = policy_document(policy)
    if scope is not None and not scope.everything:  # as a set: the same scope in another order is the same
        document["scope"] = {name: sorted(entries) for name, entries in scope.as_dict().items()}
    encoded = json.dumps(document, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class NewPlan:
    """What a complete run decided, for settling the organisation's open proposals."""

    org_id: int
    run_id: str
    operations: tuple[Operation, ...]
    state_digest: str
    planned_state: dict[str, Any]
    policy_digest: str


def settle(session: Session, plan: NewPlan, now: datetime) -> Proposal | None:
    """Make the plan the organisation's one open proposal; returns it (None: nothing to do)."""
    open_proposals = [p for p in _open_proposals(session, plan.org_id) if not _busy(p, now)]
    newest = open_proposals[0] if open_proposals else None
    if newest is not None and plan.operations and _same_plan(newest, plan):
        newest.confirmed_at = now
        for older in open_proposals[1:]:
            _close(session, older, now, f"replaced by proposal {newest.id}", successor=newest)
        return newest
    if not plan.operations:
        for proposal in open_proposals:
            reason = f"nothing left to change: run {plan.run_id} found none of it needed"
            _close(session, proposal, now, reason)
        return None
    proposal = _new_proposal(plan, open_proposals, now)
    session.add(proposal)
    session.flush()
    for older in open_proposals:
        reason = f"replaced by proposal {proposal.id} (run {plan.run_id})"
        _close(session, older, now, reason, successor=proposal)
    repo.audit(
        session,
        plan.org_id,
        "worker",
        "proposal_created",
        now,
        proposal_id=proposal.id,
        operations=len(plan.operations),
        carried_approvals=sum(1 for op in proposal.operations if op.approved_at is not None),
        superseded=[p.id for p in open_proposals],
    )
    return proposal


def cleared_to_apply(proposal: Proposal) -> bool:
    """Whether any operation may be applied without asking anyone again."""
    return any(
        row.status in ("pending", "waiting")
        and (not row.requires_approval or row.approved_at is not None)
        and not OpKind(row.op).advisory
        for row in proposal.operations
    )


def _open_proposals(session: Session, org_id: int) -> list[Proposal]:
    return list(session.scalars(_OPEN_PROPOSALS, {"org_id": org_id}))


_OPEN_PROPOSALS = (  # built once: every run that reconciles asks it
    select(Proposal)
    .where(Proposal.org_id == bindparam("org_id"), Proposal.status.in_(OPEN_STATES))
    .order_by(Proposal.created_at.desc(), Proposal.id.desc())
)


def _busy(proposal: Proposal, now: datetime) -> bool:
    lease = proposal.apply_lease_expires_at
    return proposal.apply_token is not None and lease is not None and lease > now


def _signature(operations: list[dict[str, Any]]) -> list[tuple[str, str, bool, Any, Any]]:
    return sorted(
        (
            doc["op"],
            doc["email"].strip().lower(),
            bool(doc.get("requires_approval", True)),
            doc.get("share_content"),
            doc.get("share_patients"),
        )
        for doc in operations
    )


def _same_plan(proposal: Proposal, plan: NewPlan) -> bool:
    if proposal.status not in ("proposed", "approved") or proposal.policy_digest != plan.policy_digest:
        return False
    if proposal.state_digest != plan.state_digest:
        return False
    if any(row.status in ("closed", "failed") for row in proposal.operations):
        return False
    current = _signature([row.document for row in proposal.operations])
    return current == _signature([op.as_dict() for op in plan.operations])


def _previous_rows(open_proposals: list[Proposal]) -> dict[tuple[str, str], ProposalOperation]:
    """The newest earlier row for each (op, email): where approvals and confirmations come from."""
    rows: dict[tuple[str, str], ProposalOperation] = {}
    for proposal in open_proposals:  # newest first
        for row in proposal.operations:
            key = (row.op, row.email.strip().lower())
            if key in rows:
                continue
            approved = row.approved_at is not None or (
                proposal.status == "approved" and row.requires_approval and proposal.decided_at is not None
            )
            if approved or row.status == "applied":
                rows[key] = row
    return rows


def _new_proposal(plan: NewPlan, open_proposals: list[Proposal], now: datetime) -> Proposal:
    previous = _previous_rows(open_proposals)
    decided = {p.id: p for p in open_proposals}
    operations = []
    for position, operation in enumerate(plan.operations):
        row = ProposalOperation(
            position=position,
            op=operation.op.value,
            email=operation.email,
            requires_approval=operation.requires_approval,
            status="pending",
            document=operation.as_dict(),
        )
        earlier = previous.get((operation.op.value, operation.email.strip().lower()))
        if earlier is not None:
            owner = decided.get(earlier.proposal_id)
            row.approved_at = earlier.approved_at or (owner.decided_at if owner else None)
            row.approved_by = earlier.approved_by or (owner.decided_by if owner else None)
            if operation.op is OpKind.TRANSFER_PATIENTS and earlier.status == "applied":
                row.status, row.applied_at = "applied", earlier.applied_at  # a person confirmed it
        operations.append(row)
    needs_approval = [row for row in operations if row.requires_approval]
    approved = bool(needs_approval) and all(row.approved_at is not None for row in needs_approval)
    proposal = Proposal(
        id=new_id(),
        org_id=plan.org_id,
        run_id=plan.run_id,
        status="approved" if approved else "proposed",
        state_digest=plan.state_digest,
        planned_state=plan.planned_state,
        policy_digest=plan.policy_digest,
        created_at=now,
        confirmed_at=now,
    )
    if approved:
        first = min(needs_approval, key=lambda row: row.approved_at)
        proposal.decided_at, proposal.decided_by = first.approved_at, first.approved_by
    proposal.operations = operations
    return proposal


def _close(
    session: Session, proposal: Proposal, now: datetime, reason: str, successor: Proposal | None = None
) -> None:
    """Supersede an open proposal, unless an applier took it meanwhile (compare-and-set)."""
    closed = repo.transition_proposal(
        session,
        proposal.id,
        ProposalStatus.SUPERSEDED,
        now,
        unowned=True,
        error=reason,
        superseded_by=successor.id if successor is not None else None,
    )
    if not closed:
        return  # being applied: its applier finishes it; the next complete run settles it
    carried = set()
    if successor is not None:
        carried = {(row.op, row.email.strip().lower()) for row in successor.operations}
    for row in proposal.operations:
        if row.status in ("applied", "closed", "could_not_do"):
            continue
        if (row.op, row.email.strip().lower()) in carried:
            row.note = f"carried over to proposal {successor.id}" if successor else None
        else:
            row.note = "no longer called for by the latest sync: never sent"
        row.status = "closed"
    repo.audit(
        session, proposal.org_id, "worker", "proposal_superseded", now, proposal_id=proposal.id, reason=reason
    )
