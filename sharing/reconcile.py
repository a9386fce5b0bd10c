"""The reconciliation: a pure function from a run's inputs to findings and operations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sharing.access import day_from_number
from sharing.context import build_context
from sharing.findings import Finding
from sharing.model import PmsSnapshot, Policy, PtDirectSnapshot
from sharing.operations import Operation
from sharing.picture import SharingPicture, sharing_picture
from sharing.plan import plan_operations
from sharing.rules import RULES


@dataclass(frozen=True, slots=True)
class SharedPair:
    """Two practitioners who share patients in the PMS (for reports and the sharing picture)."""

    first: str
    second: str
    shared_patients: int
    last_shared_on: date | None
    access_groups: tuple[str, ...]
    at_risk: bool


@dataclass(frozen=True)
class Reconciliation:
    findings: tuple[Finding, ...]
    operations: tuple[Operation, ...]
    complete: bool
    practitioner_count: int
    patient_count: int
    shared_pairs: tuple[SharedPair, ...]
    picture: SharingPicture


def reconcile(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    policy: Policy,
    *,
    as_of: date,
    pseudonym_key: bytes,
) -> Reconciliation:
    """Decide findings and operations. No clock and no I/O: `as_of` is the run's date."""
    context = build_context(pms, ptdirect, policy, as_of, pseudonym_key)
    findings = [finding for rule in RULES for finding in rule(context)]
    findings.sort(key=lambda f: (f.severity.rank, f.kind.value, f.fingerprint))
    at_risk = {
        tuple(subject.removeprefix("pms:") for subject in finding.subjects)
        for finding in findings
        if finding.kind.value == "duplicate_patient_risk"
    }
    pairs = tuple(
        SharedPair(
            first=first,
            second=second,
            shared_patients=shared.stat.shared_patients if shared.stat else 0,
            last_shared_on=day_from_number(shared.stat.last_shared_day) if shared.stat else None,
            access_groups=shared.access_groups,
            at_risk=(first, second) in at_risk,
        )
        for (first, second), shared in sorted(context.shared.items())
    )
    return Reconciliation(
        findings=tuple(findings),
        operations=plan_operations(context),
        complete=context.complete,
        practitioner_count=len(pms.practitioners),
        patient_count=context.co_access.distinct_patients,
        shared_pairs=pairs,
        picture=sharing_picture(context),
    )
