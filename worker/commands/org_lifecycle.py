"""`ptsync org show|update|pause|resume|remove|test` and `ptsync runs`.

`org update` has one option per field of `NewOrganisation` (the settings `org add` stores), so a
setting added to `org add` through `NewOrganisation` is on `org update` too. `ORG_OPTION_HELP`
only words their help.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from worker.commands.terminal import SECRET_HELP, read_secret

ORG_OPTION_HELP = {
    "pms": "cliniko, fhir or csv",
    "ptdirect": "manual, file or api",
    "pms_url": "the PMS API base URL",
    "pms_key": f"PMS API key (stored encrypted; {SECRET_HELP})",
    "pms_path": "CSV folder for --pms csv",
    "ptdirect_path": "snapshot file for --ptdirect file",
    "ptdirect_url": "admin bridge URL for --ptdirect api",
    "ptdirect_key": f"admin bridge key (stored encrypted; {SECRET_HELP})",
    "policy": "observe, propose or apply-safe",
    "schedule": "cron expression (UTC) for scheduled syncs",
    "physitrack_region": "us, uk, ca or au (API v2 client lists)",
    "physitrack_url": "override the Physitrack API v2 base URL",
    "sharing_scope": "co-treating or everyone",
    "master_recipients": "all-active or manual",
    "lookback_days": "how far back shared patients count",
    "removal_threshold": "a read losing more than this % of active practitioners proposes no removals",
    "removal_threshold_people": "...and more than this many people",
    "timezone": "IANA time zone, e.g. Europe/London",
    "pms_format": "--pms export: a preset or a mapping .toml file",
    "pms_staff": "--pms export: optional staff list CSV",
    "locations": "clinic groups: PMS location ids, comma-separated ('' for all; see `org locations`)",
    "include_people": "clinic groups: PMS practitioner ids or emails to include, comma-separated",
    "exclude_people": "clinic groups: PMS practitioner ids or emails to exclude, comma-separated",
}
SECRET_FIELDS = ("pms_key", "ptdirect_key")


def _cli():
    from worker import cli

    return cli


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


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
    table = Table("setting", "value", title=f"Organisation {slug}", show_header=False)
    table.add_row(
        "state",
        f"paused since {document['paused_at']} by {document['paused_by']}"
        if document["paused"]
        else "active",
    )
    for name, value in document["settings"].items():
        table.add_row(name, "" if value is None else str(value))
    table.add_row("next scheduled sync", document["schedule"]["next_due"] or "none (paused)")
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


_TYPES = {"int": int, "float": float, "bool": bool}


def _type_of(annotation: ast.expr) -> type:
    """int, float or bool when the annotation names one (`int | None`), else str."""
    names = {node.id for node in ast.walk(annotation) if isinstance(node, ast.Name)}
    return next((kind for name, kind in _TYPES.items() if name in names), str)


def _organisation_fields() -> list[tuple[str, type]]:
    """(name, type) of each field of `NewOrganisation`, read from its source, not imported.

    Building the CLI must stay quick (`--help`, `--version`); importing the service would load
    every connector. A test checks that these are exactly the dataclass's fields.
    """
    source = (Path(__file__).resolve().parent.parent / "services" / "orgs.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == "NewOrganisation":
            return [
                (item.target.id, _type_of(item.annotation))
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            ]
    raise RuntimeError("worker/services/orgs.py has no NewOrganisation")


def _update_signature() -> inspect.Signature:
    params = [
        inspect.Parameter(
            "slug", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[str, typer.Argument()]
        )
    ]
    for name, kind in _organisation_fields():
        if name == "slug":
            continue
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    kind | None,
                    typer.Option(
                        f"--{name.replace('_', '-')}",
                        help=ORG_OPTION_HELP.get(name, f"as on `org add` ({name})"),
                        show_default=False,
                    ),
                ],
            )
        )
    params.append(
        inspect.Parameter(
            "no_test",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool, typer.Option("--no-test", help="Store without testing the connections")
            ],
        )
    )
    return inspect.Signature(params)


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


update.__signature__ = _update_signature()  # type: ignore[attr-defined]


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
    from worker.clock import iso
    from worker.store import repositories as repo

    cli = _cli()
    with cli._runtime().db.transaction() as session:
        org = repo.get_org(session, slug)
        rows = [
            {
                "id": r.id,
                "trigger": r.trigger,
                "status": r.status,
                "requested_at": iso(r.requested_at),
                "finished_at": iso(r.finished_at),
                "attempts": r.attempts,
                "findings": sum(((r.counts or {}).get("findings") or {}).values()),
                "error": r.error,
            }
            for r in repo.runs_of(session, org.id, limit)
        ]
    if format == "json":
        cli.out.print(json.dumps(rows, indent=2), markup=False)
        return
    if not rows:
        cli.err.print(f"no runs for {slug} yet: start one with `ptsync sync {slug}`")
        return
    table = Table("requested", "trigger", "status", "findings", "error")
    table.add_column("run", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(
            row["requested_at"],
            row["trigger"],
            row["status"],
            str(row["findings"]),
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
