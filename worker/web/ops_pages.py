"""Per-organisation pages for operating ptsync: notification channels and the audit trail.

They use the report pages' session and CSRF helpers, and call the same service functions as
`ptsync notify ...` and `ptsync audit`.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from worker.clock import iso
from worker.errors import InvalidInput, NotFound
from worker.services import audit
from worker.services import notifications as channels
from worker.services.notify_delivery import send_test
from worker.web.pages import _check_form, _csrf, _notice, _render, _session, page_actor, redirect_with_notice

router = APIRouter(tags=["pages"], include_in_schema=False)


def _page_actor(request: Request, slug: str) -> str:
    return page_actor(request, slug)


def _back(request: Request, slug: str, notice: str, *, problem: bool = False) -> Response:
    return redirect_with_notice(request, f"/orgs/{slug}/notifications", notice, problem=problem)


@router.get("/orgs/{slug}/notifications")
def notifications_page(
    slug: str,
    request: Request,
    notice: str | None = None,
    n: str | None = None,
    k: str | None = None,
    secret: str | None = None,
) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    rows = channels.notification_status(request.app.state.runtime(), slug)
    return _render(
        "notifications.html",
        slug=slug,
        channels=[{**row.__dict__, "last_success_at": iso(row.last_success_at)} for row in rows],
        events=channels.EVENT_HELP,
        severities=channels.SEVERITIES,
        csrf=_csrf(request, session_info[1]),
        notice=_notice(request, notice, n, k),
    )


@router.post("/orgs/{slug}/notifications")
def add_channel(
    slug: str,
    request: Request,
    csrf: str = Form(""),
    url: str = Form(""),
    events: list[str] = Form(default_factory=list),
    min_severity: str = Form("medium"),
    digest: str = Form("none"),
) -> Response:
    _check_form(request, slug, csrf)
    runtime = request.app.state.runtime()
    try:
        added = channels.add_channel(
            runtime,
            slug,
            channels.NewChannel(url=url, events=tuple(events), min_severity=min_severity, digest=digest),
            _page_actor(request, slug),
        )
    except InvalidInput as exc:
        return _back(request, slug, f"Not added: {exc}", problem=True)
    if added.signing_secret:
        # Shown once, on this response only (never in a URL or a log).
        return _render(
            "notification_secret.html", slug=slug, display=added.display, secret=added.signing_secret
        )
    return _back(request, slug, f"Added {added.kind} channel {added.display}.")


@router.post("/orgs/{slug}/notifications/{channel_id}/remove")
def remove_channel(slug: str, channel_id: int, request: Request, csrf: str = Form("")) -> Response:
    _check_form(request, slug, csrf)
    try:
        channels.remove_channel(request.app.state.runtime(), slug, channel_id, _page_actor(request, slug))
    except NotFound:
        return _back(request, slug, "That channel no longer exists.", problem=True)
    return _back(request, slug, "Channel removed.")


@router.post("/orgs/{slug}/notifications/test")
def test_channels(slug: str, request: Request, csrf: str = Form("")) -> Response:
    _check_form(request, slug, csrf)
    results = send_test(request.app.state.runtime(), slug, _page_actor(request, slug))
    failed = [r for r in results if not r.ok]
    if not results:
        return _back(request, slug, "There are no channels to test.", problem=True)
    if failed:
        return _back(
            request,
            slug,
            f"Test sent; {len(failed)} of {len(results)} channel(s) failed: {failed[0].error}",
            problem=True,
        )
    return _back(request, slug, f"Test message sent through {len(results)} channel(s).")


@router.get("/orgs/{slug}/audit")
def audit_page(slug: str, request: Request) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    rows = audit.entries(request.app.state.runtime(), slug, limit=300)
    return _render("audit.html", slug=slug, rows=rows)
