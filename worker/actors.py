"""Dramatiq actors: thin, idempotent, ids only in messages. Each calls one service function.

Names are namespaced (`ptsync.*`); retry and time limits fit a sync, not dramatiq's defaults.
"""

from __future__ import annotations

import logging

import dramatiq

from worker import metrics
from worker.broker import broker
from worker.runtime import get_runtime
from worker.services import notify_delivery, proposals, sync

log = logging.getLogger(__name__)

SECOND = 1000
MINUTE = 60 * SECOND


@dramatiq.actor(
    actor_name="ptsync.request_sync",
    max_retries=10,
    time_limit=30 * SECOND,
    min_backoff=SECOND,
    max_backoff=30 * SECOND,
    broker=broker,
)
def request_sync(slug: str, trigger: str) -> None:
    try:
        run_id, created = sync.request_sync(get_runtime(), slug, trigger)
    except sync.OrganisationPaused:
        log.info("%s is paused: no %s sync", slug, trigger)
        return
    if created:
        sync_org.send(run_id)


@dramatiq.actor(
    actor_name="ptsync.sync_org",
    max_retries=5,
    time_limit=20 * MINUTE,
    min_backoff=2 * SECOND,
    max_backoff=2 * MINUTE,
    on_retry_exhausted="ptsync.sync_gave_up",
    broker=broker,
)
def sync_org(run_id: str) -> None:
    try:
        outcome = sync.run_sync(get_runtime(), run_id)
    except sync.OrganisationBusy as busy:
        # Not a failure: wait for the other run's lease, without spending the retry budget.
        sync_org.send_with_options(args=(run_id,), delay=int(busy.delay_seconds * SECOND) + 100)
        return
    if outcome.status in ("succeeded", "failed"):
        _count_run(run_id, outcome.status)
    if outcome.auto_apply_proposal:
        apply_safe_operations.send(outcome.auto_apply_proposal)


@dramatiq.actor(actor_name="ptsync.sync_gave_up", max_retries=10, time_limit=30 * SECOND, broker=broker)
def sync_gave_up(message: dict, retry_info: dict) -> None:
    run_id = message["args"][0]
    sync.fail_after_retries(get_runtime(), run_id, f"{retry_info.get('retries')} attempts failed")
    _count_run(run_id, "failed")


def _count_run(run_id: str, status: str) -> None:
    from worker.store.models import Run

    with get_runtime().db.transaction() as session:
        run = session.get(Run, run_id)
        trigger = run.trigger if run is not None else None
    metrics.count_run(status, trigger)
    log.info("run %s %s (trigger %s)", run_id, status, metrics.trigger_family(trigger))


@dramatiq.actor(
    actor_name="ptsync.deliver_notification",
    max_retries=3,
    time_limit=2 * MINUTE,
    min_backoff=5 * SECOND,
    max_backoff=MINUTE,
    broker=broker,
)
def deliver_notification(message_id: int) -> None:
    """Send one outbox message; its own retries (with backoff) are scheduled in the outbox."""
    notify_delivery.deliver(get_runtime(), message_id)


APPLY_OPTIONS = {
    "max_retries": 5,
    "time_limit": 10 * MINUTE,
    "min_backoff": 2 * SECOND,
    "max_backoff": MINUTE,
}


@dramatiq.actor(actor_name="ptsync.apply_proposal", broker=broker, **APPLY_OPTIONS)
def apply_proposal(proposal_id: str) -> None:
    _apply(apply_proposal, proposal_id, automatic_only=False)


@dramatiq.actor(actor_name="ptsync.apply_safe_operations", broker=broker, **APPLY_OPTIONS)
def apply_safe_operations(proposal_id: str) -> None:
    _apply(apply_safe_operations, proposal_id, automatic_only=True)


def _apply(actor: dramatiq.Actor, proposal_id: str, *, automatic_only: bool) -> None:
    try:
        outcome = proposals.apply(get_runtime(), proposal_id, automatic_only=automatic_only)
    except proposals.ApplyBusy as busy:
        # Another applier holds the proposal: come back when its lease ends, without spending retries.
        actor.send_with_options(args=(proposal_id,), delay=int(busy.delay_seconds * SECOND) + 100)
        return
    _after_apply(outcome)


def _after_apply(outcome: proposals.ApplyOutcome) -> None:
    if outcome.resync_org:
        # Queued in the database first, so the re-driver sends it again if this message is lost.
        run_id, created = sync.request_sync(get_runtime(), outcome.resync_org, "replan")
        if created:
            sync_org.send(run_id)
