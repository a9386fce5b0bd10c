"""Comparing a run's findings with the previous run's: new, ongoing, resolved.

An incomplete run cannot say that something was fixed: every finding it has is
`indeterminate`, and the previous run's findings it no longer sees are carried forward as
`indeterminate` too, never reported as resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sharing.findings import Finding, Findings

NEW = "new"
ONGOING = "ongoing"
INDETERMINATE = "indeterminate"
RESOLVED = "resolved"


@dataclass(frozen=True)
class FindingDiff:
    current: tuple[dict[str, Any], ...]
    resolved: tuple[dict[str, Any], ...]


def diff_findings(
    findings: Sequence[Finding],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    complete: bool,
    policy_only: frozenset[str] = frozenset(),
) -> FindingDiff:
    """`previous` maps fingerprint to the previous report's finding document.

    `policy_only`: fingerprints the current inputs still show under the previous policy. They
    vanished because the rules changed, not because anyone fixed anything: not resolved.
    """
    if isinstance(findings, Findings):
        current, seen = _current_of_documents(findings, previous, complete)
    else:
        current = []
        seen = set()
        for finding in findings:
            seen.add(finding.fingerprint)
            if complete:
                state = ONGOING if finding.fingerprint in previous else NEW
            else:
                state = INDETERMINATE
            current.append(finding.as_dict(state))
    leftovers = [
        dict(doc)
        for fingerprint, doc in sorted(previous.items())
        if fingerprint not in seen and fingerprint not in policy_only
    ]
    if complete:
        return FindingDiff(tuple(current), tuple({**doc, "state": RESOLVED} for doc in leftovers))
    carried = [{**doc, "state": INDETERMINATE} for doc in leftovers]
    return FindingDiff(tuple(current + carried), ())


def _current_of_documents(
    findings: Findings, previous: Mapping[str, Mapping[str, Any]], complete: bool
) -> tuple[list[dict[str, Any]], set[str]]:
    """`Finding.as_dict(state)` of each finding, from the documents a reconcile keeps: each a
    copy with its state, in one C-level step. What the copy holds (evidence, people, operations)
    is the reconcile's own, shared and never changed: a copy of each evidence was 1,600 more
    dicts a run to make and for the collector to walk."""
    documents = findings.documents
    seen = {document["fingerprint"] for document in documents}
    if not complete:
        return [{**document, "state": INDETERMINATE} for document in documents], seen
    return [
        {**document, "state": ONGOING if document["fingerprint"] in previous else NEW}
        for document in documents
    ], seen
