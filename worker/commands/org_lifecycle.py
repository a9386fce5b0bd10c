"""`ptsync org show|update|pause|resume|remove|test` and `ptsync runs`.

`org update` has one option per field of `NewOrganisation` (the settings `org add` stores); both
commands are built from the one table in `org_options.py`.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from worker.commands.org_options import SECRET_FIELDS, signature
from worker.commands.terminal import read_secret
from worker.terminal import InertTable


def _cli():
    from worker import cli

    return cli


def _actor() -> str:
    """Who is at the terminal, as every command line action names them (`cli:USER@HOST`)."""
    return _cli()._cli_actor("")


def show(
    slug: str,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Show an organisation: connections (never secrets), policy, settings, schedule, last run."""
    from worker.services.org_admin import describe

    cli = _cli()
    document = describe(cli._runtime(), slug)
    if format == "json":
        cli.out.print(json.dumps(document, indent=2), markup=False)
        return
    if format != "table":
        cli.fail("--format must be table or json")
    table = InertTable("setting", "value", title=f"Organisation {slug}", show_header=False)
    table.add_row(
        "state",
        f"paused since {document['paused_at']} by {document['paused_by']}"
        if document["paused"]
        else "active",
    )
    for name, value in document["settings"].items():
        table.add_row(name, "" if value is None else str(value))
    table.add_row("next scheduled sync", document["schedule"]["next_due"] or "none (paused)")
    table.add_row("next full sync", document["schedule"].get("full_sync_next_due") or "none (paused)")
    last = document["last_run"]
    table.add_row(
        "last run",
        "none yet"
        if last is None
        else f"{last['id']} {last['status']} "
        f"({last['trigger']}, {last['finished_at'] or last['requested_at']})"
        + (f": {last['error']}" if last["error"] else ""),
    )
    for channel in document.get("notifications") or []:
        health = channel["state"]
        if channel["state"] == "failing":
            health += f" ({channel['consecutive_failures']} in a row: {channel['last_error']})"
        table.add_row(f"notifications #{channel['id']}", f"{channel['channel']}: {health}")
    cli.out.print(table)


def update(**options: Any) -> None:
    """Change any setting of `org add`; the connections are tested first unless --no-test."""
    from worker.services.org_admin import update_organisation

    cli = _cli()
    slug = options.pop("slug")
    test = not options.pop("no_test")
    for name in SECRET_FIELDS:
        options[name] = read_secret(options.get(name), f"--{name.replace('_', '-')}")
    changed, checks = update_organisation(cli._runtime(), slug, options, _actor(), test=test)
    for check in checks:
        cli.err.print(check.line(), markup=False)
    if not changed:
        cli.err.print(f"nothing to change for {slug}")
        return
    cli.err.print(f"updated {slug}: {', '.join(changed)}")


update.__signature__ = signature(for_update=True)  # type: ignore[attr-defined]


def pause(slug: str) -> None:
    """Pause an organisation: no sync from the clock, webhooks or by hand until `org resume`."""
    from worker.services.org_admin import set_paused

    cli = _cli()
    changed = set_paused(cli._runtime(), slug, True, _actor())
    cli.err.print(
        f"{slug} is paused"
        + ("" if changed else " (it already was)")
        + f"; resume with `ptsync org resume {slug}`"
    )


def resume(slug: str) -> None:
    """Resume a paused organisation: its schedule and webhooks start syncs again."""
    from worker.services.org_admin import set_paused

    cli = _cli()
    changed = set_paused(cli._runtime(), slug, False, _actor())
    cli.err.print(f"{slug} is active" + ("" if changed else " (it was not paused)"))


def remove(
    slug: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete an organisation and everything ptsync holds of it (runs, findings, keys, tokens...)."""
    from worker.services.org_admin import remove_organisation
    from worker.store import repositories as repo

    cli = _cli()
    runtime = cli._runtime()
    with runtime.db.transaction() as session:
        repo.get_org(session, slug)  # an unknown slug fails before asking anything
    if not yes:
        if not os.isatty(0):
            cli.fail(f"removing {slug} deletes all its data: confirm with --yes (no terminal to ask on)")
        typed = typer.prompt(
            f"This deletes {slug} and all its runs, reports, proposals, keys and tokens. "
            "Type its slug to confirm"
        )
        if typed.strip() != slug:
            cli.fail(f"not removed: you typed {typed.strip()!r}, not {slug!r}")
    deleted = remove_organisation(runtime, slug, _actor())
    total = sum(deleted.values())
    cli.err.print(
        f"removed {slug} and {total} rows of its data "
        f"({', '.join(f'{t}: {n}' for t, n in sorted(deleted.items())) or 'nothing else'})"
    )


def test(slug: str) -> None:
    """Check every connection of an organisation and say which one fails and why."""
    from worker.services.org_admin import check_organisation

    cli = _cli()
    checks = check_organisation(cli._runtime(), slug)
    for check in checks:
        cli.out.print(check.line(), markup=False)
    failed = [check for check in checks if not check.ok]
    if failed:
        cli.fail(f"{len(failed)} of {len(checks)} connections of {slug} failed")


def runs(
    slug: str,
    limit: Annotated[int, typer.Option(help="How many runs, newest first")] = 20,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """An organisation's run history, newest first."""
    from worker import views

    cli = _cli()
    runtime = cli._runtime()
    fields = ("id", "trigger", "status", "requested_at", "finished_at", "attempts", "findings", "error")
    history = views.runs(runtime, views.org_id_of(runtime, slug), limit)
    # A poll that found nothing changed has no report of its own (README "Polls and the full sync").
    rows = [
        {field: run.as_json()[field] for field in fields}
        | {"unchanged_since": run.counts.get("unchanged_since")}
        for run in history
    ]
    if format == "json":
        cli.out.print(json.dumps(rows, indent=2), markup=False)
        return
    if not rows:
        cli.err.print(f"no runs for {slug} yet: start one with `ptsync sync {slug}`")
        return
    table = InertTable("requested", "trigger", "status", "findings", "error")
    table.add_column("run", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(
            row["requested_at"],
            row["trigger"],
            row["status"],
            "unchanged" if row["unchanged_since"] else str(row["findings"]),
            row["error"] or "",
            row["id"],
        )
    cli.out.print(table)


def register(app: typer.Typer, org_app: typer.Typer) -> None:
    org_app.command("show")(show)
    org_app.command("update")(update)
    org_app.command("pause")(pause)
    org_app.command("resume")(resume)
    org_app.command("remove")(remove)
    org_app.command("test")(test)
    app.command("runs")(runs)
