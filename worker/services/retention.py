"""Retention: delete old runs (with their reports and finding records), deliveries and messages.

Kept whatever their age: each organisation's latest report (and the run that holds it), every
run a proposal refers to, runs not finished, pending deliveries and unsent notifications, and
the audit log (entries go only with their organisation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from worker.clock import iso, utcnow
from worker.runtime import Runtime
from worker.services import audit
from worker.store import repositories as repo
from worker.store.models import Delivery, FindingRecord, NotificationMessage, Organisation, Proposal, Run


@dataclass(frozen=True)
class PruneResult:
    cutoff: str
    runs: int
    findings: int
    deliveries: int
    notifications: int
    dry_run: bool

    def as_dict(self) -> dict:
        return asdict(self)


def prune(
    runtime: Runtime, *, days: int | None = None, dry_run: bool = False, actor: str = "clock"
) -> PruneResult:
    """Delete (or, dry run, count) what is older than `days` (default PTSYNC_RETENTION_DAYS)."""
    days = days or runtime.settings.retention_days
    cutoff = utcnow() - timedelta(days=days)
    with runtime.db.transaction() as session:
        runs = _prunable_runs(session, cutoff)
        findings = (
            session.scalar(select(func.count()).where(FindingRecord.run_id.in_(runs))) if runs else 0
        ) or 0
        delivery_filter = (Delivery.status != "pending", Delivery.received_at < cutoff)
        message_filter = (
            NotificationMessage.status.in_(("sent", "failed", "digested")),
            NotificationMessage.created_at < cutoff,
        )
        deliveries = session.scalar(select(func.count()).where(*delivery_filter)) or 0
        messages = session.scalar(select(func.count()).where(*message_filter)) or 0
        result = PruneResult(iso(cutoff) or "", len(runs), findings, deliveries, messages, dry_run)
        if dry_run:
            return result
        for chunk in _chunks(runs, 500):
            session.execute(delete(FindingRecord).where(FindingRecord.run_id.in_(chunk)))
            session.execute(delete(Run).where(Run.id.in_(chunk)))
        session.execute(delete(Delivery).where(*delivery_filter))
        session.execute(delete(NotificationMessage).where(*message_filter))
        if runs or deliveries or messages:
            audit.record(session, None, actor, "retention_pruned", days=days, **_counts(result))
    from worker.services.shared_pull import forget_expired

    forget_expired(runtime)  # clinic groups: shared PMS reads past their 15 minutes
    return result


def _counts(result: PruneResult) -> dict:
    return {
        k: v for k, v in result.as_dict().items() if k in ("runs", "findings", "deliveries", "notifications")
    }


def _prunable_runs(session, cutoff: datetime) -> list[str]:
    keep = set(session.scalars(select(Proposal.run_id)))
    for org_id in session.scalars(select(Organisation.id)):
        latest = repo.latest_report_run(session, org_id)
        if latest is not None:
            keep.add(latest.id)
    old = session.scalars(
        select(Run.id).where(
            Run.status.in_((repo.SUCCEEDED, repo.FAILED)),
            func.coalesce(Run.finished_at, Run.requested_at) < cutoff,
        )
    )
    return [run_id for run_id in old if run_id not in keep]


def _chunks(items: list[str], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
