"""Reading the latest report and rendering it as JSON, CSV or HTML."""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path
from typing import Any

from markupsafe import Markup

from sharing.findings import Severity
from worker.errors import NotFound
from worker.picture import render_picture
from worker.rendering import render
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import Proposal, Run


class NoReportYet(NotFound):
    """The organisation exists but no complete sync has written its report."""

    def __init__(self, message: str, slug: str) -> None:
        super().__init__(message)
        self.slug = slug


CSV_COLUMNS = ("state", "kind", "severity", "fingerprint", "practitioners", "emails", "message")
_STYLESHEET = Path(__file__).resolve().parent / "static" / "ptsync.css"


def latest_report(runtime: Runtime, slug: str) -> tuple[dict[str, Any], Run | None]:
    """The newest report, with the proposal's current status; and the newest run if it failed."""
    with runtime.db.transaction() as session:
        org = repo.get_org(session, slug)
        report_run = repo.latest_report_run(session, org.id)
        newest = repo.latest_run(session, org.id)
        if report_run is None or report_run.report is None:
            if newest is not None and newest.status == repo.FAILED:
                raise NotFound(f"no report for {slug} yet: the last run failed: {newest.error}")
            raise NoReportYet(f"no report for {slug} yet: one is written by its first complete sync", slug)
        report = copy.deepcopy(report_run.report)
        if report.get("proposal"):
            proposal = session.get(Proposal, report["proposal"]["id"])
            if proposal is not None:
                _overlay_progress(report, proposal)
        failed_after = (
            newest
            if newest is not None
            and newest.status == repo.FAILED
            and (newest.requested_at > report_run.requested_at)
            else None
        )
        return report, failed_after


def _overlay_progress(report: dict[str, Any], proposal: Proposal) -> None:
    """The stored report as of now: each operation's status, and findings its applied fixes fixed.

    A finding whose every fixing operation has been applied (automatically under apply-safe, or
    after approval) shows as `fixed` instead of new or ongoing; the next sync confirms it and
    lists it as resolved.
    """
    report["proposal"]["status"] = proposal.status
    statuses = {}
    for document, row in zip(report["proposal"]["operations"], proposal.operations, strict=False):
        document["status"] = row.status
        if row.note:
            document["note"] = row.note
        statuses[(row.op, row.email.strip().lower())] = row.status
    for finding in report["findings"]:
        linked = [(op["op"], op["email"].strip().lower()) for op in finding.get("operations") or []]
        fixed = linked and all(statuses.get(key) == "applied" for key in linked)
        if fixed and finding["state"] in ("new", "ongoing"):
            finding["state"] = "fixed"


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: text starting with =, +, -, @, tab or carriage
    return is prefixed with a single quote (OWASP, CSV injection), so a practitioner named
    `=HYPERLINK(...)` is shown as text instead of becoming a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def render_csv(report: dict[str, Any]) -> str:
    """The findings as CSV; every cell neutralised against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for finding in [*report["findings"], *report.get("resolved", [])]:
        people = finding.get("practitioners", [])
        cells = [
            finding["state"],
            finding["kind"],
            finding["severity"],
            finding["fingerprint"],
            "; ".join(person.get("name") or "" for person in people),
            "; ".join(person.get("email") or "" for person in people),
            finding["message"],
        ]
        writer.writerow([neutralise_cell(cell) for cell in cells])
    return buffer.getvalue()


def render_html(report: dict[str, Any], picture: dict[str, Any] | None = None) -> str:
    """A standalone HTML file: the page's stylesheet embedded, and the same sharing picture."""
    groups = {"new": [], "ongoing": [], "indeterminate": [], "fixed": []}
    rank = {severity.value: severity.rank for severity in Severity}
    for finding in sorted(report["findings"], key=lambda f: rank.get(f["severity"], len(rank))):
        groups.setdefault(finding["state"], []).append(finding)
    return render(
        "report.html",
        report=report,
        groups=groups,
        resolved=report.get("resolved", []),
        picture=render_picture(picture),
        css=Markup(_STYLESHEET.read_text()),
    )


def picture_of_report(runtime: Runtime, report: dict[str, Any]) -> dict[str, Any] | None:
    """The sharing picture stored by the run that produced this report."""
    with runtime.db.transaction() as session:
        run = session.get(Run, report["run"]["id"])
        return (run.counts or {}).get("picture") if run is not None else None
