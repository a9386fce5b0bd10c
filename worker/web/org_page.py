"""Gathers everything the org page shows in one read of the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker import views
from worker.clock import utcnow
from worker.errors import NotFound
from worker.picture import render_picture
from worker.reports import latest_report
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import Run
from worker.web.org_view import (
    OPEN_ALL_UP_TO,
    group_findings,
    header_view,
    proposal_views,
    run_views,
)
from worker.web.timefmt import local, org_zone, relative

HISTORY = 15
PROPOSALS = 10


def org_page_context(runtime: Runtime, slug: str, org_id: int, who: str | None) -> dict[str, Any]:
    now = utcnow()
    try:
        report, failed_after = latest_report(runtime, slug)
    except NotFound as exc:
        report, failed_after, missing = None, None, str(exc)
    else:
        missing = None
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        zone = org_zone(org)
        schedule = org.schedule
        picture = None
        if report is not None:
            report_run = session.get(Run, report["run"]["id"])
            picture = (report_run.counts or {}).get("picture") if report_run else None
    runs = views.runs(runtime, org_id, HISTORY, counts=False)
    header = header_view(schedule, runs[0] if runs else None, zone, now)
    history = run_views(runs, zone, now)
    proposals = proposal_views(views.proposals(runtime, org_id, PROPOSALS), zone, now)
    current = [p for p in proposals if p["open"]]
    earlier = [p for p in proposals if not p["open"]]
    operations = [op for proposal in current for op in proposal["operations"]]
    findings = (report or {}).get("findings", [])
    groups = group_findings(findings, operations, who)
    shown = sum(group.count for group in groups)
    report_view = None
    if report is not None:
        finished = report["run"].get("finished_at")
        moment = datetime.fromisoformat(finished.replace("Z", "+00:00")) if finished else None
        report_view = {"at": local(moment, zone), "ago": relative(moment, now)}
    return {
        "report": report,
        "report_time": report_view,
        "missing": missing,
        "failed_after": failed_after,
        "header": header,
        "groups": groups,
        "findings_total": len(findings),
        "findings_shown": shown,
        "expand": bool(who) or shown <= OPEN_ALL_UP_TO,
        "who": who or "",
        "resolved": (report or {}).get("resolved", []),
        "history": history,
        "current": current,
        "earlier": earlier,
        "open_operations_up_to": OPEN_ALL_UP_TO,
        "picture": render_picture(picture),
    }
