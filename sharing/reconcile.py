"""The reconciliation: a pure function from a run's inputs to findings and operations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from sharing.access import day_from_number
from sharing.collector import collector_paused
from sharing.context import Baseline, Context, PairTable, build_context
from sharing.findings import FindingKind, Findings, Row, Severity
from sharing.identity import normalise_email
from sharing.made_when_read import MadeWhenRead
from sharing.model import PmsSnapshot, Policy, PtDirectSnapshot
from sharing.operations import Operation, OpKind
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
    findings: Findings
    """In report order; a sequence of `Finding`s, kept as their documents (`Findings`)."""
    operations: tuple[Operation, ...]
    complete: bool
    """Complete and trusted: removals may be proposed and missing findings count as resolved."""
    suspicious: bool
    """The PMS read lost too many people at once (see `suspicious_pms_drop`)."""
    active_practitioners: frozenset[str]
    """Ids of the PMS practitioners active in this read: the next run's baseline."""
    practitioner_count: int
    patient_count: int
    shared_pairs: SharedPairs
    picture: SharingPicture


def reconcile(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    policy: Policy,
    *,
    as_of: date,
    pseudonym_key: bytes,
    baseline: Baseline | None = None,
) -> Reconciliation:
    """Decide findings and operations. No clock and no I/O: `as_of` is the run's date.

    `baseline` is what the last accepted run saw, so a read that suddenly loses people is noticed.

    The cyclic garbage collector is paused meanwhile (`sharing.collector`): everything made here
    lives until the run is written, and the collector's walks over it cost a fifth of the run.
    """
    with collector_paused():
        return _reconcile(pms, ptdirect, policy, as_of, pseudonym_key, baseline)


def _reconcile(
    pms: PmsSnapshot,
    ptdirect: PtDirectSnapshot,
    policy: Policy,
    as_of: date,
    pseudonym_key: bytes,
    baseline: Baseline | None,
) -> Reconciliation:
    context = build_context(pms, ptdirect, policy, as_of, pseudonym_key, baseline)
    operations = plan_operations(context)
    by_email: dict[str | None, list[tuple[OpKind, dict[str, str]]]] = {}
    for operation in operations:
        linked = (operation.op, {"op": operation.op._value_, "email": operation.email})
        by_email.setdefault(normalise_email(operation.email), []).append(linked)
    rows = [row for rule in RULES for row in rule(context)]
    _link(rows, by_email)
    rows.sort(key=_finding_order)
    return Reconciliation(
        findings=Findings([document for _, document in rows], [subjects for subjects, _ in rows]),
        operations=operations,
        complete=context.complete,
        suspicious=context.suspicious,
        active_practitioners=context.active_practitioners,
        practitioner_count=len(pms.practitioners),
        patient_count=context.co_access.distinct_patients,
        shared_pairs=SharedPairs(context.pairs, context.at_risk),
        picture=sharing_picture(context),
    )


_SEVERITY_RANK = {severity._value_: str(index) for index, severity in enumerate(Severity)}


def _finding_order(row: Row) -> str:
    """The order of a rule's finding: by severity rank, kind, then fingerprint, as one string.

    The rank is one digit and a NUL ends the kind (before any character of a kind), so strings
    compare as the tuples (rank, kind, fingerprint) would: a run sorts thousands of findings,
    and comparing one string costs about half of comparing a tuple's items.
    """
    document = row[1]
    return _SEVERITY_RANK[document["severity"]] + document["kind"] + "\x00" + document["fingerprint"]


class SharedPairs(MadeWhenRead[SharedPair]):
    """The pairs who share patients, in pair order, made into `SharedPair`s when first read.

    The report and the worker never read them (the picture has the pairs); making thousands of
    objects in every run for the few readers that do (tests, tools) cost a tenth of a run.
    """

    __slots__ = ("_at_risk", "_table")

    def __init__(self, table: PairTable, at_risk: np.ndarray) -> None:
        super().__init__()
        self._table = table
        self._at_risk = at_risk

    def _make(self) -> tuple[SharedPair, ...]:
        table = self._table
        return tuple(
            SharedPair(  # positional: a keyword call costs more, and there are thousands of pairs
                first,
                second,
                shared,
                day_from_number(day) if shared else None,
                table.access_groups.get(row, ()),
                at_risk,
            )
            for row, (first, second, shared, day, at_risk) in enumerate(
                zip(
                    table.first_ids,
                    table.second_ids,
                    table.shared_patients.tolist(),
                    table.last_days.tolist(),
                    self._at_risk.tolist(),
                    strict=True,
                )
            )
        )

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"SharedPairs({self._all()!r})"


_FIXES = (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING)
_DEPARTURE_FIXES = (OpKind.TRANSFER_PATIENTS, OpKind.REMOVE_SHARING_MEMBER)
_TO_MASTER = (OpKind.ADD_MASTER_RECIPIENT,)
_TO_SHARING = (OpKind.ADD_SHARING_MEMBER,)
_RISK = FindingKind.DUPLICATE_PATIENT_RISK._value_
_MISSING = FindingKind.MISSING_NEW_USER._value_
_DEPARTED = FindingKind.DEPARTED_PRACTITIONER._value_


def _link(rows: list[Row], by_email: dict[str | None, list[tuple[OpKind, dict[str, str]]]]) -> None:
    """Attach to each finding the planned operations that fix it (the documents of the rules'
    new findings, linked in place, in one loop): those for its first person, of its kind.

    `by_email`: the plan's operations by normalised email, in plan order (one pass over the plan
    for all findings, not one per finding), each as its kind and its link's document. The
    findings fixed by one operation share that document (read, never changed): a run links
    1,500 findings.

    Reports and pages use the link to show a finding beside its fix, and to show a finding that
    an automatic apply already fixed as fixed rather than new.

    What fixes what: a duplicate-patient risk, adding the person to sharing or enabling their
    patient sharing; a missing user, adding them where they are missing (sharing or the master
    account's recipients); a departure, the transfer and the removal.
    """
    for _, document in rows:
        kind = document["kind"]
        if kind == _RISK:
            wanted: tuple[OpKind, ...] = _FIXES
        elif kind == _MISSING:
            to_master = document["evidence"].get("missing_from") == "master_recipients"
            wanted = _TO_MASTER if to_master else _TO_SHARING
        elif kind == _DEPARTED:
            wanted = _DEPARTURE_FIXES
        else:
            continue
        people = document["practitioners"]
        if not people or people[0]["email"] is None:
            continue
        operations = by_email.get(normalise_email(people[0]["email"]), ())
        linked = [document for kind, document in operations if kind in wanted]
        if linked:
            document["operations"] = linked


__all__ = ["Baseline", "Context", "Reconciliation", "SharedPair", "SharedPairs", "reconcile"]
