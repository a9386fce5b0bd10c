"""Domain types of the reconciliation core.

Everything here is an immutable value: a run's inputs are snapshots taken once, and the core
never mutates them, so the same inputs always give the same findings and operations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sharing.access import AccessLog, AccessSource, AccessStatus, PatientAccess


@dataclass(frozen=True, slots=True)
class PmsPractitioner:
    id: str
    name: str
    email: str | None = None
    active: bool = True
    role: str | None = None
    updated_at: str | None = None
    locations: tuple[str, ...] = ()
    """Ids of the PMS locations the practitioner works at, where the PMS lists them."""


@dataclass(frozen=True, slots=True)
class PmsLocation:
    """A site of the PMS account: a Cliniko business, a FHIR Location or Organization, a Nookal or
    Semble location, or a value of an export's location column."""

    id: str
    name: str
    archived: bool = False


@dataclass(frozen=True, slots=True)
class AccessGroup:
    """An access model that grants every member access to each other's patients."""

    id: str
    name: str
    practitioner_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PmsLink:
    system: str
    practitioner_id: str


class UserStatus(enum.Enum):
    CONFIRMED = "confirmed"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True, slots=True)
class PtUser:
    email: str
    name: str
    status: UserStatus = UserStatus.CONFIRMED
    practitioner_access: bool = True
    pms_link: PmsLink | None = None
    confirmed: bool = field(init=False, repr=False, compare=False)
    """Whether `status` is CONFIRMED: kept as a slot, not worked out on every read (a reconcile
    asks it of every user several times: 8,000 times at 2,000 practitioners)."""

    def __post_init__(self) -> None:
        _set_confirmed(self, self.status is UserStatus.CONFIRMED)


_set_confirmed = PtUser.confirmed.__set__  # type: ignore[attr-defined]  # the frozen slot's setter


@dataclass(frozen=True, slots=True)
class MasterAccount:
    email: str
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SharingMember:
    email: str
    share_content: bool = True
    share_patients: bool = True


@dataclass(frozen=True, slots=True)
class PhysitrackClient:
    """A client record as Physitrack's v2 API lists it under one practitioner."""

    practitioner_email: str
    client_id: str
    external_id: str | None = None
    name: str | None = None
    year_of_birth: int | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class PtDirectSnapshot:
    users: tuple[PtUser, ...] = ()
    master_account: MasterAccount | None = None
    sharing_members: tuple[SharingMember, ...] = ()
    clients: tuple[PhysitrackClient, ...] | None = None
    """Physitrack client lists, when practitioner API keys are configured (else None)."""
    complete: bool = True
    """False when any part of the fetch failed: nothing it implies may be acted on."""


class Mode(enum.Enum):
    OBSERVE = "observe"
    PROPOSE = "propose"
    APPLY_SAFE = "apply-safe"


class SharingScope(enum.Enum):
    CO_TREATING = "co-treating"
    EVERYONE = "everyone"


class MasterRecipients(enum.Enum):
    ALL_ACTIVE = "all-active"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Policy:
    mode: Mode = Mode.PROPOSE
    sharing_scope: SharingScope = SharingScope.CO_TREATING
    master_recipients: MasterRecipients = MasterRecipients.ALL_ACTIVE
    schedule: str = "0 * * * *"
    lookback_days: int = 540
    recent_days: int = 90
    """Shared patients seen within this many days make a duplicate risk more urgent."""
    removal_threshold_percent: int = 30
    removal_threshold_people: int = 2
    """A read that loses more than this share AND more than this many active practitioners at
    once is suspicious: no removals until an admin accepts the drop."""

    def __post_init__(self) -> None:
        if self.lookback_days < 1:
            raise ValueError("lookback_days must be at least 1")
        if not 0 <= self.removal_threshold_percent <= 100:
            raise ValueError("removal_threshold_percent must be between 0 and 100")
        if self.removal_threshold_people < 0:
            raise ValueError("removal_threshold_people must not be negative")
        if self.recent_days < 1:
            raise ValueError("recent_days must be at least 1")


@dataclass(frozen=True, slots=True)
class PmsSnapshot:
    system: str
    practitioners: tuple[PmsPractitioner, ...]
    access: AccessLog
    access_groups: tuple[AccessGroup, ...] = ()
    complete: bool = True
    locations: tuple[PmsLocation, ...] | None = None
    """The account's locations; None when the connector cannot tell locations apart."""
    outside: tuple[PmsPractitioner, ...] = ()
    """Practitioners of the PMS account outside this organisation's scope (sharing.scope): never
    findings here, except a sharing member who left the scope (a departure)."""
    excluded: frozenset[str] = frozenset()
    """Ids among `outside` that the scope's exclude list names: left alone entirely."""
    excluded_keys: frozenset[str] = frozenset()
    """The scope's exclude entries as compared (PMS ids and normalised emails): a PT Direct user
    they name is left alone even when no PMS record matches the entry any more."""
    elsewhere: frozenset[str] = frozenset()
    """Ids among `outside` that the PMS places at another of the account's locations (works
    there, or a counted row there in the window): only they can have left for another site."""
    newer_sites_only: frozenset[str] = frozenset()
    """Ids among `outside` whose counted rows in the window are only at sites first used after
    the organisation's locations were last used: a renamed site (an export names locations by
    their names) or one that replaced them. Not evidence of a move (sharing.scope)."""


__all__ = [
    "AccessGroup",
    "AccessLog",
    "AccessSource",
    "AccessStatus",
    "MasterAccount",
    "MasterRecipients",
    "Mode",
    "PatientAccess",
    "PhysitrackClient",
    "PmsLink",
    "PmsLocation",
    "PmsPractitioner",
    "PmsSnapshot",
    "Policy",
    "PtDirectSnapshot",
    "PtUser",
    "SharingMember",
    "SharingScope",
    "UserStatus",
]
