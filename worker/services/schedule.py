"""Scheduled syncs: per-organisation cron expressions turned into outbox deliveries.

A due time becomes a delivery keyed (organisation, "schedule", due time): a repeated tick, a
restarted clock or a second clock process can only hit the unique key, never start a second
run. Missed ticks are not replayed one by one: within the catch-up window only the latest due
time counts, since one sync brings an organisation up to date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger

from worker.clock import iso
from worker.errors import InvalidInput

if TYPE_CHECKING:
    from worker.runtime import Runtime

CATCH_UP = timedelta(minutes=15)


def parse_schedule(expression: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expression, timezone=UTC)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"the schedule {expression!r} is not a valid cron expression: {exc}") from None


def latest_due(expression: str, now: datetime, catch_up: timedelta = CATCH_UP) -> datetime | None:
    """The latest fire time in (now - catch_up, now], or None."""
    trigger = parse_schedule(expression)
    moment = trigger.get_next_fire_time(None, now - catch_up)
    latest = None
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return latest


def record_due_syncs(runtime: Runtime, now: datetime) -> list[int]:
    """Record a delivery for every organisation whose schedule fell due; returns new delivery ids."""
    from sqlalchemy import select

    from worker.services.deliveries import accept
    from worker.store.models import Organisation

    with runtime.db.transaction() as session:
        orgs = [
            (org.id, org.schedule)
            for org in session.scalars(select(Organisation).where(Organisation.paused_at.is_(None)))
        ]
    created = []
    for org_id, expression in orgs:
        try:
            due = latest_due(expression, now)
        except InvalidInput:
            continue
        if due is None:
            continue
        stamp = iso(due)
        accepted = accept(runtime, org_id, "schedule", stamp, "tick", stamp.encode())
        if not accepted.duplicate:
            created.append(accepted.delivery)
    return created


def next_due(expression: str, now: datetime) -> datetime | None:
    """When a schedule fires next after `now`; None for an expression that does not parse."""
    try:
        return parse_schedule(expression).get_next_fire_time(None, now)
    except InvalidInput:
        return None
