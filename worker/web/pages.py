"""Admin pages: log in with an organisation token, read the report, act on proposals.

The session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) is a random id whose hash is
stored server-side (`credentials.start_session`): logging out, or revoking the token, ends it
for good. Every form carries a CSRF token derived from that cookie, checked on POST; the login
and logout forms are also refused from another origin, and failed logins are rate limited.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker import views
from worker.errors import InvalidInput
from worker.rendering import render
from worker.services import credentials
from worker.services import proposals as proposal_service
from worker.store import repositories as repo
from worker.web.org_page import org_page_context
from worker.web.throttle import record_failure, refuse_if_throttled

router = APIRouter(tags=["pages"], include_in_schema=False)
COOKIE = "ptsync_session"
SESSION_SECONDS = credentials.SESSION_SECONDS


def _key(request: Request) -> bytes:
    return request.app.state.runtime().secrets.derive_key("ptsync-admin-session")


def _sign(request: Request, value: str) -> str:
    return hmac.new(_key(request), value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def _equal(a: str | None, b: str | None) -> bool:
    """Constant-time comparison that accepts any text (hmac refuses non-ASCII str)."""
    return hmac.compare_digest(
        (a or "").encode("utf-8", "surrogateescape"), (b or "").encode("utf-8", "surrogateescape")
    )


def _session(request: Request, slug: str) -> tuple[int, str] | None:
    """(org id, cookie) when the cookie names a live server-side session of this organisation."""
    cookie = request.cookies.get(COOKIE, "")
    org_id = credentials.session_org(request.app.state.runtime(), cookie, slug)
    if org_id is None:
        return None
    return org_id, cookie


def page_actor(request: Request, slug: str) -> str:
    """`web:token N "LABEL"` for the session's token (the audit trail's "who"), else `web:SLUG`."""
    from worker.services import audit

    runtime = request.app.state.runtime()
    token_id = credentials.session_token_id(runtime, request.cookies.get(COOKIE, ""))
    if token_id is None:
        return f"web:{slug}"
    with runtime.db.transaction() as session:
        return audit.token_actor(session, "web", token_id)


def _csrf(request: Request, cookie: str) -> str:
    return _sign(request, "csrf:" + cookie)[:32]


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site.

    `Sec-Fetch-Site` first (every current browser sends it; with `Referrer-Policy: no-referrer`
    a same-origin form's `Origin` is "null"), then `Origin` / `Referer`, comparing the host
    and port (not the scheme: behind a TLS-terminating proxy the app may see http while the
    browser sent https). A client that sends none of them is no browser, so no CSRF victim.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True
    if source == "null":
        return False
    try:
        theirs = urlsplit(source)
        ours = urlsplit("//" + request.headers.get("host", ""))
        default = _DEFAULT_PORTS.get(theirs.scheme, 0)
        return bool(theirs.hostname) and (theirs.hostname, theirs.port or default) == (
            ours.hostname,
            ours.port or default,
        )
    except ValueError:
        return False


@dataclass(frozen=True)
class Notice:
    """A line the server wrote for the page after a form: what was done, or (`problem`) why
    nothing was (shown as a warning, not as a success)."""

    text: str
    problem: bool = False


def redirect_with_notice(request: Request, target: str, notice: str, *, problem: bool = False) -> Response:
    """After a form: back to `target` (a page's path), showing a notice the server wrote, signed
    with the page secret and its kind, so a crafted link cannot put words of its own on a
    logged-in page, nor show a refusal as a success (`_notice`)."""
    kind = "problem" if problem else "done"
    signature = _sign(request, _notice_signed_text(target, kind, notice))[:32]
    query = urlencode({"notice": notice, "k": kind, "n": signature})
    return RedirectResponse(f"{target}?{query}", status_code=303)


def _notice_signed_text(path: str, kind: str, notice: str) -> str:
    """What a notice's signature covers: the page it was written for (and so its organisation),
    its kind and its text. Without the page, a notice one organisation's admin made the server
    write (a refused URL is echoed) would show on another organisation's page."""
    return f"notice\x1f{path}\x1f{kind}\x1f{notice}"


def _notice(request: Request, notice: str | None, signature: str | None, kind: str | None) -> Notice | None:
    kind = "problem" if kind == "problem" else "done"
    if notice and _equal(signature, _sign(request, _notice_signed_text(request.url.path, kind, notice))[:32]):
        return Notice(notice, kind == "problem")
    return None


def _render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(name, **context))


@router.get("/orgs/{slug}/login")
def login_form(slug: str) -> HTMLResponse:
    """The login form. Errors come only from a failed POST, never from the query string (a
    link must not be able to put words on this page)."""
    return _render("login.html", slug=slug, error=None)


@router.post("/orgs/{slug}/login")
def login(slug: str, request: Request, token: str = Form("")) -> Response:
    if not _same_origin(request):
        raise HTTPException(403, "the login form was posted from another site")
    refuse_if_throttled(request)
    runtime = request.app.state.runtime()
    principal = credentials.authenticate(runtime, token.strip())
    if principal is None or principal.slug != slug:
        record_failure(request, "an admin login", slug)
        return _render("login.html", slug=slug, error="That token does not open this organisation.")
    response = RedirectResponse(f"/orgs/{slug}/", status_code=303)
    response.set_cookie(
        COOKIE,
        credentials.start_session(runtime, principal),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/orgs/{slug}/logout")
def logout(slug: str, request: Request, csrf: str = Form("")) -> Response:
    session_info = _session(request, slug)
    if session_info is not None:
        if not (_equal(_csrf(request, session_info[1]), csrf) or _has_same_origin_header(request)):
            raise HTTPException(403, "the form has expired: reload the page and try again")
        credentials.end_session(request.app.state.runtime(), session_info[1])
    response = RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    if session_info is not None or _has_same_origin_header(request):
        # Not for a post from another site that came without the cookie (SameSite=Lax keeps it
        # back): clearing it there would log the browser out and leave the session alive.
        response.delete_cookie(COOKIE, path="/")
    return response


def _has_same_origin_header(request: Request) -> bool:
    """A browser said so explicitly (a bare client saying nothing does not count here)."""
    said = any(request.headers.get(name) for name in ("sec-fetch-site", "origin", "referer"))
    return said and _same_origin(request)


@router.get("/orgs/{slug}/")
def report_page(
    slug: str,
    request: Request,
    notice: str | None = None,
    n: str | None = None,
    k: str | None = None,
    who: str | None = None,
) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    org_id, cookie = session_info
    context = org_page_context(request.app.state.runtime(), slug, org_id, who)
    notice_text = _notice(request, notice, n, k)
    return _render("org.html", **context, slug=slug, csrf=_csrf(request, cookie), notice=notice_text)


def _check_form(request: Request, slug: str, csrf: str) -> int:
    session_info = _session(request, slug)
    if session_info is None:
        raise HTTPException(401, "log in first")
    org_id, cookie = session_info
    if not _equal(_csrf(request, cookie), csrf):
        raise HTTPException(403, "the form has expired: reload the page and try again")
    return org_id


def _own(request: Request, org_id: int, proposal_id: str) -> None:
    """NotFound (404) unless the proposal is this organisation's: never confirm another's exists."""
    views.proposal(request.app.state.runtime(), proposal_id, org_id)


@router.post("/orgs/{slug}/proposals/{proposal_id}/approve")
def approve(
    slug: str, proposal_id: str, request: Request, csrf: str = Form(""), transferred: str = Form("")
) -> Response:
    org_id = _check_form(request, slug, csrf)
    _own(request, org_id, proposal_id)
    from worker.actors import apply_proposal

    try:
        approval = proposal_service.approve_and_apply(
            request.app.state.runtime(),
            proposal_id,
            page_actor(request, slug),
            apply_proposal.send,
            transferred=transferred == "yes",
        )
    except InvalidInput as exc:
        return redirect_with_notice(request, f"/orgs/{slug}/", str(exc), problem=True)
    notice = "Proposal approved: applying it now."
    with request.app.state.runtime().db.transaction() as session:
        org = repo.get_proposal(session, proposal_id).organisation
        extra = proposal_service.after_approval(org.ptdirect_kind, proposal_id, org.ptdirect_path)
    if org.ptdirect_kind == "manual":
        notice = "Proposal approved. " + (extra or "")
    elif extra:
        notice = f"Proposal approved: {extra}"
    if not approval.queued:
        notice = "Proposal approved: it will be applied as soon as the queue is reachable."
    return redirect_with_notice(request, f"/orgs/{slug}/", notice)


@router.post("/orgs/{slug}/proposals/{proposal_id}/reject")
def reject(slug: str, proposal_id: str, request: Request, csrf: str = Form("")) -> Response:
    org_id = _check_form(request, slug, csrf)
    _own(request, org_id, proposal_id)
    try:
        proposal_service.reject(request.app.state.runtime(), proposal_id, page_actor(request, slug))
    except InvalidInput as exc:
        return redirect_with_notice(request, f"/orgs/{slug}/", str(exc), problem=True)
    return redirect_with_notice(request, f"/orgs/{slug}/", "Proposal rejected.")


@router.get("/orgs/{slug}/proposals/{proposal_id}/checklist")
def checklist(
    slug: str,
    proposal_id: str,
    request: Request,
    notice: str | None = None,
    n: str | None = None,
    k: str | None = None,
) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    _own(request, session_info[0], proposal_id)
    found = proposal_service.checklist_steps(request.app.state.runtime(), proposal_id)
    return _render(
        "checklist.html",
        slug=slug,
        proposal_id=proposal_id,
        status=found.status,
        kind=found.ptdirect_kind,
        path=found.ptdirect_path,
        steps=found.steps,
        open_for_steps=found.status in proposal_service.OPEN_FOR_STEPS,
        csrf=_csrf(request, session_info[1]),
        notice=_notice(request, notice, n, k),
    )
