"""A tiny threaded JSON HTTP server: routes, request log, and fault injection.

Emulators are real HTTP servers on 127.0.0.1 (an ephemeral port by default), so the
connectors under test go through sockets, timeouts and status codes exactly as in production.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    params: dict[str, str] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)
    client: str = ""


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class JsonServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.log: list[Request] = []
        self._faults: list[tuple[str, int, dict[str, str], int]] = []
        self.lock = threading.RLock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _dispatch(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail_next(
        self, path_prefix: str, status: int, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next `times` requests under `path_prefix` with `status` (fault injection)."""
        with self.lock:
            self._faults.append((path_prefix, status, headers or {}, times))

    def start(self) -> JsonServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> JsonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def authorise(self, request: Request) -> Response | None:
        """Override: return an error response to refuse the request."""
        return None

    def _injected_fault(self, path: str) -> Response | None:
        with self.lock:
            for index, (prefix, status, headers, times) in enumerate(self._faults):
                if path.startswith(prefix):
                    if times <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = (prefix, status, headers, times - 1)
                    return Response(
                        status, {"error": {"code": "injected", "message": "injected fault"}}, headers
                    )
        return None

    def _handle(self, raw: BaseHTTPRequestHandler) -> None:
        split = urlsplit(raw.path)
        length = int(raw.headers.get("Content-Length") or 0)
        payload = raw.rfile.read(length) if length else b""
        try:
            body = json.loads(payload) if payload else None
        except ValueError:
            body = ValueError("invalid JSON")
        request = Request(
            raw.command,
            unquote(split.path),
            parse_qs(split.query),
            {k.lower(): v for k, v in raw.headers.items()},
            body,
            client=f"{raw.client_address[0]}:{raw.client_address[1]}",
        )
        with self.lock:
            self.log.append(request)
        response = self._injected_fault(request.path) or self.authorise(request) or self._route(request)
        if response.body is None:
            encoded = b""
        elif isinstance(response.body, bytes):  # already encoded (emulators cache hot pages)
            encoded = response.body
        else:
            encoded = json.dumps(response.body).encode()
        raw.send_response(response.status)
        for name, value in response.headers.items():
            raw.send_header(name, value)
        if response.body is not None:
            raw.send_header("Content-Type", "application/json")
        raw.send_header("Content-Length", str(len(encoded)))
        raw.end_headers()
        raw.wfile.write(encoded)

    def _route(self, request: Request) -> Response:
        if isinstance(request.body, ValueError):
            return Response(400, {"error": {"code": "invalid_json", "message": "the body is not valid JSON"}})
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            allowed = True
            if method == request.method:
                request.params = match.groupdict()
                with self.lock:
                    return handler(request)
        if allowed:
            return Response(405, {"error": {"code": "method_not_allowed", "message": request.method}})
        return Response(404, {"error": {"code": "not_found", "message": request.path}})


def serve_until_interrupted(server: JsonServer, message: str) -> None:
    """Start `server`, print `message`, and serve until Ctrl-C (the emulators' `main`)."""
    server.start()
    print(message, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
