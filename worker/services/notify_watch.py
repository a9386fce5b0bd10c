"""Conditions no single run can see: syncs failing in a row, organisations gone stale, digests.

Run by the clock (the leader only) about once a minute; each condition is announced once per
occurrence thanks to the outbox's dedupe keys (the first failed run of a streak, the last
successful run before going stale, the day of a digest).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from worker.errors import InvalidInput
from worker.runtime import Runtime
from worker.services.notify_delivery import dispatch, relay_due
from worker.services.notify_events import compile_digest, record_stale, record_sync_failing
from worker.services.schedule import parse_schedule
from worker.store import repositories as repo
from worker.store.models import NotificationChannel, Organisation, Run

DIGEST_HOUR_UTC = 8
WATCH_EVERY_SECONDS = 60.0
_last_watch = 0.0
_watch_lock = threading.Lock()


def schedule_interval(expression: str, now: datetime) -> timedelta | None:
    """The gap between the schedule's next two due times (None for an invalid expression)."""
    try:
        trigger = parse_schedule(expression)
    except InvalidInput:
        return None
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    return (second - first) if first and second else None


def watch(runtime: Runtime, now: datetime) -> list[int]:
    """Record failing/stale notifications and due digests; returns outbox ids to send."""
    ids: list[int] = []
    with runtime.db.transaction() as session:
        channels = list(session.scalars(select(NotificationChannel)))
        watched = {c.org_id for c in channels if {"failing", "stale"} & set(c.events)}
        for org_id in watched:
            org = session.get(Organisation, org_id)
            if org is None or org.paused_at is not None:
                continue  # a paused organisation is meant not to sync: neither failing nor stale
            ids += _check_org(session, org, now, runtime.settings.notify_failures_in_a_row)
        if now.hour >= DIGEST_HOUR_UTC:
            day = now.date().isoformat()
            for channel in channels:
                if channel.digest == "daily":
                    message_id = compile_digest(session, channel, day)
                    if message_id is not None:
                        ids.append(message_id)
    return ids


def _check_org(session, org: Organisation, now: datetime, failures_in_a_row: int) -> list[int]:
    ids: list[int] = []
    # The columns the checks read, not whole runs: a run's report and counts can be megabytes,
    # and this looks at up to 50 runs of every watched organisation every minute.
    finished = session.execute(_LATEST_FINISHED, {"org_id": org.id}).all()
    streak = []
    for run in finished:
        if run.status != repo.FAILED:
            break
        streak.append(run)
    if len(streak) >= failures_in_a_row:
        ids += record_sync_failing(session, org, streak[-1].id, len(streak), streak[0].error or "unknown")
    interval = schedule_interval(org.schedule, now)
    if interval is None:
        return ids
    last_success = next((run for run in finished if run.status == repo.SUCCEEDED), None)
    if last_success is None:
        last_success = session.execute(_LATEST_REPORT, {"org_id": org.id}).first()
    since = last_success.finished_at if last_success else org.created_at
    if since is not None and now - since > 2 * interval:
        key = last_success.id if last_success else "never"
        ids += record_stale(session, org, last_success.finished_at if last_success else None, key)
    return ids


_LATEST_FINISHED = (
    select(Run.id, Run.status, Run.error, Run.finished_at)
    .where(Run.org_id == bindparam("org_id"), Run.status.in_((repo.SUCCEEDED, repo.FAILED)))
    .order_by(Run.finished_at.desc())
    .limit(50)
)
_LATEST_REPORT = repo.latest_report_query(Run.id, Run.finished_at)


def notify_tick(runtime: Runtime, now: datetime, send: Callable[[int], None] | None = None) -> int:
    """One clock tick: watch (at most once a minute), then relay due messages. Returns sent count."""
    global _last_watch
    with _watch_lock:
        due_watch = time.monotonic() - _last_watch >= WATCH_EVERY_SECONDS
        if due_watch:
            _last_watch = time.monotonic()
    if due_watch:
        dispatch(watch(runtime, now))
    if send is None:
        from worker.actors import deliver_notification

        send = deliver_notification.send
    return relay_due(runtime, send)
