"""Gauges read from the database at scrape time, so they are right whichever process did the work.

Only `ptsync web` and `ptsync clock` export these (not each worker process, which would repeat
them). The per-organisation gauges are the only metrics with an `org` label: one series per
organisation, bounded by the number of organisations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, or_, select

from worker.clock import utcnow
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import (
    Delivery,
    FindingRecord,
    NotificationChannel,
    NotificationMessage,
    Organisation,
    Proposal,
    Run,
)

log = logging.getLogger(__name__)


class OpsCollector(Collector):
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ptsync_database_up", "1 when the last scrape could read the database.")
        try:
            families = self._read()
        except Exception as exc:  # a scrape must answer even when the database is down
            log.warning("metrics: database not readable (%s)", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        now = utcnow()
        with self._runtime().db.transaction() as session:
            # A few grouped queries whatever the number of organisations (reports are not loaded).
            last = (
                select(Run.org_id, func.max(Run.finished_at).label("at"))
                .where(Run.status == repo.SUCCEEDED, Run.report.is_not(None))
                .group_by(Run.org_id)
                .subquery()
            )
            # A success is any succeeded run, also a poll that found nothing changed (no report).
            succeeded = (
                select(Run.org_id, func.max(Run.finished_at).label("at"))
                .where(Run.status == repo.SUCCEEDED)
                .group_by(Run.org_id)
                .subquery()
            )
            return [
                *_organisation_health(session, succeeded, now),
                _open_findings(session, last),
                *_queues(session, now),
                _failing_channels(session),
            ]


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def _organisation_health(session, succeeded, now) -> list[GaugeMetricFamily]:
    """Per active organisation: time since its last success, failures since, schedule interval."""
    from worker.services.notify_watch import schedule_interval

    since = _gauge(
        "ptsync_org_seconds_since_last_success",
        "Seconds since the organisation's last successful sync.",
        ["org"],
    )
    failures = _gauge(
        "ptsync_org_consecutive_failures", "Failed runs since the last successful one.", ["org"]
    )
    interval = _gauge(
        "ptsync_org_schedule_interval_seconds", "The organisation's schedule interval.", ["org"]
    )
    orgs = session.execute(
        select(Organisation.id, Organisation.slug, Organisation.schedule, succeeded.c.at)
        .outerjoin(succeeded, succeeded.c.org_id == Organisation.id)
        .where(Organisation.paused_at.is_(None))  # paused: not expected to sync
    ).all()
    failed = dict(
        session.execute(
            select(Run.org_id, func.count())
            .outerjoin(succeeded, succeeded.c.org_id == Run.org_id)
            .where(Run.status == repo.FAILED, or_(succeeded.c.at.is_(None), Run.finished_at > succeeded.c.at))
            .group_by(Run.org_id)
        ).all()
    )
    for org_id, slug, schedule, at in orgs:
        if at is not None:
            since.add_metric([slug], (now - _aware(at)).total_seconds())
        failures.add_metric([slug], failed.get(org_id, 0))
        gap = schedule_interval(schedule, now)
        if gap is not None:
            interval.add_metric([slug], gap.total_seconds())
    return [since, failures, interval]


def _open_findings(session, last) -> GaugeMetricFamily:
    """Findings in each organisation's latest report, by kind and severity."""
    findings = _gauge(
        "ptsync_open_findings", "Findings in each organisation's latest report.", ["kind", "severity"]
    )
    latest_ids = list(
        session.scalars(
            select(Run.id).join(last, and_(last.c.org_id == Run.org_id, last.c.at == Run.finished_at))
        )
    )
    if latest_ids:
        counts = session.execute(
            select(FindingRecord.kind, FindingRecord.severity, func.count())
            .where(FindingRecord.run_id.in_(latest_ids))
            .group_by(FindingRecord.kind, FindingRecord.severity)
        )
        for kind, severity, count in counts:
            findings.add_metric([kind, severity], count)
    return findings


def _queues(session, now) -> list[GaugeMetricFamily]:
    """What waits: proposals for a person, deliveries to relay, notifications to send."""
    waiting = _gauge("ptsync_proposals_awaiting_approval", "Proposals waiting for a person.")
    oldest_delivery = _gauge(
        "ptsync_oldest_pending_delivery_age_seconds",
        "Age of the oldest webhook/schedule delivery not relayed.",
    )
    oldest_message = _gauge(
        "ptsync_oldest_pending_notification_age_seconds", "Age of the oldest notification not yet sent."
    )
    pending_messages = _gauge("ptsync_notifications_pending", "Notifications waiting to be sent.")
    waiting.add_metric([], session.scalar(select(func.count()).where(Proposal.status == "proposed")) or 0)
    first = session.scalar(select(func.min(Delivery.received_at)).where(Delivery.status == "pending"))
    oldest_delivery.add_metric([], (now - _aware(first)).total_seconds() if first else 0)
    first = session.scalar(
        select(func.min(NotificationMessage.created_at)).where(NotificationMessage.status == "pending")
    )
    oldest_message.add_metric([], (now - _aware(first)).total_seconds() if first else 0)
    pending_messages.add_metric(
        [], session.scalar(select(func.count()).where(NotificationMessage.status == "pending")) or 0
    )
    return [waiting, oldest_delivery, oldest_message, pending_messages]


def _failing_channels(session) -> GaugeMetricFamily:
    from worker.services.notifications import FAILING_AFTER

    failing = _gauge(
        "ptsync_org_notification_channels_failing", "Channels that keep failing to send.", ["org"]
    )
    rows = session.execute(
        select(Organisation.slug, func.count())
        .join(NotificationChannel, NotificationChannel.org_id == Organisation.id)
        .where(NotificationChannel.consecutive_failures >= FAILING_AFTER)
        .group_by(Organisation.slug)
    )
    for slug, count in rows:
        failing.add_metric([slug], count)
    return failing


def _aware(moment):
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
