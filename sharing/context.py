"""Everything the rules and the planner derive from a run's inputs, computed once.

Rules and planning read the same facts (who is matched to whom, who is eligible, who shares
patients with whom), so they are worked out here in one place and can never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

import numpy as np

from sharing.access import CoAccess, PairStat, day_number, id_ranks
from sharing.findings import Person
from sharing.identity import IdentityMap, match_identities, normalise_email
from sharing.model import (
    AccessGroup,
    PmsLink,
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


@dataclass(frozen=True, eq=False)
class PairTable:
    """The pairs who share patients, by column, in pair order (first id, then second id).

    A run has thousands of pairs, and an object per pair (with the garbage collector walking
    each) cost more than everything the rules decide from them: the rules, the picture and the
    report read these columns instead, and `Context.shared` makes the objects only when asked.
    """

    ids: tuple[str, ...]
    """The practitioner ids `firsts` and `seconds` index; the smaller id of a pair comes first."""
    firsts: np.ndarray
    seconds: np.ndarray
    shared_patients: np.ndarray
    """Patients both could see in the window; 0 for a pair made only by an access group."""
    last_days: np.ndarray
    """Day number of the latest shared day (meaningless where `shared_patients` is 0)."""
    access_groups: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Row -> names of the PMS access groups that also make the pair (most pairs have none)."""
    known_ranks: np.ndarray | None = field(default=None, repr=False)
    """`ranks`, when whoever made the table has them already (the co-access ranks these ids)."""

    def __len__(self) -> int:
        return len(self.firsts)

    @cached_property
    def ranks(self) -> np.ndarray:
        """Each id's rank in string order: sorting by ranks sorts by ids."""
        return id_ranks(self.ids) if self.known_ranks is None else self.known_ranks

    @cached_property
    def id_array(self) -> np.ndarray:
        """`ids` as a numpy array of objects: indexing it by an array of positions looks the ids
        up in C (a quarter of a millisecond less per 7,000 pairs than a lookup each in Python)."""
        return np.array(self.ids, dtype=object)

    def ids_at(self, positions: np.ndarray) -> list[str]:
        """The ids at `positions` (indexes of `ids`)."""
        return self.id_array[positions].tolist()

    @cached_property
    def first_ids(self) -> list[str]:
        return self.ids_at(self.firsts)

    @cached_property
    def second_ids(self) -> list[str]:
        return self.ids_at(self.seconds)

    def shared_access(self, row: int) -> SharedAccess:
        count = int(self.shared_patients[row])
        stat = PairStat(count, int(self.last_days[row])) if count else None
        return SharedAccess(stat, self.access_groups.get(row, ()))


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
    pairs: PairTable
    """Pairs who share patients, in pair order: the report's pairs and the picture keep it."""
    practitioners: dict[str, PmsPractitioner]
    users: dict[str, PtUser]
    members: dict[str, SharingMember]
    recipients: frozenset[str]
    master_email: str | None
    licensed_active: dict[str, PtUser]
    eligible: dict[str, PtUser]
    active_pms_emails: frozenset[str]
    drop: Drop | None
    outside: dict[str, PmsPractitioner]
    """PMS practitioners outside the organisation's scope, by id and by normalised email."""
    sharing_patients: frozenset[str]
    """Normalised emails of the sharing members who share patients."""
    active_practitioners: frozenset[str]
    """Ids of the read's active PMS practitioners."""
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
    def shared(self) -> dict[tuple[str, str], SharedAccess]:
        """Pairs who share patients, in pair order, as objects (the core reads `pairs`)."""
        table = self.pairs
        return {
            (first, second): table.shared_access(row)
            for row, (first, second) in enumerate(zip(table.first_ids, table.second_ids, strict=True))
        }

    @cached_property
    def peers(self) -> dict[str, frozenset[str]]:
        """Each practitioner's partners in `shared`."""
        found: defaultdict[str, set[str]] = defaultdict(set)
        for first, second in zip(self.pairs.first_ids, self.pairs.second_ids, strict=True):
            found[first].add(second)
            found[second].add(first)
        return {key: frozenset(value) for key, value in found.items()}

    @cached_property
    def eligibility(self) -> np.ndarray:
        """Per id of `pairs.ids`: 0 not eligible, 1 eligible and not sharing patients in PT Direct,
        2 eligible and sharing (from `eligible_sharing`, looked up once per practitioner)."""
        sharing = self.eligible_sharing
        return np.array(
            [0 if (shares := sharing.get(pid)) is None else 1 + shares for pid in self.pairs.ids],
            dtype=np.int8,
        )

    @cached_property
    def eligible_people(self) -> dict[str, dict[str, str]]:
        """Each eligible practitioner's person document (`Person.as_dict`: id, their user's
        email, name), made once per run and named by every finding about them (read, never
        changed): the duplicate-risk and missing-user findings name thousands of people, most of
        them several times, and a document each was a megabyte of fresh memory a run."""
        practitioners = self.practitioners
        return {
            pid: {"pms_id": pid, "email": user.email, "name": practitioners[pid].name}
            for pid, user in self.eligible.items()
        }

    @cached_property
    def at_risk(self) -> np.ndarray:
        """Per row of `pairs`, whether `pair_at_risk` holds: both eligible, not both sharing.

        Tested on arrays once per run (thousands of pairs) instead of per pair.
        """
        state = self.eligibility
        first, second = state[self.pairs.firsts], state[self.pairs.seconds]
        return (first > 0) & (second > 0) & ((first == 1) | (second == 1))

    @cached_property
    def pairs_at_risk(self) -> frozenset[tuple[str, str]]:
        """The pairs of `shared` that `pair_at_risk` holds for."""
        ids = self.pairs.ids
        rows = np.flatnonzero(self.at_risk)
        return frozenset(
            zip(
                map(ids.__getitem__, self.pairs.firsts[rows].tolist()),
                map(ids.__getitem__, self.pairs.seconds[rows].tolist()),
                strict=True,
            )
        )

    @cached_property
    def eligible_peers(self) -> dict[str, int]:
        """How many eligible practitioners each practitioner shares patients with (none: absent)."""
        table = self.pairs
        eligible = self.eligibility > 0
        counts = np.bincount(table.firsts[eligible[table.seconds]], minlength=len(table.ids))
        counts += np.bincount(table.seconds[eligible[table.firsts]], minlength=len(table.ids))
        with_peers = np.flatnonzero(counts)
        # Built from lists (ids looked up in C): an element of a numpy array read one at a time
        # costs ten times a list's, and there is one per practitioner.
        return dict(zip(table.ids_at(with_peers), counts[with_peers].tolist(), strict=True))

    @cached_property
    def recent_day(self) -> int:
        return day_number(self.as_of - timedelta(days=self.policy.recent_days))

    @cached_property
    def today(self) -> int:
        """`as_of` as a day number: later shared days are bookings."""
        return day_number(self.as_of)

    def person(self, practitioner_id: str) -> Person:
        known = self._people.get(practitioner_id)
        if known is not None:
            return known
        practitioner = self.practitioners[practitioner_id]
        user = self.identity.user_by_practitioner.get(practitioner_id)
        email = user.email if user else practitioner.email
        person = Person(practitioner_id, email, practitioner.name)
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
        """Eligible practitioners the policy wants in practitioner sharing, sharing patients.

        Worked out once (the planner and the missing-user rule both ask): read it, never change it.
        """
        return self._belongs_in_sharing

    @cached_property
    def sharing_gaps(self) -> tuple[tuple[str, PtUser, SharingMember | None], ...]:
        """Who belongs in sharing (`belongs_in_sharing`) and does not share patients there:
        (practitioner id, user, their sharing member or None), in the wish list's order.

        The planner adds or enables them, and the missing-user rule reports those who are not
        members: worked out once for both, each member found once.
        """
        members = self.members
        emails = self.identity.email_by_practitioner  # each user's, normalised (None for none)
        gaps = []
        for practitioner_id, user in self.belongs_in_sharing().items():
            member = members.get(emails[practitioner_id] or "")
            if member is None or not member.share_patients:
                gaps.append((practitioner_id, user, member))
        return tuple(gaps)

    @cached_property
    def master_gaps(self) -> tuple[tuple[str, PtUser], ...]:
        """Eligible practitioners whose user is not among the master account's recipients:
        (practitioner id, user), in the eligible order (the planner and the missing-user rule)."""
        recipients = self.recipients
        emails = self.identity.email_by_practitioner
        return tuple(
            (practitioner_id, user)
            for practitioner_id, user in self.eligible.items()
            if emails[practitioner_id] not in recipients
        )

    @cached_property
    def _belongs_in_sharing(self) -> dict[str, PtUser]:
        if self.policy.sharing_scope is SharingScope.EVERYONE:
            return dict(self.eligible)
        with_peers = self.eligible_peers
        return {
            practitioner_id: user
            for practitioner_id, user in self.eligible.items()
            if practitioner_id in with_peers
        }

    def departed_reason(self, email: str) -> str | None:
        """Why a PT Direct user counts as gone from the PMS, or None if they are not.

        Never for an email an active PMS practitioner has, nor for an ambiguous identity: a
        removal built on a guess could cut a working practitioner's peers off their patients.
        """
        return self.departure_verdict(email)[0]

    def departure_verdict(self, email: str) -> tuple[str | None, str | None]:
        """(why they departed, why the scope cannot tell): at most one of them is set.

        A clinic group's scope can leave a sharing member outside without saying they left:
        outside only for want of any site in the read (`outside_scope_unplaced`), or with an
        inactive record here and an active one outside that the read places nowhere
        (`inactive_here_active_elsewhere`), or placed only at sites first used after this
        organisation's were last used (`outside_scope_newer_site`: a renamed site?). None is
        acted on; each is reported (`held_by_scope`), so a member who left is never kept
        silently either.
        """
        key = normalise_email(email) or ""
        if key in self.active_pms_emails or key in self.identity.ambiguous_emails:
            return None, None
        user = self.users.get(key)
        link = user.pms_link if user else None
        if self._excluded(key, link):
            return None, None  # the scope's exclude list: this organisation leaves them alone
        practitioner = self.identity.practitioner_by_email.get(key)
        elsewhere = self.outside_match(email)
        if practitioner is not None:
            if practitioner.active:
                return None, None
            if elsewhere is not None and elsewhere.active:
                # An inactive record here and an active one outside: moved, if the read places
                # the active one at another site; else it cannot tell.
                if elsewhere.id in self.pms.elsewhere:
                    return "outside_scope", None
                if elsewhere.id in self.pms.newer_sites_only:
                    return None, "outside_scope_newer_site"
                return None, "inactive_here_active_elsewhere"
            return "inactive_in_pms", None
        if elsewhere is not None:
            twin = self.outside.get(key)  # an active record of the same email, if there is one
            if not elsewhere.active and twin is not None and twin.active:
                elsewhere = twin  # linked to an old record, active under a new one: not a leaver
            if not elsewhere.active:
                return "inactive_in_pms", None
            # Outside, active: departed only if the PMS places them at another site.
            if elsewhere.id in self.pms.elsewhere:
                return "outside_scope", None
            if elsewhere.id in self.pms.newer_sites_only:
                return None, "outside_scope_newer_site"
            return None, "outside_scope_unplaced"
        if (
            link is not None
            and link.system.strip().lower() == self.pms.system.strip().lower()
            and link.practitioner_id not in self.practitioners
        ):
            return "gone_from_pms", None
        return None, None

    def _excluded(self, key: str, link: PmsLink | None) -> bool:
        """The scope's exclude list names this PT Direct user (their email, or the PMS record
        they link to), or a PMS record with their email that is outside the scope."""
        names = self.pms.excluded_keys
        if not names and not self.pms.excluded:
            return False
        if key in names:
            return True
        linked_here = link is not None and link.system.strip().lower() == self.pms.system.strip().lower()
        if linked_here and (link.practitioner_id in names or link.practitioner_id in self.pms.excluded):
            return True
        return key in self._excluded_emails

    @cached_property
    def _excluded_emails(self) -> frozenset[str]:
        """Emails of the PMS records the exclude list names: one person, whichever record of
        theirs the admin named (an old inactive one, say)."""
        return frozenset(
            email
            for practitioner in self.pms.outside
            if practitioner.id in self.pms.excluded and (email := normalise_email(practitioner.email))
        )

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

        The one definition both the `departed_practitioner` rule and the planner read (worked
        out once: it tests every sharing member).
        """
        return list(self._departures)

    def held_by_scope(self) -> list[Departure]:
        """Confirmed sharing members who share patients and whom the scope leaves outside
        without saying they left (`departure_verdict`): reported, never acted on."""
        return list(self._verdicts[1])

    @cached_property
    def _departures(self) -> tuple[Departure, ...]:
        return self._verdicts[0]

    @cached_property
    def _verdicts(self) -> tuple[tuple[Departure, ...], tuple[Departure, ...]]:
        departed, held = [], []
        members = self.members
        # `departure_verdict`'s first test as one set difference: nearly every member is active
        # in the PMS (the keys are normalised already, and `normalise_email` is idempotent).
        for email in sorted(members.keys() - self.active_pms_emails):
            member = members[email]
            user = self.users.get(email)
            if not member.share_patients or user is None or not user.confirmed:
                continue
            if email == self.master_email:
                continue
            reason, unclear = self.departure_verdict(email)
            if reason is not None:
                departed.append(Departure(user.email, user, reason))
            elif unclear is not None:
                held.append(Departure(user.email, user, unclear))
        return tuple(departed), tuple(held)


def build_context(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    policy: Policy,
    as_of: date,
    pseudonym_key: bytes,
    baseline: Baseline | None = None,
) -> Context:
    # One pass over the PMS practitioners for their lookup, the active ids and active emails.
    practitioners: dict[str, PmsPractitioner] = {}
    active_ids: list[str] = []
    active_emails: set[str] = set()
    for practitioner in pms.practitioners:
        practitioners[practitioner.id] = practitioner
        if practitioner.active:
            active_ids.append(practitioner.id)
            if email := normalise_email(practitioner.email):
                active_emails.add(email)
    active_practitioners = frozenset(active_ids)
    identity = match_identities(pms.system, pms.practitioners, ptdirect.users, practitioners)
    users = identity.user_by_email
    members = {normalise_email(m.email) or "": m for m in ptdirect.sharing_members}
    master = ptdirect.master_account
    master_email = normalise_email(master.email) if master else None
    recipients = frozenset(normalise_email(email) or "" for email in (master.recipients if master else ()))

    co_access = pms.access.co_access(as_of - timedelta(days=policy.lookback_days))
    pairs = _pair_table(co_access, practitioners, pms.access_groups)

    active_pms_emails = frozenset(active_emails)
    sharing_patients = frozenset(email for email, member in members.items() if member.share_patients)
    # Licensed and active; of those, eligible (not the master account) and whether they share
    # patients: one loop over the matched users, with the emails matching normalised.
    licensed_active: dict[str, PtUser] = {}
    eligible: dict[str, PtUser] = {}
    eligible_sharing: dict[str, bool] = {}
    emails = identity.email_by_practitioner
    for practitioner_id, user in identity.user_by_practitioner.items():
        if practitioners[practitioner_id].active and user.confirmed and user.practitioner_access:
            licensed_active[practitioner_id] = user
            email = emails[practitioner_id]
            if email != master_email:
                eligible[practitioner_id] = user
                eligible_sharing[practitioner_id] = (email or "") in sharing_patients
    return Context(
        pms=pms,
        ptdirect=ptdirect,
        policy=policy,
        as_of=as_of,
        pseudonym_key=pseudonym_key,
        identity=identity,
        co_access=co_access,
        pairs=pairs,
        practitioners=practitioners,
        users=users,
        members=members,
        recipients=recipients,
        master_email=master_email,
        licensed_active=licensed_active,
        eligible=eligible,
        active_pms_emails=active_pms_emails,
        drop=detect_drop(pms, policy, baseline, active_practitioners),
        active_practitioners=active_practitioners,
        outside=_outside(pms),
        sharing_patients=sharing_patients,
        eligible_sharing=eligible_sharing,
    )


def _pair_table(
    co_access: CoAccess, practitioners: dict[str, PmsPractitioner], groups: tuple[AccessGroup, ...]
) -> PairTable:
    """The pairs of `co_access` between known practitioners, and those of the access groups."""
    ids = co_access.practitioner_ids
    firsts, seconds = co_access.pair_firsts, co_access.pair_seconds
    counts, days = co_access.pair_counts, co_access.pair_days
    if not practitioners.keys() >= co_access.patients_per_practitioner.keys():
        # Someone with patients is not a known practitioner: drop their pairs. (Otherwise every
        # pair is between known practitioners, and there is nothing to test.)
        known = np.array([pid in practitioners for pid in ids], dtype=bool)
        keep = known[firsts] & known[seconds]
        firsts, seconds, counts, days = firsts[keep], seconds[keep], counts[keep], days[keep]
    if not groups:
        return PairTable(ids, firsts, seconds, counts, days, known_ranks=co_access.practitioner_ranks)
    # Access groups are few and small: merge their pairs in by id, then lay the table out again.
    stats = {
        pair: (count, day)
        for pair, count, day in zip(
            zip(map(ids.__getitem__, firsts.tolist()), map(ids.__getitem__, seconds.tolist()), strict=True),
            counts.tolist(),
            days.tolist(),
            strict=True,
        )
    }
    names: dict[tuple[str, str], set[str]] = {}
    for group in groups:
        members_in_pms = sorted({pid for pid in group.practitioner_ids if pid in practitioners})
        for index, first in enumerate(members_in_pms):
            for second in members_in_pms[index + 1 :]:
                stats.setdefault((first, second), (0, 0))
                names.setdefault((first, second), set()).add(group.name)
    ordered = sorted(stats)
    merged_ids = tuple(sorted({pid for pair in ordered for pid in pair}))
    index_of = {pid: index for index, pid in enumerate(merged_ids)}
    return PairTable(
        merged_ids,
        np.array([index_of[first] for first, _ in ordered], dtype=np.int64),
        np.array([index_of[second] for _, second in ordered], dtype=np.int64),
        np.array([stats[pair][0] for pair in ordered], dtype=np.int64),
        np.array([stats[pair][1] for pair in ordered], dtype=np.int64),
        {row: tuple(sorted(names[pair])) for row, pair in enumerate(ordered) if pair in names},
    )


def _outside(pms: PmsSnapshot) -> dict[str, PmsPractitioner]:
    found: dict[str, PmsPractitioner] = {}
    for practitioner in pms.outside:
        found[practitioner.id] = practitioner
        email = normalise_email(practitioner.email)
        if email and (email not in found or practitioner.active):
            found[email] = practitioner
    return found


def detect_drop(
    pms: PmsSnapshot, policy: Policy, baseline: Baseline | None, active: frozenset[str] | None = None
) -> Drop | None:
    """A read with nobody in it, or one that lost more than the policy's share of active people.

    Like the accidental-deletion threshold of directory-sync tools: an export cut short or an
    API filter gone wrong must not make a whole clinic look departed. `active`: the ids of the
    read's active practitioners, when the caller has them.
    """
    if not pms.complete:
        return None  # an incomplete read already plans no removals
    if active is None:
        active = frozenset(p.id for p in pms.practitioners if p.active)
    accepted = baseline is not None and baseline.accept_drop
    if not active:  # nobody, or nobody active: as suspicious whatever the history
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
