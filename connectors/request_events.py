"""What each HTTP request did, for observers (the shell's metrics), without importing HTTP.

`connectors/http.py` reports here; `worker/metrics.py` registers here. Kept apart so that
registering a metrics observer does not import `requests`, urllib3 and tenacity into every
process: a CSV or file sync sends no request (about 40 ms of each `ptsync sync` start-up).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestEvent:
    """What one request did, for observers (metrics): no URL, no header, no body."""

    connector: str
    outcome: str  # ok, rate_limited, retry, error, network
    limiter_wait_seconds: float


_observers: list[Callable[[RequestEvent], None]] = []


def observe_requests(callback: Callable[[RequestEvent], None]) -> None:
    """Register a callback for every request sent (the shell counts them; connectors stay pure)."""
    if callback not in _observers:
        _observers.append(callback)


def report(event: RequestEvent) -> None:
    for callback in _observers:
        with contextlib.suppress(Exception):  # an observer must never break a sync
            callback(event)
