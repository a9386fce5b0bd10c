"""Operations a proposal may hold, and which of them a machine may apply unasked."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sharing.identity import normalise_email


class OpKind(enum.Enum):
    ADD_SHARING_MEMBER = "add_sharing_member"
    ENABLE_PATIENT_SHARING = "enable_patient_sharing"
    ADD_MASTER_RECIPIENT = "add_master_recipient"
    REMOVE_SHARING_MEMBER = "remove_sharing_member"
    REMOVE_MASTER_RECIPIENT = "remove_master_recipient"
    SET_MASTER_ACCOUNT = "set_master_account"
    INVITE_PRACTITIONER = "invite_practitioner"
    TRANSFER_PATIENTS = "transfer_patients"

    # The sets hold the kinds' values: a str hashes in C, an Enum member through Python's
    # `Enum.__hash__`, and plans and reports ask these of every operation.

    @property
    def safe(self) -> bool:
        """Additions that cannot cut anyone off; `apply-safe` may apply them unasked."""
        return self._value_ in _SAFE

    @property
    def advisory(self) -> bool:
        """Only a person can do these, in the PT Direct console."""
        return self._value_ in _ADVISORY

    @property
    def removal(self) -> bool:
        return self._value_ in _REMOVALS


_SAFE = frozenset(
    kind._value_
    for kind in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING, OpKind.ADD_MASTER_RECIPIENT)
)
_ADVISORY = frozenset(kind._value_ for kind in (OpKind.INVITE_PRACTITIONER, OpKind.TRANSFER_PATIENTS))
_REMOVALS = frozenset(kind._value_ for kind in (OpKind.REMOVE_SHARING_MEMBER, OpKind.REMOVE_MASTER_RECIPIENT))


def operation_key(op: str, email: str) -> tuple[str, str]:
    """What an operation is about: its kind and its person (`normalise_email`'s: NFC, stripped,
    case-insensitive; "" for none)."""
    return (op, normalise_email(email) or "")


@dataclass(frozen=True, slots=True, init=False)
class Operation:
    op: OpKind
    email: str
    requires_approval: bool = True
    share_content: bool | None = None
    share_patients: bool | None = None
    name: str | None = None
    reason: str = ""

    def __init__(
        self,
        op: OpKind,
        email: str,
        requires_approval: bool = True,
        share_content: bool | None = None,
        share_patients: bool | None = None,
        name: str | None = None,
        reason: str = "",
    ) -> None:
        # Through the slots' own setters: a frozen dataclass's generated `__init__` goes through
        # `object.__setattr__` by name, about twice as slow, and a plan has thousands.
        _set_op(self, op)
        _set_email(self, email)
        _set_requires_approval(self, requires_approval)
        _set_share_content(self, share_content)
        _set_share_patients(self, share_patients)
        _set_name(self, name)
        _set_reason(self, reason)

    @property
    def key(self) -> tuple[str, str]:
        """What the operation is about, for de-duplication and idempotency keys."""
        return operation_key(self.op.value, self.email)

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"op": self.op.value, "email": self.email}
        if self.op is OpKind.ADD_SHARING_MEMBER:
            document["share_content"] = self.share_content
            document["share_patients"] = self.share_patients
        if self.op is OpKind.INVITE_PRACTITIONER and self.name:
            document["name"] = self.name
        document["requires_approval"] = self.requires_approval
        if self.op.advisory:
            document["advisory"] = True
        if self.reason:
            document["reason"] = self.reason
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Operation:
        return cls(
            op=OpKind(document["op"]),
            email=document["email"],
            requires_approval=bool(document.get("requires_approval", True)),
            share_content=document.get("share_content"),
            share_patients=document.get("share_patients"),
            name=document.get("name"),
            reason=document.get("reason", ""),
        )


_set_op = Operation.op.__set__  # type: ignore[attr-defined]
_set_email = Operation.email.__set__  # type: ignore[attr-defined]
_set_requires_approval = Operation.requires_approval.__set__  # type: ignore[attr-defined]
_set_share_content = Operation.share_content.__set__  # type: ignore[attr-defined]
_set_share_patients = Operation.share_patients.__set__  # type: ignore[attr-defined]
_set_name = Operation.name.__set__  # type: ignore[attr-defined]
_set_reason = Operation.reason.__set__  # type: ignore[attr-defined]
