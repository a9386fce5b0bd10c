"""Comparing a run's findings with the previous run's: new, ongoing, resolved.

An incomplete run cannot say that something was fixed: every finding it has is
`indeterminate`, and the previous run's findings it no longer sees are carried forward as
`indeterminate` too, never reported as resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sharing.findings import Finding

NEW = "new"
ONGOING = "ongoing"
INDETERMINATE = "indeterminate"
RESOLVED = "resolved"


@dataclass(frozen=True)
class FindingDiff:
    current: tuple[dict[str, Any], ...]
    resolved: tuple[dict[str, Any], ...]


def diff_findings(
    findings: tuple[Finding, ...],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    complete: bool,
    policy_only: frozenset[str] = frozenset(),
) -> FindingDiff:
    """`previous` maps fingerprint to the previous report's finding document.

    `policy_only`: fingerprints the current inputs still show under the previous policy. They
    vanished because the rules changed, not because anyone fixed anything: not resolved.
    """
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
