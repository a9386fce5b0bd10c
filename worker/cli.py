"""The `ptsync` command line (documented in README.md and `ptsync --help`).

Documents (`--format json|csv`) go to stdout alone; tables are for people; messages, progress
and errors go to stderr. Every error is one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.commands import keys as _keys
from worker.commands import org_options
from worker.commands import tokens as _tokens
from worker.commands.org_options import SECRET_FIELDS
from worker.commands.terminal import SECRET_HELP, ExpectedFailures, read_secret
from worker.errors import PtsyncError
from worker.terminal import InertTable, folded, safe, strip_controls

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Keep Physitrack PT Direct share groups in step with your PMS.",
)
org_app = typer.Typer(no_args_is_help=True, help="Manage organisations.")
app.add_typer(org_app, name="org")
from worker.commands.export_mapping import export_mapping_app  # noqa: E402

app.add_typer(export_mapping_app, name="export-mapping")
from worker.commands import notify as _notify  # noqa: E402  (issue 15: notify, audit, prune)
from worker.commands import ops as _ops  # noqa: E402

app.add_typer(_notify.app, name="notify")
app.command("audit")(_ops.audit)
app.command("prune")(_ops.prune)
_tokens.register(org_app)  # org tokens, org revoke-token
_keys.register(app)  # rotate-secrets
from worker.commands import register  # noqa: E402  (lifecycle, runs, ptdirect, --version)

register(app, org_app)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line at any width

DEMO_SLUG = "demo-clinic"
DEMO_FOLDER = "ptsync-demo"


class DemoSize(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit (inside a command or around the whole app)."""
    err.print(f"[red]error:[/red] {safe(message)}", markup=True, highlight=False)
    sys.exit(code)


_whole_process = False
"""True in a `ptsync` process (set by `main`); False when a test runs a command in the test's process."""


def _set_imports_aside(*, collect_first: bool = False) -> None:
    """Before a long command's work, in a `ptsync` process only: move every object imported so
    far (SQLAlchemy, numpy, pydantic, the models: some 120,000) to the collector's permanent
    generation, so that its full collections during the work stop walking them again and
    again (about 0.1 s of `ptsync sync --wait` on the largest clinic; in `web` and `clock`, a
    pause of 100 ms or more on a 2-core machine at each full collection, all the process's
    threads stopped). They live until exit anyway. Not in a test's process, whose later
    garbage would then never be collected. `ptsync worker`'s processes do the same once booted
    (`worker.worker_ops.ImportsAside`).

    `collect_first`, for a server that runs for days: collect the start-up's garbage first, so
    none of it is kept for ever (a full collection: 0.1 s, which a one-off command saves)."""
    if _whole_process:
        if collect_first:
            gc.collect()
        gc.freeze()


def _runtime():
    from worker.runtime import get_runtime

    return get_runtime()


def _cli_actor(by: str) -> str:
    """Who is at the terminal, for the audit log: `cli:NAME` (--by) or `cli:USER@HOST`."""
    from worker.services.audit import cli_actor

    return cli_actor(by)


def _actors():
    from worker import actors

    return actors


def org_add(**options: Any) -> None:
    """Add an organisation and its PMS and PT Direct connections (tested first unless --no-test).

    One PMS account with several PT Direct accounts (a clinic group): add one organisation per PT
    Direct account with the same PMS key and its --locations (`ptsync org locations SLUG` lists
    them; --include-people / --exclude-people for what locations cannot say); the test then
    checks the scope matches someone."""
    from worker.services.org_admin import add_tested
    from worker.services.orgs import NewOrganisation

    test = not options.pop("no_test")
    for name in SECRET_FIELDS:
        options[name] = read_secret(options.get(name), f"--{name.replace('_', '-')}")
    org, checks = add_tested(_runtime(), NewOrganisation(**options), test=test)
    for check in checks:
        err.print(check.line(), markup=False)
    err.print(
        f"added organisation {org.slug} (pms {org.pms_kind}, PT Direct {org.ptdirect_kind}, "
        f"policy {org.mode})"
    )
    if org.ptdirect_kind == "manual":
        err.print(
            f"next: record what PT Direct shows at /orgs/{org.slug}/ptdirect (`ptsync org token {org.slug}` "
            f"to log in) or with `ptsync ptdirect import {org.slug} FILE`, "
            f"then `ptsync sync {org.slug} --wait`",
            markup=False,
        )
    elif org.ptdirect_kind == "file":
        err.print(
            f"approved changes are written to {org.ptdirect_path} only; PT Direct itself is never "
            "touched (keep the file in step with PT Direct, or use --ptdirect manual)",
            markup=False,
        )


org_add.__signature__ = org_options.signature(for_update=False)  # type: ignore[attr-defined]
org_app.command("add")(org_add)


@org_app.command("physitrack-key")
def org_physitrack_key(
    slug: str,
    email: Annotated[str, typer.Argument(help="The practitioner's PT Direct email")],
    key: Annotated[
        str | None, typer.Option(help=f"The key; omit to read it from standard input ({SECRET_HELP})")
    ] = None,
) -> None:
    """Store a practitioner's Physitrack API v2 key (encrypted) to check for duplicate patients."""
    from worker.services.orgs import set_physitrack_key

    key = read_secret(key if key is not None else "-", "--key") or ""
    set_physitrack_key(_runtime(), slug, email, key)
    err.print(f"stored the Physitrack key of {safe(email)} for {slug} (encrypted)")


@org_app.command("list")
def org_list() -> None:
    """List organisations: connections, policy, state, last run and next scheduled sync."""
    from worker.clock import utcnow
    from worker.services.schedule import next_due
    from worker.settings import get_settings
    from worker.store.listing import organisation_rows
    from worker.store.schema import schema_head

    now = utcnow()
    settings = get_settings()
    rows = None
    if settings.secret_key:  # a malformed key stops this command too, as it stops every other
        from worker.crypto import load_secret_box

        load_secret_box(settings)
    if settings.secret_key or settings.is_sqlite:  # else the full store says the key is required
        rows = organisation_rows(settings.resolved_database_url, schema_head())
    if rows is None:  # no database yet, or a schema to migrate: the full store handles both
        from worker import views

        rows = views.organisations(_runtime())
    table = InertTable("slug", "pms", "PT Direct", "policy", "state", "last run", "next sync (UTC)")
    for org in rows:
        due = None if org.paused_at else next_due(org.schedule, now)
        table.add_row(
            org.slug,
            org.pms_kind,
            org.ptdirect_kind,
            org.mode,
            "paused" if org.paused_at else "active",
            "none" if org.last_at is None else f"{org.last_status} {org.last_at:%Y-%m-%d %H:%M}",
            "-" if due is None else f"{due:%Y-%m-%d %H:%M}",
        )
    out.print(table)


def _start_sync(slug: str, trigger: str, *, accept_drop: bool = False) -> str:
    from worker.services.sync import request_sync

    runtime = _runtime()
    run_id, created = request_sync(runtime, slug, trigger, accept_drop=accept_drop)
    _actors().sync_org.send(run_id)  # idempotent: a coalesced run is claimed once
    if not created:
        err.print(f"a sync of {slug} was already queued; joined run {run_id}")
    return run_id


def _wait_for_run(run_id: str, timeout: float) -> str:
    """Wait for a run to finish, draining the in-process broker if that is the one in use."""
    from sqlalchemy import select

    from worker.inprocess import drain, is_in_process
    from worker.lifecycle import failed_attempt
    from worker.store.models import Run

    runtime = _runtime()
    _set_imports_aside()
    drainer = None
    if is_in_process():
        drainer = threading.Thread(target=drain, name="in-process-worker", daemon=True)
        drainer.start()
    deadline = time.monotonic() + timeout
    reported = None
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True
    ) as progress:
        task = progress.add_task("waiting for a worker", total=None)
        while True:
            with runtime.db.transaction() as session:
                # Not the whole row: a finished run's report and counts can be megabytes.
                row = session.execute(select(Run.status, Run.error).where(Run.id == run_id)).one()
                status, last_error = row.status, failed_attempt(row)
                counts = {}
                if status == "running":
                    counts = dict(session.scalar(select(Run.counts).where(Run.id == run_id)) or {})
            if status in ("succeeded", "failed"):
                break
            if drainer is not None and not drainer.is_alive():
                break
            if time.monotonic() > deadline:
                fail(f"run {run_id} did not finish within {timeout:.0f}s (status: {status})")
            described = "waiting for a worker" if status == "queued" else "syncing"
            if "progress" in counts:
                described = (
                    f"syncing: {counts['progress']['rows']:,} {counts['progress']['resource']} rows read"
                )
            if last_error:
                described = f"{described} (retrying; {safe(last_error)})"
                if last_error != reported and err.is_terminal:
                    reported = last_error
                    progress.console.print(_retry_notice(run_id, last_error), markup=False)
            progress.update(task, description=described)
            if drainer is not None:
                drainer.join(0.2)  # returns as soon as the in-process worker has finished
            else:
                time.sleep(0.2)
    if drainer is not None:
        drainer.join()
        with runtime.db.transaction() as session:
            status = session.get(Run, run_id).status
    return status


def _retry_notice(run_id: str, error: str) -> str:
    """The first failed attempt, said at once, with when the worker tries again."""
    from worker.store.models import Run

    with _runtime().db.transaction() as session:
        attempts = session.get(Run, run_id).attempts
    options = _actors().sync_org.options
    retries, low = options["max_retries"], options["min_backoff"] / 1000 * 2 ** max(attempts - 1, 0)
    high = min(low * 2, options["max_backoff"] / 1000)
    if attempts > retries:
        return f"{error} (attempt {attempts}; that was the last try)"
    return (
        f"attempt {attempts} of {retries + 1} failed: {error}; "
        f"the worker tries again in {low:.0f}-{high:.0f} s (Ctrl-C stops waiting; the run continues)"
    )


def _report_run_result(run_id: str, status: str) -> None:
    from worker.services.sync import run_result

    result = run_result(_runtime(), run_id)
    if status != "succeeded":
        fail(f"run {run_id} {status}: {result.error or 'no reason recorded'}")
    line = f"run {run_id} succeeded: {result.findings} findings, {result.operations} operations"
    if result.applied_automatically:
        line += f" ({result.applied_automatically} applied automatically)"
    err.print(line)
    if result.suspicious:
        err.print(
            "[yellow]warning:[/yellow] the PMS read lost many practitioners at once: no removals were "
            "proposed. If they really left, run the sync again with --accept-drop."
        )


@app.command()
def sync(
    slug: str,
    wait: Annotated[bool, typer.Option("--wait", help="Return when the run has finished")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 3600,
    accept_drop: Annotated[
        bool,
        typer.Option(
            "--accept-drop",
            help="Confirm that practitioners missing from the PMS since the last sync really left",
        ),
    ] = False,
) -> None:
    """Start a sync of an organisation (joins one already queued)."""
    from worker.inprocess import is_in_process

    run_id = _start_sync(slug, "manual", accept_drop=accept_drop)
    if not wait and not is_in_process():
        err.print(f"queued run {run_id}")
        out.print(run_id)
        return
    status = _wait_for_run(run_id, timeout)
    out.print(run_id)
    _report_run_result(run_id, status)


@app.command()
def report(
    slug: str,
    format: Annotated[Format, typer.Option("--format", help="table, json, csv or html")] = Format.table,
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout")] = None,
) -> None:
    """Print the latest run's report."""
    from worker.reports import latest_report, picture_of_report, render_csv, render_html

    if output is not None and not output.parent.is_dir():
        fail(f"--output {output}: the folder {output.parent} does not exist")
    document, failed_after = latest_report(_runtime(), slug)
    if failed_after is not None:
        err.print(
            f"[yellow]note:[/yellow] the newest run {failed_after.id} failed "
            f"({safe(failed_after.error)}); this is the last good report"
        )
    if format is Format.json:
        text = json.dumps(document, indent=2) + "\n"
    elif format is Format.csv:
        text = render_csv(document)
    elif format is Format.html:
        text = render_html(document, picture_of_report(_runtime(), document))
    else:
        if output is None:
            _print_report_table(document, out)
            return
        console = Console(file=open(output, "w"), width=120)  # noqa: SIM115
        _print_report_table(document, console)
        console.file.close()
        err.print(f"wrote {output}")
        return
    if output is not None:
        output.write_text(text)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def _local_time(stamp: str | None, zone: str | None) -> str:
    """An ISO UTC timestamp as the clinic reads it: in the organisation's time zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if not stamp:
        return "not yet"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo(zone or "UTC"))
    except (ValueError, KeyError):
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M %Z")


_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _print_report_table(document: dict, console: Console) -> None:
    run = document["run"]
    summary = document["summary"]
    console.print(
        f"[bold]{safe(document['org'])}[/bold]: run {safe(run['id'])} ({safe(run['trigger'])}, "
        f"{safe(run['status'])}, finished {safe(_local_time(run['finished_at'], document.get('timezone')))})"
    )
    console.print(f"{summary['practitioners']} practitioners, {summary['patients']} patients in the window")
    from sharing.scope import describe_scope  # clinic groups: the organisation's part of the PMS

    if scope_line := describe_scope(document.get("scope")):
        console.print(safe(scope_line), markup=False)
    table = folded(Table("state", "severity", "kind", "finding", show_lines=False, expand=False))
    for finding in document["findings"]:
        style = _SEVERITY_STYLE.get(finding["severity"], "")
        severity = f"[{style}]{safe(finding['severity'])}[/{style}]" if style else safe(finding["severity"])
        table.add_row(safe(finding["state"]), severity, safe(finding["kind"]), safe(finding["message"]))
    for finding in document.get("resolved", []):
        table.add_row("resolved", safe(finding["severity"]), safe(finding["kind"]), safe(finding["message"]))
    if document["findings"] or document.get("resolved"):
        console.print(table)
    else:
        console.print("No findings: PT Direct sharing matches the PMS.")
    proposal = document.get("proposal")
    if proposal:
        console.print(f"\n[bold]Proposal {safe(proposal['id'])}[/bold] ({safe(proposal['status'])})")
        ops = folded(Table("operation", "practitioner", "needs approval", "status"))
        for op in proposal["operations"]:
            ops.add_row(
                safe(op["op"]),
                safe(op["email"]),
                "yes" if op["requires_approval"] else "no",
                safe(op.get("status", "pending")),
            )
        console.print(ops)
        if proposal["status"] == "proposed":
            console.print(f"Approve with: ptsync approve {proposal['id']}")


@app.command()
def proposals(slug: str) -> None:
    """List an organisation's proposals, newest first."""
    from worker import views

    runtime = _runtime()
    items = views.proposals(runtime, views.org_id_of(runtime, slug))
    if not items:
        err.print(f"no proposals for {slug}")
        return
    table = InertTable("created", "status", "operations", "needs approval")
    table.add_column("proposal", no_wrap=True, overflow="fold")
    for proposal in items:
        table.add_row(
            proposal.created_at.strftime("%Y-%m-%d %H:%M"),
            proposal.status,
            str(len(proposal.operations)),
            str(proposal.needing_approval),
            proposal.id,
        )
    out.print(table)
    latest = items[0]
    ops = InertTable(
        "#", "operation", "practitioner", "needs approval", "status", title=f"Proposal {latest.id}"
    )
    for op in latest.operations:
        ops.add_row(
            str(op.position + 1),
            op.op,
            op.email,
            ("approved" if op.approved else "yes") if op.requires_approval else "no",
            op.status,
        )
    out.print(ops)


@app.command()
def approve(
    proposal_id: str,
    transferred: Annotated[
        bool,
        typer.Option("--transferred", help="Confirm the departed practitioners' patients were transferred"),
    ] = False,
    by: Annotated[str, typer.Option(help="Who approves (for the audit log)")] = "",
) -> None:
    """Approve a proposal and apply it."""
    from worker.inprocess import drain, is_in_process
    from worker.services import proposals as service

    actor = _cli_actor(by)
    approval = service.approve_and_apply(
        _runtime(), proposal_id, actor, _actors().apply_proposal.send, transferred=transferred
    )
    err.print(f"proposal {safe(proposal_id)} approved by {safe(actor)}")
    if not approval.queued:
        err.print("the queue is unreachable: the clock's re-driver sends the apply once it is back")
        return
    if not is_in_process():
        err.print("queued for a worker to apply")
        return
    drain()
    _print_proposal_result(proposal_id)


def _after_approval(proposal_id: str) -> None:
    from worker.services.proposals import after_approval
    from worker.store import repositories as repo

    with _runtime().db.transaction() as session:
        org = repo.get_proposal(session, proposal_id).organisation
        message = after_approval(org.ptdirect_kind, proposal_id, org.ptdirect_path)
    if message:
        err.print(message, markup=False)


def _print_proposal_result(proposal_id: str, depth: int = 0) -> None:
    """What applying did. Exits non-zero when nothing was applied because the plan was stale."""
    from worker.store import repositories as repo

    with _runtime().db.transaction() as session:
        proposal = repo.get_proposal(session, proposal_id)
        status, error, successor = proposal.status, proposal.error, proposal.superseded_by
        kind = proposal.organisation.ptdirect_kind
        rows = [(op.op, op.email, op.status, op.note or op.error) for op in proposal.operations]
    table = InertTable(
        "operation", "practitioner", "status", "note", title=f"Proposal {proposal_id}: {status}"
    )
    for row in rows:
        table.add_row(*(cell or "" for cell in row))
    out.print(table)
    applied = sum(1 for row in rows if row[2] == "applied")
    if status == "superseded":
        if successor and depth < 3:
            err.print(f"proposal {proposal_id} was replaced by proposal {successor} (approvals carried over)")
            _print_proposal_result(successor, depth + 1)
            return
        message = f"proposal {proposal_id} is superseded: {error or 'a newer sync replaced it'}"
        fail(message + ("" if applied else "; nothing was applied"))
    if any(row[2] == "manual" for row in rows):
        err.print("Operations marked 'manual' must be done by a person in the PT Direct admin console.")
    if any(row[2] == "waiting" and (row[3] or "").startswith("waiting until") for row in rows):
        err.print(
            f"Removals wait until patients are transferred: after transferring them in PT Direct, "
            f"run `ptsync approve {proposal_id} --transferred`."
        )
    if status == "failed":
        fail(f"proposal {proposal_id} failed: {error}")
    if kind in ("manual", "file"):
        _after_approval(proposal_id)


@app.command()
def reject(proposal_id: str, by: Annotated[str, typer.Option(help="Who rejects")] = "") -> None:
    """Reject a proposal: nothing of it is applied."""
    from worker.services import proposals as service

    actor = _cli_actor(by)
    service.reject(_runtime(), proposal_id, actor)
    err.print(f"proposal {safe(proposal_id)} rejected by {safe(actor)}")


@app.command()
def checklist(proposal_id: str) -> None:
    """Print a proposal as steps to follow by hand in the PT Direct admin console."""
    from worker.services import proposals as service

    found = service.checklist_steps(_runtime(), proposal_id)
    kind, steps = found.ptdirect_kind, found.steps
    open_steps = [step for step in steps if not step.settled]
    if not open_steps and kind != "file":
        err.print(f"proposal {proposal_id} ({found.status}) has nothing left to do by hand")
        return
    out.print(f"Proposal {proposal_id} ({found.status}): in PT Direct, as an admin:\n", markup=False)
    done_label = "  [done]"
    if kind == "file":
        done_label = "  [written to the snapshot file only: do it in PT Direct too]"
    for step in steps:
        done = {"applied": done_label, "could_not_do": f"  [could not do: {step.note}]"}.get(step.status, "")
        out.print(strip_controls(f"{step.number}. {step.text}{done}"), markup=False)
    if open_steps:
        out.print(
            f"\nWhen done: ptsync mark-applied {proposal_id}  (a step you could not do: add --could-not "
            "NUMBER --reason TEXT)",
            markup=False,
        )


@app.command("mark-applied")
def mark_applied(
    proposal_id: str,
    by: Annotated[str, typer.Option(help="Who applied it")] = "",
    could_not: Annotated[
        list[int] | None, typer.Option("--could-not", help="A step number you could not do (repeatable)")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why those steps could not be done")] = "",
) -> None:
    """Record that you did a proposal's steps in PT Direct (all, but the --could-not ones)."""
    from worker.services import proposals as service

    if reason.strip() and not could_not:
        fail("--reason says why steps could not be done: name them with --could-not N (nothing recorded)")
    actor = _cli_actor(by)
    skipped = {number - 1: reason or "the admin could not do this step" for number in could_not or []}
    kind = service.mark_applied_by_hand(_runtime(), proposal_id, actor, could_not=skipped).ptdirect_kind
    recorded = (
        "recorded the new PT Direct state in ptsync; the next sync plans from it"
        if kind == "manual"
        else "the next sync will verify it in PT Direct"
    )
    err.print(f"proposal {safe(proposal_id)} marked as applied by hand by {safe(actor)}; {recorded}")
    if skipped:
        err.print(
            f"steps {', '.join(str(n + 1) for n in sorted(skipped))} recorded as not done; the next sync "
            "proposes them again while they are still needed"
        )


@app.command()
def demo(
    size: Annotated[
        DemoSize, typer.Option(help="small: 12 practitioners; medium: 40; large: 300 (generated teams)")
    ] = DemoSize.small,
) -> None:
    """Run a demo clinic end to end and print its report."""
    from worker.demo import prepare_demo_organisation
    from worker.demo_generated import DEMO_SIZES

    practitioners, slug, folder_name = DEMO_SIZES.get(size, (None, DEMO_SLUG, DEMO_FOLDER))
    runtime = _runtime()
    for note in prepare_demo_organisation(runtime, slug, Path.cwd() / folder_name, practitioners):
        err.print(note)
    run_id = _start_sync(slug, "demo")
    status = _wait_for_run(run_id, 600)
    _report_run_result(run_id, status)
    if practitioners is None or practitioners <= 40:
        report(slug, Format.table, None)
    from worker.reports import latest_report

    proposal = latest_report(runtime, slug)[0].get("proposal")
    approve_hint = f"`ptsync approve {proposal['id']}`" if proposal else "`ptsync approve PROPOSAL_ID`"
    err.print(
        f"\nNext: `ptsync report {slug} --format html --output report.html`, "
        f"`ptsync proposals {slug}`, {approve_hint}; or see it in a browser: "
        f"`ptsync org token {slug}`, `ptsync web`, then log in at http://127.0.0.1:8000/orgs/{slug}/login"
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (the Procfile release step)."""
    from worker.crypto import load_secret_box
    from worker.settings import get_settings
    from worker.store.db import Database

    settings = get_settings()
    if settings.secret_key:  # refused here, like every other command, not at the first start after
        load_secret_box(settings)
    database = Database(settings.resolved_database_url)
    database.migrate()
    err.print("database schema is up to date")


def queue_prefetch(threads: int) -> int:
    """How many queued syncs a worker process takes from Redis at a time: one per thread, and
    half as many again waiting for the next free thread.

    A long sync holds a thread for minutes, so a process must not hoard queued syncs (dramatiq
    prefetches two per thread by default) while other processes sit idle. Yet with exactly one
    per thread, dramatiq's consumer backs off while every thread is busy and wakes late once
    one frees: short runs (polls, webhooks) waited as long as they worked (200 sleeps of 30 ms
    on 2 threads: 38/s with 2 prefetched, 50/s with 3, 56/s with 4; on 4 threads: 63/s with 4,
    97/s with 6).
    """
    return threads + (threads + 1) // 2


IDLE_POLL_MS = 100
"""The longest a worker waits between looks at Redis for new messages (`dramatiq_worker_timeout`)."""
# Why not dramatiq's 1,000 ms: its consumer counts every look that brings nothing (including
# while all prefetched messages are still being worked on) as a miss, and after each miss sleeps
# twice as long as before, up to this value. Under a steady stream of short runs the sleeps grew
# to a second, and queued syncs waited for them with the CPU half idle (webhook benchmark:
# queue wait p50 1.06 s at 1,000 ms, 0.36 s at 100 ms). Looking ten times a second while idle
# costs one small Redis script call per queue each time (measured in the README).


@app.command("worker")
def run_worker(
    processes: Annotated[int, typer.Option(help="Worker processes")] = 2,
    threads: Annotated[int, typer.Option(help="Threads per process")] = 4,
    metrics_port: Annotated[
        int, typer.Option(envvar="PTSYNC_WORKER_METRICS_PORT", help="/metrics, /healthz, /readyz (0: off)")
    ] = 9191,
) -> None:
    """Run queue workers (needs PTSYNC_BROKER_URL: the in-process broker has no separate worker)."""
    from worker.settings import get_settings

    settings = get_settings()
    if not settings.broker_url:
        fail(
            "`ptsync worker` needs PTSYNC_BROKER_URL (e.g. redis://127.0.0.1:6379/0); without it, "
            "syncs run inside the ptsync command itself"
        )
    if settings.is_sqlite:
        # The embedded database migrates itself when a runtime is built: here, once, not in each
        # process at boot (`RuntimeAtBoot`), all at once, where a loser of that race can leave a
        # half-made table behind that breaks the next migration.
        _runtime().db.dispose()  # its connections are not carried over `execv`
    os.environ.setdefault("dramatiq_queue_prefetch", str(queue_prefetch(threads)))
    os.environ.setdefault("dramatiq_worker_timeout", str(IDLE_POLL_MS))
    from worker.worker_ops import prepare_worker_environment

    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "dramatiq",
            "worker.actors",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            *prepare_worker_environment(metrics_port),
        ],
    )


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port (or $PORT)")] = 8000,
) -> None:
    """Run the HTTP app: webhooks, the admin API (/docs) and the admin pages (/orgs/SLUG/)."""
    import uvicorn

    from worker.store.db import configure_orm
    from worker.web import create_app

    _runtime()  # fail early, with one line, on configuration errors
    listening = _listen(host, port)  # before saying so: a busy or wrong port is one line
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"serving on http://{shown}:{port}/ (admin pages at /orgs/SLUG/, API docs at /docs)", soft_wrap=True
    )
    served = create_app()
    configure_orm()  # not in the first webhook
    _set_imports_aside(collect_first=True)  # what it imported is never walked again
    # log_config=None: uvicorn's lines go through ptsync's handler (PTSYNC_LOG_FORMAT=json applies)
    config = uvicorn.Config(
        served, host=host, port=port, log_level="warning", proxy_headers=True, log_config=None
    )
    uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int):
    """A socket bound to `host`:`port`, or one line saying why not (a port out of range, in use,
    or an address this machine does not have) before anything claims to be serving.

    It is bound, not yet listening: until the app is built and the server listens on it,
    connections are refused (as before), so a readiness probe never waits on a half-started app."""
    import socket

    if not 1 <= port <= 65535:
        fail(f"--port {port}: a port is a number from 1 to 65535")
    # The family as uvicorn chose it: IPv6 for an address with ':', else IPv4 (so `localhost`
    # is 127.0.0.1 even where the resolver lists ::1 first).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    listening.set_inheritable(True)
    return listening


@app.command()
def clock(
    metrics_port: Annotated[
        int, typer.Option(envvar="PTSYNC_CLOCK_METRICS_PORT", help="/metrics, /healthz, /readyz (0: off)")
    ] = 9192,
) -> None:
    """Run the scheduler that starts due syncs (one leader at a time through a Redis lock)."""
    from worker.scheduler import run
    from worker.store.db import configure_orm

    _runtime()
    configure_orm()
    _set_imports_aside(collect_first=True)
    run(metrics_port=metrics_port)


@org_app.command("token")
def org_token(
    slug: str,
    label: Annotated[str, typer.Option(help="What the token is for")] = "admin",
    expires_in: Annotated[
        int | None, typer.Option(help="Days until the token stops working (default: never)")
    ] = None,
) -> None:
    """Create an admin token for the API and pages (printed once; stored hashed)."""
    from worker.services.credentials import create_admin_token

    token = create_admin_token(_runtime(), slug, label, expires_in_days=expires_in)
    out.print(token)
    err.print(f"admin token for {slug} ({safe(label)}); it is shown only now. Log in at /orgs/{slug}/login")


@org_app.command("webhooks")
def org_webhooks(
    slug: str,
    base_url: Annotated[
        str, typer.Option(help="Where the web process is reachable")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Create (or rotate) the organisation's webhook URLs and signing secret (printed once)."""
    from worker.services.credentials import rotate_webhook_credentials

    creds = rotate_webhook_credentials(_runtime(), slug)
    base = base_url.rstrip("/")
    out.print(f"physitrack_url={base}/webhooks/physitrack/{creds.url_token}")
    out.print(f"fhir_url={base}/webhooks/fhir/{creds.url_token}")
    out.print(f"halaxy_url={base}/webhooks/halaxy/{creds.url_token}")
    out.print(f"generic_url={base}/webhooks/generic/{slug}")
    out.print(f"generic_signing_secret={creds.signing_secret}")
    err.print("shown only now; the previous URLs and secret no longer work")


def _hint(error: PtsyncError) -> str:
    """The command that fixes it, for errors a service words without CLI commands."""
    slug = getattr(error, "slug", None)
    kind = type(error).__name__
    if kind == "OrganisationPaused":
        return f" (resume it with `ptsync org resume {slug}`)"
    if kind == "NoReportYet":
        return f" (run `ptsync sync {slug} --wait`)"
    if kind == "MissingSetting":
        return f" (set it with `ptsync org update {slug} --{error.setting.replace('_', '-')} ...`)"
    return ""


def main() -> None:
    """The `ptsync` console script: one command, then exit."""
    global _whole_process
    _whole_process = True
    try:
        _run_app()
    finally:
        _before_exit()


def _before_exit() -> None:
    """Close the database, then freeze the collector: the interpreter's teardown then frees
    modules by reference counting without walking all their objects for cycles one last
    time, which took about 0.2 s after a sync of the largest clinic. Objects still alive at
    exit were never promised a finaliser (Python's data model says so); the files and the
    database that matter are closed here or by their owners first."""
    runtime_module = sys.modules.get("worker.runtime")  # not imported by `--help` and the like
    if runtime_module is not None and runtime_module.get_runtime.cache_info().currsize:
        with contextlib.suppress(Exception):  # the command's own outcome is what gets reported
            runtime_module.get_runtime().db.dispose()
    gc.freeze()


def _run_app() -> None:
    from worker import logs

    try:
        logs.configure()  # PTSYNC_LOG_LEVEL (default WARNING), PTSYNC_LOG_FORMAT text|json
        for handler in logging.getLogger().handlers:
            handler.addFilter(ExpectedFailures())  # one line per expected failure, not a traceback
        code = _invoke_app()
    except PtsyncError as exc:  # the one place the CLI maps the error tree: one line, exit 1
        fail(str(exc) + _hint(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:
        # SQLAlchemy is imported only by commands that touch the database, not by `--help`.
        database_errors = sys.modules.get("sqlalchemy.exc")
        if database_errors is None or not isinstance(exc, database_errors.OperationalError):
            raise
        fail(f"database error: {exc.orig.__class__.__name__}: {str(exc.orig).splitlines()[0]}")
    if code:
        sys.exit(code)


def _invoke_app() -> int:
    """Run the command line and return its exit code, with Click's own errors in one line.

    Click's standalone mode prints a usage error as a usage line, a hint and a box of several
    lines; a script or an admin reading a log wants what every other ptsync error gives: one
    line naming the command, the problem and where help is (README: errors are one line on
    stderr). Running Click outside its standalone mode lets the errors reach this function.
    """
    try:  # Typer 0.2x carries its own copy of Click; earlier releases use Click itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover (the installed Typer decides)
        from click import exceptions as click_errors

    command = typer.main.get_command(app)
    try:
        result = command.main(prog_name="ptsync", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # `ptsync org`: the help is the answer
        exc.show()
        return exc.exit_code
    except click_errors.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else "ptsync"
        message = " ".join(exc.format_message().replace("Value error, ", "").split())
        fail(f"{path}: {message} (see `{path} --help`)", code=exc.exit_code)
    except click_errors.ClickException as exc:
        fail(" ".join(exc.format_message().split()), code=exc.exit_code)
    except (getattr(click_errors, "Abort", typer.Abort), typer.Abort):
        fail("aborted")
    except BrokenPipeError:  # `ptsync report x | head`: the reader left, nothing to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the interpreter flushes it at exit)
        return 1
    # Outside standalone mode Click returns an `Exit`'s code, and a command's own return value
    # (ptsync's commands return None).
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    main()
