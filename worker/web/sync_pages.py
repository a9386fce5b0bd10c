"""The page's "Sync now" button and the small page that follows the run until it ends.

"Sync now" goes through the same service as the API's `POST /syncs` (recorded like a webhook,
then relayed to the queue); the run page refreshes itself every two seconds while the run is
queued or running (a meta refresh: no script).
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from worker import views
from worker.clock import utcnow
from worker.services.deliveries import start_manual_sync
from worker.store import repositories as repo
from worker.web.pages import _check_form, _render, _session, redirect_with_notice
from worker.web.timefmt import local, org_zone, relative

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.post("/orgs/{slug}/syncs")
def sync_now(slug: str, request: Request, csrf: str = Form("")) -> Response:
    org_id = _check_form(request, slug, csrf)
    _, run_id = start_manual_sync(request.app.state.runtime(), org_id, request.app.state.send, "web")
    if run_id is None:
        notice = "Sync requested: the queue is unreachable right now, it will start when it is back."
        return redirect_with_notice(request, f"/orgs/{slug}/", notice)
    return RedirectResponse(f"/orgs/{slug}/runs/{run_id}", status_code=303)


@router.get("/orgs/{slug}/runs/{run_id}")
def run_page(slug: str, run_id: str, request: Request) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    now = utcnow()
    runtime = request.app.state.runtime()
    run = views.run(runtime, session_info[0], run_id)  # NotFound (404) for another organisation's run
    with runtime.db.transaction() as session:
        zone = org_zone(repo.get_org(session, slug))
    view = {
        "status": run.status,
        "active": run.active,
        "described": _described(run),
        "requested": local(run.requested_at, zone),
        "requested_ago": relative(run.requested_at, now),
        "finished": local(run.finished_at, zone) if run.finished_at else "",
        "finished_ago": relative(run.finished_at, now) if run.finished_at else "",
        "error": run.error if run.status == repo.FAILED else None,
        "retrying": run.retrying,
    }
    return _render("run.html", slug=slug, run=view)


def _described(run: views.RunView) -> str:
    counts = run.counts or {}
    if run.status == repo.QUEUED:
        return "Waiting for a worker to pick it up."
    if run.status == repo.RUNNING:
        progress = counts.get("progress")
        if progress:
            return f"Reading the PMS: {progress['rows']:,} {progress['resource']} rows so far."
        return "Reading the PMS and PT Direct."
    if run.status == repo.SUCCEEDED and counts.get("unchanged_since"):
        return "Done: nothing changed since the last report, which stays current."
    if run.status == repo.SUCCEEDED:
        return f"Done: {run.findings} findings, {counts.get('operations', 0)} proposed changes."
    return "The sync failed; the last good report stays the one shown."
