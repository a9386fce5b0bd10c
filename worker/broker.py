"""Broker selection. Imported before any actor module, so actors bind to the right broker.

`PTSYNC_BROKER_URL` set: Redis, with a short heartbeat so a killed worker's messages are
redelivered within seconds, and a consumer that takes the next message as soon as a thread is
free (worker/redis_consumer.py). Unset: dramatiq's StubBroker, driven by an in-process worker, so
the embedded default runs the very same actors and middleware.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from worker.settings import get_settings
from worker.watchdog import ConsumerWatchdog


def _build_broker() -> dramatiq.Broker:
    settings = get_settings()
    if settings.broker_url:
        import redis

        from worker.redis_consumer import PromptRedisBroker

        # Bounded socket waits: a hung Redis must fail a send (the outbox retries it), not hang it.
        pool = redis.ConnectionPool.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=10)
        redis_broker = PromptRedisBroker(
            client=redis.Redis(connection_pool=pool),
            namespace="ptsync",
            heartbeat_timeout=settings.redis_heartbeat_timeout_ms,
            maintenance_chance=settings.redis_maintenance_chance,
        )
        redis_broker.add_middleware(ConsumerWatchdog())
        return redis_broker
    stub = StubBroker()
    stub.emit_after("process_boot")
    return stub


broker = _build_broker()
dramatiq.set_broker(broker)

from worker.worker_ops import install as _install_ops  # noqa: E402  (needs the broker built)

_install_ops(broker)
