"""Applying operations to a PT Direct snapshot, in memory.

The file adapter writes the result back; tests use it to check convergence (apply a plan, plan
again: nothing left). Operations already in effect are skipped, so applying twice is harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace

from sharing.identity import normalise_email
from sharing.model import MasterAccount, PtDirectSnapshot, PtUser, SharingMember, UserStatus
from sharing.operations import Operation, OpKind


def apply_operations(snapshot: PtDirectSnapshot, operations: Iterable[Operation]) -> PtDirectSnapshot:
    for operation in operations:
        snapshot = apply_operation(snapshot, operation)
    return snapshot


def member_after(current: SharingMember | None, operation: Operation) -> SharingMember:
    """The sharing member an add or enable operation leaves behind: the one merge rule.

    Adding only ever turns sharing on (what the member already shares stays shared); enabling
    patient sharing adds a new member sharing content and patients, and leaves an existing
    member's content sharing as it is. The in-memory apply and the PT Direct API adapter both
    use this, so the state ptsync predicts is the state it writes.
    """
    if operation.op is OpKind.ENABLE_PATIENT_SHARING:
        if current is None:
            return SharingMember(operation.email, True, True)
        return replace(current, share_patients=True)
    if operation.op is not OpKind.ADD_SHARING_MEMBER:
        raise ValueError(f"{operation.op.value} does not change a sharing member's flags")
    wanted = SharingMember(operation.email, bool(operation.share_content), bool(operation.share_patients))
    if current is None:
        return wanted
    return replace(
        current,
        share_content=current.share_content or wanted.share_content,
        share_patients=current.share_patients or wanted.share_patients,
    )


def is_in_effect(snapshot: PtDirectSnapshot, operation: Operation) -> bool:
    """True when the state already shows what the operation would do."""
    return apply_operation(snapshot, operation) == snapshot


def apply_operation(snapshot: PtDirectSnapshot, operation: Operation) -> PtDirectSnapshot:
    email = normalise_email(operation.email)
    members = list(snapshot.sharing_members)
    index = next((i for i, member in enumerate(members) if normalise_email(member.email) == email), None)
    master = snapshot.master_account
    kind = operation.op
    if kind in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING):
        if index is None:
            members.append(member_after(None, operation))
        else:
            members[index] = member_after(members[index], operation)
        return replace(snapshot, sharing_members=tuple(members))
    if kind is OpKind.REMOVE_SHARING_MEMBER:
        if index is not None:
            del members[index]
        return replace(snapshot, sharing_members=tuple(members))
    if kind is OpKind.ADD_MASTER_RECIPIENT:
        if master is None or any(normalise_email(r) == email for r in master.recipients):
            return snapshot
        return replace(
            snapshot, master_account=replace(master, recipients=(*master.recipients, operation.email))
        )
    if kind is OpKind.REMOVE_MASTER_RECIPIENT:
        if master is None:
            return snapshot
        kept = tuple(r for r in master.recipients if normalise_email(r) != email)
        return replace(snapshot, master_account=replace(master, recipients=kept))
    if kind is OpKind.SET_MASTER_ACCOUNT:
        if master is not None and normalise_email(master.email) == email:
            return snapshot
        recipients = master.recipients if master else ()
        return replace(snapshot, master_account=MasterAccount(operation.email, recipients))
    if kind is OpKind.INVITE_PRACTITIONER:
        if any(normalise_email(user.email) == email for user in snapshot.users):
            return snapshot
        invited = PtUser(operation.email, operation.name or operation.email, UserStatus.UNCONFIRMED)
        return replace(snapshot, users=(*snapshot.users, invited))
    return snapshot  # transfer_patients changes no share-group state


def still_called_for(
    planned: Iterable[Operation], current_plan: Iterable[tuple[str, str]]
) -> tuple[Operation, ...]:
    """The planned operations that the current plan (its operation keys) still calls for.

    An apply sends only these: a plan made from one picture of the clinic is never applied to
    another. Whatever the newer plan dropped (a leaver who came back) is closed, never sent.
    """
    wanted = set(current_plan)
    return tuple(op for op in planned if op.key in wanted)


def state_digest(snapshot: PtDirectSnapshot) -> str:
    """A hash of the share-group state a plan depends on (not of client lists).

    A proposal stores it; applying re-reads PT Direct and re-plans if the digest changed.
    """
    master = snapshot.master_account
    canonical = {
        "users": sorted(
            [
                normalise_email(u.email) or "",
                u.status.value,
                u.practitioner_access,
                f"{u.pms_link.system}:{u.pms_link.practitioner_id}" if u.pms_link else "",
            ]
            for u in snapshot.users
        ),
        "master": None
        if master is None
        else [normalise_email(master.email), sorted(normalise_email(r) for r in master.recipients)],
        "members": sorted(
            [normalise_email(m.email), m.share_content, m.share_patients] for m in snapshot.sharing_members
        ),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()
