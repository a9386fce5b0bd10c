"""Everything the rules and the planner derive from a run's inputs, computed once.

Rules and planning read the same facts (who is matched to whom, who is eligible, who shares
patients with whom), so they are worked out here in one place and can never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from operator import itemgetter

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


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the last accepted complete run saw, to notice a PMS read that suddenly loses people."""

    active_practitioners: frozenset[str]
    accept_drop: bool = False
    """The admin confirmed that the people missing since the baseline really left."""


@dataclass(frozen=True, slots=True)
class Drop:
    """A PMS read that lost too many active practitioners at once to be trusted for removals."""

    previously_active: int
    now_active: int
    lost: tuple[str, ...]
    """Ids of practitioners active in the baseline and now inactive or missing."""
    accepted: bool


@dataclass(frozen=True, slots=True)
class Departure:
    email: str
    user: PtUser
    reason: str  # inactive_in_pms, gone_from_pms or outside_scope (moved to another site)


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
    """Pairs who share patients, in pair order: the report's pairs and the picture keep it."""
    practitioners: dict[str, PmsPractitioner]
    users: dict[str, PtUser]
    members: dict[str, SharingMember]
    recipients: frozenset[str]
    master_email: str | None
    licensed_active: dict[str, PtUser]
    eligible: dict[str, PtUser]
    peers: dict[str, frozenset[str]]
    active_pms_emails: frozenset[str]
    drop: Drop | None
    outside: dict[str, PmsPractitioner]
    """PMS practitioners outside the organisation's scope, by id and by normalised email."""
    sharing_patients: frozenset[str]
    """Normalised emails of the sharing members who share patients."""
    eligible_sharing: dict[str, bool]
    """Each eligible practitioner's id, and whether they already share patients in PT Direct.

    The duplicate-risk rule, the report's pairs and the picture test every pair against this:
    two lookups per pair instead of normalising both emails and finding both members again.
    """
    _people: dict[str, Person] = field(default_factory=dict, repr=False, compare=False)
    """`person()` answers by id, filled as asked: a practitioner is named in many findings."""

    @property
    def suspicious(self) -> bool:
        """The PMS lost too many people at once and nobody has confirmed it: plan no removals."""
        return self.drop is not None and not self.drop.accepted

    @property
    def complete(self) -> bool:
        """Complete and trustworthy enough to propose removals and to call findings resolved."""
        return self.pms.complete and self.ptdirect.complete and not self.suspicious

    def pair_at_risk(self, first: str, second: str) -> bool:
        """Both can share patients in PT Direct, and at least one of them does not yet."""
        one, two = self.eligible_sharing.get(first), self.eligible_sharing.get(second)
        if one is None or two is None:
            return False
        return not (one and two)

    @cached_property
    def pairs_at_risk(self) -> frozenset[tuple[str, str]]:
        """The pairs of `shared` that `pair_at_risk` holds for, tested once per run.

        Spelled out on sets rather than calling `pair_at_risk` per pair (thousands of pairs):
        one of the two is eligible and not sharing, and the other is eligible.
        """
        eligible = self.eligible_sharing.keys()
        not_sharing = {pid for pid, shares in self.eligible_sharing.items() if not shares}
        return frozenset(
            pair
            for pair in self.shared
            if (pair[0] in not_sharing and pair[1] in eligible)
            or (pair[1] in not_sharing and pair[0] in eligible)
        )

    @cached_property
    def recent_day(self) -> int:
        return day_number(self.as_of - timedelta(days=self.policy.recent_days))

    def person(self, practitioner_id: str) -> Person:
        known = self._people.get(practitioner_id)
        if known is not None:
            return known
        practitioner = self.practitioners[practitioner_id]
        user = self.identity.user_by_practitioner.get(practitioner_id)
        email = user.email if user else practitioner.email
        person = Person(pms_id=practitioner_id, email=email, name=practitioner.name)
        self._people[practitioner_id] = person
        return person

    def person_for_email(self, email: str) -> Person:
        key = normalise_email(email) or ""
        practitioner = self.identity.practitioner_by_email.get(key)
        user = self.users.get(key)
        if practitioner is not None:
            return Person(pms_id=practitioner.id, email=user.email if user else email, name=practitioner.name)
        return Person(pms_id=None, email=user.email if user else email, name=user.name if user else email)

    def is_sharing_patients(self, email: str) -> bool:
        return (normalise_email(email) or "") in self.sharing_patients

    def belongs_in_sharing(self) -> dict[str, PtUser]:
        """Eligible practitioners the policy wants in practitioner sharing, sharing patients."""
        if self.policy.sharing_scope is SharingScope.EVERYONE:
            return dict(self.eligible)
        eligible = self.eligible.keys()
        return {
            practitioner_id: user
            for practitioner_id, user in self.eligible.items()
            if not eligible.isdisjoint(self.peers.get(practitioner_id, ()))
        }

    def departed_reason(self, email: str) -> str | None:
        """Why a PT Direct user counts as gone from the PMS, or None if they are not.

        Never for an email an active PMS practitioner has, nor for an ambiguous identity: a
        removal built on a guess could cut a working practitioner's peers off their patients.
        """
        key = normalise_email(email) or ""
        if key in self.active_pms_emails or key in self.identity.ambiguous_emails:
            return None
        practitioner = self.identity.practitioner_by_email.get(key)
        if practitioner is not None:
            return None if practitioner.active else "inactive_in_pms"
        user = self.users.get(key)
        link = user.pms_link if user else None
        elsewhere = self.outside_match(email)
        if elsewhere is not None:
            if elsewhere.id in self.pms.excluded:
                return None  # the scope's exclude list: this organisation leaves them alone
            return "outside_scope" if elsewhere.active else "inactive_in_pms"
        if (
            link is not None
            and link.system.strip().lower() == self.pms.system.strip().lower()
            and link.practitioner_id not in self.practitioners
        ):
            return "gone_from_pms"
        return None

    def outside_match(self, email: str) -> PmsPractitioner | None:
        """The out-of-scope PMS practitioner this PT Direct user is (by PMS link, then email)."""
        key = normalise_email(email) or ""
        user = self.users.get(key)
        link = user.pms_link if user else None
        if link is not None and link.system.strip().lower() == self.pms.system.strip().lower():
            found = self.outside.get(link.practitioner_id)
            if found is not None:
                return found
        return self.outside.get(key)

    def departures(self) -> list[Departure]:
        """Confirmed sharing members who share patients and have left the PMS (not the master).

        The one definition both the `departed_practitioner` rule and the planner read.
        """
        found = []
        for email, member in sorted(self.members.items()):
            user = self.users.get(email)
            if not member.share_patients or user is None or not user.confirmed:
                continue
            if email == self.master_email:
                continue
            reason = self.departed_reason(email)
            if reason is not None:
                found.append(Departure(user.email, user, reason))
        return found


def build_context(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    policy: Policy,
    as_of: date,
    pseudonym_key: bytes,
    baseline: Baseline | None = None,
) -> Context:
    practitioners = {practitioner.id: practitioner for practitioner in pms.practitioners}
    identity = match_identities(pms.system, pms.practitioners, ptdirect.users)
    users = {normalise_email(user.email) or "": user for user in ptdirect.users}
    members = {normalise_email(m.email) or "": m for m in ptdirect.sharing_members}
    master = ptdirect.master_account
    master_email = normalise_email(master.email) if master else None
    recipients = frozenset(normalise_email(email) or "" for email in (master.recipients if master else ()))

    co_access = pms.access.co_access(as_of - timedelta(days=policy.lookback_days))
    if practitioners.keys() >= co_access.patients_per_practitioner.keys():
        # Everyone in a pair has patients, so every pair is between known practitioners: no
        # test per pair (there are thousands).
        shared = dict(zip(co_access.pairs, map(SharedAccess, co_access.pairs.values()), strict=True))
    else:
        shared = {
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
    if pms.access_groups:
        shared = dict(sorted(shared.items(), key=itemgetter(0)))  # pairs of groups come last
    peers: defaultdict[str, set[str]] = defaultdict(set)
    for first, second in shared:
        peers[first].add(second)
        peers[second].add(first)

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
    active_pms_emails = frozenset(
        email for p in pms.practitioners if p.active and (email := normalise_email(p.email))
    )
    sharing_patients = frozenset(email for email, member in members.items() if member.share_patients)
    eligible_sharing = {
        practitioner_id: (normalise_email(user.email) or "") in sharing_patients
        for practitioner_id, user in eligible.items()
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
        active_pms_emails=active_pms_emails,
        drop=detect_drop(pms, policy, baseline),
        outside=_outside(pms),
        sharing_patients=sharing_patients,
        eligible_sharing=eligible_sharing,
    )


def _outside(pms: PmsSnapshot) -> dict[str, PmsPractitioner]:
    found: dict[str, PmsPractitioner] = {}
    for practitioner in pms.outside:
        found[practitioner.id] = practitioner
        email = normalise_email(practitioner.email)
        if email and (email not in found or practitioner.active):
            found[email] = practitioner
    return found


def detect_drop(pms: PmsSnapshot, policy: Policy, baseline: Baseline | None) -> Drop | None:
    """A read with nobody in it, or one that lost more than the policy's share of active people.

    Like the accidental-deletion threshold of directory-sync tools: an export cut short or an
    API filter gone wrong must not make a whole clinic look departed.
    """
    if not pms.complete:
        return None  # an incomplete read already plans no removals
    active = frozenset(p.id for p in pms.practitioners if p.active)
    accepted = baseline is not None and baseline.accept_drop
    if not pms.practitioners:
        before = len(baseline.active_practitioners) if baseline else 0
        lost = tuple(sorted(baseline.active_practitioners)) if baseline else ()
        return Drop(before, 0, lost, accepted)
    if baseline is None or not baseline.active_practitioners:
        return None
    lost = tuple(sorted(baseline.active_practitioners - active))
    share = 100 * len(lost) / len(baseline.active_practitioners)
    if len(lost) > policy.removal_threshold_people and share > policy.removal_threshold_percent:
        return Drop(len(baseline.active_practitioners), len(active), lost, accepted)
    return None
