"""Failed logins and refused API tokens, counted per client: too many and the client waits.

Guessing an admin token is hopeless (256 random bits), but an endless stream of guesses is
still noise, load and a signal worth logging. Each failure is logged (the client, the
organisation, never the token); a client with `MAX_FAILURES` within `WINDOW_SECONDS` is
answered 429 with `Retry-After` until the window has passed. Counters live in each web
process (a restart forgets them), which is enough to slow a guesser down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException, Request

log = logging.getLogger("ptsync.security")

MAX_FAILURES = 10
WINDOW_SECONDS = 300.0
_MAX_CLIENTS = 10_000


class FailureThrottle:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def retry_after(self, client: str) -> float | None:
        """Seconds this client must wait, or None when it may try."""
        with self._lock:
            now = self._clock()
            failures = self._recent(client, now)
            if len(failures) < self.max_failures:
                return None
            return max(failures[0] + self.window_seconds - now, 1.0)

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) >= _MAX_CLIENTS and client not in self._failures:
                self._failures.pop(next(iter(self._failures)))  # bounded memory under a flood
            self._failures.setdefault(client, deque()).append(self._clock())


def client_of(request: Request) -> str:
    """The client's address (the proxy's forwarded address when uvicorn trusts the proxy)."""
    return request.client.host if request.client else "unknown"


def throttle_of(request: Request) -> FailureThrottle:
    return request.app.state.auth_throttle


def refuse_if_throttled(request: Request) -> None:
    wait = throttle_of(request).retry_after(client_of(request))
    if wait is not None:
        raise HTTPException(
            429,
            "too many failed attempts from this address: try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )


def record_failure(request: Request, what: str, slug: str) -> None:
    client = client_of(request)
    throttle_of(request).failed(client)
    log.warning("refused %s for organisation %r from %s", what, slug, client)
