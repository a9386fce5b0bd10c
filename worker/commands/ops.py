"""`ptsync audit` and `ptsync prune`: reading the audit trail, applying the retention policy."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

import typer

from worker.terminal import InertTable


class AuditFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _runtime():
    from worker.runtime import get_runtime

    return get_runtime()


def _since(text: str | None) -> datetime | None:
    from worker.errors import InvalidInput

    if not text:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--since {text!r} is not a date (YYYY-MM-DD) or ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def audit(
    slug: str,
    since: Annotated[
        str | None, typer.Option(help="Only entries from this date (YYYY-MM-DD) or time on")
    ] = None,
    format: Annotated[AuditFormat, typer.Option("--format", help="table, json or csv")] = AuditFormat.table,
    limit: Annotated[int, typer.Option(help="At most this many entries, newest first")] = 1000,
) -> None:
    """Show who changed what, when and from where (CLI user, API token, page session)."""
    from worker.cli import err, out
    from worker.services import audit as service

    rows = service.entries(_runtime(), slug, _since(since), limit)
    if format is AuditFormat.json:
        sys.stdout.write(service.render_json(rows))
        return
    if format is AuditFormat.csv:
        sys.stdout.write(service.render_csv(rows))
        return
    if not rows:
        err.print(f"no audit entries for {slug}" + (f" since {since}" if since else ""))
        return
    table = InertTable("when (UTC)", "action", "who", "from", "detail")
    for row in rows:
        table.add_row(row.at, row.action, row.actor, row.origin, row.summary())
    out.print(table)


def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted")] = False,
    older_than: Annotated[
        int | None, typer.Option(help="Days to keep (default PTSYNC_RETENTION_DAYS, 180)", min=1)
    ] = None,
) -> None:
    """Delete runs, reports, finding records, deliveries and sent notifications past retention."""
    from worker.cli import err, out
    from worker.services.audit import cli_actor
    from worker.services.retention import prune as service

    result = service(_runtime(), days=older_than, dry_run=dry_run, actor=cli_actor())
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{verb} (older than {result.cutoff}): {result.runs} runs with their reports, "
        f"{result.findings} finding records, {result.deliveries} deliveries, "
        f"{result.notifications} notifications"
    )
    if dry_run:
        err.print(
            "kept: each organisation's latest report, runs a proposal refers to, and the whole audit log"
        )
