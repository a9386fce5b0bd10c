"""Dramatiq actors: thin, idempotent, ids only in messages. Each calls one service function.

Names are namespaced (`ptsync.*`); retry and time limits fit a sync, not dramatiq's defaults.
"""

from __future__ import annotations

import logging

import dramatiq

from worker import metrics
from worker.broker import broker
from worker.errors import Conflict, InvalidInput, NotFound, PtsyncError, Retryable
from worker.runtime import get_runtime
from worker.services import notify_delivery, proposals, sync

log = logging.getLogger(__name__)

SECOND = 1000
MINUTE = 60 * SECOND


def _mapped(actor: dramatiq.Actor, args: tuple, work):
    """Run `work()` and map the error tree for a queue, the one place the actors do so.

    Conflict (another worker holds the lease): send the message again after the lease ends,
    without spending the retry budget. Retryable: raise, so dramatiq retries with backoff.
    Any other PtsyncError: retrying cannot help and the service has recorded what it could,
    so log one line and drop the message. Anything else is a bug: raise (and retry).
    """
    try:
        return work()
    except Conflict as busy:
        wait = max(busy.delay_seconds, 1.0)  # never a hot loop, whatever the lease said
        actor.send_with_options(args=args, delay=int(wait * SECOND) + 100)
    except Retryable:
        raise
    except (InvalidInput, NotFound) as exc:  # a paused or removed organisation, a finished proposal
        log.info("%s%r not done: %s", actor.actor_name, args, exc)
    except PtsyncError as exc:
        log.warning("%s%r failed: %s", actor.actor_name, args, exc)
    return None


@dramatiq.actor(
    actor_name="ptsync.request_sync",
    max_retries=10,
    time_limit=30 * SECOND,
    min_backoff=SECOND,
    max_backoff=30 * SECOND,
    broker=broker,
)
def request_sync(slug: str, trigger: str) -> None:
    args = (slug, trigger)
    requested = _mapped(request_sync, args, lambda: sync.request_sync(get_runtime(), *args))
    if requested is not None and requested[1]:
        sync_org.send(requested[0])


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
    outcome = _mapped(sync_org, (run_id,), lambda: sync.run_sync(get_runtime(), run_id))
    if outcome is None or not outcome.finished_now:
        return
    if outcome.auto_apply_proposal:
        apply_safe_operations.send(outcome.auto_apply_proposal)
    if outcome.status in ("succeeded", "failed"):
        _finished(run_id, outcome.status, outcome.after)


@dramatiq.actor(actor_name="ptsync.sync_gave_up", max_retries=10, time_limit=30 * SECOND, broker=broker)
def sync_gave_up(message: dict, retry_info: dict) -> None:
    run_id = message["args"][0]
    sync.fail_after_retries(get_runtime(), run_id, f"{retry_info.get('retries')} attempts failed")
    _finished(run_id, "failed")


def _finished(run_id: str, status: str, after: sync.AfterRun | None = None) -> None:
    """Count the run, and start the organisation's queued run now rather than when its
    postponed message comes back (sync.after_run; `after`: already read when the run finished)."""
    after = after or sync.after_run(get_runtime(), run_id)
    metrics.count_run(status, after.trigger)
    log.info("run %s %s (trigger %s)", run_id, status, metrics.trigger_family(after.trigger))
    if after.queued_run is not None:
        try:
            sync_org.send(after.queued_run)
        except Exception as exc:  # Redis blinked: the postponed message, or the re-driver, starts it
            log.warning("could not start queued run %s now: %s", after.queued_run, exc.__class__.__name__)


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
    def work() -> proposals.ApplyOutcome:
        return proposals.apply(get_runtime(), proposal_id, automatic_only=automatic_only)

    outcome = _mapped(actor, (proposal_id,), work)
    if outcome is not None:
        _after_apply(outcome)


def _after_apply(outcome: proposals.ApplyOutcome) -> None:
    if outcome.resync_org:
        # Queued in the database first, so the re-driver sends it again if this message is lost.
        run_id, created = sync.request_sync(get_runtime(), outcome.resync_org, "replan")
        if created:
            sync_org.send(run_id)
