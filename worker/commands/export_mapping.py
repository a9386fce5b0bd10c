"""`ptsync export-mapping check FILE --mapping M.toml`: try a mapping on an export before using it.

Shows the first rows as ptsync reads them (patients as pseudonyms, as everywhere in ptsync) and
every row it rejects with the file, row, column and reason; exits 1 if any row is rejected, so
the same check can gate a scheduled export upload.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections import Counter
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

export_mapping_app = typer.Typer(
    no_args_is_help=True, help="Check appointment-export mappings (--pms export)."
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _safe(value: str) -> Text:
    """A cell from someone else's file, shown literally: no markup, no terminal control codes."""
    return Text(_CONTROL.sub("?", value))


@export_mapping_app.command("check")
def check(
    path: Annotated[str, typer.Argument(help="The export: a .csv or .xlsx file, or a folder of them")],
    mapping: Annotated[str, typer.Option(help="A preset name (generic, mirah) or a mapping .toml file")],
    staff: Annotated[str | None, typer.Option(help="Optional staff list CSV (id,name,email,active)")] = None,
    rows: Annotated[int, typer.Option(help="How many rows to show")] = 10,
) -> None:
    """Show how ptsync reads an export with a mapping, and every row it rejects."""
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    # Imported here: the connector pulls in the core (numpy), which `ptsync --help` must not pay for.
    from connectors.export import Staff, read_export
    from connectors.export_mapping import load_mapping

    loaded = load_mapping(mapping)
    staff_list = Staff.load(staff) if staff else None
    read, rejected = read_export(path, loaded, staff_list)
    key = os.urandom(16)

    def pseudonym(patient: str) -> str:
        return "pt_" + hashlib.blake2b(patient.encode(), key=key, digest_size=6).hexdigest()

    table = Table("file", "row", "practitioner id", "name", "email", "patient", "date", "status", "counts as")
    for row in read[: max(rows, 0)]:
        table.add_row(
            _safe(row.file),
            str(row.row),
            _safe(row.practitioner_id),
            _safe(row.practitioner_name),
            _safe(row.practitioner_email or ""),
            pseudonym(row.patient_id),
            row.day.isoformat(),
            _safe(row.status_value),
            row.status_class.replace("_", " "),
        )
    out.print(table)
    practitioners = {row.practitioner_id for row in read}
    patients = {row.patient_id for row in read}
    classes = Counter(row.status_class for row in read)
    out.print(
        f"{len(read):,} rows read ({', '.join(f'{n:,} {k}' for k, n in sorted(classes.items())) or 'none'}); "
        f"{len(practitioners)} practitioners, {len(patients):,} patients (shown as pseudonyms)"
    )
    if rejected:
        out.print(f"{len(rejected):,} rows rejected:")
        for rejection in rejected:
            out.print(_safe(str(rejection)))
        raise typer.Exit(1)
    out.print("no rows rejected")
