"""Drives the embedded in-process broker: the same actors and middleware, in this process."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from worker.actors import broker

QUEUE = "default"


def is_in_process() -> bool:
    return isinstance(broker, StubBroker)


def drain(timeout_seconds: float | None = None) -> None:
    """Run a worker until every message (retries and delayed ones included) is processed.

    Its threads look for work every 10 ms (Dramatiq's default is 1 s, the web app's worker
    200 ms): this worker lives only as long as one command, and stopping it waits for each
    thread's next look, which at 100 ms was a tenth of `ptsync sync --wait` on a large clinic.
    """
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=10)
    worker.start()
    try:
        broker.join(QUEUE, fail_fast=False, timeout=int(timeout_seconds * 1000) if timeout_seconds else None)
        worker.join()
    finally:
        worker.stop()
