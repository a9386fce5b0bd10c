"""`ptsync org locations SLUG`: the PMS's locations, to choose an organisation's `--locations`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from worker.terminal import InertTable


def locations(
    slug: Annotated[str, typer.Argument(help="The organisation whose PMS account to list")],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List the PMS account's locations (Cliniko businesses, FHIR/Halaxy locations or clinics,
    Nookal or Semble locations, an export's location column) with their ids and how many active
    practitioners work there or saw a patient there within the lookback window. `*` marks the
    organisation's chosen --locations. Several organisations may share one PMS key: give each
    its own --locations (and --include-people / --exclude-people) with `org add` or `org update`."""
    from worker import cli
    from worker.services.org_scope import list_locations

    if format not in ("table", "json"):
        cli.fail("--format must be table or json")
    rows = list_locations(cli._runtime(), slug)
    if format == "json":
        document = [
            {
                "id": row.id,
                "name": row.name,
                "practitioners": row.practitioners,
                "in_scope": row.in_scope,
                "archived": row.archived,
            }
            for row in rows
        ]
        cli.out.print(json.dumps(document, indent=2), markup=False)
        return
    if not rows:
        cli.err.print(
            f"{slug}'s PMS lists no locations: every practitioner it returns is read "
            "(--locations needs locations to choose from)"
        )
        return
    table = InertTable("", "id", "name", "practitioners", title=f"Locations of {slug}'s PMS")
    for row in rows:
        name = f"{row.name} (archived)" if row.archived else row.name
        table.add_row("*" if row.in_scope else "", row.id, name, str(row.practitioners))
    cli.out.print(table)
    if not any(row.in_scope for row in rows):
        cli.err.print(
            f"{slug} reads every location; choose with `ptsync org update {slug} --locations ID,...`"
        )
