"""Builds the FastAPI app and runs the outbox relay beside it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from worker.errors import InvalidInput, NotFound
from worker.runtime import Runtime, get_runtime
from worker.services.deliveries import relay_quietly

log = logging.getLogger(__name__)
RELAY_INTERVAL_SECONDS = 1.0


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


def create_app(
    runtime: Callable[[], Runtime] = get_runtime,
    send: Callable[[str], None] = default_send,
    *,
    background: bool = True,
) -> FastAPI:
    """`background`: run the relay thread (and, on the in-process broker, a queue worker)."""

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

    app = FastAPI(
        title="ptsync",
        version="0.1.0",
        description="Webhooks, the admin API and report pages of ptsync.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.send = send

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    from worker.web import api, pages, ptdirect_pages, webhooks

    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(ptdirect_pages.router)
    return app
