"""`ptsync notify ...`: an organisation's notification channels."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.clock import iso
from worker.terminal import InertTable

app = typer.Typer(no_args_is_help=True, help="Notification channels: email, chat, push, signed webhooks.")


def _runtime():
    from worker.runtime import get_runtime

    return get_runtime()


@app.command("add")
def add(
    slug: str,
    url: Annotated[
        str,
        typer.Argument(help="email:ADDRESS, an https:// webhook, or an apprise URL (slack://, ntfy://, ...)"),
    ],
    events: Annotated[
        str,
        typer.Option(help="Comma-separated: findings,proposal,apply,failing,stale,resolved (default all)"),
    ] = "all",
    min_severity: Annotated[
        str, typer.Option(help="Lowest finding severity announced: high, medium, low, info")
    ] = ("medium"),
    digest: Annotated[str, typer.Option(help="none (send at once) or daily (one message a day)")] = "none",
    by: Annotated[str, typer.Option(help="Who adds it (for the audit log)")] = "",
) -> None:
    """Add a channel. A webhook's signing secret is printed once."""
    from worker.cli import err, out
    from worker.services.audit import cli_actor
    from worker.services.notifications import NewChannel, add_channel, parse_events

    added = add_channel(
        _runtime(),
        slug,
        NewChannel(url=url, events=parse_events(events), min_severity=min_severity, digest=digest),
        cli_actor(by),
    )
    err.print(f"added {added.kind} channel {added.id} for {slug}: {added.display}")
    if added.signing_secret:
        out.print(f"signing_secret={added.signing_secret}")
        err.print("the webhook signing secret is shown only now (Standard Webhooks, verify every request)")


@app.command("list")
def list_channels(slug: str) -> None:
    """List channels with their health (ok, failing, untested)."""
    from worker.cli import err, out
    from worker.services.notifications import notification_status

    channels = notification_status(_runtime(), slug)
    if not channels:
        err.print(f"no notification channels for {slug} (add one with: ptsync notify add {slug} URL)")
        return
    table = InertTable(
        "id", "kind", "target", "events", "min severity", "digest", "state", "last success", "pending"
    )
    for c in channels:
        state = c.state if c.state != "failing" else f"failing ({c.consecutive_failures}x)"
        if c.last_error:
            state += f"; last error: {c.last_error}"
        table.add_row(
            str(c.id),
            c.kind,
            c.display,
            ",".join(c.events),
            c.min_severity,
            c.digest,
            state,
            iso(c.last_success_at) or "-",
            str(c.pending),
        )
    out.print(table)


@app.command("remove")
def remove(
    slug: str,
    channel_id: int,
    by: Annotated[str, typer.Option(help="Who removes it (for the audit log)")] = "",
) -> None:
    """Remove a channel (its unsent messages go with it)."""
    from worker.cli import err
    from worker.services.audit import cli_actor
    from worker.services.notifications import remove_channel

    remove_channel(_runtime(), slug, channel_id, cli_actor(by))
    err.print(f"removed notification channel {channel_id} of {slug}")


@app.command("test")
def test(slug: str, by: Annotated[str, typer.Option(help="Who sends it (for the audit log)")] = "") -> None:
    """Send a test message through every channel now; exit 1 if any failed."""
    from worker.cli import err, fail, out
    from worker.services.audit import cli_actor
    from worker.services.notify_delivery import send_test

    results = send_test(_runtime(), slug, cli_actor(by))
    if not results:
        fail(f"no notification channels for {slug} (add one with: ptsync notify add {slug} URL)")
    for result in results:
        out.print(
            f"{result.channel_id} {result.display}: {'sent' if result.ok else 'FAILED: ' + str(result.error)}"
        )
    failed = [r for r in results if not r.ok]
    if failed:
        fail(f"{len(failed)} of {len(results)} channel(s) failed")
    err.print(f"test message sent through {len(results)} channel(s)")
