"""The scheduler behind the `clock` process (`ptsync clock`): one for the whole deployment.

Time itself is read in `worker/clock.py` (`utcnow`), the one place the shell asks for it.

APScheduler runs a tick every few seconds; a tick does anything only while this process holds
the leader lock in Redis (SET NX with a TTL, renewed each tick, released on exit), so a second
clock waits as a hot standby. Even two leaders could not double a run: due times are recorded
under a unique key (see services/schedule.py). Each tick also relays pending deliveries and runs
the re-driver (services/redrive.py), which re-sends work the database says nobody is doing.
"""

from __future__ import annotations

import logging
import secrets
import signal
from datetime import timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from worker.clock import utcnow
from worker.runtime import get_runtime
from worker.services.deliveries import relay_quietly
from worker.services.notify_watch import notify_tick
from worker.services.redrive import redrive
from worker.services.schedule import record_due_syncs
from worker.settings import get_settings

log = logging.getLogger(__name__)
TICK_SECONDS = 5
LOCK_KEY = "ptsync:clock:leader"
LOCK_TTL_MS = 20_000

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leadership:
    """Redis leader lock; without Redis (embedded default) the single process leads."""

    def __init__(self, redis_url: str | None) -> None:
        self.identity = secrets.token_hex(8)
        self.client = None
        if redis_url:
            import redis

            self.client = redis.Redis.from_url(redis_url)
            self._renew = self.client.register_script(_RENEW)
            self._release = self.client.register_script(_RELEASE)

    def hold(self) -> bool:
        if self.client is None:
            return True
        if self._renew(keys=[LOCK_KEY], args=[self.identity, LOCK_TTL_MS]):
            return True
        return bool(self.client.set(LOCK_KEY, self.identity, nx=True, px=LOCK_TTL_MS))

    def release(self) -> None:
        if self.client is not None:
            self._release(keys=[LOCK_KEY], args=[self.identity])


def tick(leadership: Leadership, send, send_apply=None) -> None:
    try:
        if not leadership.hold():
            return
        runtime = get_runtime()
        created = record_due_syncs(runtime, utcnow())
        if created:
            log.info("scheduled syncs due for %d organisation(s)", len(created))
        relay_quietly(runtime, send)
        notify_tick(runtime, utcnow())
        if send_apply is not None:
            after = timedelta(seconds=runtime.settings.redrive_after_seconds)
            redrive(runtime, send, send_apply, utcnow(), after=after)
    except Exception:
        log.exception("clock tick failed; the next tick tries again")


def send_apply(proposal_id: str, automatic_only: bool) -> None:
    from worker.actors import apply_proposal, apply_safe_operations

    (apply_safe_operations if automatic_only else apply_proposal).send(proposal_id)


def prune_daily(leadership: Leadership) -> None:
    """The retention job (README "Retention"): the leader deletes what is past retention."""
    from worker.services.retention import prune

    try:
        if leadership.hold():
            result = prune(get_runtime(), actor="clock")
            log.info("retention: deleted %d runs, %d deliveries", result.runs, result.deliveries)
    except Exception:
        log.exception("retention job failed; it runs again tomorrow")


def run(metrics_port: int = 0) -> None:
    from worker.actors import sync_org
    from worker.inprocess import is_in_process

    settings = get_settings()
    leadership = Leadership(settings.broker_url or None)
    worker = None
    if is_in_process():
        import dramatiq

        from worker.actors import broker

        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=200)
        worker.start()
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        tick,
        "interval",
        seconds=TICK_SECONDS,
        args=[leadership, sync_org.send, send_apply],
        max_instances=1,
        coalesce=True,
        next_run_time=utcnow(),
    )

    scheduler.add_job(
        prune_daily, "cron", hour=3, minute=17, args=[leadership], max_instances=1, coalesce=True
    )
    if metrics_port:
        from worker import ops_server

        ops_server.start(metrics_port, ops_server.process_exposition)

    def stop(*_: object) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    try:
        scheduler.start()
    finally:
        leadership.release()
        if worker is not None:
            worker.stop()
