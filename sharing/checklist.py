"""A proposal as the steps an admin follows by hand in the PT Direct admin console.

For clinics without a bridge (`--ptdirect file`), the checklist *is* the apply: each step names
the menu, the tick box and the practitioner. The next run checks that the steps took effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sharing.operations import Operation, OpKind

SHARING_MENU = "Open \u201cPractitioner sharing\u201d in the left side panel of PT Direct."
MASTER_MENU = "Open the \u201cMaster account\u201d menu in the left side panel of PT Direct."


def checklist(operations: Sequence[Operation], names: Mapping[str, str]) -> list[str]:
    """Numbered, self-contained steps. `names` maps lower-case email to the person's name."""
    steps: list[str] = []
    for op in operations:
        who = f"{names.get(op.email.lower(), op.email)} ({op.email})"
        if op.op is OpKind.ADD_SHARING_MEMBER:
            ticks = " and ".join(
                label for label, on in (("content", op.share_content), ("patients", op.share_patients)) if on
            )
            steps.append(f"{SHARING_MENU} Tick the box beside {who} so they share {ticks}. Save.")
        elif op.op is OpKind.ENABLE_PATIENT_SHARING:
            steps.append(f"{SHARING_MENU} Beside {who}, tick patient sharing (keep content as it is). Save.")
        elif op.op is OpKind.ADD_MASTER_RECIPIENT:
            steps.append(f"{MASTER_MENU} Tick the box beside {who} so they receive the master content. Save.")
        elif op.op is OpKind.REMOVE_MASTER_RECIPIENT:
            steps.append(f"{MASTER_MENU} Untick the box beside {who}. Save.")
        elif op.op is OpKind.SET_MASTER_ACCOUNT:
            steps.append(
                f"{MASTER_MENU} Enter {op.email} as the master account email and click \u201cSave\u201d."
            )
        elif op.op is OpKind.TRANSFER_PATIENTS:
            steps.append(
                f"Before anything else for {who}: transfer their patients to a colleague in PT Direct "
                "(otherwise their programmes are disabled and peers lose access when they are removed)."
            )
        elif op.op is OpKind.REMOVE_SHARING_MEMBER:
            steps.append(
                f"Only once {who}'s patients are transferred: {SHARING_MENU} "
                "Untick the box beside them. Save."
            )
        elif op.op is OpKind.INVITE_PRACTITIONER:
            steps.append(f"Add {who} as a practitioner in PT Direct and send the invitation.")
    return [f"{number}. {step}" for number, step in enumerate(steps, start=1)]
