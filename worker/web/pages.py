"""Admin pages: log in with an organisation token, read the report, act on proposals.

The session is a signed cookie (HttpOnly, SameSite=Lax) naming the organisation and token;
every form carries a CSRF token derived from that cookie, checked on POST.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from worker.clock import iso
from worker.errors import InvalidInput, NotFound
from worker.reports import latest_report
from worker.services import credentials
from worker.services import proposals as proposal_service
from worker.store import repositories as repo
from worker.store.models import AdminToken, Proposal

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
def report_page(slug: str, request: Request, notice: str | None = None) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    org_id, cookie = session_info
    runtime = request.app.state.runtime()
    try:
        report, failed_after = latest_report(runtime, slug)
    except NotFound as exc:
        report, failed_after, missing = None, None, str(exc)
    else:
        missing = None
    with runtime.db.transaction() as session:
        runs = repo.runs_of(session, org_id, 15)
        history = [
            {
                "id": r.id,
                "trigger": r.trigger,
                "status": r.status,
                "requested_at": iso(r.requested_at),
                "finished_at": iso(r.finished_at),
                "error": r.error,
            }
            for r in runs
        ]
        picture = next((r.counts.get("picture") for r in runs if r.counts and r.counts.get("picture")), None)
        proposals = [
            {
                "id": p.id,
                "status": p.status,
                "created_at": iso(p.created_at),
                "error": p.error,
                "operations": [
                    {
                        "op": o.op,
                        "email": o.email,
                        "status": o.status,
                        "requires_approval": o.requires_approval,
                    }
                    for o in p.operations
                ],
            }
            for p in repo.proposals_of(session, org_id, 5)
        ]
    groups: dict[str, list[dict[str, Any]]] = {"new": [], "ongoing": [], "indeterminate": []}
    for finding in (report or {}).get("findings", []):
        groups.setdefault(finding["state"], []).append(finding)
    return _render(
        "org.html",
        slug=slug,
        report=report,
        missing=missing,
        failed_after=failed_after,
        groups=groups,
        resolved=(report or {}).get("resolved", []),
        history=history,
        proposals=proposals,
        picture=_layout(picture),
        csrf=_csrf(request, cookie),
        notice=notice,
    )


def _layout(picture: dict[str, Any] | None) -> dict[str, Any] | None:
    """Places practitioners on a circle; edges carry shared-patient counts and risk."""
    if not picture or not picture.get("nodes"):
        return None
    nodes = picture["nodes"]
    count = len(nodes)
    radius = 170 if count > 2 else 90
    positions = {}
    for index, (pid, name) in enumerate(nodes):
        angle = 2 * math.pi * index / count - math.pi / 2
        positions[pid] = (
            round(250 + radius * math.cos(angle), 1),
            round(230 + radius * math.sin(angle), 1),
            name,
        )
    heaviest = max((edge[2] for edge in picture["edges"]), default=1) or 1
    edges = [
        {
            "x1": positions[a][0],
            "y1": positions[a][1],
            "x2": positions[b][0],
            "y2": positions[b][1],
            "width": round(1 + 5 * shared / heaviest, 1),
            "risk": risk,
            "title": f"{positions[a][2]} and "
            f"{positions[b][2]}: {shared} shared patients" + (" (at risk)" if risk else ""),
        }
        for a, b, shared, risk in picture["edges"]
        if a in positions and b in positions
    ]
    return {
        "nodes": [{"x": x, "y": y, "name": name} for x, y, name in positions.values()],
        "edges": edges,
        "shown": len(edges),
        "total": picture.get("total_pairs", len(edges)),
    }


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
    try:
        proposal_service.approve(
            request.app.state.runtime(), proposal_id, f"web:{slug}", transferred=transferred == "yes"
        )
    except InvalidInput as exc:
        return RedirectResponse(f"/orgs/{slug}/?notice={exc}", status_code=303)
    from worker.actors import apply_proposal

    apply_proposal.send(proposal_id)
    notice = "Proposal approved: applying it now."
    with request.app.state.runtime().db.transaction() as session:
        org = repo.get_proposal(session, proposal_id).organisation
        extra = proposal_service.after_approval(org.ptdirect_kind, proposal_id, org.ptdirect_path)
    if org.ptdirect_kind == "manual":
        notice = "Proposal approved. " + (extra or "")
    elif extra:
        notice = f"Proposal approved: {extra}"
    return RedirectResponse(f"/orgs/{slug}/?notice={quote(notice)}", status_code=303)


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
def checklist(slug: str, proposal_id: str, request: Request, notice: str | None = None) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    _own(request, session_info[0], proposal_id)
    proposal, steps = proposal_service.checklist_steps(request.app.state.runtime(), proposal_id)
    return _render(
        "checklist.html",
        slug=slug,
        proposal_id=proposal_id,
        status=proposal.status,
        kind=proposal.organisation.ptdirect_kind,
        path=proposal.organisation.ptdirect_path,
        steps=steps,
        open_for_steps=proposal.status in proposal_service.OPEN_FOR_STEPS,
        csrf=_csrf(request, session_info[1]),
        notice=notice,
    )
