"""Findings: what a run noticed, who it concerns, and a fingerprint that survives reruns."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from sharing.made_when_read import MadeWhenRead


class FindingKind(enum.Enum):
    DUPLICATE_PATIENT_RISK = "duplicate_patient_risk"
    MISSING_NEW_USER = "missing_new_user"
    PENDING_INVITATION = "pending_invitation"
    NO_PHYSITRACK_LICENCE = "no_physitrack_licence"
    DEPARTED_PRACTITIONER = "departed_practitioner"
    UNLINKED_USER = "unlinked_user"
    MASTER_ACCOUNT_ISSUE = "master_account_issue"
    AMBIGUOUS_MATCH = "ambiguous_match"
    EXISTING_DUPLICATE_PATIENTS = "existing_duplicate_patients"
    SUSPICIOUS_PMS_DROP = "suspicious_pms_drop"


class Severity(enum.Enum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for the most severe: findings sort by it."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {severity: index for index, severity in enumerate(Severity)}


@dataclass(frozen=True, slots=True, init=False)
class Person:
    """A practitioner as a report names them: PMS id, PT Direct email, display name."""

    pms_id: str | None
    email: str | None
    name: str

    def __init__(self, pms_id: str | None, email: str | None, name: str) -> None:
        # Through the slots' own setters, as `Operation`'s: a run names thousands of people.
        _set_pms_id(self, pms_id)
        _set_email(self, email)
        _set_name(self, name)

    def as_dict(self) -> dict[str, Any]:
        return {"pms_id": self.pms_id, "email": self.email, "name": self.name}


_set_pms_id = Person.pms_id.__set__  # type: ignore[attr-defined]
_set_email = Person.email.__set__  # type: ignore[attr-defined]
_set_name = Person.name.__set__  # type: ignore[attr-defined]


def fingerprint(kind: FindingKind, subjects: tuple[str, ...]) -> str:
    """Stable across runs: only the kind and the (sorted) subjects go in, never counts or text.

    The kind's `_value_` is its `value` without the enum property's lookup, and a subject or two
    are sorted only when there are several: a run fingerprints every finding (1,600 at 100,000
    access rows), and this is a quarter faster.
    """
    if len(subjects) == 2:  # most findings with several subjects: compared, not sorted
        first, second = subjects
        parts = (kind._value_, first, second) if first <= second else (kind._value_, second, first)
    else:
        parts = (kind._value_, *(sorted(subjects) if len(subjects) > 1 else subjects))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


class _Fingerprint:
    """`Finding.fingerprint`, computed on first read and kept in the finding's `__dict__`.

    What `functools.cached_property` does, without its lock: sorting, diffing and the report
    each ask for every finding's fingerprint, and a run has thousands of findings.
    """

    def __get__(self, finding: Finding | None, owner: type) -> Any:
        if finding is None:
            return self
        value = finding.__dict__["fingerprint"] = fingerprint(finding.kind, finding.subjects)
        return value


@dataclass(frozen=True, init=False)
class Finding:
    kind: FindingKind
    severity: Severity
    subjects: tuple[str, ...]
    message: str
    practitioners: tuple[Person, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    operations: tuple[tuple[str, str], ...] = ()
    """(op, email) of the planned operations that fix this finding (filled in after planning)."""

    def __init__(
        self,
        kind: FindingKind,
        severity: Severity,
        subjects: tuple[str, ...],
        message: str,
        practitioners: tuple[Person, ...] = (),
        evidence: dict[str, Any] | None = None,
        operations: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Fills the fields in one step (a frozen dataclass's own `__init__` sets them one
        `object.__setattr__` at a time, and a run makes thousands of findings)."""
        self.__dict__.update(
            kind=kind,
            severity=severity,
            subjects=subjects,
            message=message,
            practitioners=practitioners,
            evidence={} if evidence is None else evidence,
            operations=operations,
        )

    fingerprint = _Fingerprint()
    """Stable across runs (`fingerprint`); computed once per finding."""

    def as_dict(self, state: str) -> dict[str, Any]:
        return {
            "kind": self.kind._value_,
            "severity": self.severity._value_,
            "state": state,
            "fingerprint": self.fingerprint,
            "message": self.message,
            "practitioners": [
                {"pms_id": person.pms_id, "email": person.email, "name": person.name}
                for person in self.practitioners
            ],
            "evidence": dict(self.evidence),
            "operations": [{"op": op, "email": email} for op, email in self.operations],
        }


Row = tuple[tuple[str, ...], dict[str, Any]]
"""A finding as the rules make it: its subjects, and its report document (`finding_document`)."""


def finding_document(
    kind: FindingKind,
    severity: Severity,
    subjects: tuple[str, ...],
    message: str,
    practitioners: list[dict[str, Any]],
    evidence: dict[str, Any],
) -> dict[str, Any]:
    """A finding's document as `Finding.as_dict` writes it, with no state yet (the report's
    `diff_findings` gives each its state) and no operations yet (the reconcile links them).

    `practitioners`: each person's document (`Person.as_dict`).
    """
    return {
        "kind": kind._value_,
        "severity": severity._value_,
        "state": None,
        "fingerprint": fingerprint(kind, subjects),
        "message": message,
        "practitioners": practitioners,
        "evidence": evidence,
        "operations": [],
    }


_KIND_OF = {kind._value_: kind for kind in FindingKind}
_SEVERITY_OF = {severity._value_: severity for severity in Severity}


def _finding_of(document: dict[str, Any], subjects: tuple[str, ...]) -> Finding:
    finding = Finding(
        _KIND_OF[document["kind"]],
        _SEVERITY_OF[document["severity"]],
        subjects,
        document["message"],
        tuple(Person(p["pms_id"], p["email"], p["name"]) for p in document["practitioners"]),
        document["evidence"],
        tuple((operation["op"], operation["email"]) for operation in document["operations"]),
    )
    finding.__dict__["fingerprint"] = document["fingerprint"]
    return finding


class Findings(MadeWhenRead[Finding]):
    """A run's findings, in report order, kept as their documents: `Finding`s when first read.

    The report reads the documents (`documents`: `Finding.as_dict`'s, without their state) and
    the worker their fingerprints; only tests and tools read `Finding`s. A `Finding`, its
    `Person`s and its tuples made in every run for them, and turned into the very same
    documents by the report, cost a tenth of a run at 100,000 access rows (1,600 findings
    naming 4,900 people).
    """

    __slots__ = ("_documents", "_subjects")

    def __init__(self, documents: list[dict[str, Any]], subjects: list[tuple[str, ...]]) -> None:
        super().__init__()
        self._documents = documents
        self._subjects = subjects

    @property
    def documents(self) -> list[dict[str, Any]]:
        """Each finding's document with `"state": None`: read them, never change them."""
        return self._documents

    @property
    def fingerprints(self) -> list[str]:
        return [document["fingerprint"] for document in self._documents]

    def _make(self) -> tuple[Finding, ...]:
        return tuple(map(_finding_of, self._documents, self._subjects))

    def __len__(self) -> int:
        return len(self._documents)
