"""What changed between two recorded PT Direct states, in the words of PT Direct's screens.

Each recorded version of a `--ptdirect manual` organisation keeps this list, so a person can
see who changed what and when without comparing JSON documents.
"""

from __future__ import annotations

from sharing.identity import normalise_email
from sharing.model import PtDirectSnapshot


def describe_changes(before: PtDirectSnapshot | None, after: PtDirectSnapshot) -> list[str]:
    """One plain sentence per change; empty when nothing a plan depends on changed."""
    if before is None:
        return [
            f"first recorded state: {len(after.users)} users, "
            f"{len(after.sharing_members)} in practitioner sharing, "
            f"master account {after.master_account.email if after.master_account else 'not set'}"
        ]
    changes: list[str] = []
    old_users = {normalise_email(u.email): u for u in before.users}
    new_users = {normalise_email(u.email): u for u in after.users}
    for email in sorted(new_users.keys() - old_users.keys()):
        changes.append(f"user {new_users[email].email} added ({new_users[email].status.value})")
    for email in sorted(old_users.keys() - new_users.keys()):
        changes.append(f"user {old_users[email].email} removed")
    for email in sorted(old_users.keys() & new_users.keys()):
        old, new = old_users[email], new_users[email]
        if old.status != new.status:
            changes.append(f"user {new.email}: {old.status.value} -> {new.status.value}")
        if old.practitioner_access != new.practitioner_access:
            changes.append(f"user {new.email}: practitioner access {_on(new.practitioner_access)}")
        if old.pms_link != new.pms_link:
            link = new.pms_link
            changes.append(
                f"user {new.email}: PMS link "
                + (f"{link.system} {link.practitioner_id}" if link else "removed")
            )
        if old.name != new.name:
            changes.append(f"user {new.email}: name {old.name!r} -> {new.name!r}")
    old_members = {normalise_email(m.email): m for m in before.sharing_members}
    new_members = {normalise_email(m.email): m for m in after.sharing_members}
    for email in sorted(new_members.keys() - old_members.keys()):
        member = new_members[email]
        changes.append(
            f"practitioner sharing: {member.email} added (share content {_on(member.share_content)}, "
            f"share patients {_on(member.share_patients)})"
        )
    for email in sorted(old_members.keys() - new_members.keys()):
        changes.append(f"practitioner sharing: {old_members[email].email} removed")
    for email in sorted(old_members.keys() & new_members.keys()):
        old, new = old_members[email], new_members[email]
        if old.share_content != new.share_content:
            changes.append(f"practitioner sharing: {new.email} share content {_on(new.share_content)}")
        if old.share_patients != new.share_patients:
            changes.append(f"practitioner sharing: {new.email} share patients {_on(new.share_patients)}")
    changes += _master_changes(before, after)
    return changes


def _master_changes(before: PtDirectSnapshot, after: PtDirectSnapshot) -> list[str]:
    old, new = before.master_account, after.master_account
    if old is None and new is None:
        return []
    if new is None:
        return ["master account removed"]
    changes = []
    if old is None or normalise_email(old.email) != normalise_email(new.email):
        changes.append(f"master account set to {new.email}")
    old_recipients = {normalise_email(r) for r in (old.recipients if old else ())}
    new_recipients = {normalise_email(r): r for r in new.recipients}
    for email in sorted(new_recipients.keys() - old_recipients):
        changes.append(f"master account recipient {new_recipients[email]} added")
    for email in sorted(old_recipients - new_recipients.keys()):
        changes.append(f"master account recipient {email} removed")
    return changes


def _on(flag: bool) -> str:
    return "on" if flag else "off"
