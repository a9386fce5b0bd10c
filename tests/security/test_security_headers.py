"""Attacks the browser can stop when told to: framing (clickjacking), MIME sniffing, leaking
URLs through the Referer, reports left in shared caches, TLS stripping, and a session cookie
sent over plain http behind a TLS-terminating proxy."""

from __future__ import annotations

from fastapi.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from worker.web import create_app


def test_pages_and_the_api_cannot_be_framed_sniffed_cached_or_leak_their_url(client, clinic):
    # Given the login page, a logged-in page and an API answer
    _, token = clinic
    login_page = client.get("/orgs/clinic-a/login")
    client.post("/orgs/clinic-a/login", data={"token": token})
    report_page = client.get("/orgs/clinic-a/")
    api = client.get("/api/v1/orgs/clinic-a/runs", headers={"Authorization": f"Bearer {token}"})
    for response in (login_page, report_page, api):
        # Then each forbids framing and foreign content, MIME sniffing and the Referer
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        # And nothing authenticated is stored by a cache
        assert response.headers["Cache-Control"] == "no-store"
    # And plain http gets no HSTS (it would be ignored, and breaks local use)
    assert "Strict-Transport-Security" not in report_page.headers


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_hsts_is_sent(runtime, clinic, sent):
    # Given the app behind a TLS-terminating proxy that uvicorn trusts (FORWARDED_ALLOW_IPS),
    # wrapped exactly as `ptsync web` runs it (proxy_headers=True)
    _, token = clinic
    app = ProxyHeadersMiddleware(create_app(send=sent, background=False), trusted_hosts="*")
    with TestClient(app) as client:
        # When an admin logs in through it (the proxy says the browser used https)
        response = client.post(
            "/orgs/clinic-a/login",
            data={"token": token},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
            follow_redirects=False,
        )
    # Then the session cookie is Secure, HttpOnly, SameSite=Lax, and HSTS is on
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_the_api_docs_allow_no_script_but_their_own_and_nothing_from_another_origin(client):
    """Given the API docs at /docs (Swagger UI served from this origin, started by a static
    script) / When they are fetched / Then their policy allows scripts from this origin only,
    none inline, and names no other origin (the docs once loaded Swagger from a CDN)."""
    policy = client.get("/docs").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert "script-src" not in directives and directives["default-src"] == "'self'"
    assert "https:" not in policy and "http:" not in policy
