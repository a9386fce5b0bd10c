"""Security headers on every response, as a plain ASGI middleware (no buffering, no threads).

- Content-Security-Policy: only this origin's own scripts, styles and images; no framing
  (`frame-ancestors 'none'`), no plugins, forms post only here. The interactive API docs
  (`/docs`, Swagger UI served from this origin: `worker.web.site`) also get the inline styles
  and `data:` images Swagger UI draws with; no script from anywhere else, none inline.
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (URLs carry webhook tokens
  and organisation names), `X-Frame-Options: DENY` for old browsers.
- `Cache-Control: no-store` on the pages and the API: reports must not stay in shared caches.
- `Strict-Transport-Security` when the request came over HTTPS (directly, or through a proxy
  uvicorn trusts: see FORWARDED_ALLOW_IPS in the README).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
DOCS_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
DOCS_PATHS = ("/docs",)
PRIVATE_PREFIXES = ("/orgs/", "/api/")
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", DOCS_CSP if path in DOCS_PATHS else CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                if path.startswith(PRIVATE_PREFIXES):
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
