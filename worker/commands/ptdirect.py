"""`ptsync ptdirect show|import|edit|history`: the PT Direct state kept by `--ptdirect manual`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from worker.terminal import InertTable

ptdirect_app = typer.Typer(
    no_args_is_help=True,
    help="The PT Direct state ptsync keeps for --ptdirect manual (what PT Direct's screens show).",
)


def _cli():
    from worker import cli

    return cli


CHANGES_SHOWN = 50
"""Changes listed after a recording: a first import of a big clinic has tens of thousands."""

IMPORT = "ptdirect import"
"""How errors in an imported or edited document are prefixed."""


def _actor() -> str:
    """Who is recording, as every other command line action names them (`cli:USER@HOST`)."""
    return _cli()._cli_actor("")


def _report(slug: str, recorded) -> None:
    cli = _cli()
    if recorded is None:
        cli.err.print(f"no change: the recorded PT Direct state of {slug} already says this")
        return
    cli.err.print(f"recorded version {recorded.version} of {slug}'s PT Direct state:", markup=False)
    for change in recorded.changes[:CHANGES_SHOWN]:
        cli.err.print(f"  {change}", markup=False)
    hidden = len(recorded.changes) - CHANGES_SHOWN
    if hidden > 0:
        cli.err.print(
            f"  ... and {hidden:,} more (all of them: `ptsync ptdirect history {slug}`)", markup=False
        )


@ptdirect_app.command("show")
def show(
    slug: str,
    format: Annotated[
        str, typer.Option("--format", help="table or json (a ptsync.ptdirect/1 document)")
    ] = "table",
    template: Annotated[
        bool, typer.Option("--template", help="Nothing recorded yet: print a start pre-filled from the PMS")
    ] = False,
) -> None:
    """Print the recorded PT Direct state (the newest version)."""
    from connectors.ptdirect_file import snapshot_document
    from worker.services import ptdirect_state

    cli = _cli()
    runtime = cli._runtime()
    current = ptdirect_state.latest(runtime, slug)
    if current is None and not template:
        cli.fail(
            f"no PT Direct state is recorded for {slug} yet: record it at /orgs/{slug}/ptdirect, or "
            f"`ptsync ptdirect show {slug} --template --format json > pt.json`, edit, then "
            f"`ptsync ptdirect import {slug} pt.json`"
        )
    if format == "json":
        document = snapshot_document(current.snapshot) if current else ptdirect_state.template(runtime, slug)
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    if current is None:
        cli.fail("--template needs --format json")
    snapshot = current.snapshot
    cli.out.print(
        f"{slug}: PT Direct state version {current.version}, "
        f"recorded {current.recorded_at:%Y-%m-%d %H:%M} UTC "
        f"by {current.recorded_by} ({current.source})",
        markup=False,
    )
    users = InertTable("user", "email", "status", "practitioner access", "PMS link", title="Users")
    for user in snapshot.users:
        link = f"{user.pms_link.system} {user.pms_link.practitioner_id}" if user.pms_link else ""
        users.add_row(
            user.name, user.email, user.status.value, "yes" if user.practitioner_access else "no", link
        )
    cli.out.print(users)
    sharing = InertTable("member", "share content", "share patients", title="Practitioner sharing")
    for member in snapshot.sharing_members:
        sharing.add_row(
            member.email, "yes" if member.share_content else "no", "yes" if member.share_patients else "no"
        )
    cli.out.print(sharing)
    master = snapshot.master_account
    cli.out.print(
        "Master account: "
        + (
            "not set"
            if master is None
            else f"{master.email}; recipients: {', '.join(master.recipients) or 'none'}"
        ),
        markup=False,
    )


@ptdirect_app.command("import")
def import_(
    slug: str,
    file: Annotated[str, typer.Argument(help="A ptsync.ptdirect/1 JSON file ('-' reads standard input)")],
) -> None:
    """Validate a ptsync.ptdirect/1 document and record it as the newest PT Direct state."""
    from connectors.limits import read_json_file, read_json_stream
    from worker.services import ptdirect_state

    cli = _cli()
    where = "standard input" if file == "-" else file
    if file == "-":
        document = read_json_stream(IMPORT, where, sys.stdin.buffer)
    else:
        document = read_json_file(IMPORT, Path(file))
    _report(slug, ptdirect_state.record(cli._runtime(), slug, document, _actor(), "import", where))
    _warn_unless_manual(slug)


def _warn_unless_manual(slug: str) -> None:
    from worker.store import repositories as repo

    cli = _cli()
    with cli._runtime().db.transaction() as session:
        kind = repo.get_org(session, slug).ptdirect_kind
    if kind != "manual":
        cli.err.print(
            f"note: {slug} reads PT Direct from its {kind} source; this recorded state is used once you "
            f"switch: `ptsync org update {slug} --ptdirect manual`",
            markup=False,
        )


@ptdirect_app.command("edit")
def edit(slug: str) -> None:
    """Open the recorded state (or a start pre-filled from the PMS) in $EDITOR; record it on save."""
    from worker.services import ptdirect_state

    cli = _cli()
    runtime = cli._runtime()
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        cli.fail(f"set $EDITOR (e.g. EDITOR=nano), or use `ptsync ptdirect import {slug} FILE`")
    original = json.dumps(ptdirect_state.template(runtime, slug), indent=2) + "\n"
    handle, name = tempfile.mkstemp(prefix=f"ptsync-{slug}-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        file.write(original)
    command = [*shlex.split(editor), name]
    try:
        status = subprocess.call(command)
    except OSError as exc:  # not installed, not executable: say which, keep nothing half-done
        os.unlink(name)
        cli.fail(f"cannot start the editor {command[0]!r} ($VISUAL or $EDITOR): {exc.strerror or exc}")
    if status != 0:
        cli.fail(f"the editor failed; your text is kept in {name}")
    if Path(name).read_text(encoding="utf-8", errors="replace") == original:
        os.unlink(name)
        cli.err.print("no change")
        return
    from connectors.limits import read_json_file

    try:
        document = read_json_file(IMPORT, Path(name))
        recorded = ptdirect_state.record(runtime, slug, document, _actor(), "edit", name)
    except Exception as exc:
        cli.fail(f"{exc} (fix it, then `ptsync ptdirect import {slug} {name}`)")
    os.unlink(name)
    _report(slug, recorded)
    _warn_unless_manual(slug)


@ptdirect_app.command("history")
def history(slug: str, limit: Annotated[int, typer.Option(help="How many versions")] = 20) -> None:
    """Who recorded which PT Direct state when, and what changed."""
    from worker.services import ptdirect_state

    cli = _cli()
    versions = ptdirect_state.history(cli._runtime(), slug, limit)
    if not versions:
        cli.err.print(f"nothing recorded for {slug} yet")
        return
    table = InertTable("version", "recorded", "by", "from", "changes")
    for v in versions:
        table.add_row(
            str(v.version),
            f"{v.recorded_at:%Y-%m-%d %H:%M}",
            v.recorded_by,
            v.source + (f" ({v.note})" if v.note else ""),
            "\n".join(v.changes),
        )
    cli.out.print(table)
