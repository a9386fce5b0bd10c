"""Command groups kept out of `worker/cli.py`, registered there in a few lines."""

from __future__ import annotations

from typing import Annotated

import typer


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # ~15 ms: only for --version

        try:
            number = version("ptsync")
        except PackageNotFoundError:  # running from a source tree that was never installed
            number = "unknown"
        typer.echo(f"ptsync {number}")
        raise typer.Exit()


def register(app: typer.Typer, org_app: typer.Typer) -> None:
    """Adds the organisation lifecycle, `runs`, `ptdirect` and `--version` to the CLI."""
    from worker.commands import org_lifecycle
    from worker.commands.ptdirect import ptdirect_app

    org_lifecycle.register(app, org_app)
    from worker.commands import locations

    org_app.command("locations")(locations.locations)
    app.add_typer(ptdirect_app, name="ptdirect")

    @app.callback()
    def _main(
        show_version: Annotated[
            bool,
            typer.Option("--version", help="Print the version and exit", callback=_version, is_eager=True),
        ] = False,
    ) -> None:
        """Keep Physitrack PT Direct share groups in step with your PMS."""
