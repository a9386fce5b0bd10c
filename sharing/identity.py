"""Matching PMS practitioners to PT Direct users.

Order of trust: the PMS link stored in PT Direct, then the normalised email. A matching name is
only ever a suggestion for a person to confirm. When several candidates fit, nothing is matched
and the ambiguity is reported: a wrong match would share patients with the wrong person.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache

from sharing.model import PmsPractitioner, PtUser


@lru_cache(maxsize=65_536)
def normalise_email(email: str | None) -> str | None:
    """Unicode NFC, case and surrounding whitespace are not significant; plus-addressing is kept.

    NFC first, so an address typed with a combining accent ("e" + U+0301) and one typed with the
    precomposed letter ("\u00e9") are the same person, as they are to a mail server. And NFC
    again after lower-casing, which can undo it ("\u0130" + U+0316 lower-cases to "i" + U+0307 +
    U+0316, whose marks NFC puts in the other order): an answer normalised again is the same
    answer, so a key looked up a second time still finds its person. Cached: a reconcile asks
    for the same few addresses tens of thousands of times.

    An address already normalised (nearly all) is answered with itself, not an equal copy: the
    copy was a string a practitioner kept in the cache, in fresh memory in a process's first run,
    and the dicts keyed by the answer find the very object they are asked for.
    """
    if email is None:
        return None
    # Text in ASCII (nearly every address) is in NFC already: no normalisation to ask for.
    if email.isascii():
        cleaned = email.strip().lower()
    else:
        cleaned = unicodedata.normalize("NFC", email).strip().lower()
        cleaned = unicodedata.normalize("NFC", cleaned)  # lower-casing can undo NFC
    if cleaned == email and type(email) is str:
        return email
    return cleaned or None


def normalise_name(name: str | None) -> str:
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFKD", name)
    without_accents = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(without_accents.casefold().split())


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """One subject with several candidates on the other side."""

    side: str  # "pms": a PMS practitioner with several users; "ptdirect": the reverse
    subject: str
    candidates: tuple[str, ...]
    reason: str = "several_candidates"  # or "stale_link": linked to an inactive record, email active


@dataclass(frozen=True)
class IdentityMap:
    user_by_practitioner: dict[str, PtUser] = field(default_factory=dict)
    practitioner_by_email: dict[str, PmsPractitioner] = field(default_factory=dict)
    ambiguities: tuple[Ambiguity, ...] = ()
    ambiguous_practitioners: frozenset[str] = frozenset()
    ambiguous_emails: frozenset[str] = frozenset()
    name_suggestions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    email_by_practitioner: dict[str, str | None] = field(default_factory=dict)
    """Each matched practitioner's user's email as `normalise_email` answers it (None for an
    address of only spaces): the answer every rule and the planner would get by asking."""
    user_by_email: dict[str, PtUser] = field(default_factory=dict)
    """Every user by normalised email ("" for none; of two with one address, the later)."""


SIMILAR_NAME_RATIO = 0.88
FUZZY_COMPARISON_BUDGET = 200_000
"""Above this many practitioner x user comparisons only exact (normalised) names are suggested."""


def _similar(first: str, second: str) -> bool:
    if first == second or sorted(first.split()) == sorted(second.split()):
        return True
    # The ratio is at most SequenceMatcher.real_quick_ratio(), this bound from the lengths alone
    # (the same expression): most names are ruled out before a matcher is built.
    total = len(first) + len(second)
    if 2.0 * min(len(first), len(second)) / total < SIMILAR_NAME_RATIO:
        return False
    matcher = SequenceMatcher(None, first, second)
    return matcher.quick_ratio() >= SIMILAR_NAME_RATIO and matcher.ratio() >= SIMILAR_NAME_RATIO


def suggest_by_name(
    practitioners: list[PmsPractitioner], users: list[tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    """Users whose name looks like an unmatched practitioner's: shown to a person, never acted on.

    `users` holds (normalised name, email) pairs. Exact, reordered ("Silva Ana") and nearly equal
    names ("Ana Silva" / "Anna Silva") count.
    """
    fuzzy = len(practitioners) * len(users) <= FUZZY_COMPARISON_BUDGET
    by_name: dict[str, list[str]] = {}
    for name, email in users:
        if name:
            by_name.setdefault(name, []).append(email)
    suggestions: dict[str, tuple[str, ...]] = {}
    for practitioner in practitioners:
        name = normalise_name(practitioner.name)
        if not name:
            continue
        if fuzzy:
            found = sorted({email for user_name, email in users if user_name and _similar(name, user_name)})
        else:
            found = sorted(by_name.get(name, []))
        if found:
            suggestions[practitioner.id] = tuple(found)
    return suggestions


def match_identities(
    system: str,
    practitioners: tuple[PmsPractitioner, ...],
    users: tuple[PtUser, ...],
    by_id: dict[str, PmsPractitioner] | None = None,
) -> IdentityMap:
    """Each practitioner's user (by link, then email), the ambiguities, and name suggestions.

    `by_id`: the practitioners by id, when the caller has them (the reconcile's context does).

    Every run matches every practitioner and user, so each user's link is read once (also for
    `_stale_links`), each address normalised once, and a practitioner with a single candidate
    user (nearly all) skips telling candidates apart.
    """
    system_key = system.strip().lower()
    if by_id is None:
        by_id = {practitioner.id: practitioner for practitioner in practitioners}
    # A practitioner's linked users: the one user (nearly always) in `user_by_link` (with their
    # normalised email in `link_email`), several in `users_by_link`; no list is made per
    # practitioner for the usual single user.
    user_by_link: dict[str, PtUser] = {}
    link_email: dict[str, str | None] = {}
    users_by_link: dict[str, list[PtUser]] = {}
    users_by_email: dict[str, list[PtUser]] = {}
    stale_links: list[tuple[PtUser, PmsPractitioner]] = []  # users linked to an inactive record
    # Each user's address is normalised once here, and the answers kept for every later pass
    # and for the reconcile's context (`user_by_email`, `email_by_practitioner`): a run asks
    # for them tens of thousands of times.
    user_emails: list[str | None] = []
    user_by_email: dict[str, PtUser] = {}
    systems: dict[str, str] = {}  # each link's system as compared (stripped, lower case), once per name
    for user in users:
        email = normalise_email(user.email)
        link = user.pms_link
        if link is not None:
            link_system = systems.get(link.system)
            if link_system is None:
                link_system = systems[link.system] = link.system.strip().lower()
        if link is not None and link_system == system_key:
            practitioner_id = link.practitioner_id
            first = user_by_link.setdefault(practitioner_id, user)
            if first is user:
                link_email[practitioner_id] = email
            else:
                users_by_link.setdefault(practitioner_id, [first]).append(user)
            linked = by_id.get(practitioner_id)
            linked_elsewhere = linked is not None
            if linked is not None and not linked.active:
                stale_links.append((user, linked))
        else:
            linked_elsewhere = False
        user_emails.append(email)
        user_by_email[email or ""] = user
        if email and not linked_elsewhere:
            users_by_email.setdefault(email, []).append(user)

    tentative: dict[str, PtUser] = {}
    tentative_email: dict[str, str | None] = {}  # each tentative user's normalised email
    ambiguities: list[Ambiguity] = []
    ambiguous_practitioners: set[str] = set()
    ambiguous_emails: set[str] = set()
    for stale in _stale_links(stale_links, practitioners):
        ambiguities.append(stale)
        ambiguous_emails.add(stale.subject)
        ambiguous_practitioners.update(stale.candidates)
    for practitioner in practitioners:
        if practitioner.id in ambiguous_practitioners:
            continue
        candidates = users_by_link.get(practitioner.id)
        if candidates is None:
            linked = user_by_link.get(practitioner.id)
            if linked is not None:  # the usual case: one linked user, nothing to tell apart
                tentative[practitioner.id] = linked
                tentative_email[practitioner.id] = link_email[practitioner.id]
                continue
            email = normalise_email(practitioner.email)
            candidates = users_by_email.get(email, []) if email else []
        if len(candidates) == 1:  # nothing to tell apart
            tentative[practitioner.id] = candidates[0]
            tentative_email[practitioner.id] = normalise_email(candidates[0].email)
            continue
        # Keyed "" for a blank address, so the candidates sort (None among them did not).
        distinct = {normalise_email(user.email) or "": user for user in candidates}
        if len(distinct) > 1:
            ambiguities.append(Ambiguity("pms", practitioner.id, tuple(sorted(distinct))))
            ambiguous_practitioners.add(practitioner.id)
            ambiguous_emails.update(email for email in distinct if email)
        elif distinct:
            [chosen] = distinct.values()
            tentative[practitioner.id] = chosen
            tentative_email[practitioner.id] = normalise_email(chosen.email)

    # Each email's practitioner (the first, in `practitioner_by_user`) and, for the emails of
    # several, all of them (`practitioners_by_user`): no list per email for the usual one.
    practitioner_by_user: dict[str, str] = {}
    practitioners_by_user: dict[str, list[str]] = {}
    for practitioner_id, email_or_none in tentative_email.items():
        email = email_or_none or ""
        if email not in ambiguous_emails:
            first_id = practitioner_by_user.setdefault(email, practitioner_id)
            if first_id != practitioner_id:
                practitioners_by_user.setdefault(email, [first_id]).append(practitioner_id)
    user_by_practitioner: dict[str, PtUser] = {}
    practitioner_by_email: dict[str, PmsPractitioner] = {}
    email_by_practitioner: dict[str, str | None] = {}
    for email, practitioner_ids in practitioners_by_user.items():
        ambiguities.append(Ambiguity("ptdirect", email, tuple(sorted(practitioner_ids))))
        ambiguous_emails.add(email)
        ambiguous_practitioners.update(practitioner_ids)
    for email, practitioner_id in practitioner_by_user.items():
        if email in practitioners_by_user:
            continue
        user_by_practitioner[practitioner_id] = tentative[practitioner_id]
        practitioner_by_email[email] = by_id[practitioner_id]
        email_by_practitioner[practitioner_id] = tentative_email[practitioner_id]

    unmatched_users = [
        (normalise_name(user.name), email)
        for user, key in zip(users, user_emails, strict=True)
        if (email := key or "") not in practitioner_by_email and email not in ambiguous_emails
    ]
    unmatched_practitioners = [
        p for p in practitioners if p.id not in user_by_practitioner and p.id not in ambiguous_practitioners
    ]
    suggestions = suggest_by_name(unmatched_practitioners, unmatched_users)

    return IdentityMap(
        user_by_practitioner=user_by_practitioner,
        practitioner_by_email=practitioner_by_email,
        ambiguities=tuple(sorted(ambiguities, key=lambda a: (a.side, a.subject))),
        ambiguous_practitioners=frozenset(ambiguous_practitioners),
        ambiguous_emails=frozenset(ambiguous_emails),
        name_suggestions=suggestions,
        email_by_practitioner=email_by_practitioner,
        user_by_email=user_by_email,
    )


def _stale_links(
    stale: list[tuple[PtUser, PmsPractitioner]], practitioners: tuple[PmsPractitioner, ...]
) -> list[Ambiguity]:
    """Users whose PMS link names an inactive record while an active record has their email.

    The usual story is a re-hire: the PMS got a new, active record and PT Direct still links the
    old one. The link says "inactive" and the email says "active"; acting on either could remove
    a working practitioner from sharing, so both records become candidates of an ambiguity.

    `stale`: (user, the inactive record their link to this PMS names), in user order, as
    `match_identities` read them; the active records' emails are gathered only when there are
    some.
    """
    if not stale:
        return []
    # The active records of just these users' addresses (a few), not a list per practitioner.
    wanted = {normalise_email(user.email) for user, _ in stale}
    active_by_email: dict[str, list[str]] = {}
    for practitioner in practitioners:
        if practitioner.active and (email := normalise_email(practitioner.email)) in wanted and email:
            active_by_email.setdefault(email, []).append(practitioner.id)
    found = []
    for user, linked in stale:
        email = normalise_email(user.email)
        if not email:
            continue
        others = [pid for pid in active_by_email.get(email, []) if pid != linked.id]
        if others:
            found.append(Ambiguity("ptdirect", email, tuple(sorted([linked.id, *others])), "stale_link"))
    return found
