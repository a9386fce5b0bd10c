"""Everything the rules and the planner derive from a run's inputs, computed once.

Rules and planning read the same facts (who is matched to whom, who is eligible, who shares
patients with whom), so they are worked out here in one place and can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sharing.access import CoAccess, PairStat, day_number
from sharing.findings import Person
from sharing.identity import IdentityMap, match_identities, normalise_email
from sharing.model import (
    PmsPractitioner,
    PmsSnapshot,
    Policy,
    PtDirectSnapshot,
    PtUser,
    SharingMember,
    SharingScope,
)


@dataclass(frozen=True, slots=True)
class SharedAccess:
    """Why two practitioners count as sharing patients in the PMS."""

    stat: PairStat | None
    access_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    pms: PmsSnapshot
    ptdirect: PtDirectSnapshot
    policy: Policy
    as_of: date
    pseudonym_key: bytes
    identity: IdentityMap
    co_access: CoAccess
    shared: dict[tuple[str, str], SharedAccess]
    practitioners: dict[str, PmsPractitioner]
    users: dict[str, PtUser]
    members: dict[str, SharingMember]
    recipients: frozenset[str]
    master_email: str | None
    licensed_active: dict[str, PtUser]
    eligible: dict[str, PtUser]
    peers: dict[str, frozenset[str]]

    @property
    def complete(self) -> bool:
        return self.pms.complete and self.ptdirect.complete

    @property
    def recent_day(self) -> int:
        return day_number(self.as_of - timedelta(days=self.policy.recent_days))

    def person(self, practitioner_id: str) -> Person:
        practitioner = self.practitioners[practitioner_id]
        user = self.identity.user_by_practitioner.get(practitioner_id)
        email = user.email if user else practitioner.email
        return Person(pms_id=practitioner_id, email=email, name=practitioner.name)

    def person_for_email(self, email: str) -> Person:
        key = normalise_email(email) or ""
        practitioner = self.identity.practitioner_by_email.get(key)
        user = self.users.get(key)
        if practitioner is not None:
            return Person(pms_id=practitioner.id, email=user.email if user else email, name=practitioner.name)
        return Person(pms_id=None, email=user.email if user else email, name=user.name if user else email)

    def is_sharing_patients(self, email: str) -> bool:
        member = self.members.get(normalise_email(email) or "")
        return member is not None and member.share_patients

    def belongs_in_sharing(self) -> dict[str, PtUser]:
        """Eligible practitioners the policy wants in practitioner sharing, sharing patients."""
        if self.policy.sharing_scope is SharingScope.EVERYONE:
            return dict(self.eligible)
        return {
            practitioner_id: user
            for practitioner_id, user in self.eligible.items()
            if any(peer in self.eligible for peer in self.peers.get(practitioner_id, ()))
        }

    def departed_reason(self, email: str) -> str | None:
        """Why a PT Direct user counts as gone from the PMS, or None if they are not."""
        key = normalise_email(email) or ""
        practitioner = self.identity.practitioner_by_email.get(key)
        if practitioner is not None:
            return None if practitioner.active else "inactive_in_pms"
        user = self.users.get(key)
        link = user.pms_link if user else None
        if (
            link is not None
            and link.system.strip().lower() == self.pms.system.strip().lower()
            and link.practitioner_id not in self.practitioners
        ):
            return "gone_from_pms"
        return None


def build_context(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    policy: Policy,
    as_of: date,
    pseudonym_key: bytes,
) -> Context:
    practitioners = {practitioner.id: practitioner for practitioner in pms.practitioners}
    identity = match_identities(pms.system, pms.practitioners, ptdirect.users)
    users = {normalise_email(user.email) or "": user for user in ptdirect.users}
    members = {normalise_email(m.email) or "": m for m in ptdirect.sharing_members}
    master = ptdirect.master_account
    master_email = normalise_email(master.email) if master else None
    recipients = frozenset(normalise_email(email) or "" for email in (master.recipients if master else ()))

    co_access = pms.access.co_access(as_of - timedelta(days=policy.lookback_days))
    shared: dict[tuple[str, str], SharedAccess] = {
        pair: SharedAccess(stat)
        for pair, stat in co_access.pairs.items()
        if pair[0] in practitioners and pair[1] in practitioners
    }
    for group in pms.access_groups:
        members_in_pms = sorted({pid for pid in group.practitioner_ids if pid in practitioners})
        for index, first in enumerate(members_in_pms):
            for second in members_in_pms[index + 1 :]:
                existing = shared.get((first, second), SharedAccess(None))
                shared[(first, second)] = SharedAccess(
                    existing.stat, tuple(sorted({*existing.access_groups, group.name}))
                )
    peers: dict[str, set[str]] = {}
    for first, second in shared:
        peers.setdefault(first, set()).add(second)
        peers.setdefault(second, set()).add(first)

    licensed_active = {
        practitioner_id: user
        for practitioner_id, user in identity.user_by_practitioner.items()
        if practitioners[practitioner_id].active and user.confirmed and user.practitioner_access
    }
    eligible = {
        practitioner_id: user
        for practitioner_id, user in licensed_active.items()
        if normalise_email(user.email) != master_email
    }
    return Context(
        pms=pms,
        ptdirect=ptdirect,
        policy=policy,
        as_of=as_of,
        pseudonym_key=pseudonym_key,
        identity=identity,
        co_access=co_access,
        shared=shared,
        practitioners=practitioners,
        users=users,
        members=members,
        recipients=recipients,
        master_email=master_email,
        licensed_active=licensed_active,
        eligible=eligible,
        peers={key: frozenset(value) for key, value in peers.items()},
    )
