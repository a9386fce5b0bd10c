"""The rules: one function per finding kind, each reading the shared `Context`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sharing.access import day_from_number
from sharing.context import Context, SharedAccess
from sharing.findings import Finding, FindingKind, Person, Severity
from sharing.identity import normalise_email, normalise_name
from sharing.model import MasterRecipients
from sharing.pseudonym import pseudonymise

Rule = Callable[[Context], Iterator[Finding]]

_MANY_SHARED_PATIENTS = 5


def _user_subject(email: str) -> str:
    return "user:" + (normalise_email(email) or "")


def _names(people: list[Person]) -> str:
    names = [person.name for person in people]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _risk_severity(context: Context, shared: SharedAccess) -> Severity:
    if shared.stat is None:
        return Severity.MEDIUM
    recent = shared.stat.last_shared_day >= context.recent_day
    many = shared.stat.shared_patients >= _MANY_SHARED_PATIENTS
    if recent and many:
        return Severity.HIGH
    if recent or many:
        return Severity.MEDIUM
    return Severity.LOW


def duplicate_patient_risk(context: Context) -> Iterator[Finding]:
    for (first, second), shared in sorted(context.shared.items()):
        first_user = context.licensed_active.get(first)
        second_user = context.licensed_active.get(second)
        if first_user is None or second_user is None:
            continue
        not_sharing = [
            (practitioner_id, user)
            for practitioner_id, user in ((first, first_user), (second, second_user))
            if not context.is_sharing_patients(user.email)
        ]
        if not not_sharing:
            continue
        people = [context.person(first), context.person(second)]
        gaps = []
        for practitioner_id, user in not_sharing:
            name = context.practitioners[practitioner_id].name
            if normalise_email(user.email) in context.members:
                gaps.append(f"{name} does not share patients in practitioner sharing")
            else:
                gaps.append(f"{name} is not in practitioner sharing")
        evidence: dict[str, object] = {
            "lookback_days": context.policy.lookback_days,
            "not_sharing_patients": sorted(user.email for _, user in not_sharing),
        }
        if shared.stat is not None:
            last = day_from_number(shared.stat.last_shared_day).isoformat()
            reason = (
                f"{_names(people)} treated {shared.stat.shared_patients} of the same patients "
                f"in the last {context.policy.lookback_days} days (most recently {last})"
            )
            evidence["shared_patients"] = shared.stat.shared_patients
            evidence["last_shared_on"] = last
        else:
            evidence["shared_patients"] = 0
        if shared.access_groups:
            evidence["access_groups"] = list(shared.access_groups)
            if shared.stat is None:
                groups = ", ".join(f"'{group}'" for group in shared.access_groups)
                reason = f"{_names(people)} share patients through the PMS access group {groups}"
        yield Finding(
            kind=FindingKind.DUPLICATE_PATIENT_RISK,
            severity=_risk_severity(context, shared),
            subjects=("pms:" + first, "pms:" + second),
            message=f"{reason} but {' and '.join(gaps)}.",
            practitioners=tuple(people),
            evidence=evidence,
        )


def missing_new_user(context: Context) -> Iterator[Finding]:
    for practitioner_id, user in sorted(context.belongs_in_sharing().items()):
        if normalise_email(user.email) in context.members:
            continue
        peers = [peer for peer in context.peers.get(practitioner_id, ()) if peer in context.eligible]
        name = context.practitioners[practitioner_id].name
        why = (
            f" (shares patients with {len(peers)} colleague{'s' if len(peers) != 1 else ''} in the PMS)"
            if peers
            else ""
        )
        yield Finding(
            kind=FindingKind.MISSING_NEW_USER,
            severity=Severity.MEDIUM,
            subjects=("practitioner_sharing", _user_subject(user.email)),
            message=(
                f"{name} is active in the PMS and confirmed in PT Direct but is not in "
                f"practitioner sharing{why}."
            ),
            practitioners=(context.person(practitioner_id),),
            evidence={"missing_from": "practitioner_sharing", "pms_peers": len(peers)},
        )
    master = context.ptdirect.master_account
    if master is None or context.policy.master_recipients is not MasterRecipients.ALL_ACTIVE:
        return
    for practitioner_id, user in sorted(context.eligible.items()):
        if normalise_email(user.email) in context.recipients:
            continue
        name = context.practitioners[practitioner_id].name
        yield Finding(
            kind=FindingKind.MISSING_NEW_USER,
            severity=Severity.MEDIUM,
            subjects=("master_recipients", _user_subject(user.email)),
            message=(
                f"{name} is active in the PMS and confirmed in PT Direct but does not receive "
                f"the master account's content ({master.email})."
            ),
            practitioners=(context.person(practitioner_id),),
            evidence={"missing_from": "master_recipients", "master_account": master.email},
        )


def pending_invitation(context: Context) -> Iterator[Finding]:
    for practitioner_id, user in sorted(context.identity.user_by_practitioner.items()):
        if not context.practitioners[practitioner_id].active or user.confirmed:
            continue
        name = context.practitioners[practitioner_id].name
        yield Finding(
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


def no_physitrack_licence(context: Context) -> Iterator[Finding]:
    patients = context.co_access.patients_per_practitioner
    for practitioner_id, practitioner in sorted(context.practitioners.items()):
        if not practitioner.active or practitioner_id in context.identity.ambiguous_practitioners:
            continue
        treating = patients.get(practitioner_id, 0)
        if not treating:
            continue
        user = context.identity.user_by_practitioner.get(practitioner_id)
        if user is not None and user.practitioner_access:
            continue
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
        yield Finding(
            kind=FindingKind.NO_PHYSITRACK_LICENCE,
            severity=Severity.INFO,
            subjects=("pms:" + practitioner_id,),
            message=(f"{practitioner.name} treats {treating} patients in the PMS but {detail}."),
            practitioners=(context.person(practitioner_id),),
            evidence=evidence,
        )


def departed_practitioner(context: Context) -> Iterator[Finding]:
    for email, member in sorted(context.members.items()):
        user = context.users.get(email)
        if not member.share_patients or user is None or not user.confirmed:
            continue
        if email == context.master_email:
            continue
        reason = context.departed_reason(email)
        if reason is None:
            continue
        person = context.person_for_email(user.email)
        where = "inactive in the PMS" if reason == "inactive_in_pms" else "no longer in the PMS"
        yield Finding(
            kind=FindingKind.DEPARTED_PRACTITIONER,
            severity=Severity.HIGH,
            subjects=(_user_subject(user.email),),
            message=(
                f"{person.name} shares patients in practitioner sharing but is {where}: "
                "transfer their patients before removing them, or peers lose access to them."
            ),
            practitioners=(person,),
            evidence={"reason": reason},
        )


def unlinked_user(context: Context) -> Iterator[Finding]:
    for email, user in sorted(context.users.items()):
        if email in context.identity.practitioner_by_email or email in context.identity.ambiguous_emails:
            continue
        member = context.members.get(email)
        if member is not None and member.share_patients and context.departed_reason(email):
            continue  # reported as departed_practitioner instead
        is_master = email == context.master_email
        what = "the master account" if is_master else "a PT Direct user"
        yield Finding(
            kind=FindingKind.UNLINKED_USER,
            severity=Severity.INFO,
            subjects=(_user_subject(user.email),),
            message=(
                f"{user.name} ({user.email}) is {what} with no matching PMS practitioner "
                "(a content account, an admin or a leaver?)."
            ),
            practitioners=(Person(pms_id=None, email=user.email, name=user.name),),
            evidence={
                "master_account": is_master,
                "confirmed": user.confirmed,
                "practitioner_access": user.practitioner_access,
                "in_practitioner_sharing": member is not None,
            },
        )


def master_account_issue(context: Context) -> Iterator[Finding]:
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
    if not master.recipients:
        problems.append(
            (
                "no_recipients",
                f"The master account {master.email} has no recipients: nobody receives its content.",
            )
        )
    for problem, message in problems:
        yield Finding(
            kind=FindingKind.MASTER_ACCOUNT_ISSUE,
            severity=Severity.MEDIUM,
            subjects=("master", problem),
            message=message,
            practitioners=(person,),
            evidence={"problem": problem, "master_account": master.email},
        )


def ambiguous_match(context: Context) -> Iterator[Finding]:
    for ambiguity in context.identity.ambiguities:
        if ambiguity.side == "pms":
            practitioner = context.practitioners[ambiguity.subject]
            people = [Person(practitioner.id, practitioner.email, practitioner.name)]
            people += [context.person_for_email(email) for email in ambiguity.candidates]
            message = (
                f"{practitioner.name} (PMS id {practitioner.id}) matches several PT Direct users "
                f"({', '.join(ambiguity.candidates)}); link the right one in PT Direct."
            )
            subjects = ("pms:" + practitioner.id,)
        else:
            user = context.users.get(ambiguity.subject)
            people = [
                Person(pid, context.practitioners[pid].email, context.practitioners[pid].name)
                for pid in ambiguity.candidates
            ]
            name = user.name if user else ambiguity.subject
            message = (
                f"PT Direct user {name} ({ambiguity.subject}) matches several PMS practitioners "
                f"({_names(people)}); link the right one in PT Direct."
            )
            subjects = (_user_subject(ambiguity.subject),)
        yield Finding(
            kind=FindingKind.AMBIGUOUS_MATCH,
            severity=Severity.MEDIUM,
            subjects=subjects,
            message=message,
            practitioners=tuple(people),
            evidence={"side": ambiguity.side, "candidates": list(ambiguity.candidates)},
        )


def existing_duplicate_patients(context: Context) -> Iterator[Finding]:
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
        yield Finding(
            kind=FindingKind.EXISTING_DUPLICATE_PATIENTS,
            severity=Severity.HIGH,
            subjects=("patient:" + pseudonym,),
            message=(
                f"Patient {pseudonym} already exists {len(copies)} times in Physitrack, under "
                f"{_names(people)} ({how}): merge or transfer the copies."
            ),
            practitioners=tuple(people),
            evidence={"patient": pseudonym, "copies": len(copies), "matched_on": matched_on},
        )


RULES: tuple[Rule, ...] = (
    duplicate_patient_risk,
    missing_new_user,
    pending_invitation,
    no_physitrack_licence,
    departed_practitioner,
    unlinked_user,
    master_account_issue,
    ambiguous_match,
    existing_duplicate_patients,
)
