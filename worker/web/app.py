"""Builds the FastAPI app and runs the outbox relay beside it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from connectors.errors import ConnectorError
from worker.errors import ConfigurationError, Conflict, InvalidInput, NotFound, PtsyncError, Retryable
from worker.runtime import Runtime, get_runtime
from worker.services.deliveries import relay_quietly
from worker.services.notify_delivery import relay_notifications_quietly
from worker.web.headers import SecurityHeaders
from worker.web.throttle import FailureThrottle

log = logging.getLogger(__name__)
RELAY_INTERVAL_SECONDS = 1.0

# The error tree as HTTP statuses, most specific first. InvalidInput is 409 (the request was
# understood, but the organisation's state does not allow it now); FastAPI answers 422 itself
# for a malformed body. A 5xx never carries the error's own text: it can hold an upstream
# answer or a deployment detail; the log has it, the caller gets a generic line.
HTTP_STATUSES: tuple[tuple[type[PtsyncError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 409),
    (Retryable, 503),
    (ConnectorError, 502),
    (ConfigurationError, 500),
)
GENERIC_DETAIL = {
    500: "ptsync is not set up correctly for this; the operator can see why in its log",
    502: "a service ptsync reads or writes answered with an error; the operator can see it in the log",
    503: "a service ptsync depends on is unavailable; try again shortly",
}


def http_status_of(error: PtsyncError) -> int:
    return next((status for kind, status in HTTP_STATUSES if isinstance(error, kind)), 400)


def default_send(run_id: str) -> None:
    from worker.actors import sync_org

    sync_org.send(run_id)


class Relay:
    """Relays pending deliveries every second, so nothing waits on a broker that was down."""

    def __init__(self, runtime: Callable[[], Runtime], send: Callable[[str], None]) -> None:
        self._runtime = runtime
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(RELAY_INTERVAL_SECONDS):
            relay_quietly(self._runtime(), self._send)
            relay_notifications_quietly(self._runtime())


def _lifespan(runtime: Callable[[], Runtime], send: Callable[[str], None], background: bool):
    """Start the relay thread (and, on the in-process broker, a queue worker) with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        relay = Relay(runtime, send)
        worker = None
        if background:
            relay.start()
            from worker.inprocess import is_in_process

            if is_in_process():
                import dramatiq

                from worker.actors import broker

                worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=200)
                worker.start()
        yield
        if background:
            relay.stop()
            if worker is not None:
                worker.stop()

    return lifespan


async def _ptsync_error(request: Request, exc: PtsyncError) -> JSONResponse:
    """The one place the web maps the error tree; routes let these errors through."""
    status = http_status_of(exc)
    headers = {"Retry-After": "30"} if status == 503 else None
    if status >= 500:
        log.error("%s %s answered %d: %s", request.method, _route_of(request), status, exc)
        return JSONResponse({"detail": GENERIC_DETAIL[status]}, status_code=status, headers=headers)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def _route_of(request: Request) -> str:
    """The route's template (`/webhooks/physitrack/{token}`), never the path itself: the
    unsigned webhooks' path carries their organisation's secret token."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or "(no route)"


async def _database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
    """The database is down or restarting: nothing was stored, so the sender should retry."""
    log.warning("database unavailable: %s", exc.orig.__class__.__name__ if exc.orig else "error")
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was stored, try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def create_app(
    runtime: Callable[[], Runtime] = get_runtime,
    send: Callable[[str], None] = default_send,
    *,
    background: bool = True,
) -> FastAPI:
    """`background`: run the relay thread (and, on the in-process broker, a queue worker)."""
    app = FastAPI(
        title="ptsync",
        version="0.1.0",
        description="Webhooks, the admin API and report pages of ptsync.",
        lifespan=_lifespan(runtime, send, background),
        docs_url=None,  # served offline by worker.web.site
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.send = send
    app.state.auth_throttle = FailureThrottle()
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(PtsyncError, _ptsync_error)
    app.add_exception_handler(OperationalError, _database_unavailable)

    from worker.web import (
        api,
        halaxy_webhooks,
        ops,
        ops_pages,
        pages,
        ptdirect_pages,
        site,
        sync_pages,
        webhooks,
    )

    for module in (webhooks, halaxy_webhooks, api, pages, sync_pages, site):
        app.include_router(module.router)
    site.mount_static(app)
    for module in (ops, ops_pages, ptdirect_pages):
        app.include_router(module.router)
    return app
