"""The rules: one function per finding kind, each reading the shared `Context`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sharing.access import day_text
from sharing.context import Context
from sharing.findings import FindingKind, Person, Row, Severity, finding_document
from sharing.identity import normalise_email, normalise_name
from sharing.model import MasterRecipients
from sharing.pseudonym import pseudonymise

Rule = Callable[[Context], Iterator[Row]]
"""A rule yields its findings as rows: (subjects, report document), see `sharing.findings.Findings`."""

_MANY_SHARED_PATIENTS = 5


def _finding(
    kind: FindingKind,
    severity: Severity,
    subjects: tuple[str, ...],
    message: str,
    practitioners: tuple[Person, ...] = (),
    evidence: dict[str, object] | None = None,
) -> Row:
    """A finding's row from `Finding`'s fields, for the rules with few findings."""
    documents = [person.as_dict() for person in practitioners]
    return subjects, finding_document(
        kind, severity, subjects, message, documents, {} if evidence is None else evidence
    )


def _user_subject(email: str) -> str:
    return "user:" + (normalise_email(email) or "")


def _names(people: list[Person]) -> str:
    return _join([person.name for person in people])


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def plural(count: int, noun: str) -> str:
    """`1 patient`, `3 patients`: messages are read by people."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_COLLEAGUES_NAMED = 5


def _pair_detail(context: Context, peer_name: str, shared: int, day: int, groups: tuple[str, ...]) -> str:
    """'Ana Silva (3 patients, most recently 2026-11-20)'; future days read as bookings.

    `shared`: patients both saw (0 when only the access groups `groups` make the pair); `day`: the
    latest of them (a day number).
    """
    if not shared:
        names = ", ".join(f"'{group}'" for group in groups)
        return f"{peer_name} (through the PMS access group {names})"
    booked = day > context.today
    when = f"booked for {day_text(day)}" if booked else f"most recently {day_text(day)}"
    return f"{peer_name} ({plural(shared, 'patient')}, {when})"


_SEVERITY_BY_RANK = tuple(Severity)


def duplicate_patient_risk(context: Context) -> Iterator[Row]:
    """One finding per practitioner who must change, listing every colleague they share with.

    Per pair would not scale (a patient seen by four people is six pairs); the person who is not
    sharing is the one whose setting the admin changes. Every pair stays in `evidence.pairs`.

    The pairs at risk are grouped and ordered by array operations (by practitioner id, then
    most shared patients first, then colleague id); Python only writes each finding.
    """
    table = context.pairs
    rows = np.flatnonzero(context.at_risk)
    if not len(rows):
        return
    not_sharing = context.eligibility == 1
    firsts, seconds = table.firsts[rows], table.seconds[rows]
    first_changes, second_changes = not_sharing[firsts], not_sharing[seconds]
    people = np.concatenate((firsts[first_changes], seconds[second_changes]))
    peers = np.concatenate((seconds[first_changes], firsts[second_changes]))
    rows = np.concatenate((rows[first_changes], rows[second_changes]))
    shared = table.shared_patients[rows]
    ranks = table.ranks
    order = np.lexsort((ranks[peers], -shared, ranks[people]))
    people, peers, rows, shared = people[order], peers[order], rows[order], shared[order]
    days = table.last_days[rows]
    starts = np.flatnonzero(np.concatenate(([True], people[1:] != people[:-1])))
    # Severity rank per pair (0 HIGH, 1 MEDIUM, 2 LOW; a pair made only by an access group is
    # MEDIUM), and the finding's is its most severe pair's.
    recent = days >= context.recent_day
    many = shared >= _MANY_SHARED_PATIENTS
    pair_ranks = np.where(shared > 0, 2 - recent.astype(np.int8) - many.astype(np.int8), 1)
    severities = np.minimum.reduceat(pair_ranks, starts).tolist()
    totals = np.add.reduceat(shared, starts).tolist()
    ends = [*starts[1:].tolist(), len(people)]
    people_ids, peer_ids = table.ids_at(people), table.ids_at(peers)
    shared_list = shared.tolist()
    day_texts = _day_texts(days)
    texts = day_texts.tolist()
    # Everyone named is eligible: their person documents are the context's (shared by the
    # findings naming them), their email their user's (as `Context.person`'s). Each pair's
    # colleague, name and document are made in one pass over all pairs; findings take slices.
    eligible_people = context.eligible_people
    colleagues = list(map(eligible_people.__getitem__, peer_ids))
    names = [colleague["name"] for colleague in colleagues]
    emails = [eligible_people[pid]["email"] for pid in people_ids]
    pairs = [
        {
            "emails": [email, colleague["email"]],
            "shared_patients": count,
            "last_shared_on": text if count else None,
        }
        for email, colleague, count, text in zip(emails, colleagues, shared_list, texts, strict=True)
    ]
    groups = table.access_groups
    pair_groups = [groups.get(row, ()) for row in rows.tolist()] if groups else None
    if pair_groups:
        for pair, group_names in zip(pairs, pair_groups, strict=True):
            if group_names:
                pair["access_groups"] = list(group_names)
    # The few colleagues each finding names in its message (its first pairs), written in one
    # pass over those pairs: each finding takes the next of them.
    rank_in_finding = np.arange(len(people)) - np.repeat(starts, np.diff(np.append(starts, len(people))))
    named_rows = np.flatnonzero(rank_in_finding < _COLLEAGUES_NAMED)
    today = context.today
    details_of_named = [
        f"{peer_name} ({count} patient{'' if count == 1 else 's'}, "
        f"{'booked for' if day > today else 'most recently'} {text})"
        if count
        else _pair_detail(context, peer_name, count, day, pair_groups[row] if pair_groups else ())
        for row, peer_name, count, day, text in zip(
            named_rows.tolist(),
            np.array(names, dtype=object)[named_rows].tolist(),
            shared[named_rows].tolist(),
            days[named_rows].tolist(),
            day_texts[named_rows].tolist(),
            strict=True,
        )
    ]
    named = 0  # how many of `details_of_named` earlier findings took
    keys = context.identity.email_by_practitioner
    members = context.members
    lookback = context.policy.lookback_days
    within = f" within the last {lookback} days: "
    for start, end, severity, total in zip(starts.tolist(), ends, severities, totals, strict=True):
        practitioner_id = people_ids[start]
        person = eligible_people[practitioner_id]
        name = person["name"]
        if keys[practitioner_id] in members:
            gap = f"{name} does not share patients in practitioner sharing"
        else:
            gap = f"{name} is not in practitioner sharing"
        colleague_count = end - start
        details = details_of_named[named : named + min(colleague_count, _COLLEAGUES_NAMED)]
        named += len(details)
        if colleague_count > _COLLEAGUES_NAMED:
            details.append(plural(colleague_count - _COLLEAGUES_NAMED, "other colleague"))
        who = "a colleague" if colleague_count == 1 else plural(colleague_count, "colleague")
        subjects = ("pms:" + practitioner_id,)
        yield (
            subjects,
            finding_document(
                FindingKind.DUPLICATE_PATIENT_RISK,
                _SEVERITY_BY_RANK[severity],
                subjects,
                f"{gap}, but shares patients in the PMS with {who}{within}{_join(details)}. "
                "Each of them can create a separate copy of the same patient in Physitrack.",
                [person, *colleagues[start:end]],
                {
                    "lookback_days": lookback,
                    "not_sharing_patients": [person["email"]],
                    "colleagues": colleague_count,
                    "shared_patients": total,
                    "pairs": pairs[start:end],
                },
            ),
        )


def _day_texts(days: np.ndarray) -> np.ndarray:
    """`day_text` of each day number in `days` (an array of objects), each distinct day written
    once: thousands of pairs fall on a few hundred days.

    The days found are marked in a table over their range when it is short (a window of a year
    or two: a tenth of `np.unique`'s time), else `np.unique` finds them.
    """
    if not len(days):
        return np.empty(0, dtype=object)
    low = int(days.min())
    offsets = days - low
    span = int(offsets.max()) + 1
    if span > 4 * len(days) + 1024:
        distinct, inverse = np.unique(days, return_inverse=True)
        return np.array([day_text(day) for day in distinct.tolist()], dtype=object)[inverse]
    present = np.zeros(span, dtype=bool)
    present[offsets] = True
    found = np.flatnonzero(present)
    texts = np.empty(span, dtype=object)
    texts[found] = np.array([day_text(low + offset) for offset in found.tolist()], dtype=object)
    return texts[offsets]


def _missing_from(
    where: str, key: str | None, person: dict[str, Any], message: str, evidence: dict[str, Any]
) -> Row:
    """A missing-user finding's row: `where` the confirmed user is missing from (practitioner
    sharing or the master account's recipients), `key` their normalised email; `evidence`
    starts with `"missing_from": where` (written by the caller: a run has a thousand of these)."""
    subjects = (where, "user:" + (key or ""))
    return subjects, finding_document(
        FindingKind.MISSING_NEW_USER, Severity.MEDIUM, subjects, message, [person], evidence
    )


def missing_new_user(context: Context) -> Iterator[Row]:
    """Those the context finds missing (`Context.sharing_gaps` without a member, and
    `Context.master_gaps`), each with their address normalised as matching left it: a run has a
    thousand of these. Everyone here is eligible, so their person's email is their user's (as
    `Context.person`'s)."""
    peers = context.eligible_peers
    practitioners = context.practitioners
    people = context.eligible_people
    emails = context.identity.email_by_practitioner  # each user's, normalised (None for none)
    missing = {practitioner_id for practitioner_id, _, member in context.sharing_gaps if member is None}
    if "" in context.members:
        # This rule asks for each user's own answer, None for an address of spaces: no member
        # has that key, where the planner looks such a user up under "" and finds a member.
        missing.update(pid for pid in context.belongs_in_sharing() if emails[pid] is None)
    for practitioner_id in sorted(missing):
        key = emails[practitioner_id]
        peer_count = peers.get(practitioner_id, 0)
        name = practitioners[practitioner_id].name
        why = (
            f" (shares patients with {peer_count} colleague{'s' if peer_count != 1 else ''} in the PMS)"
            if peer_count
            else ""
        )
        yield _missing_from(
            "practitioner_sharing",
            key,
            people[practitioner_id],
            f"{name} is active in the PMS and confirmed in PT Direct but is not in "
            f"practitioner sharing{why}.",
            {"missing_from": "practitioner_sharing", "pms_peers": peer_count},
        )
    master = context.ptdirect.master_account
    if master is None or context.policy.master_recipients is not MasterRecipients.ALL_ACTIVE:
        return
    for practitioner_id in sorted(practitioner_id for practitioner_id, _ in context.master_gaps):
        key = emails[practitioner_id]
        name = practitioners[practitioner_id].name
        yield _missing_from(
            "master_recipients",
            key,
            people[practitioner_id],
            f"{name} is active in the PMS and confirmed in PT Direct but does not receive "
            f"the master account's content ({master.email}).",
            {"missing_from": "master_recipients", "master_account": master.email},
        )


def pending_invitation(context: Context) -> Iterator[Row]:
    practitioners = context.practitioners
    users = context.identity.user_by_practitioner
    # The unconfirmed among every matched user, picked in one comprehension (nearly all are
    # confirmed), then those active in the PMS, in id order.
    for practitioner_id in sorted(pid for pid, user in users.items() if not user.confirmed):
        user = users[practitioner_id]
        if not practitioners[practitioner_id].active:
            continue
        name = practitioners[practitioner_id].name
        yield _finding(
            kind=FindingKind.PENDING_INVITATION,
            severity=Severity.LOW,
            subjects=(_user_subject(user.email),),
            message=(
                f"{name} has not accepted the PT Direct invitation sent to {user.email}: "
                "nothing can be shared with them until they do."
            ),
            practitioners=(context.person(practitioner_id),),
            evidence={"invited_email": user.email},
        )


def no_physitrack_licence(context: Context) -> Iterator[Row]:
    patients = context.co_access.patients_per_practitioner
    ambiguous = context.identity.ambiguous_practitioners
    users = context.identity.user_by_practitioner
    practitioners = context.practitioners
    # Those with patients in the window less those with a licensed user, as one set difference:
    # nearly every practitioner has one.
    licensed = {pid for pid, user in users.items() if user.practitioner_access}
    for practitioner_id in sorted(patients.keys() - licensed):
        practitioner = practitioners.get(practitioner_id)
        if practitioner is None or not practitioner.active or practitioner_id in ambiguous:
            continue
        treating = patients[practitioner_id]
        if not treating:
            continue
        user = users.get(practitioner_id)
        evidence: dict[str, object] = {"patients_in_window": treating}
        if user is not None:
            detail = f"their PT Direct user {user.email} has no practitioner access"
            evidence["user_without_practitioner_access"] = user.email
        else:
            detail = "no PT Direct user matches them"
            suggestions = context.identity.name_suggestions.get(practitioner_id)
            if suggestions:
                detail += f" (a user with the same name exists: {', '.join(suggestions)})"
                evidence["suggested_users"] = list(suggestions)
        yield _finding(
            kind=FindingKind.NO_PHYSITRACK_LICENCE,
            severity=Severity.INFO,
            subjects=("pms:" + practitioner_id,),
            message=(
                f"{practitioner.name} has {plural(treating, 'patient')} in the PMS within the last "
                f"{context.policy.lookback_days} days but {detail}."
            ),
            practitioners=(context.person(practitioner_id),),
            evidence=evidence,
        )


_DEPARTURE_WHERE = {
    "inactive_in_pms": "inactive in the PMS",
    "outside_scope": "no longer at this organisation's locations (the PMS has them at another site)",
}


def departed_practitioner(context: Context) -> Iterator[Row]:
    if context.suspicious:
        return  # one suspicious_pms_drop finding instead of a clinic full of "departures"
    for departure in context.departures():
        person = context.person_for_email(departure.email)
        where = _DEPARTURE_WHERE.get(departure.reason, "no longer in the PMS")
        yield _finding(
            kind=FindingKind.DEPARTED_PRACTITIONER,
            severity=Severity.HIGH,
            subjects=(_user_subject(departure.email),),
            message=(
                f"{person.name} shares patients in practitioner sharing but is {where}: "
                "transfer their patients before removing them, or peers lose access to them."
            ),
            practitioners=(person,),
            evidence={"reason": departure.reason},
        )


_HELD_WHY = {
    "outside_scope_unplaced": (
        "the PMS no longer places them here (no appointment at this organisation's locations "
        "within the lookback window) and places them at no other site either"
    ),
    "inactive_here_active_elsewhere": (
        "their PMS record here is inactive, and an active record with the same email is outside "
        "this organisation's scope at no site the PMS names"
    ),
    "outside_scope_newer_site": (
        "the PMS places them only at a site first used after this organisation's locations were "
        "last used: if that site is one of yours renamed (an export names sites by name), add it "
        "to --locations"
    ),
}


def held_by_scope(context: Context) -> Iterator[Row]:
    """Sharing members the clinic group's scope leaves outside without saying they left: an
    `ambiguous_match` each (never a guess, never silence), with what to do by hand."""
    if context.suspicious:
        return
    for held in context.held_by_scope():
        person = context.person_for_email(held.email)
        yield _finding(
            kind=FindingKind.AMBIGUOUS_MATCH,
            severity=Severity.MEDIUM,
            subjects=(_user_subject(held.email),),
            message=(
                f"{person.name} ({held.user.email}) shares patients in practitioner sharing, but "
                f"{_HELD_WHY[held.reason]}. ptsync changes nothing for them: if they left, transfer "
                "their patients and remove them from practitioner sharing; if they still work here, "
                "add them to this organisation with --include-people."
            ),
            practitioners=(person,),
            evidence={"side": "scope", "reason": held.reason, "candidates": []},
        )


def unlinked_user(context: Context) -> Iterator[Row]:
    users = context.users
    # Users matched to a practitioner or part of an ambiguity are not unlinked: nearly everyone,
    # left out by one set difference.
    identity = context.identity
    for email in sorted(users.keys() - identity.practitioner_by_email.keys() - identity.ambiguous_emails):
        user = users[email]
        if email == context.master_email:
            continue  # a dedicated content account is expected; master_account_issue covers it
        member = context.members.get(email)
        if member is not None and member.share_patients and context.departed_reason(email):
            continue  # reported as departed_practitioner instead
        if context.outside_match(email) is not None:
            continue  # a practitioner of another part of the PMS account: not this organisation's
        yield _finding(
            kind=FindingKind.UNLINKED_USER,
            severity=Severity.INFO,
            subjects=(_user_subject(user.email),),
            message=(
                f"{user.name} ({user.email}) is a PT Direct user with no matching PMS practitioner "
                "(a content account, an admin or a leaver?)."
            ),
            practitioners=(Person(pms_id=None, email=user.email, name=user.name),),
            evidence={
                "confirmed": user.confirmed,
                "practitioner_access": user.practitioner_access,
                "in_practitioner_sharing": member is not None,
            },
        )


def master_account_issue(context: Context) -> Iterator[Row]:
    master = context.ptdirect.master_account
    if master is None or context.master_email is None:
        return
    user = context.users.get(context.master_email)
    person = context.person_for_email(master.email)
    problems: list[tuple[str, str]] = []
    if user is None or not user.practitioner_access or not user.confirmed:
        problems.append(
            (
                "not_a_licensed_practitioner",
                f"The master account {master.email} is not a confirmed practitioner in this PT "
                "Direct licence, so its content cannot be shared.",
            )
        )
    if context.is_sharing_patients(master.email):
        problems.append(
            (
                "in_patient_sharing",
                f"The master account {master.email} is in practitioner sharing with patient "
                "sharing on; it should be a content-only account.",
            )
        )
    practitioner = context.identity.practitioner_by_email.get(context.master_email)
    patients = context.co_access.patients_per_practitioner.get(practitioner.id, 0) if practitioner else 0
    if patients:
        problems.append(
            (
                "treats_patients",
                f"The master account {master.email} also has {plural(patients, 'patient')} in the PMS "
                f"({practitioner.name}). Other practitioners cannot share patients with the master "
                "account, so its patients will be duplicated: use a dedicated content-only account "
                "as the master account.",
            )
        )
    if not master.recipients:
        problems.append(
            (
                "no_recipients",
                f"The master account {master.email} has no recipients: nobody receives its content.",
            )
        )
    for problem, message in problems:
        yield _finding(
            kind=FindingKind.MASTER_ACCOUNT_ISSUE,
            severity=Severity.MEDIUM,
            subjects=("master", problem),
            message=message,
            practitioners=(person,),
            evidence={"problem": problem, "master_account": master.email},
        )


def _record(context: Context, practitioner_id: str) -> str:
    practitioner = context.practitioners[practitioner_id]
    state = "active" if practitioner.active else "inactive"
    return f"{practitioner.name} (PMS id {practitioner_id}, {state})"


def ambiguous_match(context: Context) -> Iterator[Row]:
    for ambiguity in context.identity.ambiguities:
        if ambiguity.side == "pms":
            practitioner = context.practitioners[ambiguity.subject]
            people = [Person(practitioner.id, practitioner.email, practitioner.name)]
            people += [context.person_for_email(email) for email in ambiguity.candidates]
            message = (
                f"{_record(context, practitioner.id)} matches several PT Direct users "
                f"({', '.join(ambiguity.candidates)}); link the right one in PT Direct. "
                "ptsync changes nothing for them until then."
            )
            subjects = ("pms:" + practitioner.id,)
        else:
            user = context.users.get(ambiguity.subject)
            people = [
                Person(pid, context.practitioners[pid].email, context.practitioners[pid].name)
                for pid in ambiguity.candidates
            ]
            name = user.name if user else ambiguity.subject
            records = _join([_record(context, pid) for pid in ambiguity.candidates])
            if ambiguity.reason == "stale_link":
                message = (
                    f"PT Direct user {name} ({ambiguity.subject}) is linked to an inactive PMS record, "
                    f"but an active record has the same email: {records}. Update the PMS link in "
                    "PT Direct; ptsync changes nothing for them until then (a re-hire is not a leaver)."
                )
            else:
                message = (
                    f"PT Direct user {name} ({ambiguity.subject}) matches several PMS practitioners: "
                    f"{records}. Link the right one in PT Direct; ptsync changes nothing for them until then."
                )
            subjects = (_user_subject(ambiguity.subject),)
        yield _finding(
            kind=FindingKind.AMBIGUOUS_MATCH,
            severity=Severity.MEDIUM,
            subjects=subjects,
            message=message,
            practitioners=tuple(people),
            evidence={
                "side": ambiguity.side,
                "reason": ambiguity.reason,
                "candidates": list(ambiguity.candidates),
            },
        )


def existing_duplicate_patients(context: Context) -> Iterator[Row]:
    clients = context.ptdirect.clients
    if clients is None:
        return
    by_external: dict[str, list] = {}
    by_identity: dict[tuple[str, int, str], list] = {}
    for client in clients:
        if client.external_id and client.external_id.strip():
            by_external.setdefault(client.external_id.strip(), []).append(client)
        email = normalise_email(client.email)
        name = normalise_name(client.name)
        if name and client.year_of_birth and email:
            by_identity.setdefault((name, client.year_of_birth, email), []).append(client)

    covered: set[tuple[str, str]] = set()
    groups: list[tuple[str, str, list]] = []
    for external_id, copies in sorted(by_external.items()):
        if len({normalise_email(c.practitioner_email) for c in copies}) > 1:
            groups.append(("external_id", "ext:" + external_id, copies))
            covered.update((c.practitioner_email, c.client_id) for c in copies)
    for (name, year, email), copies in sorted(by_identity.items()):
        holders = {normalise_email(c.practitioner_email) for c in copies}
        fresh = [c for c in copies if (c.practitioner_email, c.client_id) not in covered]
        if len(holders) > 1 and fresh:
            groups.append(("name_birth_year_email", f"nye:{name}|{year}|{email}", copies))

    for matched_on, reference, copies in groups:
        pseudonym = pseudonymise(context.pseudonym_key, reference)
        holders = sorted({normalise_email(c.practitioner_email) or "" for c in copies})
        people = [context.person_for_email(email) for email in holders]
        how = "the same PMS id" if matched_on == "external_id" else "the same name, birth year and email"
        yield _finding(
            kind=FindingKind.EXISTING_DUPLICATE_PATIENTS,
            severity=Severity.HIGH,
            subjects=("patient:" + pseudonym,),
            message=(
                f"Patient {pseudonym} already exists {plural(len(copies), 'time')} in Physitrack, under "
                f"{_names(people)} ({how}): merge or transfer the copies."
            ),
            practitioners=tuple(people),
            evidence={"patient": pseudonym, "copies": len(copies), "matched_on": matched_on},
        )


def suspicious_pms_drop(context: Context) -> Iterator[Row]:
    drop = context.drop
    if drop is None or drop.accepted:
        return
    known = context.practitioners
    names = [known[pid].name if pid in known else f"PMS id {pid}" for pid in drop.lost]
    shown = names[:_COLLEAGUES_NAMED]
    if len(names) > len(shown):
        shown.append(plural(len(names) - len(shown), "other"))
    if context.pms.practitioners:
        what = (
            f"The PMS read lists {plural(drop.now_active, 'active practitioner')}, "
            f"{len(drop.lost)} fewer than the {drop.previously_active} of the last accepted sync "
            f"({_join(shown)} are now missing or inactive)"
        )
    else:
        what = "The PMS read lists no practitioners at all"
    yield _finding(
        kind=FindingKind.SUSPICIOUS_PMS_DROP,
        severity=Severity.HIGH,
        subjects=("pms_drop",),
        message=(
            f"{what}. That looks like a cut-short export or a PMS problem, so nobody is treated as "
            "departed and no removal is proposed. Check the PMS; if these people really left, accept "
            "the drop: run the next sync with --accept-drop (`ptsync sync ORG --accept-drop`, or "
            "'accept_drop' on the admin API's start-sync)."
        ),
        evidence={
            "previously_active": drop.previously_active,
            "now_active": drop.now_active,
            "lost": list(drop.lost),
            "threshold_percent": context.policy.removal_threshold_percent,
            "threshold_people": context.policy.removal_threshold_people,
        },
    )


RULES: tuple[Rule, ...] = (
    duplicate_patient_risk,
    missing_new_user,
    pending_invitation,
    no_physitrack_licence,
    departed_practitioner,
    held_by_scope,
    unlinked_user,
    master_account_issue,
    ambiguous_match,
    existing_duplicate_patients,
    suspicious_pms_drop,
)
