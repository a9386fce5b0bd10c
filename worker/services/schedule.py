"""Scheduled syncs: per-organisation cron expressions turned into outbox deliveries.

Two schedules per organisation: `schedule`, the incremental poll (only what changed since the
cursor; a poll that finds nothing changed does not rebuild the report), and `full_sync`, the
full reconciliation sync that re-reads everything (nightly by default). A full sync's delivery
has the event "full" and marks its run `full_pull` (services/deliveries.py).

A due time becomes a delivery keyed (organisation, "schedule", due time): a repeated tick, a
restarted clock or a second clock process can only hit the unique key, never start a second
run. Missed ticks are not replayed one by one: within the catch-up window only the latest due
time counts, since one sync brings an organisation up to date.
"""

from __future__ import annotations

import threading
import weakref
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger

from worker.clock import iso
from worker.errors import InvalidInput

if TYPE_CHECKING:
    from worker.runtime import Runtime

CATCH_UP = timedelta(minutes=15)


def parse_schedule(expression: str, option: str = "the schedule") -> CronTrigger:
    return _parsed(expression, option)


@lru_cache(maxsize=4096)
def _parsed(expression: str, option: str) -> CronTrigger:
    """Parsed once per expression: the clock asks for every organisation on every tick."""
    try:
        return CronTrigger.from_crontab(expression, timezone=UTC)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{option} {expression!r} is not a valid cron expression: {exc}") from None


def validate_full_sync(expression: str) -> None:
    if len(expression.split()) != 5:
        raise InvalidInput(f"--full-sync {expression!r} is not a 5-field cron expression (e.g. '30 2 * * *')")
    parse_schedule(expression, "--full-sync")


def latest_due(expression: str, now: datetime, catch_up: timedelta = CATCH_UP) -> datetime | None:
    """The latest fire time in (now - catch_up, now], or None."""
    trigger = parse_schedule(expression)
    moment = trigger.get_next_fire_time(None, now - catch_up)
    latest = None
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return latest


KINDS = (("tick", "schedule"), ("full", "full_sync"))
"""(delivery event, Organisation column): the incremental poll and the full sync."""

_recorded: weakref.WeakKeyDictionary[object, dict[tuple[int, str], str]] = weakref.WeakKeyDictionary()
_recorded_lock = threading.Lock()
"""Per database: (organisation, event) -> the last due time this process recorded. Only spares
the database a duplicate insert per organisation per tick; the unique key still decides."""


def record_due_syncs(runtime: Runtime, now: datetime) -> list[int]:
    """Record a delivery for every organisation whose schedule fell due; returns new delivery ids."""
    from sqlalchemy import select

    from worker.store.models import Organisation

    with runtime.db.transaction() as session:
        orgs = list(
            session.execute(
                select(Organisation.id, Organisation.schedule, Organisation.full_sync).where(
                    Organisation.paused_at.is_(None)
                )
            )
        )
    created = []
    for org_id, *expressions in orgs:
        for (event, _), expression in zip(KINDS, expressions, strict=True):
            delivery = _record_due(runtime, org_id, event, expression, now)
            if delivery is not None:
                created.append(delivery)
    return created


def _record_due(runtime: Runtime, org_id: int, event: str, expression: str, now: datetime) -> int | None:
    from worker.services.deliveries import accept

    try:
        due = latest_due(expression, now)
    except InvalidInput:
        return None
    if due is None:
        return None
    stamp = iso(due)
    with _recorded_lock:
        recorded = _recorded.setdefault(runtime.db, {})
        if recorded.get((org_id, event)) == stamp:
            return None
    delivery_id = stamp if event == "tick" else f"{event}:{stamp}"
    accepted = accept(runtime, org_id, "schedule", delivery_id, event, stamp.encode())
    with _recorded_lock:
        recorded[(org_id, event)] = stamp
    return None if accepted.duplicate else accepted.delivery


def next_due(expression: str, now: datetime) -> datetime | None:
    """When a schedule fires next after `now`; None for an expression that does not parse."""
    try:
        return parse_schedule(expression).get_next_fire_time(None, now)
    except InvalidInput:
        return None
