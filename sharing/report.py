"""The report document (`ptsync.report/1`): plain data that serialises to the JSON contract."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sharing.collector import collector_paused
from sharing.diff import diff_findings
from sharing.operations import Operation
from sharing.reconcile import Reconciliation

SCHEMA = "ptsync.report/1"


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    trigger: str
    status: str
    started_at: str | None
    finished_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger": self.trigger,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class ProposalInfo:
    id: str
    status: str
    operations: tuple[Operation, ...]


def build_report(
    org: str,
    run: RunInfo,
    reconciliation: Reconciliation,
    previous: Mapping[str, Mapping[str, Any]],
    proposal: ProposalInfo | None,
    *,
    policy_only: frozenset[str] = frozenset(),
    timezone: str = "UTC",
    scope: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`scope`: the organisation's part of a shared PMS account (`sharing.scope`), None for all.

    With the cyclic garbage collector paused, as `reconcile` does and for the same reason: the
    document is thousands of containers that live until it is written.
    """
    with collector_paused():
        return _build_report(org, run, reconciliation, previous, proposal, policy_only, timezone, scope)


def _build_report(
    org: str,
    run: RunInfo,
    reconciliation: Reconciliation,
    previous: Mapping[str, Mapping[str, Any]],
    proposal: ProposalInfo | None,
    policy_only: frozenset[str],
    timezone: str,
    scope: Mapping[str, Any] | None,
) -> dict[str, Any]:
    diff = diff_findings(
        reconciliation.findings, previous, complete=reconciliation.complete, policy_only=policy_only
    )
    counts = Counter(finding["kind"] for finding in diff.current)
    return {
        "schema": SCHEMA,
        "org": org,
        "timezone": timezone,
        "scope": dict(scope) if scope is not None else None,
        "run": run.as_dict(),
        "summary": {
            "practitioners": reconciliation.practitioner_count,
            "patients": reconciliation.patient_count,
            "findings": dict(sorted(counts.items())),
        },
        "findings": list(diff.current),
        "resolved": list(diff.resolved),
        "proposal": None
        if proposal is None or not proposal.operations
        else {
            "id": proposal.id,
            "status": proposal.status,
            "operations": [operation.as_dict() for operation in proposal.operations],
        },
    }
