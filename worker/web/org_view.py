"""What the org page shows, prepared from the report, runs and proposals (no HTTP here).

Findings are grouped by severity, then kind; each links to the operations of the open proposal
that fix it. This works with both shapes of `duplicate_patient_risk`: one finding per pair
(`evidence.not_sharing_patients` names who must change) and one per practitioner who must
change (`evidence.pairs`; the first practitioner is that person).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sharing.findings import Severity
from worker.services.schedule import next_due
from worker.views import ProposalView, RunView
from worker.web.timefmt import local, relative

SEVERITIES = tuple(severity.value for severity in Severity)
STATE_ORDER = {"new": 0, "ongoing": 1, "indeterminate": 2, "fixed": 3}
STATE_LABEL = {
    "new": "new",
    "ongoing": "ongoing",
    "indeterminate": "could not be checked",
    "fixed": "fixed by the applied changes",
}
OPEN_STATUSES = ("proposed", "approved", "applying")
OPEN_ALL_UP_TO = 15  # groups and lists this small start expanded


@dataclass
class KindGroup:
    kind: str
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ").capitalize()

    @property
    def new(self) -> int:
        return sum(1 for finding in self.findings if finding["state"] == "new")

    @property
    def unchecked(self) -> int:
        return sum(1 for finding in self.findings if finding["state"] == "indeterminate")


@dataclass
class SeverityGroup:
    severity: str
    kinds: list[KindGroup]

    @property
    def count(self) -> int:
        return sum(len(group.findings) for group in self.kinds)


# Which operations fix which kind of finding (kinds not listed: any operation for its people).
FIXED_BY = {
    "duplicate_patient_risk": {"add_sharing_member", "enable_patient_sharing"},
    "missing_new_user": {"add_sharing_member", "enable_patient_sharing", "add_master_recipient"},
    "departed_practitioner": {"transfer_patients", "remove_sharing_member", "remove_master_recipient"},
    "master_account_issue": {"set_master_account", "add_master_recipient", "remove_master_recipient"},
    "pending_invitation": {"invite_practitioner"},
    "no_physitrack_licence": {"invite_practitioner"},
}


def _emails_to_fix(finding: dict[str, Any]) -> set[str]:
    """Whose operations fix this finding (lower-cased emails)."""
    people = finding.get("practitioners") or []
    evidence = finding.get("evidence") or {}
    if finding["kind"] == "duplicate_patient_risk":
        if "pairs" in evidence and people:
            emails = [people[0].get("email")]
        else:
            emails = list(evidence.get("not_sharing_patients") or [])
    else:
        emails = [person.get("email") for person in people]
    return {email.strip().lower() for email in emails if email}


def _matches(finding: dict[str, Any], who: str) -> bool:
    needle = who.strip().casefold()
    people = finding.get("practitioners") or []
    haystack = [finding.get("message", "")] + [
        f"{person.get('name') or ''} {person.get('email') or ''}" for person in people
    ]
    return any(needle in text.casefold() for text in haystack)


def group_findings(
    findings: list[dict[str, Any]], operations: list[dict[str, Any]], who: str | None
) -> list[SeverityGroup]:
    """Severity groups (highest first) of kind groups; each finding gains `fixes` (operations)."""
    by_email: dict[str, list[dict[str, Any]]] = {}
    for operation in operations:
        by_email.setdefault((operation["email"] or "").strip().lower(), []).append(operation)
    groups: dict[str, dict[str, KindGroup]] = {}
    for finding in sorted(findings, key=lambda f: (STATE_ORDER.get(f["state"], 9), f["message"])):
        if who and not _matches(finding, who):
            continue
        kinds = FIXED_BY.get(finding["kind"])
        fixes = [
            op
            for email in sorted(_emails_to_fix(finding))
            for op in by_email.get(email, [])
            if kinds is None or op["op"] in kinds
        ]
        shown = {
            **finding,
            "fixes": fixes,
            "state_label": STATE_LABEL.get(finding["state"], finding["state"]),
        }
        severity = groups.setdefault(finding["severity"], {})
        severity.setdefault(finding["kind"], KindGroup(finding["kind"])).findings.append(shown)
    return [
        SeverityGroup(severity, sorted(groups[severity].values(), key=lambda g: (-len(g.findings), g.kind)))
        for severity in sorted(groups, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else 9)
    ]


def proposal_views(proposals: list[ProposalView], zone: ZoneInfo, now: datetime) -> list[dict[str, Any]]:
    """Proposals newest first, each with its operations anchored for links from findings."""
    views = []
    for proposal in proposals:
        operations = [
            {
                "anchor": f"op-{proposal.id[:12]}-{row.position}",
                "op": row.op,
                "label": row.label,
                "email": row.email,
                "status": row.status,
                "requires_approval": row.requires_approval,
            }
            for row in proposal.operations
        ]
        views.append(
            {
                "id": proposal.id,
                "status": proposal.status,
                "open": proposal.status in OPEN_STATUSES,
                "created": local(proposal.created_at, zone),
                "created_ago": relative(proposal.created_at, now),
                "error": proposal.error,
                "operations": operations,
                "waiting": proposal.waiting,
                "summary": _operation_summary(operations),
            }
        )
    return views


def _operation_summary(operations: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for operation in operations:
        counts[operation["label"]] = counts.get(operation["label"], 0) + 1
    return ", ".join(f"{count} × {label}" for label, count in counts.items())


def run_views(runs: list[RunView], zone: ZoneInfo, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": run.id,
            "trigger": run.trigger,
            "status": run.status,
            "requested": local(run.requested_at, zone),
            "requested_ago": relative(run.requested_at, now),
            "finished_ago": relative(run.finished_at, now) if run.finished_at else "",
            # A run still being tried again says so, with why its last attempt failed.
            "error": f"retrying: {run.retrying}" if run.retrying else run.error,
        }
        for run in runs
    ]


def header_view(schedule: str, last_run: RunView | None, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """The header line: the last run's status and time, and when the next scheduled sync is."""
    upcoming = next_due(schedule, now)
    view: dict[str, Any] = {
        "zone": zone.key,
        "next": local(upcoming, zone) if upcoming else None,
        "next_in": relative(upcoming, now) if upcoming else None,
        "last": None,
    }
    if last_run is not None:
        moment = last_run.last_moment
        view["last"] = {
            "id": last_run.id,
            "status": last_run.status,
            "at": local(moment, zone),
            "ago": relative(moment, now),
            "trigger": last_run.trigger,
            "active": last_run.active,
        }
    return view
