"""Admin pages: log in with an organisation token, read the report, act on proposals.

The session is a signed cookie (HttpOnly, SameSite=Lax) naming the organisation and token;
every form carries a CSRF token derived from that cookie, checked on POST.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from worker.errors import InvalidInput
from worker.services import credentials
from worker.services import proposals as proposal_service
from worker.store import repositories as repo
from worker.store.models import AdminToken, Proposal
from worker.web.org_page import org_page_context

router = APIRouter(tags=["pages"], include_in_schema=False)
COOKIE = "ptsync_session"
SESSION_SECONDS = 8 * 3600
_templates = Environment(loader=PackageLoader("worker", "templates"), autoescape=select_autoescape(["html"]))


def _key(request: Request) -> bytes:
    return request.app.state.runtime().secrets.derive_key("ptsync-admin-session")


def _sign(request: Request, value: str) -> str:
    return hmac.new(_key(request), value.encode(), hashlib.sha256).hexdigest()


def _session(request: Request, slug: str) -> tuple[int, str] | None:
    """(org id, cookie) when the cookie is valid, unexpired, for this org and its token still exists."""
    cookie = request.cookies.get(COOKIE, "")
    try:
        org_id, token_id, expires, signature = cookie.split(":")
    except ValueError:
        return None
    payload = f"{org_id}:{token_id}:{expires}"
    if not hmac.compare_digest(_sign(request, payload), signature) or int(expires) < time.time():
        return None
    with request.app.state.runtime().db.transaction() as session:
        token = session.get(AdminToken, int(token_id))
        if token is None or token.org_id != int(org_id):
            return None
        org = repo.find_org(session, slug)
        if org is None or org.id != int(org_id):
            return None
    return int(org_id), cookie


def _csrf(request: Request, cookie: str) -> str:
    return _sign(request, "csrf:" + cookie)[:32]


def _render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**context))


@router.get("/orgs/{slug}/login")
def login_form(slug: str, error: str | None = None) -> HTMLResponse:
    return _render("login.html", slug=slug, error=error)


@router.post("/orgs/{slug}/login")
def login(slug: str, request: Request, token: str = Form("")) -> Response:
    principal = credentials.authenticate(request.app.state.runtime(), token.strip())
    if principal is None or principal.slug != slug:
        return _render("login.html", slug=slug, error="That token does not open this organisation.")
    payload = f"{principal.org_id}:{principal.token_id}:{int(time.time()) + SESSION_SECONDS}"
    response = RedirectResponse(f"/orgs/{slug}/", status_code=303)
    response.set_cookie(
        COOKIE,
        f"{payload}:{_sign(request, payload)}",
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/orgs/{slug}/logout")
def logout(slug: str) -> Response:
    response = RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/orgs/{slug}/")
def report_page(slug: str, request: Request, notice: str | None = None, who: str | None = None) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    org_id, cookie = session_info
    context = org_page_context(request.app.state.runtime(), slug, org_id, who)
    return _render("org.html", **context, slug=slug, csrf=_csrf(request, cookie), notice=notice)


def _check_form(request: Request, slug: str, csrf: str) -> int:
    session_info = _session(request, slug)
    if session_info is None:
        raise HTTPException(401, "log in first")
    org_id, cookie = session_info
    if not hmac.compare_digest(_csrf(request, cookie), csrf or ""):
        raise HTTPException(403, "the form has expired: reload the page and try again")
    return org_id


def _own(request: Request, org_id: int, proposal_id: str) -> None:
    with request.app.state.runtime().db.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None or proposal.org_id != org_id:
            raise HTTPException(404, "not found")


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
            f"web:{slug}",
            apply_proposal.send,
            transferred=transferred == "yes",
        )
    except InvalidInput as exc:
        return RedirectResponse(f"/orgs/{slug}/?notice={exc}", status_code=303)
    notice = "Proposal approved: applying it now."
    if not approval.queued:
        notice = "Proposal approved: it will be applied as soon as the queue is reachable."
    return RedirectResponse(f"/orgs/{slug}/?notice={notice}", status_code=303)


@router.post("/orgs/{slug}/proposals/{proposal_id}/reject")
def reject(slug: str, proposal_id: str, request: Request, csrf: str = Form("")) -> Response:
    org_id = _check_form(request, slug, csrf)
    _own(request, org_id, proposal_id)
    try:
        proposal_service.reject(request.app.state.runtime(), proposal_id, f"web:{slug}")
    except InvalidInput as exc:
        return RedirectResponse(f"/orgs/{slug}/?notice={exc}", status_code=303)
    return RedirectResponse(f"/orgs/{slug}/?notice=Proposal rejected.", status_code=303)


@router.get("/orgs/{slug}/proposals/{proposal_id}/checklist")
def checklist(slug: str, proposal_id: str, request: Request) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    _own(request, session_info[0], proposal_id)
    proposal, steps = proposal_service.checklist_of(request.app.state.runtime(), proposal_id)
    return _render("checklist.html", slug=slug, proposal_id=proposal_id, status=proposal.status, steps=steps)
