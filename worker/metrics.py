"""Prometheus metrics. Cardinality is bounded: no patient, request or run labels.

Counted where the work happens (in `worker` processes these go through prometheus-client's
multiprocess mode, beside dramatiq's queue metrics):

- `ptsync_runs_total{status, trigger}`: finished runs; trigger is its family (manual, schedule,
  physitrack, fhir, generic, api, replan, demo, other).
- `ptsync_run_phase_seconds{phase}`: histogram of pull / reconcile / store.
- `ptsync_run_phase_cpu_seconds_total{phase}`: CPU time of the syncing thread in each phase
  (pull: request, parse and merge; reconcile; store), without the time spent waiting.
- `ptsync_connector_requests_total{connector, outcome}`: PMS and PT Direct HTTP requests;
  outcome ok, rate_limited (429, or 503 with Retry-After), retry, error, network.
- `ptsync_rate_limiter_wait_seconds{connector}`: time spent waiting for the shared rate limit.
- `ptsync_notifications_total{kind, outcome}`: notification sends (sent, retry, failed).

Read from the database at scrape time (`ptsync web` and `ptsync clock` only; see ops_collector):
open findings, proposals awaiting approval, oldest pending delivery and notification, and the
per-organisation gauges, the only metrics with an `org` label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from connectors.request_events import RequestEvent, observe_requests

log = logging.getLogger(__name__)

RUNS = Counter("ptsync_runs", "Finished sync runs.", ["status", "trigger"])
PHASE_SECONDS = Histogram(
    "ptsync_run_phase_seconds",
    "Time a sync spends in each phase.",
    ["phase"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
PHASE_CPU = Counter(
    "ptsync_run_phase_cpu_seconds", "CPU time of the syncing thread in each phase.", ["phase"]
)
CONNECTOR_REQUESTS = Counter(
    "ptsync_connector_requests", "HTTP requests to PMS and PT Direct APIs.", ["connector", "outcome"]
)
LIMITER_WAIT = Histogram(
    "ptsync_rate_limiter_wait_seconds",
    "Time a request waited for the shared per-key rate limit.",
    ["connector"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
NOTIFICATIONS = Counter("ptsync_notifications", "Notification send attempts.", ["kind", "outcome"])

TRIGGER_FAMILIES = ("manual", "schedule", "physitrack", "fhir", "generic", "api", "replan", "demo")


def trigger_family(trigger: str | None) -> str:
    """`physitrack:new_client_created` -> `physitrack`: event names never become labels."""
    family = (trigger or "").split(":", 1)[0]
    return family if family in TRIGGER_FAMILIES else "other"


def count_run(status: str, trigger: str | None) -> None:
    RUNS.labels(status, trigger_family(trigger)).inc()


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time one phase of a sync (`pull`, `reconcile`, `store`), whether it succeeds or not."""
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        PHASE_SECONDS.labels(name).observe(time.perf_counter() - started)
        PHASE_CPU.labels(name).inc(time.thread_time() - cpu)


def _on_request(event: RequestEvent) -> None:
    CONNECTOR_REQUESTS.labels(event.connector, event.outcome).inc()
    LIMITER_WAIT.labels(event.connector).observe(event.limiter_wait_seconds)


observe_requests(_on_request)
