"""The metrics port of `ptsync worker` and `ptsync clock`: /metrics, /healthz and /readyz.

A small threaded HTTP server from the standard library: it must keep answering while the
process is busy, and it needs nothing the web app has.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


def _handler(exposition: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "application/json", b'{"status": "ok"}')
            elif path == "/readyz":
                ready, checks = _readiness()
                body = json.dumps({"status": "ready" if ready else "not ready", "checks": checks}).encode()
                self._send(200 if ready else 503, "application/json", body)
            elif path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                self._send(200, CONTENT_TYPE_LATEST, exposition())
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug(fmt, *args)

    return Handler


def _readiness() -> tuple[bool, dict[str, str]]:
    from worker.health import readiness
    from worker.runtime import get_runtime

    try:
        runtime = get_runtime()
    except Exception as exc:
        return False, {"runtime": exc.__class__.__name__}
    return readiness(runtime)


def metrics_host() -> str:
    """Where the worker's and the clock's metrics ports listen: `PTSYNC_METRICS_HOST`, every
    interface by default (a scraper in another container must reach them); 127.0.0.1 keeps
    them to this machine."""
    return os.environ.get("PTSYNC_METRICS_HOST", "").strip() or "0.0.0.0"


def start(port: int, exposition: Callable[[], bytes], host: str | None = None) -> ThreadingHTTPServer | None:
    """Serve in a daemon thread; returns the server (`shutdown()` stops it), or None if the port
    is taken: the process goes on working without its metrics port, and says so."""
    try:
        server = ThreadingHTTPServer((host or metrics_host(), port), _handler(exposition))
    except OSError as exc:
        log.error("metrics port %d not served: %s (choose another with --metrics-port)", port, exc.strerror)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()
    return server


def process_exposition() -> bytes:
    """This process's metrics plus the database gauges (the clock)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    import worker.metrics  # noqa: F401
    from worker.ops_collector import OpsCollector
    from worker.runtime import get_runtime

    database = CollectorRegistry(auto_describe=False)
    database.register(OpsCollector(get_runtime))
    return generate_latest(REGISTRY) + generate_latest(database)


def multiprocess_exposition() -> bytes:
    """Every worker process's metrics (dramatiq's and ptsync's), from the multiprocess directory."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return generate_latest(registry)


def serve_worker_port() -> int:
    """dramatiq fork function: the worker's metrics port, for all its processes together."""
    port = int(os.environ.get("PTSYNC_WORKER_METRICS_PORT", "9191"))
    try:
        server = ThreadingHTTPServer((metrics_host(), port), _handler(multiprocess_exposition))
    except OSError as exc:  # the queue workers go on; only the metrics port is missing
        log.error("metrics port %d not served: %s (choose another with --metrics-port)", port, exc.strerror)
        return 1
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0
