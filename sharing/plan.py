"""Planning: the operations that take PT Direct to the state the policy asks for.

Like ssosync's diff functions, this returns a list of operations and changes nothing. Safety
rules live here, in one place: unconfirmed users and the master account's patient sharing are
never touched, removals always wait for a person, and an incomplete fetch plans no removals.
"""

from __future__ import annotations

from operator import itemgetter

from sharing.context import Context
from sharing.identity import normalise_email
from sharing.model import MasterRecipients, Mode, PtUser
from sharing.operations import Operation, OpKind

# Additions first; a departed member's patients are transferred before anyone is removed. By
# the kinds' values (a str hashes in C, an Enum member in Python), each a one-digit prefix of
# an operation's sort key: the key is one string (a string compares in half a pair's time).
_ORDER = {
    kind._value_: str(index)
    for index, kind in enumerate(
        (
            OpKind.ADD_SHARING_MEMBER,
            OpKind.ENABLE_PATIENT_SHARING,
            OpKind.ADD_MASTER_RECIPIENT,
            OpKind.SET_MASTER_ACCOUNT,
            OpKind.INVITE_PRACTITIONER,
            OpKind.TRANSFER_PATIENTS,
            OpKind.REMOVE_SHARING_MEMBER,
            OpKind.REMOVE_MASTER_RECIPIENT,
        )
    )
}


def plan_operations(context: Context) -> tuple[Operation, ...]:
    if context.policy.mode is Mode.OBSERVE:
        return ()
    planned = [*_sharing_additions(context), *_master_additions(context)]
    if context.complete:
        planned += [*_departures(context), *_master_departures(context)]
    # Each operation's email is normalised and its user found once, for both guards and for its
    # key (`Operation.key`'s value: NFC, stripped, lower case): a plan has thousands. An addition
    # (nearly every operation) needs only `_may_touch`'s user test, made here without the two
    # calls (`_cuts_off_active` never stops one); each operation's sort key is made as it is
    # kept, and the sort compares the keys alone (ties keep plan order, as before).
    users = context.users
    master_email = context.master_email
    unique: dict[tuple[str, str], tuple[str, Operation]] = {}
    for op in planned:
        email = normalise_email(op.email)
        user = users.get(email or "")
        kind = op.op._value_
        if kind in _ADDITIONS:
            if user is None or not user.confirmed or (email == master_email and kind in _GIVES_PATIENTS):
                continue
        elif not _may_touch(context, op, email, user) or _cuts_off_active(context, op, email or "", user):
            continue
        unique[(kind, email or "")] = (_ORDER[kind] + op.email.lower(), op)
    ordered = [op for _, op in sorted(unique.values(), key=itemgetter(0))]
    if context.policy.mode is not Mode.APPLY_SAFE:
        # Nothing is automatic: every operation requires approval, as operations are made.
        return tuple(op if op.requires_approval else _with_approval(context, op) for op in ordered)
    return tuple(_with_approval(context, op) for op in ordered)


_ADDITIONS = frozenset(
    kind._value_
    for kind in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING, OpKind.ADD_MASTER_RECIPIENT)
)
"""Kinds `_may_touch` allows for a confirmed user (but patient sharing never for the master
account) and `_cuts_off_active` never stops (neither a removal nor a transfer)."""
_GIVES_PATIENTS = frozenset(
    kind._value_ for kind in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING)
)


def _may_touch(context: Context, op: Operation, email: str | None, user: PtUser | None) -> bool:
    """`email`: the operation's, normalised; `user`: the PT Direct user of that email."""
    if op.op is OpKind.INVITE_PRACTITIONER:
        return user is None
    if user is None or not user.confirmed:
        return False
    gives_patient_sharing = op.op in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING)
    return not (email == context.master_email and gives_patient_sharing)


def _cuts_off_active(context: Context, op: Operation, email: str, user: PtUser | None) -> bool:
    """A last guard: nothing destructive for anyone an active PMS practitioner could be.

    `email`: the operation's, normalised ("" for none); `user`: the PT Direct user of that email.
    """
    if not (op.op.removal or op.op is OpKind.TRANSFER_PATIENTS):
        return False
    link = user.pms_link if user else None
    same_system = link is not None and link.system.strip().lower() == context.pms.system.strip().lower()
    linked = context.practitioners.get(link.practitioner_id) if link and same_system else None
    return email in context.active_pms_emails or (linked is not None and linked.active)


def _with_approval(context: Context, op: Operation) -> Operation:
    automatic = context.policy.mode is Mode.APPLY_SAFE and op.op.safe
    if op.requires_approval == (not automatic):
        return op  # already right (an operation requires approval unless said otherwise)
    return Operation(
        op=op.op,
        email=op.email,
        requires_approval=not automatic,
        share_content=op.share_content,
        share_patients=op.share_patients,
        name=op.name,
        reason=op.reason,
    )


def _sharing_additions(context: Context) -> list[Operation]:
    operations = []
    practitioners = context.practitioners
    for practitioner_id, user, member in context.sharing_gaps:
        name = practitioners[practitioner_id].name
        if member is None:
            operations.append(
                Operation(
                    OpKind.ADD_SHARING_MEMBER,
                    user.email,
                    share_content=True,
                    share_patients=True,
                    reason=f"{name} should share patients with colleagues who treat the same patients",
                )
            )
        else:  # a member who does not share patients
            operations.append(
                Operation(
                    OpKind.ENABLE_PATIENT_SHARING,
                    user.email,
                    reason=f"{name} is in practitioner sharing but does not share patients",
                )
            )
    return operations


def _master_additions(context: Context) -> list[Operation]:
    if (
        context.ptdirect.master_account is None
        or context.policy.master_recipients is not MasterRecipients.ALL_ACTIVE
    ):
        return []
    practitioners = context.practitioners
    return [
        Operation(
            OpKind.ADD_MASTER_RECIPIENT,
            user.email,
            reason=f"{practitioners[pid].name} is active and should receive master content",
        )
        for pid, user in context.master_gaps
    ]


def _departures(context: Context) -> list[Operation]:
    operations = []
    for departure in context.departures():
        user = departure.user
        operations.append(
            Operation(
                OpKind.TRANSFER_PATIENTS,
                user.email,
                reason=f"transfer {user.name}'s patients to a colleague before removing them",
            )
        )
        operations.append(
            Operation(
                OpKind.REMOVE_SHARING_MEMBER,
                user.email,
                reason=f"{user.name} has left the PMS (only after their patients are transferred)",
            )
        )
    return operations


def _master_departures(context: Context) -> list[Operation]:
    if (
        context.ptdirect.master_account is None
        or context.policy.master_recipients is not MasterRecipients.ALL_ACTIVE
    ):
        return []
    operations = []
    users = context.users
    # `departed_reason`'s first test as one set difference: nearly every recipient is active
    # in the PMS (the keys are normalised already). The plan is sorted afterwards.
    for email in context.recipients - context.active_pms_emails:
        user = users.get(email)
        if user is None or context.departed_reason(email) is None:
            continue
        operations.append(
            Operation(
                OpKind.REMOVE_MASTER_RECIPIENT,
                user.email,
                reason=f"{user.name} has left the PMS",
            )
        )
    return operations
