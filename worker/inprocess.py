"""Drives the embedded in-process broker: the same actors and middleware, in this process."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from worker.actors import broker

QUEUE = "default"


def is_in_process() -> bool:
    return isinstance(broker, StubBroker)


def drain(timeout_seconds: float | None = None) -> None:
    """Run a worker until every message (retries and delayed ones included) is processed."""
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        broker.join(QUEUE, fail_fast=False, timeout=int(timeout_seconds * 1000) if timeout_seconds else None)
        worker.join()
    finally:
        worker.stop()
